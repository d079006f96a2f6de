#!/usr/bin/env bash
# `make demo`: Vigil's main job end to end on a local broker started here.
# Today (services still being built): starts Apache Kafka, creates Vigil's topics, produces a few card
# transactions, labels and texts as Avro, and reads them back decoded.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$VIGIL_ROOT"
scripts/setup.sh
echo "== building Vigil (release)" >&2
cargo build --release --locked --bins
bin=target/release
export VIGIL_KAFKA_PORT=${VIGIL_KAFKA_PORT:-9092}
export VIGIL_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$VIGIL_KAFKA_PORT"
scripts/kafka.sh start
$bin/vigil topics create
now=$(($(date +%s) * 1000))
$bin/vigil produce fraud.transactions <<JSON
{"event_id":"demo-tx-1","account_id":"acct-1","card_id":"card-1","event_time":$now,"amount":12.5,"currency":"EUR","merchant_id":"m-1","merchant_category":"5411","channel":"contactless","country":"DE","card_present":true,"account_age_days":812}
{"event_id":"demo-tx-2","account_id":"acct-2","card_id":"card-7","event_time":$now,"amount":1890.0,"currency":"EUR","merchant_id":"m-9","merchant_category":"5732","channel":"ecommerce","country":"NG","card_present":false,"account_age_days":3,"device_id":"dev-unknown","distance_from_home_km":5210.0}
JSON
$bin/vigil produce fraud.labels <<JSON
{"event_id":"demo-tx-2","label":1,"label_time":$now,"source":"chargeback"}
JSON
$bin/vigil produce sentiment.texts <<JSON
{"event_id":"demo-text-1","event_time":$now,"source":"product-reviews","text":"Arrived quickly and works perfectly."}
JSON
for t in fraud.transactions fraud.labels sentiment.texts; do
  echo "== $t (decoded by vigil tail)"
  $bin/vigil tail "$t" --from beginning --idle-timeout 3 --values-only | tail -n 3
done
echo "== the broker keeps running on 127.0.0.1:$VIGIL_KAFKA_PORT; stop it with: make broker-stop"
