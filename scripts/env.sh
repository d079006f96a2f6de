# Sourced by the other scripts: where things live. Safe to source twice.
VIGIL_ROOT=${VIGIL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export VIGIL_ROOT
export VIGIL_CACHE=${VIGIL_CACHE:-$VIGIL_ROOT/.cache}
export VIGIL_VENV=${VIGIL_VENV:-$VIGIL_ROOT/.venv}
export VIGIL_PYTHON=${VIGIL_PYTHON:-$VIGIL_VENV/bin/python}
# ONNX Runtime's shared library from the onnxruntime wheel in the project's virtual environment,
# unless the caller points elsewhere (e.g. the onnxruntime-gpu wheel's on a GPU machine).
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  for lib in "$VIGIL_VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*; do
    [ -e "$lib" ] && export ORT_DYLIB_PATH="$lib"
  done
fi
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
