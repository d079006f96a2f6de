#!/usr/bin/env python3
"""Models trained elsewhere, the way their users export them: a scikit-learn logistic regression and
a gradient-boosted tree ensemble (skl2onnx, `ai.onnx.ml` tree operators), and a LightGBM classifier
(onnxmltools), all with `zipmap=False` so that probabilities come out as a float [N, 2] tensor.
Trained on generated data with D numeric features; writes each model's ONNX file, a CSV of records
to score (event_id, x0..x{D-1}) and, per model, the positive-class probability Python's onnxruntime
gives each record (float32 inputs, as Vigil feeds them), as JSON.

  foreign_models.py OUT_DIR [--rows 400] [--features 6] [--seed 7]
"""
import argparse, csv, json, os, sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--features", type=int, default=6)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    d = a.features
    x = rng.normal(size=(4000, d))
    logit = 1.5 * x[:, 0] - 2.0 * x[:, 1] + np.sin(3 * x[:, 2]) + 0.5 * x[:, 3] * x[:, 4]
    y = (rng.random(4000) < 1 / (1 + np.exp(-logit))).astype(int)

    from sklearn.linear_model import LogisticRegression
    from sklearn.ensemble import GradientBoostingClassifier
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    import lightgbm
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat

    models = {}
    lr = LogisticRegression(max_iter=500).fit(x, y)
    models["sk-logistic"] = to_onnx(lr, initial_types=[("float_input", FloatTensorType([None, d]))],
                                     options={id(lr): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    gbt = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=a.seed).fit(x, y)
    models["sk-trees"] = to_onnx(gbt, initial_types=[("float_input", FloatTensorType([None, d]))],
                                 options={id(gbt): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    lgb = lightgbm.LGBMClassifier(n_estimators=40, num_leaves=15, random_state=a.seed, verbose=-1).fit(x, y)
    models["lightgbm"] = onnxmltools.convert_lightgbm(lgb, initial_types=[("input", MlFloat([None, d]))],
                                                      zipmap=False, target_opset=15)

    os.makedirs(a.out, exist_ok=True)
    score_x = rng.normal(size=(a.rows, d)).astype(np.float32)
    with open(os.path.join(a.out, "records.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["event_id"] + [f"x{i}" for i in range(d)])
        for r, row in enumerate(score_x):
            # float32 values written exactly (repr of the float32 as a double).
            w.writerow([f"r{r}"] + [repr(float(v)) for v in row])
    expected = {}
    for name, model in models.items():
        onnx.checker.check_model(model)
        path = os.path.join(a.out, f"{name}.onnx")
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        inp = s.get_inputs()[0].name
        outs = {o.name: v for o, v in zip(s.get_outputs(), s.run(None, {inp: score_x}))}
        probs = outs["probabilities"]
        expected[name] = {"input": inp, "output": "probabilities", "outputs": [o.name for o in s.get_outputs()],
                          "p": [float(p) for p in probs[:, 1]]}
    json.dump(expected, open(os.path.join(a.out, "expected.json"), "w"))
    print(json.dumps({k: {"input": v["input"], "outputs": v["outputs"]} for k, v in expected.items()}))


if __name__ == "__main__":
    sys.exit(main())
