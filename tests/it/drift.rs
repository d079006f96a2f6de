//! Drift detection. On the broker: a covariate shift from the load generator is alerted once,
//! naming the shifted feature, within one window, after a stationary stream raised nothing; a
//! concept change raises a concept-drift alert once labels arrive; Python decodes the alerts.
//! Parity of Vigil's statistics with independent implementations: River's ADWIN,
//! Page-Hinkley, KSWIN and DDM report the same detection indices on the streams of
//! `../shared/baselines/river_baseline.py` (rebuilt by `tests/support/drift_parity.py`) and on
//! seeded streams of Vigil's own, and SciPy's `ks_2samp` gives the same statistic and p-value (to
//! 1e-6) on sample pairs from 5 to 40,000 values, exact and asymptotic.

use std::time::Duration;

use serde_json::Value;
use vigil_e2e::*;
use vigil_events::{Alert, AlertKind, AlertState, Codec, DriftReport};
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

/// The value of the metric line that starts with `series` (name and labels), 0 when absent.
fn metric(port: u16, series: &str) -> f64 {
    let Some((200, body)) = http_get(port, "/metrics") else { return 0.0 };
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn alerts(records: &[vigil_kafka::Input]) -> Vec<Alert> {
    let codec = Codec::new();
    records.iter().map(|m| codec.decode_event(m.payload.as_deref().unwrap()).unwrap()).collect()
}

const T: Duration = Duration::from_secs(180);

fn fraud_args<'a>(stack: &'a Stack, labels: &'a str, prefix: &'a str, events: &'a str) -> Vec<&'a str> {
    vec![
        "fraud",
        "--topic",
        &stack.tx,
        "--labels-topic",
        labels,
        "--rate",
        "2000",
        "--events",
        events,
        "--business-gap-ms",
        "1",
        "--id-prefix",
        prefix,
        "--seed",
        prefix,
    ]
}

async fn drift_service(stack: &Stack) -> (Running, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Running(stack.spawn("vigil-drift", &[("VIGIL_DRIFT__HTTP_LISTEN", &listen)]));
    wait_for(T, "the drift service to be ready", || async { (http_get(port, "/readyz")?.0 == 200).then_some(()) })
        .await;
    (child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_covariate_shift_is_alerted_once_naming_its_feature_and_a_stationary_stream_raises_nothing() {
    let stack = Stack::with_sections(
        "drift-shift",
        2,
        "challenger-share = 0.0\n",
        "",
        "window = 1000\nwarmup = 1000\nevaluate-every = 250\ncooldown-ms = 600000\n",
    )
    .await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let mut scorer = Running(stack.spawn("vigil-scorer", &[]));
    let (mut drift, port) = drift_service(&stack).await;
    let evaluations = r#"vigil_drift_evaluations_total{model="fraud"}"#;

    // 4,000 stationary events: a warm-up window of 1,000, then nine evaluations of full windows.
    stack.load(&fraud_args(&stack, "none", "1", "4000"));
    wait_for(T, "nine evaluations", || async { (metric(port, evaluations) >= 9.0).then_some(()) }).await;
    let quiet = alerts(&read_all(&stack.alerts, "read_committed", Duration::from_secs(2)).await);
    assert!(quiet.is_empty(), "a stationary stream raised {quiet:#?}");

    // Amounts triple from here on: within one window (1,000 events, four evaluations) the amount
    // is named; then 1,000 more drifted events (four more evaluations) raise nothing new.
    let mut args = fraud_args(&stack, "none", "2", "1000");
    args.extend(["--drift", "amounts:3,at=0"]);
    stack.load(&args);
    wait_for(T, "thirteen evaluations", || async { (metric(port, evaluations) >= 13.0).then_some(()) }).await;
    let first = alerts(&read_all(&stack.alerts, "read_committed", Duration::from_secs(2)).await);
    let amount: Vec<&Alert> = first.iter().filter(|a| a.feature.as_deref() == Some("amount")).collect();
    assert_eq!(amount.len(), 1, "{first:#?}");
    let a = amount[0];
    assert_eq!(
        (a.kind, a.state, a.dedup_key.as_str()),
        (AlertKind::DataDrift, AlertState::Firing, "data-drift/fraud/amount/ks")
    );
    assert_eq!((a.model.as_deref(), a.model_version, a.detector.as_deref()), (Some("fraud"), Some(1), Some("ks")));
    assert!(a.p_value.is_some_and(|p| p < 0.01) && a.value.is_some_and(|d| d >= 0.1), "{a:?}");
    let other_features: Vec<&Alert> =
        first.iter().filter(|a| a.kind == AlertKind::DataDrift && a.feature.as_deref() != Some("amount")).collect();
    assert!(other_features.is_empty(), "only the amount changed: {other_features:#?}");

    stack.load(&args.iter().map(|a| if *a == "2" { "3" } else { a }).collect::<Vec<_>>());
    wait_for(T, "seventeen evaluations", || async { (metric(port, evaluations) >= 17.0).then_some(()) }).await;
    let all = alerts(&read_all(&stack.alerts, "read_committed", Duration::from_secs(2)).await);
    let firing = all.iter().filter(|a| a.dedup_key == "data-drift/fraud/amount/ks").count();
    assert_eq!(firing, 1, "repeats within the cool-down are suppressed: {all:#?}");
    assert!(metric(port, r#"vigil_drift_suppressed_total{model="fraud",kind="data-drift"}"#) >= 3.0);

    // Reports on the drift topic say the same, and Python's confluent-kafka decodes the alerts with
    // the shipped schema.
    let codec = Codec::new();
    let reports = collect_until(&stack.drift, "read_committed", T, "a drift report", |r| !r.is_empty()).await;
    let report: DriftReport = codec.decode_event(reports[0].payload.as_deref().unwrap()).unwrap();
    assert_eq!(report.model, "fraud");
    assert!(report.features.iter().any(|f| f.feature == "amount"), "{report:?}");
    let (code, out, err) = python_support(
        "interop.py",
        &["read", "--bootstrap", &bootstrap(), "--topic", &stack.alerts, "--count", &all.len().to_string()],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let decoded: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        decoded
            .iter()
            .any(|v| v["value"]["dedup_key"] == "data-drift/fraud/amount/ks" && v["value"]["kind"] == "DATA_DRIFT"),
        "{out}"
    );
    terminate(&mut drift.0, Duration::from_secs(20));
    terminate(&mut scorer.0, Duration::from_secs(20));
    stack.delete().await;
}

/// A minute's worth of negative texts in one source raises one `SENTIMENT_SURGE` alert naming that
/// source; the other sources, whose share does not move, raise none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_in_one_source_is_alerted_naming_it_and_the_other_sources_stay_quiet() {
    let drift = "evaluate-every = 100\ncooldown-ms = 600000\n";
    let stack = Stack::with_sections("surge", 2, "challenger-share = 0.0\n", "", drift).await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let mut scorer = Running(stack.spawn("vigil-scorer", &[]));
    let (mut drift, port) = drift_service(&stack).await;
    let mut args = vec!["text", "--topic", &stack.texts, "--labels-topic", "none", "--rate", "1000"];
    args.extend(["--events", "6000", "--id-prefix", "s", "--seed", "1", "--surge-source", "synthetic-support"]);
    args.extend(["--surge-from", "3000", "--surge-to", "4500"]);
    stack.load(&args);
    let scores = r#"vigil_drift_records_total{model="sentiment",stream="scores"}"#;
    wait_for(T, "every score read", || async { (metric(port, scores) >= 6000.0).then_some(()) }).await;
    wait_for(T, "a lag of 0 once everything is read", || async {
        let (_, body) = http_get(port, "/metrics")?;
        body.lines().any(|l| l == "vigil_drift_consumer_lag_records 0").then_some(())
    })
    .await;
    let all = alerts(&read_all(&stack.alerts, "read_committed", Duration::from_secs(2)).await);
    let surges: Vec<&Alert> = all.iter().filter(|a| a.kind == AlertKind::SentimentSurge).collect();
    let firing: Vec<&Alert> = surges.iter().copied().filter(|a| a.state == AlertState::Firing).collect();
    assert_eq!(firing.len(), 1, "one surge alert: {surges:#?}");
    let a = firing[0];
    assert_eq!(a.feature.as_deref(), Some("source=synthetic-support"), "{a:?}");
    assert_eq!(a.dedup_key, "sentiment-surge/sentiment/source=synthetic-support/two-proportion");
    assert!(a.p_value.is_some_and(|p| p < 0.01), "{a:?}");
    assert!(a.value.zip(a.threshold).is_some_and(|(share, bar)| share >= bar), "{a:?}");
    assert!(a.message.contains("source=synthetic-support"), "{}", a.message);
    println!("surge alert: {}", a.message);
    assert!(surges.iter().all(|s| s.feature == a.feature), "only that source: {surges:#?}");
    terminate(&mut drift.0, Duration::from_secs(20));
    terminate(&mut scorer.0, Duration::from_secs(20));
    stack.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concept_change_raises_concept_drift_once_labels_arrive() {
    let stack = Stack::with_sections(
        "drift-concept",
        1,
        "challenger-share = 0.0\n",
        "",
        "window = 1000\nwarmup = 1000\nevaluate-every = 250\n",
    )
    .await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let mut scorer = Running(stack.spawn("vigil-scorer", &[]));
    let (mut drift, port) = drift_service(&stack).await;
    let labelled = r#"vigil_drift_records_total{model="fraud",stream="labels"}"#;
    let error_rate = r#"vigil_drift_error_rate{model="fraud"}"#;
    let mut args = fraud_args(&stack, &stack.tx_labels, "1", "4000");
    args.extend([
        "--fraud-rate",
        "0.05",
        "--label-fast-mean-ms",
        "20",
        "--label-fast-share",
        "1",
        "--label-slow-share",
        "0",
        "--label-grace",
        "3",
    ]);
    stack.load(&args);
    wait_for(T, "4,000 labels", || async { (metric(port, labelled) >= 4000.0).then_some(()) }).await;
    let before = metric(port, error_rate);
    let quiet = alerts(&read_all(&stack.alerts, "read_committed", Duration::from_secs(2)).await);
    println!("error rate before the change {before:.3}; alerts {quiet:?}");
    assert!(quiet.iter().all(|a| a.kind != AlertKind::ConceptDrift), "{quiet:#?}");

    let mut args = fraud_args(&stack, &stack.tx_labels, "2", "4000");
    args.extend([
        "--fraud-rate",
        "0.3",
        "--patterns",
        "cloned-card",
        "--drift",
        "pattern-starts:bust-out,at=0",
        "--label-fast-mean-ms",
        "20",
        "--label-fast-share",
        "1",
        "--label-slow-share",
        "0",
        "--label-grace",
        "3",
    ]);
    stack.load(&args);
    let found = collect_until(&stack.alerts, "read_committed", T, "a concept-drift alert", |r| {
        alerts(r).iter().any(|a| a.kind == AlertKind::ConceptDrift)
    })
    .await;
    let after = metric(port, error_rate);
    let a = alerts(&found).into_iter().find(|a| a.kind == AlertKind::ConceptDrift).unwrap();
    println!("error rate after the change {after:.3}; {}", a.message);
    assert_eq!(
        (a.state, a.detector.as_deref(), a.dedup_key.as_str()),
        (AlertState::Firing, Some("adwin"), "concept-drift/fraud/-/adwin")
    );
    terminate(&mut drift.0, Duration::from_secs(20));
    terminate(&mut scorer.0, Duration::from_secs(20));
    stack.delete().await;
}

/// A service runs with two malloc arenas and a fixed mmap threshold unless its environment says
/// otherwise (it executes itself again with them set, keeping its process id), and keeps an
/// operator's setting.
#[tokio::test]
async fn services_cap_malloc_arenas_unless_told_otherwise() {
    let stack = Stack::new("arenas", 1, "").await;
    let dir = std::env::temp_dir().join(&stack.prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (None, ["MALLOC_ARENA_MAX=2", "MALLOC_MMAP_THRESHOLD_=131072"]),
        (Some("8"), ["MALLOC_ARENA_MAX=8", "MALLOC_ARENA_MAX=8"]),
    ];
    for (given, expected) in cases {
        let port = free_port();
        let env: Vec<(&str, &str)> = given.map(|v| ("MALLOC_ARENA_MAX", v)).into_iter().collect();
        let mut drift = Running(stack.spawn_logged_with("vigil-drift", port, &dir.join("drift.log"), &env));
        wait_for(Duration::from_secs(60), "the drift service's endpoint", || async {
            http_get(port, "/healthz").map(|_| ())
        })
        .await;
        let environ = std::fs::read(format!("/proc/{}/environ", drift.0.id())).unwrap();
        let vars: Vec<String> = environ.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
        for e in expected {
            assert!(vars.iter().any(|v| v == e), "{e} not in the service's environment");
        }
        if given.is_some() {
            assert!(!vars.iter().any(|v| v.starts_with("MALLOC_MMAP")), "an operator's setting is kept whole");
        }
        terminate(&mut drift.0, Duration::from_secs(20));
    }
    stack.delete().await;
}
