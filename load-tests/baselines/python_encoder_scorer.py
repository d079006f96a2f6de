"""A sentence-encoder scorer written the usual Python way, the baseline of `vigil-bench sentiment`.

Usage: python_encoder_scorer.py --input T --output T --group G --encoder E.onnx --tokenizer T.json
       --head H.onnx --schema TextEvent.avsc [--max-tokens 128] [--batch 64]

confluent-kafka consumes batches of Avro TextEvents (single-object encoding, decoded with fastavro),
Hugging Face `tokenizers` tokenises each batch (truncated, padded to the batch's longest),
onnxruntime runs the same encoder graph and head graph Vigil serves, and each score is produced as
JSON keyed by event id; offsets are committed after each batch. The broker comes from
VIGIL_KAFKA__BOOTSTRAP_SERVERS. Runs until killed.
"""
import argparse
import io
import json
import os

import numpy as np
import onnxruntime as ort
from confluent_kafka import Consumer, Producer
from fastavro import parse_schema, schemaless_reader
from tokenizers import Tokenizer

ap = argparse.ArgumentParser()
for name in ["--input", "--output", "--group", "--encoder", "--tokenizer", "--head", "--schema"]:
    ap.add_argument(name, required=True)
ap.add_argument("--max-tokens", type=int, default=128)
ap.add_argument("--batch", type=int, default=64)
a = ap.parse_args()

bootstrap = os.environ.get("VIGIL_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092")
schema = parse_schema(json.load(open(a.schema)))
tokenizer = Tokenizer.from_file(a.tokenizer)
tokenizer.enable_truncation(a.max_tokens)
tokenizer.enable_padding()
encoder = ort.InferenceSession(a.encoder, providers=["CPUExecutionProvider"])
head = ort.InferenceSession(a.head, providers=["CPUExecutionProvider"])
head_input = head.get_inputs()[0].name
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": a.group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
consumer.subscribe([a.input])
while True:
    batch = [m for m in consumer.consume(num_messages=a.batch, timeout=0.5) if m.error() is None]
    if not batch:
        continue
    events = [schemaless_reader(io.BytesIO(m.value()[10:]), schema) for m in batch]
    encoded = tokenizer.encode_batch([e["text"] for e in events])
    ids = np.array([e.ids for e in encoded], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
    embedding = encoder.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    scores = head.run(None, {head_input: embedding})[0].reshape(len(events), -1)[:, -1]
    for e, s in zip(events, scores):
        producer.produce(a.output, key=e["event_id"], value=json.dumps({"event_id": e["event_id"], "score": float(s)}))
    producer.poll(0)
    producer.flush()
    consumer.commit(asynchronous=False)
