//! Unit tests of the monitor and the alert book (the service runs against a broker in
//! `tests/it/drift.rs`).

use crate::config::DriftConfig;
use vigil_events::{AlertKind, AlertState, FeatureKind, FeatureReference, Severity};
use vigil_features::FeatureSpec;
use vigil_learn::rng::Rng;

use crate::alerts::{AlertBook, Outcome};
use crate::monitor::{Finding, Layout, Monitor, References, SCORE};

fn spec() -> FeatureSpec {
    FeatureSpec::parse(
        r#"
model = "m"
schema = "dev.vigil.demo.Transaction"
[[numeric]]
field = "amount"
[[numeric]]
field = "account_age_days"
[[numeric]]
field = "event_time"
name = "hour_sin"
transform = "hour-sin"
[[categorical]]
field = "channel"
encoding = "one-hot"
values = ["pos", "ecommerce", "atm"]
"#,
    )
    .unwrap()
}

fn cfg() -> DriftConfig {
    DriftConfig { window: 500, warmup: 500, evaluate_every: 100, ..DriftConfig::default() }
}

/// A raw row: amount, age, the clock (always rising), channel one-hot (3 values + other).
fn row(rng: &mut Rng, amount_shift: f64, channel_bias: bool) -> Vec<f64> {
    static CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = CLOCK.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as f64 * 1e-6;
    let mut r = vec![rng.normal() + amount_shift, 3.0 + rng.normal(), t, 0.0, 0.0, 0.0, 0.0];
    let c = if channel_bias && rng.uniform() < 0.5 { 2 } else { rng.below(3) as usize };
    r[3 + c] = 1.0;
    r
}

fn active(findings: &[Finding]) -> Vec<String> {
    findings.iter().filter(|f| f.active).map(|f| f.key("m")).collect()
}

#[test]
fn layout_follows_the_spec() {
    let l = Layout::of(&spec());
    assert_eq!(l.numeric, vec!["amount", "account_age_days", "hour_sin"]);
    assert_eq!(l.clock, vec!["hour_sin"], "the clock is never tested");
    assert_eq!(l.categorical.len(), 1);
    assert_eq!(l.categorical[0].0, "channel");
    assert_eq!(l.categorical[0].1, 3);
    assert_eq!(l.categorical[0].2, vec!["pos", "ecommerce", "atm", "<other>"]);
}

#[test]
fn a_stationary_stream_raises_nothing_and_a_shift_names_its_feature_within_a_window() {
    let mut rng = Rng::new(7);
    let mut m = Monitor::new("m", Layout::of(&spec()), &cfg());
    let mut evaluations = 0;
    for i in 0..5000 {
        let s = rng.normal() * 0.1 + 0.3;
        m.score(&format!("e{i}"), s, false, 5.0);
        if let Some(e) = m.event(&row(&mut rng, 0.0, false), i) {
            evaluations += 1;
            assert!(active(&e.findings).is_empty(), "false alarm at event {i}: {:?}", active(&e.findings));
            assert_eq!(e.features.len(), 4, "amount, age, channel and the score are tested");
        }
    }
    assert!(evaluations >= 40, "{evaluations}");
    assert_eq!(m.reference().version, None, "warm-up reference");
    // The amount shifts by one standard deviation: within one window the amount alone drifts.
    let mut first = None;
    for i in 0..500 {
        m.score(&format!("s{i}"), rng.normal() * 0.1 + 0.3, false, 5.0);
        if let Some(e) = m.event(&row(&mut rng, 1.0, false), 5000 + i)
            && first.is_none()
        {
            let keys = active(&e.findings);
            if !keys.is_empty() {
                assert_eq!(keys, vec!["data-drift/m/amount/ks"], "only the amount drifted");
                first = Some(i);
            }
        }
    }
    assert!(first.is_some_and(|i| i <= 300), "detected after {first:?} shifted events");
}

#[test]
fn a_categorical_shift_is_found_by_chi_squared_and_a_score_shift_is_prediction_drift() {
    let mut rng = Rng::new(11);
    let mut m = Monitor::new("m", Layout::of(&spec()), &cfg());
    for i in 0..1000 {
        m.score(&format!("e{i}"), rng.normal() * 0.1 + 0.3, false, 5.0);
        m.event(&row(&mut rng, 0.0, false), i);
    }
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..1000 {
        m.score(&format!("s{i}"), rng.normal() * 0.1 + 0.5, false, 5.0);
        if let Some(e) = m.event(&row(&mut rng, 0.0, true), 1000 + i) {
            seen.extend(active(&e.findings));
        }
    }
    assert!(seen.contains("data-drift/m/channel/chi2"), "{seen:?}");
    assert!(seen.contains(&format!("prediction-drift/m/{SCORE}/ks")), "{seen:?}");
    assert!(!seen.iter().any(|k| k.contains("amount") || k.contains("account_age")), "{seen:?}");
}

#[test]
fn a_checkpoint_reference_replaces_the_warm_up_and_is_used_at_once() {
    let layout = Layout::of(&spec());
    let sample: Vec<f64> = (0..500).map(|i| f64::from(i) / 100.0).collect();
    let refs = vec![
        FeatureReference {
            feature: "amount".into(),
            kind: FeatureKind::Numeric,
            count: 500,
            edges: vec![0.0, 2.5, 5.0],
            categories: vec![],
            counts: vec![250, 250],
            sample: sample.clone(),
        },
        FeatureReference {
            feature: "channel".into(),
            kind: FeatureKind::Categorical,
            count: 10,
            edges: vec![],
            categories: vec!["wrong".into()],
            counts: vec![10],
            sample: vec![],
        },
    ];
    let r = References::from_checkpoint(4, &refs, &layout).unwrap();
    assert_eq!(r.version, Some(4));
    assert!(r.by_feature.contains_key("amount"));
    assert!(!r.by_feature.contains_key("channel"), "categories that do not fit the layout are ignored");
    assert!(References::from_checkpoint(4, &[], &layout).is_none());
    let mut m = Monitor::new("m", layout, &cfg());
    m.set_reference(r);
    let mut rng = Rng::new(3);
    let mut found = Vec::new();
    for i in 0..500 {
        // Uniform on [0, 5): the reference's distribution.
        let mut x = row(&mut rng, 0.0, false);
        x[0] = rng.uniform() * 5.0;
        if let Some(e) = m.event(&x, i) {
            found.extend(e.features.iter().map(|f| (f.feature.clone(), f.drifted)));
        }
    }
    assert_eq!(found, vec![("amount".to_string(), false)], "only the amount has a reference; no warm-up");
}

#[test]
fn excluded_features_are_not_tested() {
    let mut rng = Rng::new(5);
    let c = DriftConfig { exclude_features: vec!["amount".into()], ..cfg() };
    let mut m = Monitor::new("m", Layout::of(&spec()), &c);
    for i in 0..2000 {
        let shift = if i < 1000 { 0.0 } else { 3.0 };
        if let Some(e) = m.event(&row(&mut rng, shift, false), i) {
            assert!(e.features.iter().all(|f| f.feature != "amount"));
            assert!(active(&e.findings).is_empty(), "{:?}", active(&e.findings));
        }
    }
}

#[test]
fn errors_that_rise_raise_concept_drift_and_thresholds_apply() {
    let mut rng = Rng::new(9);
    let c = DriftConfig { min_accuracy: 0.8, ..cfg() };
    let mut m = Monitor::new("m", Layout::of(&spec()), &c);
    let mut detections = Vec::new();
    for i in 0..6000 {
        let id = format!("e{i}");
        let p_wrong = if i < 3000 { 0.05 } else { 0.35 };
        let y = rng.uniform() < 0.5;
        let wrong = rng.uniform() < p_wrong;
        let decision = y != wrong;
        // Labels sometimes come before their score: both orders join.
        if i % 3 == 0 {
            assert!(m.label(&id, f64::from(u8::from(y))).is_none());
            if let Some(e) = m.score(&id, if decision { 0.9 } else { 0.1 }, decision, 5.0) {
                detections.push((i, e.findings[0].clone()));
            }
        } else {
            m.score(&id, if decision { 0.9 } else { 0.1 }, decision, 5.0);
            if let Some(e) = m.label(&id, f64::from(u8::from(y))) {
                detections.push((i, e.findings[0].clone()));
            }
        }
    }
    assert_eq!(m.labelled, 6000);
    let first = detections.iter().find(|(i, _)| *i >= 3000).map(|(i, _)| *i);
    assert!(first.is_some_and(|i| i < 3300), "detections {:?}", detections.iter().map(|d| d.0).collect::<Vec<_>>());
    assert!(detections.iter().filter(|(i, _)| *i < 3000).count() <= 1, "false alarms before the change");
    let f = &detections.last().unwrap().1;
    assert_eq!(
        (f.kind, f.severity, f.detector.as_str(), f.active),
        (AlertKind::ConceptDrift, Severity::Critical, "adwin", true)
    );
    let q = m.quality();
    assert!(q.accuracy.is_some_and(|a| (a - 0.65).abs() < 0.06), "{q:?}");
    assert_eq!(q.p99_latency_ms, Some(5.0));
    // Below the accuracy threshold: a PERFORMANCE finding at the next evaluation.
    let mut perf = None;
    for i in 0..2000 {
        if let Some(e) = m.event(&row(&mut rng, 0.0, false), i) {
            perf = e.findings.into_iter().find(|f| f.kind == AlertKind::Performance);
            if perf.is_some() {
                break;
            }
        }
    }
    let perf = perf.expect("a performance finding");
    assert!(perf.active && perf.statistic == "accuracy" && perf.threshold == 0.8, "{perf:?}");
}

#[test]
fn errors_that_fall_are_not_concept_drift() {
    let mut rng = Rng::new(13);
    let mut m = Monitor::new("m", Layout::of(&spec()), &cfg());
    let mut detections = Vec::new();
    for i in 0..6000 {
        let id = format!("e{i}");
        let wrong = rng.uniform() < if i < 3000 { 0.35 } else { 0.02 };
        m.score(&id, if wrong { 0.9 } else { 0.1 }, wrong, 5.0);
        if let Some(e) = m.label(&id, 0.0) {
            detections.push((i, e.findings[0].message.clone()));
        }
    }
    assert_eq!(m.labelled, 6000);
    assert!(detections.is_empty(), "a better error rate raised {detections:?}");
}

#[test]
fn a_new_champion_is_judged_on_its_own_scores() {
    let mut rng = Rng::new(17);
    let mut m = Monitor::new("m", Layout::of(&spec()), &cfg());
    // v1's scores form the warm-up reference; v2 scores higher by design, which is not drift.
    let mut drifted = Vec::new();
    for i in 0..3000 {
        if i == 1500 {
            m.new_champion(2, None);
            assert!(!m.reference().by_feature.contains_key(SCORE), "v2's scores warm up again");
        }
        let centre = if i < 1500 { 0.2 } else { 0.6 };
        m.score(&format!("e{i}"), rng.normal() * 0.05 + centre, false, 5.0);
        if let Some(e) = m.event(&row(&mut rng, 0.0, false), i) {
            drifted.extend(active(&e.findings));
        }
    }
    assert_eq!(m.champion, Some(2));
    assert!(m.reference().by_feature.contains_key(SCORE), "v2's warm-up froze");
    assert!(drifted.is_empty(), "{drifted:?}");
    // A checkpoint's score reference is used at once, against the new champion's scores only.
    let refs = vec![FeatureReference {
        feature: SCORE.into(),
        kind: FeatureKind::Score,
        count: 500,
        edges: vec![],
        categories: vec![],
        counts: vec![],
        sample: (0..500).map(|_| rng.normal() * 0.05 + 0.6).collect(),
    }];
    m.new_champion(3, References::from_checkpoint(3, &refs, m.layout()));
    let mut seen = Vec::new();
    for i in 0..1000 {
        m.score(&format!("f{i}"), rng.normal() * 0.05 + 0.6, false, 5.0);
        if let Some(e) = m.event(&row(&mut rng, 0.0, false), 3000 + i) {
            seen.extend(e.features.iter().filter(|f| f.feature == SCORE).map(|f| f.drifted));
        }
    }
    assert!(!seen.is_empty() && seen.iter().all(|d| !d), "{seen:?}");
    assert!(
        m.reference().by_feature.contains_key("amount"),
        "features the checkpoint has no reference for keep theirs"
    );
}

fn finding(active: bool) -> Finding {
    Finding {
        kind: AlertKind::DataDrift,
        severity: Severity::Warning,
        feature: Some("amount".into()),
        detector: "ks".into(),
        statistic: "ks_d".into(),
        value: 0.3,
        threshold: 0.01,
        p_value: Some(1e-9),
        active,
        message: "amount drifted".into(),
    }
}

#[test]
fn alerts_fire_once_per_cool_down_and_resolve_after_clean_evaluations() {
    let mut book = AlertBook::new(std::time::Duration::from_secs(60), 3);
    let w = (0, 10);
    let (o, a) = book.observe("m", Some(2), &finding(true), 1_000, w);
    let a = a.unwrap();
    assert_eq!(o, Outcome::Fired);
    assert_eq!(
        (a.kind, a.state, a.dedup_key.as_str()),
        (AlertKind::DataDrift, AlertState::Firing, "data-drift/m/amount/ks")
    );
    assert_eq!(
        (a.model.as_deref(), a.model_version, a.feature.as_deref(), a.p_value),
        (Some("m"), Some(2), Some("amount"), Some(1e-9))
    );
    // Repeats within the cool-down are suppressed; a clean evaluation between them does not resolve.
    assert_eq!(book.observe("m", Some(2), &finding(true), 20_000, w).0, Outcome::Suppressed);
    assert_eq!(book.observe("m", Some(2), &finding(false), 30_000, w).0, Outcome::Quiet);
    assert_eq!(book.observe("m", Some(2), &finding(true), 40_000, w).0, Outcome::Suppressed);
    // After the cool-down, a condition still open is alerted again.
    let (o, a) = book.observe("m", Some(2), &finding(true), 61_000, w);
    assert_eq!((o, a.map(|a| a.state)), (Outcome::Repeated, Some(AlertState::Firing)));
    // Three clean evaluations in a row resolve it, with the same key.
    assert_eq!(book.observe("m", Some(2), &finding(false), 62_000, w).0, Outcome::Quiet);
    assert_eq!(book.observe("m", Some(2), &finding(false), 63_000, w).0, Outcome::Quiet);
    let (o, a) = book.observe("m", Some(2), &finding(false), 64_000, w);
    let a = a.unwrap();
    assert_eq!(
        (o, a.state, a.severity, a.dedup_key.as_str()),
        (Outcome::Resolved, AlertState::Resolved, Severity::Info, "data-drift/m/amount/ks")
    );
    assert!(book.open_keys().is_empty());
    // Other models and features have their own keys.
    assert_eq!(book.observe("n", None, &finding(true), 65_000, w).0, Outcome::Fired);
    assert_eq!(book.observe("m", None, &finding(true), 65_000, w).0, Outcome::Fired);
    assert_eq!(book.open_keys(), vec!["data-drift/m/amount/ks", "data-drift/n/amount/ks"]);
}

/// A restarted service reads its open alerts back: a condition fired before the restart is not
/// fired again within the cool-down, and one resolved before it fires anew.
#[test]
fn the_alert_book_is_restored_from_alerts_read_back() {
    let w = (0, 10);
    let mut before = AlertBook::new(std::time::Duration::from_secs(60), 1);
    let fired = before.observe("m", Some(2), &finding(true), 1_000, w).1.unwrap();
    let mut after = AlertBook::new(std::time::Duration::from_secs(60), 1);
    after.restore(&fired);
    assert_eq!(after.open_keys(), vec!["data-drift/m/amount/ks"]);
    assert_eq!(after.observe("m", Some(2), &finding(true), 30_000, w).0, Outcome::Suppressed);
    assert_eq!(after.observe("m", Some(2), &finding(true), 61_000, w).0, Outcome::Repeated);
    let resolved = before.observe("m", Some(2), &finding(false), 2_000, w).1.unwrap();
    let mut again = AlertBook::new(std::time::Duration::from_secs(60), 1);
    again.restore(&fired);
    again.restore(&resolved);
    assert!(again.open_keys().is_empty());
    assert_eq!(again.observe("m", Some(2), &finding(true), 3_000, w).0, Outcome::Fired);
}
