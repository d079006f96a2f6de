#!/usr/bin/env bash
# Prepares what scripts/gpu-bench.sh needs on the GPU machine (issue 13, item 7), here:
#   .gpu/            ONNX Runtime's CUDA provider, pruned to sm_90 (../shared/gpu/ort-cuda-bundle.sh)
#   .gpu/vigil.xz    the `vigil` command built with the `cuda` feature, stripped and compressed
# The encoder's weights (90 MB) do not travel: the GPU machine builds the same graph from
# load-tests/gpu/config.json with seeded random weights, which costs the same to run.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$VIGIL_ROOT"
[ -d .gpu ] && ls .gpu/*.xz >/dev/null 2>&1 || ../shared/gpu/ort-cuda-bundle.sh .gpu
cargo build --release --locked -p vigil-cli --features cuda
strip -o target/release/vigil-gpu target/release/vigil
xz -T0 -9 -c target/release/vigil-gpu > .gpu/vigil.xz
du -ch .gpu/* | tail -1
