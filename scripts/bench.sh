#!/usr/bin/env bash
# `make bench`: every benchmark beside its baseline, alternating over several rounds, on a broker of
# its own (port 29092, started and stopped here). Reports: target/bench/<name>.json.
# VIGIL_BENCH_ROUNDS, VIGIL_BENCH_DRAIN_ROUNDS (the scorer's drains), VIGIL_BENCH_EVENTS and
# VIGIL_BENCH_LATENCY_SECS size the runs; VIGIL_BENCH_LOG_LEVEL (default warn) sets the systems' own
# log level (info shows where each consume loop's time went when it stops).
# VIGIL_BENCH_BROKER_TMPFS=1 keeps the broker's log directory in memory (/dev/shm, new at each run,
# deleted at its end): on this machine the disk's writeback stalls the broker now and then, and with
# it both sides of a comparison at random (the README's Benchmarks says by how much).
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
tmpfs_data=""
if [ "${VIGIL_BENCH_BROKER_TMPFS:-0}" = 1 ]; then
  if scripts/kafka.sh status >/dev/null 2>&1; then
    echo "bench.sh: a broker already answers on port $VIGIL_KAFKA_PORT; stop it to run on tmpfs" >&2
    exit 1
  fi
  tmpfs_data=/dev/shm/vigil-bench-kafka-$VIGIL_KAFKA_PORT
  rm -rf "$tmpfs_data"
  export VIGIL_KAFKA_DATA=$tmpfs_data
fi
if ! scripts/kafka.sh status >/dev/null 2>&1; then
  scripts/kafka.sh start
  started=1
fi
stop() {
  [ "$started" = 1 ] && scripts/kafka.sh stop || true
  [ -n "$tmpfs_data" ] && rm -rf "$tmpfs_data" || true
}
trap stop EXIT
time target/release/vigil-bench "${@:-all}"
