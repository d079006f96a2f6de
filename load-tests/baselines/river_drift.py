"""River's drift detectors on the drift benchmark's streams: detections and update rates.

Prints one JSON document: `river_version`, and `streams`, each with its values (so that Vigil runs on
exactly the same numbers), the index where its change starts (null for a stationary stream) and, per
detector, River's detection indices and the seconds its update loop took. The first three streams are
those of ../shared/baselines/river_baseline.py (same seeds); then seeded streams of Vigil's own: five
mean shifts and five error-rate rises (for detection delays) and two stationary 100k-event streams
(for false alarms per 100k events).
"""

import argparse
import json
import random
import sys
import time

from river import drift


def gauss(seed, n, change_at, shift):
    rng = random.Random(seed)
    return [rng.gauss(0.0, 1.0) + (shift if i >= change_at else 0.0) for i in range(n)]


def errors(seed, n, change_at, p0, p1):
    rng = random.Random(seed)
    return [1.0 if rng.random() < (p1 if i >= change_at else p0) else 0.0 for i in range(n)]


# name -> (values, change index or None, binary)
def streams(quick):
    out = {
        "gauss_mean_shift_1.0_at_5000": (gauss(7, 10000, 5000, 1.0), 5000, False),
        "gauss_no_change": (gauss(11, 10000, 10**9, 0.0), None, False),
        "error_rate_0.1_to_0.3_at_5000": (errors(13, 10000, 5000, 0.1, 0.3), 5000, True),
    }
    seeds = range(101, 103) if quick else range(101, 106)
    for s in seeds:
        out[f"gauss_mean_shift_1.0_at_5000_seed{s}"] = (gauss(s, 10000, 5000, 1.0), 5000, False)
        out[f"error_rate_0.1_to_0.3_at_5000_seed{s}"] = (errors(s + 100, 10000, 5000, 0.1, 0.3), 5000, True)
    n = 20000 if quick else 100000
    out[f"gauss_no_change_{n // 1000}k"] = (gauss(301, n, 10**9, 0.0), None, False)
    out[f"error_rate_0.1_no_change_{n // 1000}k"] = (errors(302, n, 10**9, 0.1, 0.1), None, True)
    return out


# The parameters of ../shared/baselines/river_baseline.py; DDM with River's defaults.
DETECTORS = {
    "adwin": ({"delta": 0.002}, lambda p: drift.ADWIN(**p), "any"),
    "page_hinkley": (
        {"min_instances": 30, "delta": 0.005, "threshold": 50.0, "alpha": 0.9999},
        lambda p: drift.PageHinkley(**p),
        "any",
    ),
    "kswin": ({"alpha": 0.005, "window_size": 100, "stat_size": 30, "seed": 42}, lambda p: drift.KSWIN(**p), "real"),
    "ddm": ({"warm_start": 30, "warning_threshold": 2.0, "drift_threshold": 3.0}, lambda p: drift.binary.DDM(**p), "binary"),
}


def run(det, xs):
    hits = []
    t = time.perf_counter()
    for i, x in enumerate(xs):
        det.update(x)
        if det.drift_detected:
            hits.append(i)
    return hits, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer and shorter streams")
    a = ap.parse_args()
    import river

    doc = {"river_version": river.__version__, "python": sys.version.split()[0], "detectors": {}, "streams": []}
    for name, (params, _, kind) in DETECTORS.items():
        doc["detectors"][name] = {"params": params, "streams": kind}
    for name, (xs, change_at, binary) in streams(a.quick).items():
        runs = {}
        for dname, (params, make, kind) in DETECTORS.items():
            if (kind == "binary" and not binary) or (kind == "real" and binary):
                continue
            hits, secs = run(make(params), xs)
            runs[dname] = {"detections": hits, "seconds": secs}
        doc["streams"].append({"name": name, "change_at": change_at, "values": xs, "river": runs})
    json.dump(doc, sys.stdout)


if __name__ == "__main__":
    main()
