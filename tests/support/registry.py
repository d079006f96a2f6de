#!/usr/bin/env python3
"""A minimal, in-memory server for the part of the Confluent Schema Registry REST API that Vigil's
client uses (register a schema under a subject, fetch a schema by id, latest version of a subject).
For tests only: no Confluent registry can be installed on the development machines (it is not on
Maven Central or PyPI). Prints its port, then serves until killed.

  registry.py [--port 0]
"""
import argparse, json, re, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
SCHEMAS = {}   # id -> schema text
SUBJECTS = {}  # subject -> [ids]


def canonical(text):
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

    def do_POST(self):
        m = re.fullmatch(r"/subjects/([^/]+)/versions", self.path)
        if not m:
            return self._send(404, {"error_code": 404, "message": "not found"})
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        text = body["schema"]
        with LOCK:
            for sid, known in SCHEMAS.items():
                if canonical(known) == canonical(text):
                    break
            else:
                sid = len(SCHEMAS) + 1
                SCHEMAS[sid] = text
            ids = SUBJECTS.setdefault(m.group(1), [])
            if sid not in ids:
                ids.append(sid)
        self._send(200, {"id": sid})

    def do_GET(self):
        m = re.fullmatch(r"/schemas/ids/(\d+)(\?.*)?", self.path)
        if m:
            with LOCK:
                text = SCHEMAS.get(int(m.group(1)))
            if text is None:
                return self._send(404, {"error_code": 40403, "message": "Schema not found"})
            return self._send(200, {"schema": text})
        m = re.fullmatch(r"/subjects/([^/]+)/versions/latest", self.path)
        if m:
            with LOCK:
                ids = SUBJECTS.get(m.group(1))
            if not ids:
                return self._send(404, {"error_code": 40401, "message": "Subject not found"})
            return self._send(200, {"subject": m.group(1), "id": ids[-1], "version": len(ids), "schema": SCHEMAS[ids[-1]]})
        self._send(404, {"error_code": 404, "message": "not found"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
