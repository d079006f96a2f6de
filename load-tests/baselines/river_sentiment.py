"""River's bag-of-words sentiment baseline for `vigil-bench sentiment` (issue 13).

Usage: river_sentiment.py FILE.jsonl...

Each file is one stream of {"text": ..., "label": 0|1} lines, in the order Vigil's benchmark used.
For each: River's `feature_extraction.BagOfWords() | linear_model.LogisticRegression()`, prequential
(predict, then learn), accuracy over the whole stream. Prints one JSON object keyed by file stem.
"""
import json
import pathlib
import sys
import time

import river
from river import feature_extraction, linear_model, metrics

out = {"river_version": river.__version__, "sets": {}}
for path in map(pathlib.Path, sys.argv[1:]):
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    model = feature_extraction.BagOfWords(lowercase=True) | linear_model.LogisticRegression()
    accuracy = metrics.Accuracy()
    started = time.perf_counter()
    for row in rows:
        y = bool(row["label"])
        accuracy.update(y, bool(model.predict_one(row["text"])))
        model.learn_one(row["text"], y)
    elapsed = time.perf_counter() - started
    out["sets"][path.stem] = {"accuracy": accuracy.get(), "texts": len(rows), "texts_per_s": len(rows) / elapsed}
print(json.dumps(out))
