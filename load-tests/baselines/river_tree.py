#!/usr/bin/env python3
"""River's HoeffdingTreeClassifier (or, with `forest`, its ARFClassifier of ten trees),
prequentially (predict, then learn) over a numeric CSV whose last column is the 0/1 label, with
majority-class leaves (what Vigil exports) and River's other defaults.

  river_tree.py ROWS.csv [tree|forest]  -> {"accuracy", "rows", "nodes", "leaves", "height", "updates_per_s"}

Accuracy counts a positive prediction when the positive class's probability exceeds 0.5.
"""
import csv, json, sys, time

from river import forest, tree


def main():
    kind = sys.argv[2] if len(sys.argv) > 2 else "tree"
    with open(sys.argv[1]) as f:
        rows = [[float(v) for v in r] for r in csv.reader(f)]
    if kind == "forest":
        model = forest.ARFClassifier(n_models=10, leaf_prediction="mc", seed=1)
    else:
        model = tree.HoeffdingTreeClassifier(leaf_prediction="mc")
    right = 0
    started = time.perf_counter()
    for r in rows:
        x = {f"f{i}": v for i, v in enumerate(r[:-1])}
        y = int(r[-1])
        p = model.predict_proba_one(x).get(1, 0.0)
        right += int((p > 0.5) == (y == 1))
        model.learn_one(x, y)
    seconds = time.perf_counter() - started
    size = {} if kind == "forest" else {"nodes": model.n_nodes, "leaves": model.n_leaves, "height": model.height}
    print(json.dumps({"accuracy": right / len(rows), "rows": len(rows), "updates_per_s": len(rows) / seconds, **size}))


if __name__ == "__main__":
    main()
