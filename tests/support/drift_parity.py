"""Reference detections and KS p-values for Vigil's statistics, from River and SciPy.

Prints one JSON document: `streams` (values, and each River detector's detection indices with the
parameters it ran with) and `ks` (sample pairs with SciPy's `ks_2samp` statistic and p-value). The
streams of ../shared/baselines/river_baseline.py come first, rebuilt here with the same seeds so the
test does not need ../shared; then seeded streams of Vigil's own.
"""

import json
import random
import sys

import numpy as np
from river import drift
from scipy import stats


def gauss(seed, n, mean_at, sd_at=lambda i: 1.0):
    rng = random.Random(seed)
    return [rng.gauss(0.0, sd_at(i)) + mean_at(i) for i in range(n)]


def errors(seed, n, change_at, p0, p1):
    rng = random.Random(seed)
    return [1.0 if rng.random() < (p1 if i >= change_at else p0) else 0.0 for i in range(n)]


STREAMS = {
    # river_baseline.py
    "gauss_mean_shift_1.0_at_5000": gauss(7, 10000, lambda i: 1.0 if i >= 5000 else 0.0),
    "gauss_no_change": gauss(11, 10000, lambda i: 0.0),
    "error_rate_0.1_to_0.3_at_5000": errors(13, 10000, 5000, 0.1, 0.3),
    # Vigil's own
    "gauss_sd_1_to_3_at_4000": gauss(21, 8000, lambda i: 0.0, lambda i: 3.0 if i >= 4000 else 1.0),
    "gauss_ramp_0_to_1_from_3000_to_6000": gauss(22, 9000, lambda i: min(max((i - 3000) / 3000, 0.0), 1.0)),
    "gauss_up_2_at_2500_down_at_6000": gauss(25, 9000, lambda i: 2.0 if 2500 <= i < 6000 else 0.0),
    "error_rate_0.05_to_0.2_at_6000": errors(24, 12000, 6000, 0.05, 0.2),
}

DETECTORS = {
    "adwin": ({"delta": 0.002}, lambda p: drift.ADWIN(**p)),
    "adwin_clock_1": ({"delta": 0.01, "clock": 1}, lambda p: drift.ADWIN(**p)),
    "page_hinkley": (
        {"min_instances": 30, "delta": 0.005, "threshold": 50.0, "alpha": 0.9999},
        lambda p: drift.PageHinkley(**p),
    ),
    "page_hinkley_tight": (
        {"min_instances": 50, "delta": 0.01, "threshold": 20.0, "alpha": 0.999},
        lambda p: drift.PageHinkley(**p),
    ),
    "kswin": ({"alpha": 0.005, "window_size": 100, "stat_size": 30, "seed": 42}, lambda p: drift.KSWIN(**p)),
    "kswin_wide": ({"alpha": 0.01, "window_size": 200, "stat_size": 50, "seed": 7}, lambda p: drift.KSWIN(**p)),
    "ddm": ({"warm_start": 30, "warning_threshold": 2.0, "drift_threshold": 3.0}, lambda p: drift.binary.DDM(**p)),
}


def run(make, xs):
    det = make()
    hits = []
    for i, x in enumerate(xs):
        det.update(x)
        if det.drift_detected:
            hits.append(i)
    return hits


def ks_pairs():
    rng = np.random.default_rng(2026)
    pairs = []
    sizes = [(5, 5), (8, 13), (30, 30), (10, 17), (100, 80), (250, 1000), (1000, 1000), (3000, 2000),
             (12000, 9000), (20000, 150), (15000, 100), (40000, 40000)]
    for n1, n2 in sizes:
        for shift in (0.0, 0.15, 0.6):
            a = rng.normal(0.0, 1.0, n1)
            b = rng.normal(shift, 1.0, n2)
            pairs.append((a, b))
    # Ties: values on a coarse grid.
    pairs.append((np.round(rng.normal(0, 1, 400), 1), np.round(rng.normal(0.1, 1, 300), 1)))
    pairs.append((rng.integers(0, 5, 50).astype(float), rng.integers(0, 6, 70).astype(float)))
    out = []
    for a, b in pairs:
        r = stats.ks_2samp(a, b, method="auto")
        out.append({"a": a.tolist(), "b": b.tolist(), "statistic": float(r.statistic), "p_value": float(r.pvalue)})
    return out


def main():
    import river
    doc = {"river_version": river.__version__, "streams": [], "ks": ks_pairs()}
    for name, xs in STREAMS.items():
        binary = all(x in (0.0, 1.0) for x in xs)
        dets = {}
        for dname, (params, make) in DETECTORS.items():
            if dname == "ddm" and not binary:
                continue
            dets[dname] = {"params": params, "detections": run(lambda: make(params), xs)}
        doc["streams"].append({"name": name, "values": xs, "detectors": dets})
    json.dump(doc, sys.stdout)


if __name__ == "__main__":
    main()
