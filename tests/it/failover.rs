//! Several learners for one model: one holds the lease and learns, the others stand by. The holder
//! stopped past its lease (a zombie) loses the model to another and, continued, exits without a
//! visible write; the new holder killed, a third takes over within 30 s; training resumes from the
//! last checkpoint with no label applied twice, and no `model/version` key ever holds two graphs.

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
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let dir = std::env::temp_dir().join(&stack.prefix);
    std::fs::create_dir_all(&dir).unwrap();
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
