#!/usr/bin/env python3
"""Independent Kafka + Avro client for Vigil's interop tests: confluent-kafka (librdkafka's Python
client) and fastavro, with the schemas in schemas/. Nothing here uses Vigil's code.

  interop.py read  --bootstrap B --topic T --count N [--registry URL]   -> JSON lines on stdout
  interop.py write --bootstrap B --topic T --schema FILE [--registry URL] < JSON lines

Single-object encoding: C3 01 + fastavro's CRC-64-AVRO fingerprint bytes + body; Confluent framing:
00 + 4-byte big-endian schema id + body, with ids from the registry's REST API.
"""
import argparse, glob, io, json, os, struct, sys, urllib.request

import fastavro
from confluent_kafka import Consumer, Producer
from fastavro.schema import fingerprint, to_parsing_canonical_form

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shipped():
    """fingerprint bytes -> parsed schema, for every shipped schema (current and history)."""
    out = {}
    for f in glob.glob(os.path.join(ROOT, "schemas", "*.avsc")) + glob.glob(os.path.join(ROOT, "schemas", "history", "*.avsc")):
        raw = json.load(open(f))
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"))
        out[fp] = fastavro.parse_schema(raw)
    return out


def registry_schema(url, schema_id):
    with urllib.request.urlopen(f"{url}/schemas/ids/{schema_id}") as r:
        return fastavro.parse_schema(json.loads(json.loads(r.read())["schema"]))


def registry_register(url, subject, raw):
    body = json.dumps({"schema": json.dumps(raw), "schemaType": "AVRO"}).encode()
    req = urllib.request.Request(f"{url}/subjects/{subject}/versions", data=body, method="POST",
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())["id"]


def plain(v):
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if hasattr(v, "timestamp"):  # datetimes from logical types -> epoch ms
        return int(round(v.timestamp() * 1000))
    return v


def read(a):
    by_fp = shipped()
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": f"interop-{os.getpid()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([a.topic])
    n = 0
    while n < a.count:
        m = c.poll(30.0)
        if m is None:
            sys.exit(f"interop.py: only {n} of {a.count} records")
        if m.error():
            continue
        v = m.value()
        if v[:2] == b"\xc3\x01":
            schema, body, framing = by_fp[v[2:10]], v[10:], "single-object"
        elif v[:1] == b"\x00":
            (sid,) = struct.unpack(">I", v[1:5])
            schema, body, framing = registry_schema(a.registry, sid), v[5:], "confluent"
        else:
            sys.exit(f"interop.py: unknown framing {v[:2].hex()}")
        rec = fastavro.schemaless_reader(io.BytesIO(body), schema)
        print(json.dumps({"framing": framing, "key": (m.key() or b"").decode(), "value": plain(rec)}), flush=True)
        n += 1
    c.close()


def write(a):
    raw = json.load(open(a.schema))
    parsed = fastavro.parse_schema(raw)
    if a.registry:
        header = b"\x00" + struct.pack(">I", registry_register(a.registry, f"{a.topic}-value", raw))
    else:
        header = b"\xc3\x01" + bytes.fromhex(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"))
    p = Producer({"bootstrap.servers": a.bootstrap})
    n = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        rec = json.loads(line)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, rec)
        p.produce(a.topic, header + buf.getvalue(), key=str(rec.get("event_id", "")).encode())
        n += 1
    if p.flush(30) != 0:
        sys.exit("interop.py: not every record was delivered")
    print(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["read", "write"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--schema")
    ap.add_argument("--registry")
    a = ap.parse_args()
    read(a) if a.cmd == "read" else write(a)


if __name__ == "__main__":
    main()
