#!/usr/bin/env bash
# `make test`: set up what the tests need, check formatting and lints, start a local broker (on its
# own port, so a demo broker on 9092 is left alone) and a schema registry (Apicurio), run every test,
# stop what it started.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$VIGIL_ROOT"
"$VIGIL_ROOT/scripts/setup.sh"
source "$VIGIL_ROOT/scripts/env.sh"  # again: setup may have just installed ONNX Runtime
[ -n "${ORT_DYLIB_PATH:-}" ] || { echo "test.sh: ONNX Runtime library not found in $VIGIL_VENV" >&2; exit 1; }

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings

export VIGIL_KAFKA_PORT=${VIGIL_TEST_KAFKA_PORT:-19092}
export VIGIL_TEST_BOOTSTRAP="127.0.0.1:$VIGIL_KAFKA_PORT"
started=0
if ! scripts/kafka.sh status >/dev/null 2>&1; then
  scripts/kafka.sh start
  started=1
fi
# The schema registry the tests use (Apicurio Registry, Confluent-compatible API).
export VIGIL_REGISTRY_PORT=${VIGIL_TEST_REGISTRY_PORT:-18081}
registry_started=0
if ! scripts/registry.sh status >/dev/null 2>&1; then
  scripts/registry.sh start
  registry_started=1
fi
export VIGIL_TEST_REGISTRY=$(scripts/registry.sh status)
stop() {
  [ "$registry_started" = 1 ] && scripts/registry.sh stop || true
  [ "$started" = 1 ] && scripts/kafka.sh stop || true
}
trap stop EXIT

echo "== cargo test (broker $VIGIL_TEST_BOOTSTRAP, registry $VIGIL_TEST_REGISTRY, ONNX Runtime $ORT_DYLIB_PATH)" >&2
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
