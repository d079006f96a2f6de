//! Several learners for one model: one holds the lease and learns, the others stand by. The holder
//! stopped past its lease (a zombie) loses the model to another and, continued, exits without a
//! visible write; the new holder killed, a third takes over within 30 s; training resumes from the
//! last checkpoint with no label applied twice, and no `model/version` key ever holds two graphs.
//! With one learner's clock five minutes ahead, the operator's rollback and promotion still hold and
//! every scorer serves the champion they set within 5 s. The drift service hands over the same way.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use vigil_e2e::*;
use vigil_events::{Codec, ModelCheckpoint};

fn ready(port: u16) -> bool {
    http_get(port, "/readyz").is_some_and(|(status, _)| status == 200)
}

/// Waits until exactly one of `ports` is ready; returns its index and how long that took.
async fn holder(ports: &[u16], deadline: Duration) -> (usize, Duration) {
    let start = Instant::now();
    loop {
        let up: Vec<usize> = (0..ports.len()).filter(|i| ready(ports[*i])).collect();
        assert!(up.len() <= 1, "two learners are ready at once: {up:?}");
        if let Some(i) = up.first() {
            return (*i, start.elapsed());
        }
        assert!(start.elapsed() < deadline, "no learner took the lease within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the learner on `port` has joined the group and stands by (it resumes first).
async fn standing_by(port: u16, what: &str) {
    let until = Instant::now() + Duration::from_secs(60);
    while !http_get(port, "/readyz").is_some_and(|(_, body)| body.contains("standing by")) {
        assert!(Instant::now() < until, "{what} never stood by: {:?}", http_get(port, "/readyz"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

/// Waits until every thread of `pid` is stopped: `kill` returns once SIGSTOP is sent, and a thread
/// still running on the other core could answer one more request (a stopped holder once read as
/// ready, and as the standby's successor).
fn wait_stopped(pid: u32) {
    let stopped = |stat: String| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('T'));
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        if tasks.flatten().all(|t| std::fs::read_to_string(t.path().join("stat")).is_ok_and(stopped)) {
            return;
        }
        assert!(Instant::now() < until, "process {pid} was not stopped within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The fraud model's checkpoints on the models topic (committed ones), in order.
async fn checkpoints(stack: &Stack) -> Vec<ModelCheckpoint> {
    let codec = Codec::new();
    read_all(&stack.models, "read_committed", Duration::from_secs(2))
        .await
        .iter()
        .filter_map(|m| codec.decode_event::<ModelCheckpoint>(m.payload.as_deref()?).ok())
        .filter(|cp| cp.model == "fraud")
        .collect()
}

/// Labels settled by a checkpoint, less those read twice (the load generator's producer is not
/// idempotent: a retry under load sends a label again, which the learner dead-letters as a
/// duplicate), and the checkpoint's counts for messages.
fn labels_settled(cp: &ModelCheckpoint) -> Option<(u64, String)> {
    let state: serde_json::Value = serde_json::from_slice(cp.learner_state.as_deref()?).ok()?;
    let counts = &state["counts"];
    let settled = counts["labels"].as_u64()? - counts["duplicates"].as_u64().unwrap_or(0);
    Some((settled, counts.to_string()))
}

#[tokio::test]
async fn learners_hand_a_model_over_without_applying_a_label_twice() {
    let learner = "min-examples = 300\ncheckpoint-every = 300\nlease-timeout-ms = 6000\n";
    let stack = Stack::with_learner("failover", 2, "", learner).await;
    let dir = std::env::temp_dir().join(&stack.prefix);
    std::fs::create_dir_all(&dir).unwrap();
    showing_logs_on_failure(dir.clone(), hand_a_model_over(stack, dir)).await;
}

/// The learners' fail-over: a zombie, then a killed holder (logs in `dir`).
async fn hand_a_model_over(stack: Stack, dir: std::path::PathBuf) {
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let spawn = |name: &str, port: u16| {
        Running(stack.spawn_logged_with("vigil-learner", port, &dir.join(format!("{name}.log")), &[]))
    };
    let ports = [free_port(), free_port(), free_port()];
    let mut a = spawn("a", ports[0]);
    let mut b = spawn("b", ports[1]);
    let (first, _) = holder(&ports[..2], Duration::from_secs(60)).await;
    standing_by(ports[1 - first], "the second learner").await;
    let load = stack.labelled_fraud_load("failover", 9000, 500);
    // The holder has checkpointed: stop it past its lease (a zombie); the other takes over.
    collect_until(&stack.models, "read_committed", Duration::from_secs(60), "a learner checkpoint", |r| r.len() >= 3)
        .await;
    let (zombie, other) = if first == 0 { (&mut a, &mut b) } else { (&mut b, &mut a) };
    signal(zombie.0.id(), "-STOP");
    wait_stopped(zombie.0.id());
    let (second, took) = holder(&ports[..2], Duration::from_secs(90)).await;
    assert_eq!(second, 1 - first, "the standby took the lease");
    println!("the standby took over {:.1} s after the holder stopped", took.as_secs_f64());
    signal(zombie.0.id(), "-CONT");
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = zombie.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < until, "the zombie kept running after it lost the lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "a learner that lost its lease exits with an error (to stand by when restarted)");
    // A third learner stands by; the holder is killed; the third takes over within 30 s.
    let mut c = spawn("c", ports[2]);
    standing_by(ports[2], "the third learner").await;
    kill(&mut other.0);
    let (third, took) = holder(&ports[2..], Duration::from_secs(30)).await;
    assert_eq!(third, 0);
    println!("the third learner took over {:.1} s after the holder was killed", took.as_secs_f64());
    let labels = load.join().unwrap()["labels"].as_u64().unwrap();
    // Training goes on from the last checkpoint: the newest checkpoint settles every label once.
    let until = Instant::now() + Duration::from_secs(120);
    let cps = loop {
        let cps = checkpoints(&stack).await;
        let (settled, counts) = cps.iter().rev().find_map(labels_settled).unwrap_or_default();
        assert!(settled <= labels, "{settled} labels settled for {labels} produced: some applied twice ({counts})");
        if settled == labels {
            break cps;
        }
        assert!(Instant::now() < until, "only {settled} of {labels} labels settled ({counts})");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut graphs: HashMap<i64, HashSet<String>> = HashMap::new();
    for cp in &cps {
        graphs.entry(cp.version).or_default().insert(cp.sha256.clone());
    }
    let two: Vec<i64> = graphs.iter().filter(|(_, s)| s.len() > 1).map(|(v, _)| *v).collect();
    assert!(two.is_empty(), "versions with two graphs: {two:?}");
    terminate(&mut c.0, Duration::from_secs(20));
    stack.delete().await;
}

/// `tests/support/clockshift.c` built for LD_PRELOAD: a process's wall clock moved by
/// `VIGIL_CLOCK_SHIFT_MS`, its timed waits with it (Debian's libfaketime leaves librdkafka's C11
/// timed waits on the real clock, so every wait would last as long as the shift).
fn clock_shift_library() -> String {
    let out = std::env::temp_dir().join(format!("vigil-clockshift-{}.so", std::process::id()));
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&out)
        .arg(root().join("tests/support/clockshift.c"))
        .arg("-ldl")
        .status()
        .expect("a C compiler (cc)");
    assert!(status.success(), "building the clock-shift library");
    out.to_str().unwrap().to_string()
}

/// The fraud champion's (version, SHA-256) in the registry read back from the models topic.
fn registry_champion(stack: &Stack) -> (i64, String) {
    let mut r = vigil_kafka::ModelRegistry::new();
    for record in vigil_kafka::models::read_all(&kafka_config(), &stack.models, &Codec::new()).unwrap() {
        r.apply_record(record);
    }
    let c = r.champion("fraud").expect("a fraud champion");
    (c.version, c.sha256.clone())
}

/// The value of label `name` in a Prometheus text line.
fn label(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    Some(line[start..start + line[start..].find('"')?].to_string())
}

/// What the scorer on `port` serves as the fraud champion: (version, SHA-256).
fn served(port: u16) -> Option<(i64, String)> {
    let (_, body) = http_get(port, "/metrics")?;
    let line = body.lines().find(|l| {
        l.starts_with("vigil_scorer_model_graph{")
            && l.contains("model=\"fraud\"")
            && l.contains("variant=\"champion\"")
    })?;
    Some((label(line, "version")?.parse().ok()?, label(line, "sha256")?))
}

/// Runs a `vigil models` command that sets the champion: it must exit 0, the champion it set must
/// hold when read back, and every scorer must serve that (version, SHA-256) within 5 s.
async fn set_champion(stack: &Stack, args: &[&str], scorers: &[u16]) -> (i64, String) {
    let start = Instant::now();
    let (code, out, err) = stack.vigil(args, None);
    assert_eq!(code, 0, "vigil {args:?}: {out}{err}");
    let want = registry_champion(stack);
    for port in scorers {
        wait_for(Duration::from_secs(5), "every scorer serving the champion the CLI set", || async {
            (served(*port).as_ref() == Some(&want)).then_some(())
        })
        .await;
    }
    println!(
        "vigil {args:?}: v{} served by every scorer {} ms after the command started",
        want.0,
        start.elapsed().as_millis()
    );
    // `models list --output json` says the same.
    let (code, out, err) = stack.vigil(&["models", "list", "fraud", "--output", "json"], None);
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let champions: Vec<&serde_json::Value> =
        rows.as_array().unwrap().iter().filter(|r| r["role"] == "champion").collect();
    assert_eq!(champions.len(), 1, "{out}");
    assert_eq!(
        (champions[0]["version"].as_i64(), champions[0]["sha256"].as_str()),
        (Some(want.0), Some(want.1.as_str()))
    );
    want
}

/// Waits until the newest checkpoint settles `labels` labels (the learner has caught up and, with
/// no more labels, writes nothing more).
async fn settled(stack: &Stack, labels: u64) {
    wait_for(Duration::from_secs(120), "every label settled", || async {
        let cps = checkpoints(stack).await;
        (cps.iter().rev().find_map(labels_settled).map(|(n, _)| n) == Some(labels)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn two_learners_one_clock_shifted_and_the_cli_agree_on_every_champion() {
    // Promotions on the margin alone: this test is about who agrees on the champion, so it needs
    // several promotions of small gains on a stationary stream, which the paired test refuses.
    let learner = "min-examples = 300\ncheckpoint-every = 300\nlease-timeout-ms = 6000\npromotion-test = \"none\"\n";
    let stack = Stack::with_learner("clocks", 2, "", learner).await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let dir = std::env::temp_dir().join(&stack.prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let log = |name: &str| dir.join(format!("{name}.log"));
    let scorers = [free_port(), free_port()];
    let _s: Vec<Running> =
        (0..2).map(|i| Running(stack.spawn_logged("vigil-scorer", scorers[i], &log(&format!("scorer-{i}"))))).collect();
    // The learner holding the lease first runs five minutes ahead; the other stands by.
    let shim = clock_shift_library();
    let ahead = [("LD_PRELOAD", shim.as_str()), ("VIGIL_CLOCK_SHIFT_MS", "300000")];
    let learners = [free_port(), free_port()];
    let mut shifted = Running(stack.spawn_logged_with("vigil-learner", learners[0], &log("shifted"), &ahead));
    wait_ready(learners[0], Duration::from_secs(60), "the shifted learner");
    let _real = Running(stack.spawn_logged("vigil-learner", learners[1], &log("real")));
    standing_by(learners[1], "the real-clock learner").await;
    for port in scorers {
        wait_ready(port, Duration::from_secs(60), "a scorer");
    }
    let first = stack.labelled_fraud_load("clocks-a", 6000, 300).join().unwrap()["labels"].as_u64().unwrap();
    settled(&stack, first).await;
    let promoted: Vec<ModelCheckpoint> = checkpoints(&stack)
        .await
        .into_iter()
        .filter(|cp| cp.version > 1 && cp.status == vigil_events::CheckpointStatus::Promoted)
        .collect();
    let newest = promoted.last().expect("the shifted learner promoted a version");
    let lead = newest.updated_at - vigil_kafka::now_ms();
    assert!(lead > 240_000, "the shifted learner's records are dated {lead} ms ahead, not five minutes");
    // The operator rolls its champion back with a clock five minutes behind the record's date.
    let rolled_back = newest.version;
    let (back_to, _) = set_champion(&stack, &["models", "rollback", "fraud"], &scorers).await;
    assert!(back_to < rolled_back, "v{rolled_back} rolled back to v{back_to}");
    // The shifted learner dies; the real-clock one takes over and learns on.
    kill(&mut shifted.0);
    holder(&learners[1..], Duration::from_secs(30)).await;
    let second = stack.labelled_fraud_load("clocks-b", 6000, 300).join().unwrap()["labels"].as_u64().unwrap();
    settled(&stack, first + second).await;
    // The operator promotes the rolled-back version again, with the real clock.
    let v = rolled_back.to_string();
    let (now, _) = set_champion(&stack, &["models", "promote", "fraud", &v], &scorers).await;
    assert_eq!(now, rolled_back);
    let mut graphs: HashMap<i64, HashSet<String>> = HashMap::new();
    for cp in checkpoints(&stack).await {
        graphs.entry(cp.version).or_default().insert(cp.sha256);
    }
    let two: Vec<i64> = graphs.iter().filter(|(_, s)| s.len() > 1).map(|(v, _)| *v).collect();
    assert!(two.is_empty(), "versions with two graphs: {two:?}");
    println!("{} versions written by two learners, one graph each", graphs.len());
    stack.delete().await;
}

#[tokio::test]
async fn a_killed_drift_service_hands_its_models_over_within_30_s() {
    let drift = "lease-timeout-ms = 6000\nreport-interval-ms = 1000\nwindow = 200\nwarmup = 200\n";
    let stack = Stack::with_sections("driftover", 2, "", "", drift).await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let dir = std::env::temp_dir().join(&stack.prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let log = |name: &str| dir.join(format!("{name}.log"));
    let _scorer = Running(stack.spawn_logged("vigil-scorer", free_port(), &log("scorer")));
    let ports = [free_port(), free_port()];
    let mut a = Running(stack.spawn_logged("vigil-drift", ports[0], &log("drift-a")));
    wait_ready(ports[0], Duration::from_secs(60), "the first drift service");
    let _b = Running(stack.spawn_logged("vigil-drift", ports[1], &log("drift-b")));
    standing_by(ports[1], "the second drift service").await;
    let load = stack.labelled_fraud_load("driftover", 15_000, 300);
    collect_until(&stack.drift, "read_uncommitted", Duration::from_secs(60), "a drift report", |r| !r.is_empty()).await;
    kill(&mut a.0);
    let killed = vigil_kafka::now_ms();
    let (_, took) = holder(&ports[1..], Duration::from_secs(30)).await;
    println!("the standby drift service took over {:.1} s after the holder was killed", took.as_secs_f64());
    // The new holder reports on the model: a drift report written after the kill.
    let reports =
        collect_until(&stack.drift, "read_uncommitted", Duration::from_secs(60), "a report from the new holder", |r| {
            r.iter().any(|m| m.timestamp.is_some_and(|t| t > killed + 1000))
        })
        .await;
    println!(
        "{} drift reports, the first from the new holder {} ms after the kill",
        reports.len(),
        reports.iter().filter_map(|m| m.timestamp).filter(|t| *t > killed).min().unwrap_or(0) - killed
    );
    load.join().unwrap();
    stack.delete().await;
}
