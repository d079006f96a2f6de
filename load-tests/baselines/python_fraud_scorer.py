"""A fraud scorer written the usual Python way, the baseline of `vigil-bench python`.

Usage: python_fraud_scorer.py --input T --output T --group G --model M.onnx --spec fraud.toml
       --schema Transaction.avsc [--batch 500]

confluent-kafka consumes batches of Avro Transactions (single-object encoding, decoded with
fastavro), the model's features are computed in Python from the same feature spec Vigil reads
(log1p, standardising, clipping, imputing, the hour of day, one-hot and FNV-1a hashed categories),
onnxruntime runs the same graph Vigil serves, and each score is produced as JSON keyed by event id;
offsets are committed after each batch's scores are acknowledged (at least once, as Vigil). The
broker comes from VIGIL_KAFKA__BOOTSTRAP_SERVERS. Runs until killed.
"""
import argparse
import datetime
import io
import json
import math
import os
import tomllib

import numpy as np
import onnxruntime as ort
from confluent_kafka import Consumer, Producer
from fastavro import parse_schema, schemaless_reader

ap = argparse.ArgumentParser()
for name in ["--input", "--output", "--group", "--model", "--spec", "--schema"]:
    ap.add_argument(name, required=True)
ap.add_argument("--batch", type=int, default=500)
a = ap.parse_args()

FNV_OFFSET, FNV_PRIME, MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def fnv1a(text):
    h = FNV_OFFSET
    for b in text.encode():
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def transform(kind, x):
    if kind == "log1p":
        return math.log1p(max(x, 0.0))
    if kind in ("hour-sin", "hour-cos"):
        angle = ((x / 3_600_000.0) % 24.0) * 2 * math.pi / 24.0
        return math.sin(angle) if kind == "hour-sin" else math.cos(angle)
    return float(x)


def numeric(n, record):
    kind = n.get("transform", "none")
    value = record.get(n["field"])
    if kind == "present":
        x = 1.0 if value is not None else 0.0
    elif value is None:
        x = n.get("impute", n.get("mean", 0.0))
    else:
        if isinstance(value, datetime.datetime):  # fastavro reads timestamp-millis as datetimes
            value = value.timestamp() * 1000.0
        x = transform(kind, float(value))
    z = (x - n.get("mean", 0.0)) / n.get("std", 1.0)
    if "clip" in n:
        z = max(-n["clip"], min(n["clip"], z))
    return z


def features(spec, record):
    row = [numeric(n, record) for n in spec.get("numeric", [])]
    for c in spec.get("categorical", []):
        value = record.get(c["field"])
        if c.get("encoding", "one-hot") == "hash":
            slots = [0.0] * c["buckets"]
            slots[fnv1a("" if value is None else str(value)) % c["buckets"]] = 1.0
        else:
            values = c["values"]
            slots = [0.0] * (len(values) + 1)
            slots[values.index(value) if value in values else len(values)] = 1.0
        row.extend(slots)
    return row


bootstrap = os.environ.get("VIGIL_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092")
schema = parse_schema(json.load(open(a.schema)))
spec = tomllib.load(open(a.spec, "rb"))
model = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
model_input = model.get_inputs()[0].name
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": a.group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
consumer.subscribe([a.input])
while True:
    batch = [m for m in consumer.consume(num_messages=a.batch, timeout=0.5) if m.error() is None]
    if not batch:
        continue
    events = [schemaless_reader(io.BytesIO(m.value()[10:]), schema) for m in batch]
    x = np.array([features(spec, e) for e in events], dtype=np.float32)
    scores = model.run(None, {model_input: x})[0].reshape(len(events), -1)[:, -1]
    for e, s in zip(events, scores):
        producer.produce(a.output, key=e["event_id"], value=json.dumps({"event_id": e["event_id"], "score": float(s)}))
    producer.poll(0)
    producer.flush()
    consumer.commit(asynchronous=False)
