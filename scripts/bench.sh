#!/usr/bin/env bash
# `make bench`: every benchmark beside its baseline, alternating over several rounds, on a broker of
# its own (port 29092, started and stopped here). Reports: target/bench/<name>.json.
# VIGIL_BENCH_ROUNDS, VIGIL_BENCH_DRAIN_ROUNDS (the scorer's drains), VIGIL_BENCH_EVENTS and
# VIGIL_BENCH_LATENCY_SECS size the runs; VIGIL_BENCH_LOG_LEVEL (default warn) sets the systems' own
# log level (info shows where each consume loop's time went when it stops).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$VIGIL_ROOT"
scripts/setup.sh
source "$VIGIL_ROOT/scripts/env.sh"  # again: setup may have just installed ONNX Runtime
cargo build --release --locked --bins
# What the benchmarks write in the temporary folder (each instance's configuration file, the
# baselines' scratch) goes under target/, emptied at each run, instead of piling up in /tmp.
export TMPDIR="$VIGIL_ROOT/target/bench-tmp"
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
export VIGIL_KAFKA_PORT=${VIGIL_BENCH_KAFKA_PORT:-29092}
export VIGIL_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$VIGIL_KAFKA_PORT"
started=0
if ! scripts/kafka.sh status >/dev/null 2>&1; then
  scripts/kafka.sh start
  started=1
fi
stop() { [ "$started" = 1 ] && scripts/kafka.sh stop || true; }
trap stop EXIT
time target/release/vigil-bench "${@:-all}"
