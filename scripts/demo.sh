#!/usr/bin/env bash
# `make demo`: Vigil's main job end to end on a local broker started here.
#   1. set up (scripts/setup.sh) and build Vigil (release);
#   2. start Apache Kafka on 127.0.0.1:9092 with empty storage (VIGIL_DEMO_KEEP=1 keeps the last
#      run's) and create Vigil's topics;
#   3. make a signing key, register signed starting models and start Vigil's services (scorer,
#      learner, drift);
#   4. drive them with vigil-load: card transactions with labels, and texts with labels, with drift
#      injected halfway, printing a one-line summary every few seconds and a final summary;
#   5. serve the live console (`vigil console`, http://127.0.0.1:8090/ unless VIGIL_CONSOLE_LISTEN
#      says otherwise) for the run, and VIGIL_DEMO_LINGER more seconds after it (default 0);
#   6. stop the services (the broker keeps running: `make broker-stop`).
# VIGIL_DEMO_SECONDS sets the length (default 60). Works without ../shared (synthetic texts then).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$VIGIL_ROOT"
scripts/setup.sh
source "$VIGIL_ROOT/scripts/env.sh"  # again: setup may have just installed ONNX Runtime
echo "== building Vigil (release)" >&2
cargo build --release --locked --bins
bin="$VIGIL_ROOT/target/release"
# The demo's two inputs (card transactions, texts); every program reads the same file.
export VIGIL_CONFIG=${VIGIL_CONFIG:-$VIGIL_ROOT/config/demo.toml}
export VIGIL_KAFKA_PORT=${VIGIL_KAFKA_PORT:-9092}
export VIGIL_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$VIGIL_KAFKA_PORT"
# Each demo tells its story from the start: a clean broker (VIGIL_DEMO_KEEP=1 keeps the last run's).
[ "${VIGIL_DEMO_KEEP:-0}" = 1 ] || scripts/kafka.sh reset
scripts/kafka.sh start
# Checkpoints are signed and the scorer serves signed ones only: a key made for this run signs
# the starting models and the learner's, and its public half is the scorer's trusted key.
key="$VIGIL_CACHE/demo-signing.key"
rm -f "$key"
public=$("$bin/vigil" models keygen --out "$key" 2>/dev/null)
export VIGIL_LEARNER__SIGN_KEY="$key" VIGIL_SCORER__TRUSTED_KEYS="[\"$public\"]"
"$bin/vigil" topics create
# Starting models, so that there is something to score with (the learner publishes better ones).
"$bin/vigil" models bootstrap

# The scorer scores, the learner learns from labels and promotes, the drift service raises alerts.
SERVICES=(vigil-scorer vigil-learner vigil-drift)
logs="$VIGIL_CACHE/demo-logs"
mkdir -p "$logs"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
for svc in "${SERVICES[@]}"; do
  echo "== starting $svc (log: $logs/$svc.log)" >&2
  "$bin/$svc" >"$logs/$svc.log" 2>&1 &
  pids+=($!)
done

export VIGIL_CONSOLE_LISTEN=${VIGIL_CONSOLE_LISTEN:-127.0.0.1:8090}
"$bin/vigil" console >"$logs/console.log" 2>&1 &
pids+=($!)
echo "== live console: http://$VIGIL_CONSOLE_LISTEN/ (log: $logs/console.log)" >&2

data_args=()
if [ -d "$VIGIL_ROOT/../shared/data/sentiment" ]; then
  data_args=(--data "$VIGIL_ROOT/../shared/data/sentiment")
else
  echo "== ../shared/data is absent: texts are synthetic" >&2
fi
echo "== driving Vigil for ${VIGIL_DEMO_SECONDS:-60} s" >&2
"$bin/vigil-load" demo --duration "${VIGIL_DEMO_SECONDS:-60}" "${data_args[@]}" > "$logs/summary.json"
echo "== final summary ($logs/summary.json)" >&2
"$VIGIL_PYTHON" -c 'import json,sys; s=json.load(open(sys.argv[1])); s.pop("generators",None); print(json.dumps(s, indent=2))' "$logs/summary.json"
if [ "${VIGIL_DEMO_LINGER:-0}" -gt 0 ]; then
  echo "== the console stays up ${VIGIL_DEMO_LINGER} s more: http://$VIGIL_CONSOLE_LISTEN/" >&2
  sleep "$VIGIL_DEMO_LINGER"
fi
echo "== the broker keeps running on 127.0.0.1:$VIGIL_KAFKA_PORT; stop it with: make broker-stop" >&2
