#!/usr/bin/env python3
"""Checks ONNX graphs exported by Vigil with independent tools: onnx.checker (full check, with shape
inference) and onnxruntime's Python API, comparing its outputs with the scores Vigil computed.

  onnx_parity.py MANIFEST.json   -> one JSON line per model: {"name", "max_abs_diff", "checker": "ok"}

The manifest lists {"name", "path", "inputs": {name: {"dtype", "shape", "data"}}, "expected": [...]}.
Exits 1 if the checker fails or a score differs by more than 1e-5.
"""
import json, sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    manifest = json.load(open(sys.argv[1]))
    failed = False
    for m in manifest:
        model = onnx.load(m["path"])
        onnx.checker.check_model(model, full_check=True)
        sess = ort.InferenceSession(m["path"], providers=["CPUExecutionProvider"])
        feeds = {k: np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"]) for k, v in m["inputs"].items()}
        (out,) = sess.run(["score"], feeds)
        got = out.reshape(-1).astype(np.float64)
        want = np.array(m["expected"], dtype=np.float64)
        diff = float(np.max(np.abs(got - want))) if len(want) else 0.0
        ok = got.shape == want.shape and diff <= 1e-5
        failed |= not ok
        print(json.dumps({"name": m["name"], "checker": "ok", "rows": len(got), "max_abs_diff": diff,
                          "opset": model.opset_import[0].version, "ir_version": model.ir_version, "ok": ok}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
