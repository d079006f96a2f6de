#!/usr/bin/env bash
# The sentence encoder on the GPU machine (issue 13, item 7): texts/s at batch 64 / 256 / 1024,
# sequence length 128, FP32 and FP16 on the CUDA execution provider, and the embeddings' largest
# difference from the CPU's (FP32 graph on both: target <= 1e-3). Run in the repository root after
# scripts/gpu-prepare.sh, with .gpu carried along; reports JSON lines under ${OUT:-target/gpu}.
# A session that silently falls back to the CPU is a failure: `--provider cuda` refuses to.
# What travels: .gpu (the CUDA bundle, ~57 MiB, and vigil.xz, ~4 MiB): one carry, under 64 MiB.
set -euo pipefail
out=${OUT:-target/gpu}
mkdir -p "$out" /tmp/ort
for f in .gpu/*.xz; do xz -dc "$f" > "/tmp/ort/$(basename "$f" .xz)"; done
chmod +x /tmp/ort/vigil
nv=$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
[ -n "$nv" ] && export LD_LIBRARY_PATH=/tmp/ort:$(ls -d "$nv"/*/lib | paste -sd:):${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH=/tmp/ort:${LD_LIBRARY_PATH:-}
export ORT_DYLIB_PATH=$(ls /tmp/ort/libonnxruntime.so* | head -1)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
vigil=/tmp/ort/vigil
$vigil encoder build --from load-tests/gpu --random-weights --out "$out/encoder-fp32.onnx"
$vigil encoder build --from load-tests/gpu --random-weights --fp16 --out "$out/encoder-fp16.onnx"
$vigil encoder bench --graph "$out/encoder-fp32.onnx" --provider cuda --seconds 5 --parity | tee "$out/fp32.jsonl"
$vigil encoder bench --graph "$out/encoder-fp16.onnx" --provider cuda --seconds 5 --parity \
  --reference "$out/encoder-fp32.onnx" | tee "$out/fp16.jsonl"
$vigil encoder bench --graph "$out/encoder-fp32.onnx" --provider cpu --batches 64 --seconds 5 | tee "$out/cpu.jsonl"
