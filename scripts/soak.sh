#!/usr/bin/env bash
# `make soak`: the demo's workload for an hour (VIGIL_SOAK_SECONDS) on a broker of its own, with the
# learner promoting and pruning as it goes, while every service's resident memory is sampled every
# 10 s. Writes target/soak/rss.csv (seconds, scorer, learner, drift in MiB) and target/soak/report.json
# (per service, the median of the first fifth of the samples after warm-up — the first quarter of the
# run, while the join windows fill — against the median of the last fifth; versions published and
# left on the models topic) and fails when a service grew by more than 10 % after warm-up or exited
# (a run under ten minutes only has to keep every service up).
#   VIGIL_SOAK_SECONDS   length (3600)
#   VIGIL_SOAK_PROFILE   release (default) or debug (the short run in make test)
#   VIGIL_SOAK_KAFKA_PORT  the broker's port (19392; a demo broker on 9092 is left alone)
#   VIGIL_SOAK_OUT       where the samples and the report go (target/soak)
#   VIGIL_SOAK_HTTP_PORT first of the services' three metrics ports (19471)
#   VIGIL_SOAK_DRIFT     1 (default): the demo's drift halfway; 0: a stationary stream throughout
# The report also counts each model's promotions (MODEL_PROMOTED alerts) per hour, before and after
# the drift, and how long after the drift the first one came: on a stationary stream the paired
# promotion test should promote nothing after the first champion.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$VIGIL_ROOT"
scripts/setup.sh
source "$VIGIL_ROOT/scripts/env.sh"
seconds=${VIGIL_SOAK_SECONDS:-3600}
profile=${VIGIL_SOAK_PROFILE:-release}
if [ "$profile" = release ]; then cargo build --release --locked --bins; else cargo build --locked --bins; fi
bin="$VIGIL_ROOT/target/$profile"
out=${VIGIL_SOAK_OUT:-$VIGIL_ROOT/target/soak}
rm -rf "$out" && mkdir -p "$out"

export VIGIL_CONFIG=$VIGIL_ROOT/config/demo.toml
export VIGIL_KAFKA_PORT=${VIGIL_SOAK_KAFKA_PORT:-19392}
export VIGIL_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$VIGIL_KAFKA_PORT"
http=${VIGIL_SOAK_HTTP_PORT:-19471}
export VIGIL_SCORER__HTTP_LISTEN=127.0.0.1:$http VIGIL_LEARNER__HTTP_LISTEN=127.0.0.1:$((http + 1))
export VIGIL_DRIFT__HTTP_LISTEN=127.0.0.1:$((http + 2))
scripts/kafka.sh reset
scripts/kafka.sh start
key="$out/signing.key"
public=$("$bin/vigil" models keygen --out "$key" 2>/dev/null)
export VIGIL_LEARNER__SIGN_KEY="$key" VIGIL_SCORER__TRUSTED_KEYS="[\"$public\"]"
"$bin/vigil" topics create
"$bin/vigil" models bootstrap

services=(vigil-scorer vigil-learner vigil-drift)
pids=()
sampler=""
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/kafka.sh stop || true
}
trap cleanup EXIT
for svc in "${services[@]}"; do
  "$bin/$svc" >"$out/$svc.log" 2>&1 &
  pids+=($!)
done

rss() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }
echo "seconds,scorer,learner,drift" >"$out/rss.csv"
(
  start=$(date +%s)
  while true; do
    echo "$(( $(date +%s) - start )),$(rss "${pids[0]}"),$(rss "${pids[1]}"),$(rss "${pids[2]}")" >>"$out/rss.csv"
    sleep 10  # the sampling interval
  done
) &
sampler=$!

data_args=()
[ -d "$VIGIL_ROOT/../shared/data/sentiment" ] && data_args=(--data "$VIGIL_ROOT/../shared/data/sentiment")
[ "${VIGIL_SOAK_DRIFT:-1}" = 0 ] && data_args+=(--no-drift)
echo "== soaking for $seconds s (memory samples: $out/rss.csv)" >&2
started_ms=$(date +%s%3N)
"$bin/vigil-load" demo --duration "$seconds" "${data_args[@]}" >"$out/summary.json"
"$bin/vigil" tail "${VIGIL_TOPICS__ALERTS:-vigil.alerts}" --values-only --from beginning --idle-timeout 3 >"$out/alerts.jsonl" 2>/dev/null || true
alive=0
for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
"$bin/vigil" models list >"$out/models.txt"
# The joins' occupancy at the end (learner: events waiting for labels; drift: scores and labels
# waiting for each other), to tell a filling window from a leak.
for i in 0 1 2; do
  curl -sf "http://127.0.0.1:$((http + i))/metrics" | grep -E '^vigil_(learner_(buffered|waiting)|drift_join_waiting)' || true
done >"$out/joins.txt"
"$VIGIL_PYTHON" - "$out" "$seconds" "$alive" "$started_ms" "${VIGIL_SOAK_DRIFT:-1}" <<'EOF'
import csv, json, sys
out, seconds, alive = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
started_ms, drift = int(sys.argv[4]), sys.argv[5] != "0"
rows = [r for r in csv.DictReader(open(f"{out}/rss.csv")) if float(r["scorer"]) > 0]
warm = max(60, seconds // 4)
report = {"seconds": seconds, "warm_up_s": warm, "services_alive": alive, "services": {}}
models = [l.split() for l in open(f"{out}/models.txt").read().splitlines()[1:] if l.strip()]
report["versions_on_topic"] = len(models)
report["newest_version"] = {m: max(int(r[1]) for r in models if r[0] == m) for m in {r[0] for r in models}}
ok = alive == 3
for svc in ("scorer", "learner", "drift"):
    after = [float(r[svc]) for r in rows if int(r["seconds"]) >= warm]
    if len(after) < 10:
        report["services"][svc] = {"note": "run shorter than the warm-up: no verdict"}
        continue
    # Medians of the first and the last fifth after warm-up: allocators give memory back in
    # steps, so single samples swing; a leak moves the median.
    fifth = max(1, len(after) // 5)
    first, last = sorted(after[:fifth])[fifth // 2], sorted(after[-fifth:])[fifth // 2]
    growth = (last - first) / first
    report["services"][svc] = {"median_after_warm_up_mib": first, "median_at_end_mib": last, "peak_mib": max(after), "growth": round(growth, 4)}
    ok = ok and growth <= 0.10
report["flat_within_10_percent"] = ok
# Promotions per model: per hour over the run, before and after the drift (halfway), and the delay of
# the first one after it. The bootstrap model's replacement (the learner's first champion) counts.
alerts = [json.loads(l) for l in open(f"{out}/alerts.jsonl") if l.strip()]
half = started_ms + seconds * 500
promotions = {}
for a in alerts:
    if a.get("kind") != "MODEL_PROMOTED" or a.get("time", 0) < started_ms:
        continue
    promotions.setdefault(a.get("model") or "?", []).append(a["time"])
report["drift"] = drift
report["promotions"] = {}
for m, times in sorted(promotions.items()):
    times.sort()
    before, after = [t for t in times if t < half], [t for t in times if t >= half]
    report["promotions"][m] = {
        "total": len(times),
        "per_hour": round(len(times) * 3600 / seconds, 2),
        "first_half": len(before),
        "second_half": len(after),
        "second_half_per_hour": round(len(after) * 7200 / seconds, 2),
        "first_after_halfway_s": round((after[0] - half) / 1000, 1) if after else None,
    }
# A run of under ten minutes (make test's) is too short to judge memory: it only has to run.
if seconds < 600:
    report["verdict"] = "too short to judge memory; services alive: %d of 3" % alive
    ok = alive == 3
json.dump(report, open(f"{out}/report.json", "w"), indent=2)
print(json.dumps(report, indent=2))
sys.exit(0 if ok else 1)
EOF
