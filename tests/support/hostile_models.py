#!/usr/bin/env python3
"""Hostile and faulty ONNX graphs for the scorer's safety tests, each over D float features with
Vigil's own names (input `features` [batch, D], output `score` [batch, 1]) and each checked by
onnx.checker:

  fixed4.onnx        a logistic regression that takes batches of exactly 4 rows
  huge.onnx          allocates a 2^40-value tensor with ConstantOfShape
  loop.onnx          runs a Loop of 2^62 iterations
  nan.onnx           scores NaN where |x0| > 1.75 (Vigil's probe rows never go there)
  flaky.onnx         fails about 1 % of batches at run time (a Gather out of range, chosen by a
                     hash of the batch's values), never on the probe batches Vigil runs

  hostile_models.py OUT_DIR --features D
"""
import argparse, os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def logistic(d, nodes, inits, batch="batch"):
    """sigmoid(x . w) as node list; returns the name of the [batch, 1] probability."""
    inits.append(numpy_helper.from_array(np.full((d, 1), 0.05, np.float32), "w"))
    nodes += [helper.make_node("MatMul", ["features", "w"], ["z"]), helper.make_node("Sigmoid", ["z"], ["p"])]
    return "p"


def model(name, d, nodes, inits, out, batch="batch"):
    nodes.append(helper.make_node("Identity", [out], ["score"]))
    g = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, d])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch, 1])],
        inits)
    m = helper.make_model(g, opset_imports=OPSET, producer_name="vigil-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def zero_plus(nodes, inits, p, tensor):
    """p + 0 * sum(tensor): keeps `tensor` in the graph without changing the scores."""
    inits.append(numpy_helper.from_array(np.zeros((), np.float32), "zero"))
    nodes += [
        helper.make_node("ReduceSum", [tensor], ["s"], keepdims=0),
        helper.make_node("Mul", ["s", "zero"], ["s0"]),
        helper.make_node("Add", [p, "s0"], ["p_out"]),
    ]
    return "p_out"


def fixed4(d):
    nodes, inits = [], []
    return model("fixed4", d, nodes, inits, logistic(d, nodes, inits), batch=4)


def huge(d):
    nodes, inits = [], []
    p = logistic(d, nodes, inits)
    inits.append(numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "shape"))
    nodes.append(helper.make_node("ConstantOfShape", ["shape"], ["big"],
                                  value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])))
    return model("huge", d, nodes, inits, zero_plus(nodes, inits, p, "big"))


def loop(d):
    nodes, inits = [], []
    p = logistic(d, nodes, inits)
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Identity", ["acc_in"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [])])
    inits += [numpy_helper.from_array(np.array(1 << 62, np.int64), "trips"),
              numpy_helper.from_array(np.array(True), "go"),
              numpy_helper.from_array(np.array(0.0, np.float32), "acc")]
    nodes.append(helper.make_node("Loop", ["trips", "go", "acc"], ["acc_final"], body=body))
    return model("loop", d, nodes, inits, zero_plus(nodes, inits, p, "acc_final"))


def nan(d):
    nodes, inits = [], []
    p = logistic(d, nodes, inits)
    inits += [numpy_helper.from_array(np.array([0], np.int64), "c0"),
              numpy_helper.from_array(np.array([1], np.int64), "c1"),
              numpy_helper.from_array(np.array(1.75, np.float32), "edge"),
              numpy_helper.from_array(np.array(np.nan, np.float32), "nan")]
    nodes += [
        helper.make_node("Slice", ["features", "c0", "c1", "c1"], ["x0"]),
        helper.make_node("Abs", ["x0"], ["ax0"]),
        helper.make_node("Greater", ["ax0", "edge"], ["far"]),
        helper.make_node("Where", ["far", "nan", p], ["p_nan"]),
    ]
    return model("nan", d, nodes, inits, "p_nan")


def flaky(d, k):
    """Fails when frac(sum(batch) * k + 0.5) < 0.01."""
    nodes, inits = [], []
    p = logistic(d, nodes, inits)
    inits += [numpy_helper.from_array(np.array(k, np.float32), "k"),
              numpy_helper.from_array(np.array(0.5, np.float32), "half"),
              numpy_helper.from_array(np.array(0.01, np.float32), "rare"),
              numpy_helper.from_array(np.array(5, np.int64), "five"),
              numpy_helper.from_array(np.zeros((2,), np.float32), "table")]
    nodes += [
        helper.make_node("ReduceSum", ["features"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "k"], ["y0"]),
        helper.make_node("Add", ["y0", "half"], ["y"]),
        helper.make_node("Floor", ["y"], ["fy"]),
        helper.make_node("Sub", ["y", "fy"], ["frac"]),
        helper.make_node("Less", ["frac", "rare"], ["unlucky"]),
        helper.make_node("Cast", ["unlucky"], ["unlucky_i"], to=TensorProto.INT64),
        helper.make_node("Mul", ["unlucky_i", "five"], ["index"]),
        helper.make_node("Gather", ["table", "index"], ["picked"]),
    ]
    return model("flaky", d, nodes, inits, zero_plus(nodes, inits, p, "picked"))


def probe_batches(d):
    """The batches Vigil's validation runs (checkpoint::probe)."""
    out = []
    for rows in (1, 4, 37):
        x = np.zeros(rows * d, np.float32)
        for i in range(rows * d):
            x[i] = [0.0, 1.0, -1.0, ((i % 7) - 3) * 0.5][(i // d) % 4]
        out.append(x.reshape(rows, d))
    return out


def runs(m, x):
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    try:
        s.run(None, {"features": x})
        return True
    except Exception:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--features", type=int, required=True)
    a = ap.parse_args()
    d = a.features
    ort.set_default_logger_severity(4)  # the flaky graph's failures are expected here
    os.makedirs(a.out, exist_ok=True)
    probes = probe_batches(d)
    # A hash multiplier under which every probe batch runs and about 1 % of random batches fail.
    rng = np.random.default_rng(5)
    trial = [rng.normal(size=(int(rng.integers(1, 64)), d)).astype(np.float32) for _ in range(2000)]
    for k in np.linspace(37.7, 97.7, 61):
        m = flaky(d, float(k))
        if all(runs(m, x) for x in probes):
            failed = sum(not runs(m, x) for x in trial) / len(trial)
            if 0.003 <= failed <= 0.03:
                break
    else:
        raise SystemExit("no multiplier gives a flaky graph that passes the probe")
    graphs = {"fixed4": fixed4(d), "huge": huge(d), "loop": loop(d), "nan": nan(d), "flaky": m}
    assert all(runs(graphs["nan"], x) for x in probes), "the NaN graph must pass the probe"
    for name, g in graphs.items():
        with open(os.path.join(a.out, f"{name}.onnx"), "wb") as f:
            f.write(g.SerializeToString())
    print(f"flaky: multiplier {k:.1f}, {failed:.2%} of random batches fail")


if __name__ == "__main__":
    main()
