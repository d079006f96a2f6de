#!/usr/bin/env bash
# `make test`: set up what the tests need, check formatting and lints, start a local broker (on its
# own port, so a demo broker on 9092 is left alone), a secured broker (SASL_SSL with ACLs), a fault
# broker (killed and restarted by the fault tests, reached through their proxy) and a schema
# registry (Apicurio), run every test, stop what it started.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$VIGIL_ROOT"
"$VIGIL_ROOT/scripts/setup.sh"
source "$VIGIL_ROOT/scripts/env.sh"  # again: setup may have just installed ONNX Runtime
[ -n "${ORT_DYLIB_PATH:-}" ] || { echo "test.sh: ONNX Runtime library not found in $VIGIL_VENV" >&2; exit 1; }

# Disk: a clean build and the test run need about 15 GiB; say so plainly rather than fail mid-link.
free_gib=$(df -Pk "$VIGIL_ROOT" | awk 'NR==2 {print int($4 / 1048576)}')
if [ "$free_gib" -lt 15 ]; then
  echo "test.sh: only ${free_gib} GiB free on $VIGIL_ROOT; the build and tests need about 15 GiB" >&2
  exit 1
fi
# A clean clone gains nothing from incremental builds but their disk (tens of GiB over a session).
[ "${CI:-}" = true ] && export CARGO_INCREMENTAL=0
# CI shows the start and the end of a long output: a test's panic message must end it, not a stack
# trace of the test harness's frames (the message names the file and line already).
[ "${CI:-}" = true ] && export RUST_BACKTRACE=0
# What the tests write in the temporary folder (broker-less scratch, services' logs, model stores)
# goes under target/, emptied at each run, so failed runs do not pile up in /tmp.
export TMPDIR="$VIGIL_ROOT/target/test-tmp"
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"

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
# A secured broker (SASL_SSL, SCRAM-SHA-512, ACLs) beside the plain one; its env file names the
# address, the CA and the users.
export VIGIL_SECURE_PORT=${VIGIL_TEST_SECURE_PORT:-19192}
secure_started=0
if ! scripts/kafka-secure.sh status >/dev/null 2>&1; then
  scripts/kafka-secure.sh start
  secure_started=1
fi
set -a
source "$VIGIL_CACHE/kafka-secure-$VIGIL_SECURE_PORT/env"
set +a
# The fault broker: storage of its own, advertising a port where the fault tests run a proxy.
export VIGIL_FAULT_BROKER_PORT=${VIGIL_TEST_FAULT_PORT:-19692} VIGIL_FAULT_PROXY_PORT=${VIGIL_TEST_FAULT_PROXY_PORT:-19690}
fault_env=(env VIGIL_KAFKA_PORT="$VIGIL_FAULT_BROKER_PORT" VIGIL_KAFKA_ADVERTISED_PORT="$VIGIL_FAULT_PROXY_PORT")
"${fault_env[@]}" scripts/kafka.sh reset >/dev/null
"${fault_env[@]}" scripts/kafka.sh start
stop() {
  "${fault_env[@]}" scripts/kafka.sh stop || true
  [ "$secure_started" = 1 ] && scripts/kafka-secure.sh stop || true
  [ "$registry_started" = 1 ] && scripts/registry.sh stop || true
  [ "$started" = 1 ] && scripts/kafka.sh stop || true
}
trap stop EXIT

echo "== cargo test (broker $VIGIL_TEST_BOOTSTRAP, registry $VIGIL_TEST_REGISTRY, ONNX Runtime $ORT_DYLIB_PATH)" >&2
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
# The soak's short version: a minute of the demo's workload on its own broker, every service up at
# the end (`make soak` runs an hour and judges memory).
if [ $# -eq 0 ]; then
  echo "== soak (short)" >&2
  VIGIL_SOAK_SECONDS=60 VIGIL_SOAK_PROFILE=debug VIGIL_SOAK_KAFKA_PORT=19492 VIGIL_SOAK_HTTP_PORT=19571 \
    VIGIL_SOAK_OUT="$VIGIL_ROOT/target/soak-short" scripts/soak.sh
fi
