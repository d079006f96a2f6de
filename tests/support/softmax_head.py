"""A three-class head (negative / neutral / positive) exported outside Vigil, for an encoder model.

Usage: softmax_head.py OUT.onnx DIM

Writes `logits = features @ W + b` (`features` float [batch, DIM], `logits` float [batch, 3]) with
seeded random weights, checked by `onnx.checker` and run once by onnxruntime; prints "ok".
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

out, dim = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(7)
w = rng.normal(0.0, 1.0, size=(dim, 3)).astype(np.float32)
b = np.array([0.1, -0.2, 0.1], dtype=np.float32)
graph = helper.make_graph(
    [helper.make_node("MatMul", ["features", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["logits"])],
    "softmax-head",
    [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", dim])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
    [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
onnx.save(model, out)
session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
assert session.run(None, {"features": np.zeros((2, dim), np.float32)})[0].shape == (2, 3)
print("ok")
