//! The benchmarks' short version (`make bench` runs them at length): `vigil-bench scale` with a
//! few thousand events writes a report whose figures are measured, not made up.

use vigil_e2e::*;

/// Runs `vigil-bench <which> <args>` on the tests' broker with `env`, and reads its report.
fn run_bench(which: &str, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let out = std::env::temp_dir().join(unique("bench"));
    let status = std::process::Command::new(bin("vigil-bench"))
        .arg(which)
        .args(args)
        .args(["--out", out.to_str().unwrap()])
        .env("VIGIL_KAFKA__BOOTSTRAP_SERVERS", bootstrap())
        .envs(env.iter().copied())
        .status()
        .unwrap();
    assert!(status.success(), "vigil-bench {which}: {status}");
    serde_json::from_str(&std::fs::read_to_string(out.join(format!("{which}.json"))).unwrap()).unwrap()
}

#[test]
fn the_scale_out_benchmark_writes_its_report() {
    let report = run_bench("scale", &["--events", "3000", "--rounds", "1"], &[]);
    let forwarder = report["forwarder_events_per_s"].as_f64().unwrap();
    assert!(forwarder > 0.0, "{report}");
    let runs = report["scorers"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["instances"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    for r in runs {
        let rate = r["events_per_s"].as_f64().unwrap();
        assert!(rate > 0.0 && (r["vs_forwarder"].as_f64().unwrap() - rate / forwarder).abs() < 1e-9, "{r}");
        assert!(r["rss_mb_total"].as_f64().unwrap() > 0.0, "{r}");
    }
}

/// `vigil-bench sentiment` at its shortest: 100 texts per VADER set (when the shared data is here),
/// 300 preloaded texts for the speed run; the report's figures are measured.
#[test]
fn the_sentiment_benchmark_writes_its_report() {
    let report =
        run_bench("sentiment", &["--events", "12000", "--rounds", "1"], &[("VIGIL_BENCH_SENTIMENT_TEXTS", "100")]);
    let speed = &report["speed"];
    let (vigil, python) =
        (speed["scorer_texts_per_s"].as_f64().unwrap(), speed["python_texts_per_s"].as_f64().unwrap());
    assert!(vigil > 0.0 && python > 0.0, "{report}");
    assert!((report["encoder_vs_python"].as_f64().unwrap() - vigil / python).abs() < 1e-9, "{report}");
    if let Some(sets) = report["quality"]["sets"].as_object() {
        assert_eq!(sets.len(), 4, "{report}");
        for set in sets.values() {
            for k in ["encoder_head_accuracy", "hashed_accuracy", "river_bow_accuracy"] {
                assert!(set[k].as_f64().is_some_and(|a| a > 0.0 && a < 1.0), "{k}: {set}");
            }
        }
    }
}

/// `vigil-bench python` at its shortest: the Python fraud scorer (features computed in Python from
/// the same spec, the same graph in onnxruntime) scores 500 events as the scorer does, then each
/// drains the same records beside the forwarder.
#[test]
fn the_python_baseline_scores_as_the_scorer_does() {
    let report = run_bench("python", &["--events", "4000", "--rounds", "1"], &[]);
    let f = |k: &str| report[k].as_f64().unwrap();
    assert_eq!(report["parity"]["events"], 500, "{report}");
    assert!(report["parity"]["max_abs_difference"].as_f64().unwrap() < 1e-5, "{report}");
    let (scorer, python) = (f("scorer_events_per_s"), f("python_events_per_s"));
    assert!(scorer > 0.0 && python > 0.0 && f("forwarder_events_per_s") > 0.0, "{report}");
    assert!((f("scorer_vs_python") - scorer / python).abs() < 1e-9, "{report}");
}

/// `vigil-bench ab` with 200 seeded runs per case: the sequential test keeps its level where peeking
/// at a z-test does not, and names a truly better arm.
#[test]
fn the_ab_benchmark_writes_its_report() {
    let report = run_bench("ab", &["--rounds", "1"], &[]);
    let f = |k: &str| report[k].as_f64().unwrap();
    assert_eq!(report["runs_per_case"], 200, "{report}");
    assert!(f("false_positive_rate") <= 0.08, "{report}");
    assert!(f("false_positive_rate_peeking_z") > f("false_positive_rate"), "{report}");
    let big = report["detection"].as_array().unwrap().iter().find(|d| d["effect"] == 0.05).unwrap();
    assert!(big["power"].as_f64().unwrap() > 0.9 && big["median_labels_per_arm"].as_u64().unwrap() > 0, "{big}");
}
