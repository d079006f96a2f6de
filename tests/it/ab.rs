//! Live A/B tests on the broker. The scorer splits the traffic by account (`vigil ab start
//! --key-field account_id`), each score naming its arm, and the drift service judges the arms from
//! the labels with the always-valid sequential test: when arm B is truly better (A always says
//! fraud) the test ends with B named winner, an `AB_TEST` alert and the experiment DONE; when both
//! arms hold the same model it ends with no difference; an account never switches arm; the learner
//! promotes a winner when the test asked for it. And the rollback guard: an operator promotes a
//! version that calls everything fraud; the learner, scoring it beside the version it replaced,
//! rolls it back with an alert saying why.

use std::collections::HashMap;
use std::time::Duration;

use vigil_e2e::*;
use vigil_events::{
    Alert, AlertKind, CheckpointStatus, Codec, Experiment, ExperimentState, ModelCheckpoint, Score, Transaction,
    Verdict,
};
use vigil_features::{FRAUD_SPEC, FeatureSpec};
use vigil_models::Model;

const T: Duration = Duration::from_secs(180);

/// Registers a fraud model that calls every transaction fraud, promoted (it serves as arm A).
fn register_always_fraud(stack: &Stack) {
    let width = FeatureSpec::parse(FRAUD_SPEC).unwrap().input_names().len();
    let onnx = Model::Logistic { w: vec![0.0; width], b: 3.0 }.to_onnx("fraud", 2).to_bytes();
    let dir = std::env::temp_dir().join(unique("ab-model"));
    std::fs::create_dir_all(&dir).unwrap();
    let (model, spec) = (dir.join("always-fraud.onnx"), dir.join("fraud.toml"));
    std::fs::write(&model, onnx).unwrap();
    std::fs::write(&spec, FRAUD_SPEC).unwrap();
    let args = ["models", "register", "--onnx", model.to_str().unwrap(), "--spec", spec.to_str().unwrap(), "--promote"];
    let (code, out, err) = stack.vigil(&args, None);
    assert_eq!(code, 0, "{out}{err}");
}

/// Starts the A/B test of fraud: A = v2 (the champion), B = v1, half of the accounts in B.
fn start(stack: &Stack, min_effect: &str, more: &[&str]) {
    let mut args = vec!["ab", "start", "fraud", "--a", "2", "--b", "1", "--share", "0.5"];
    args.extend(["--key-field", "account_id", "--metric", "accuracy", "--min-effect", min_effect]);
    args.extend_from_slice(more);
    let (code, out, err) = stack.vigil(&args, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("fraud v2 (A) against v1 (B)"), "{out}");
}

/// Waits for the test's verdict alert; returns it and the experiment as it ended.
async fn verdict(stack: &Stack) -> (Alert, Experiment) {
    let codec = Codec::new();
    let is_verdict = |i: &vigil_kafka::Input| {
        codec.decode_event::<Alert>(i.payload.as_deref().unwrap_or(&[])).is_ok_and(|a| a.kind == AlertKind::AbTest)
    };
    let alerts =
        collect_until(&stack.alerts, "read_committed", T, "the A/B verdict", |r| r.iter().any(is_verdict)).await;
    let alert: Alert =
        codec.decode_event(alerts.iter().find(|i| is_verdict(i)).unwrap().payload.as_deref().unwrap()).unwrap();
    let records = read_all(&stack.experiments, "read_committed", Duration::from_secs(2)).await;
    let last = records.iter().rev().find_map(|i| codec.decode_event::<Experiment>(i.payload.as_deref()?).ok());
    let e = last.expect("an experiment record");
    assert_eq!(e.state, ExperimentState::Done, "{e:?}");
    (alert, e)
}

/// Every score served under the test: event id → arm.
async fn arms(stack: &Stack) -> HashMap<String, String> {
    let codec = Codec::new();
    let scores = read_all(&stack.scores, "read_committed", Duration::from_secs(2)).await;
    scores
        .iter()
        .filter_map(|i| codec.decode_event::<Score>(i.payload.as_deref()?).ok())
        .filter_map(|s| Some((s.event_id, s.arm?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truly_better_arm_wins_is_promoted_and_an_account_never_switches_arm() {
    // The learner only promotes the winner here (no checkpoints of its own).
    let stack = Stack::with_learner("ab-win", 3, "", "min-examples = 1000000\n").await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    register_always_fraud(&stack);
    start(&stack, "0.05", &["--auto-promote"]);
    let port = free_port();
    let log = std::env::temp_dir().join(unique("ab-learner.log"));
    let _learner = Running(stack.spawn_logged("vigil-learner", port, &log));
    wait_ready(port, T, "the learner");
    let (code, out, _) = stack.vigil(&["ab", "start", "fraud", "--a", "2", "--b", "1"], None);
    assert_ne!(code, 0, "a second test of the same model is refused: {out}");
    // Served under the test before anyone judges it (the judge would end it within a few hundred
    // labels): every account's events went to one arm, and both arms served.
    let codec = Codec::new();
    let _scorer = Running(stack.spawn("vigil-scorer", &[]));
    let load = stack.labelled_fraud_load("w1", 3000, 1000).join().unwrap();
    assert_eq!(load["events"], 3000, "{load}");
    let arms = arms(&stack).await;
    let txs = read_all(&stack.tx, "read_committed", Duration::from_secs(2)).await;
    let mut by_account: HashMap<String, Vec<&str>> = HashMap::new();
    for t in txs.iter().filter_map(|i| codec.decode_event::<Transaction>(i.payload.as_deref()?).ok()) {
        if let Some(arm) = arms.get(&t.event_id) {
            by_account.entry(t.account_id).or_default().push(arm);
        }
    }
    let switched: Vec<_> = by_account.iter().filter(|(_, a)| a.iter().any(|x| x != &a[0])).collect();
    assert!(switched.is_empty(), "accounts that switched arm: {switched:?}");
    let repeat = by_account.values().filter(|a| a.len() >= 2).count();
    let in_b = by_account.values().filter(|a| a[0] == "B").count() as f64 / by_account.len() as f64;
    assert!(repeat >= 50 && (0.35..0.65).contains(&in_b), "{repeat} repeat accounts, {in_b} in B");

    // Judged: B wins and the learner promotes it.
    let _drift = Running(stack.spawn("vigil-drift", &[]));
    let load = stack.labelled_fraud_load("w2", 3000, 1000).join().unwrap();
    assert_eq!(load["events"], 3000, "{load}");
    let (alert, e) = verdict(&stack).await;
    println!("{}", alert.message);
    assert_eq!(e.verdict, Some(Verdict::B), "{e:?}");
    assert_eq!((alert.model.as_deref(), alert.model_version), (Some("fraud"), Some(1)), "{alert:?}");
    assert!(alert.message.contains("B (v1) wins"), "{}", alert.message);
    assert!(e.metric_b.unwrap() > e.metric_a.unwrap() + 0.5, "{e:?}");
    assert!(e.p_value.unwrap() <= 0.05 && e.labels_a >= 30 && e.labels_b >= 30, "{e:?}");
    // The learner promotes the winner, signed as its own promotions are, with the verdict as reason.
    let won = |r: &[vigil_kafka::Input]| {
        r.iter().filter_map(|i| codec.decode_event::<ModelCheckpoint>(i.payload.as_deref()?).ok()).any(|cp| {
            cp.version == 1 && cp.status == CheckpointStatus::Promoted && cp.status_reason.contains("won A/B test")
        })
    };
    collect_until(&stack.models, "read_committed", T, "the winner promoted", won).await;

    let (code, out, _) = stack.vigil(&["ab", "status", "fraud"], None);
    assert_eq!(code, 0);
    assert!(out.contains("Done") && out.contains("verdict B"), "{out}");
    stack.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_arms_end_with_no_difference() {
    let stack = Stack::new("ab-same", 3, "").await;
    for args in [&["models", "bootstrap"][..], &["models", "bootstrap", "--force"][..]] {
        let (code, _, err) = stack.vigil(args, None);
        assert_eq!(code, 0, "{err}");
    }
    start(&stack, "0.05", &[]);
    let _scorer = Running(stack.spawn("vigil-scorer", &[]));
    let _drift = Running(stack.spawn("vigil-drift", &[]));
    let load = stack.labelled_fraud_load("s", 6000, 2000).join().unwrap();
    assert_eq!(load["events"], 6000, "{load}");
    let (alert, e) = verdict(&stack).await;
    println!("{}", alert.message);
    assert_eq!(e.verdict, Some(Verdict::NoDifference), "{e:?}");
    assert!(alert.message.contains("no difference larger than 0.05"), "{}", alert.message);
    assert_eq!(alert.model_version, None);
    assert!((e.metric_a.unwrap() - e.metric_b.unwrap()).abs() < 0.05, "{e:?}");
    // Stopping a test that ended is refused; the scores after the verdict are the champion's alone.
    let (code, _, err) = stack.vigil(&["ab", "stop", "fraud"], None);
    assert_ne!(code, 0);
    assert!(err.contains("no running A/B test"), "{err}");
    stack.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_version_that_falls_behind_its_predecessor_is_rolled_back() {
    let learner = "min-examples = 1000000\nrollback-min-labels = 300\n";
    let stack = Stack::with_learner("rollback", 1, "", learner).await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let port = free_port();
    let log = std::env::temp_dir().join(unique("rollback-learner.log"));
    let _learner = Running(stack.spawn_logged("vigil-learner", port, &log));
    wait_ready(port, T, "the learner");
    // An operator promotes a version that calls everything fraud over the bootstrap model.
    register_always_fraud(&stack);
    stack.labelled_fraud_load("r", 3000, 1000).join().unwrap();
    let codec = Codec::new();
    let rolled_back = |i: &vigil_kafka::Input| {
        codec
            .decode_event::<Alert>(i.payload.as_deref().unwrap_or(&[]))
            .is_ok_and(|a| a.kind == AlertKind::ModelRolledBack)
    };
    let alerts = collect_until(&stack.alerts, "read_committed", T, "the rollback", |r| r.iter().any(rolled_back)).await;
    let a: Alert =
        codec.decode_event(alerts.iter().find(|i| rolled_back(i)).unwrap().payload.as_deref().unwrap()).unwrap();
    assert_eq!((a.model_version, a.detector.as_deref()), (Some(2), Some("learner")), "{a:?}");
    assert!(a.message.contains("v1 beat v2") && a.message.contains("v1 serves again"), "{}", a.message);
    let (code, out, err) = stack.vigil(&["models", "list", "fraud", "--output", "json"], None);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let row = |v: i64| rows.iter().find(|r| r["version"] == v).unwrap_or_else(|| panic!("v{v} in {out}"));
    assert_eq!(row(2)["status"], "rolledback", "{out}");
    assert_eq!(row(1)["role"], "champion", "{out}");
    stack.delete().await;
}
