//! Drift detection. Parity of Vigil's statistics with independent implementations: River's ADWIN,
//! Page-Hinkley, KSWIN and DDM report the same detection indices on the streams of
//! `../shared/baselines/river_baseline.py` (rebuilt by `tests/support/drift_parity.py`) and on
//! seeded streams of Vigil's own, and SciPy's `ks_2samp` gives the same statistic and p-value (to
//! 1e-6) on sample pairs from 5 to 40,000 values, exact and asymptotic.

use serde_json::Value;
use vigil_e2e::*;
use vigil_stats::detectors::{Adwin, Ddm, Detector, Kswin, PageHinkley};
use vigil_stats::ks::ks_2samp;

fn detector(name: &str, p: &Value) -> Box<dyn Detector> {
    let f = |k: &str| p[k].as_f64().unwrap();
    let u = |k: &str| p[k].as_u64().unwrap();
    match name {
        n if n.starts_with("adwin") => Box::new(Adwin::with(f("delta"), p["clock"].as_u64().unwrap_or(32), 5, 5, 10)),
        n if n.starts_with("page_hinkley") => {
            Box::new(PageHinkley::new(u("min_instances"), f("delta"), f("threshold"), f("alpha")))
        }
        n if n.starts_with("kswin") => {
            Box::new(Kswin::new(f("alpha"), u("window_size") as usize, u("stat_size") as usize, u("seed")))
        }
        "ddm" => Box::new(Ddm::new(u("warm_start"), f("warning_threshold"), f("drift_threshold"))),
        other => panic!("unknown detector {other}"),
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn detectors_and_ks_match_river_and_scipy() {
    let (code, out, err) = python_support("drift_parity.py", &[], None);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for stream in doc["streams"].as_array().unwrap() {
        let xs = floats(&stream["values"]);
        for (name, want) in stream["detectors"].as_object().unwrap() {
            let mut det = detector(name, &want["params"]);
            let got: Vec<u64> = xs.iter().enumerate().filter_map(|(i, x)| det.update(*x).then_some(i as u64)).collect();
            let want: Vec<u64> = want["detections"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            compared += 1;
            if got != want {
                mismatches.push(format!("{} / {name}: vigil {got:?}, river {want:?}", stream["name"]));
            }
        }
    }
    assert!(compared >= 40, "only {compared} stream/detector pairs");
    assert!(mismatches.is_empty(), "detections differ from River's:\n{}", mismatches.join("\n"));

    let mut worst: (f64, String) = (0.0, String::new());
    let pairs = doc["ks"].as_array().unwrap();
    for pair in pairs {
        let (a, b) = (floats(&pair["a"]), floats(&pair["b"]));
        let r = ks_2samp(&a, &b);
        let (d, p) = (pair["statistic"].as_f64().unwrap(), pair["p_value"].as_f64().unwrap());
        assert!((r.statistic - d).abs() < 1e-12, "n = {}, {}: D {} vs SciPy {d}", a.len(), b.len(), r.statistic);
        let err = (r.p_value - p).abs();
        if err > worst.0 {
            worst = (err, format!("n = {}, {}: p {} vs SciPy {p}", a.len(), b.len(), r.p_value));
        }
    }
    println!(
        "{compared} detector runs identical to River's; largest KS p-value difference {:.2e} ({})",
        worst.0, worst.1
    );
    assert!(pairs.len() >= 30);
    assert!(worst.0 <= 1e-6, "largest p-value difference {}: {}", worst.0, worst.1);
}
