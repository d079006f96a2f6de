//! Faults of the broker and the network while Vigil works: the fault broker (its own storage,
//! started by `make test`) advertises a proxy in this process, so every client's connection goes
//! through it. Each scenario — the broker killed and restarted, a black hole, added latency — runs
//! under at-least-once and exactly-once: no event loses its champion score, exactly-once scores
//! each input record once under `read_committed`, at-least-once repeats at most what the last commit
//! interval covered, no service exits, the learner settles every label produced, and everything is
//! scored within 30 s of healing. Services started while the cluster is away wait for it.
//! `VIGIL_CHAOS=full` (`make chaos`) runs the full lengths.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use vigil_e2e::fault::{Fault, FaultBroker, Proxy};
use vigil_e2e::*;
use vigil_events::{Codec, Score, Variant};

/// Lengths of a run: events, rate, when the fault starts and how long it lasts.
struct Plan {
    events: u64,
    rate: u64,
    start: Duration,
    length: Duration,
}

fn plan(fault: &str) -> Plan {
    let full = std::env::var("VIGIL_CHAOS").is_ok_and(|v| v == "full");
    if fault == "long-kill" {
        // Longer than librdkafka's default message.timeout.ms (5 min): nothing may be given up.
        return Plan { events: 20_000, rate: 1_000, start: Duration::from_secs(5), length: Duration::from_secs(320) };
    }
    let length = match (fault, full) {
        ("kill", true) => 20,
        ("black-hole", true) => 30,
        ("latency", true) => 60,
        (_, false) => 8,
        _ => 10,
    };
    if full {
        Plan { events: 50_000, rate: 2_000, start: Duration::from_secs(5), length: Duration::from_secs(length) }
    } else {
        Plan { events: 8_000, rate: 1_000, start: Duration::from_secs(2), length: Duration::from_secs(length) }
    }
}

/// What one run measured.
#[derive(Debug)]
struct Outcome {
    events: u64,
    lost: usize,
    duplicated: usize,
    recovery: Duration,
    /// Transactions the scorer aborted (its log).
    aborted: usize,
    /// Whether the scorer and the learner said, during the fault, that the cluster was away.
    away: Vec<bool>,
    /// From healing until both were ready again.
    ready_again: Duration,
}

/// Champion scores per event id (none may be lost) and per input record (none may be scored
/// twice; an event the load's producer wrote twice across a broker crash is two records).
#[derive(Default)]
struct Tally {
    events: HashMap<String, usize>,
    records: HashMap<(i32, i64), usize>,
}

impl Tally {
    fn add(&mut self, records: &[vigil_kafka::Input]) {
        let codec = Codec::new();
        for s in records.iter().filter_map(|m| codec.decode_event::<Score>(m.payload.as_deref()?).ok()) {
            if s.variant == Variant::Champion {
                *self.records.entry((s.source_partition, s.source_offset)).or_default() += 1;
                *self.events.entry(s.event_id).or_default() += 1;
            }
        }
    }

    /// Reads the scores until every one of `events` has a champion score.
    async fn until_every_event(stack: &Stack, isolation: &str, events: u64) -> Tally {
        let (mut tally, mut read) = (Tally::default(), 0);
        collect_until(&stack.scores, isolation, Duration::from_secs(180), "a champion score per event", |r| {
            tally.add(&r[read..]);
            read = r.len();
            tally.events.len() as u64 >= events
        })
        .await;
        tally
    }
}

fn metric_sum(port: u16, prefix: &str) -> f64 {
    let Some((_, text)) = http_get(port, "/metrics") else { return -1.0 };
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// One scenario: the scorer and the learner through the proxy, the load, the fault in the middle.
async fn run(broker: &FaultBroker, proxy: &Proxy, fault: &str, delivery: &str) -> Outcome {
    let p = plan(fault);
    let stack = Stack::with_learner(&format!("fault-{fault}-{delivery}"), 3, "commit-interval-ms = 200\n", "").await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let dir = std::env::temp_dir().join(&stack.prefix);
    std::fs::create_dir_all(&dir).unwrap();
    // Transactions time out (3 s) within the 8 s faults: the coordinator aborts what an outage
    // left open, and the services must abort, rewind and write again without losing or repeating.
    let env = [("VIGIL_KAFKA__DELIVERY", delivery), ("VIGIL_KAFKA__TRANSACTION_TIMEOUT_MS", "3000")];
    let (scorer_port, learner_port) = (free_port(), free_port());
    let mut scorer = Running(stack.spawn_logged_with("vigil-scorer", scorer_port, &dir.join("scorer.log"), &env));
    let mut learner = Running(stack.spawn_logged_with("vigil-learner", learner_port, &dir.join("learner.log"), &env));
    wait_ready(scorer_port, Duration::from_secs(60), "the scorer");
    let prefix = format!("{}-", stack.prefix);
    let load = stack.labelled_fraud_load(&prefix, p.events, p.rate);
    tokio::time::sleep(p.start).await; // the fault starts this far into the load (a schedule, not a wait for a state)
    match fault {
        "kill" | "long-kill" => broker.kill(),
        "black-hole" => proxy.set(Fault::BlackHole),
        "latency" => proxy.set(Fault::Latency(Duration::from_millis(300))),
        other => panic!("unknown fault {other}"),
    }
    // The fault lasts this long; meanwhile both services say whether they see the cluster.
    let away = watch_readiness(&[scorer_port, learner_port], p.length).await;
    match fault {
        "kill" | "long-kill" => broker.start(),
        _ => proxy.set(Fault::None),
    }
    let healed = Instant::now();
    if fault != "latency" {
        assert_eq!(away, [true, true], "{fault}/{delivery}: scorer and learner not ready while the cluster is away");
    }
    for (port, name) in [(scorer_port, "the scorer"), (learner_port, "the learner")] {
        wait_ready(port, Duration::from_secs(60), name);
    }
    let ready_again = healed.elapsed();
    let summary = load.join().unwrap();
    let (events, labels) = (summary["events"].as_u64().unwrap(), summary["labels"].as_u64().unwrap());
    let isolation = if delivery == "exactly-once" { "read_committed" } else { "read_uncommitted" };
    let tally = Tally::until_every_event(&stack, isolation, events).await;
    let (champions, records) = (tally.events, tally.records);
    let rewritten = champions.len().abs_diff(records.len());
    if rewritten > 0 {
        println!("{fault}/{delivery}: {rewritten} events were written twice by the load's producer");
    }
    let recovery = healed.elapsed();
    // The learner settles every label (learnt, or dead-lettered with a reason); a label read twice
    // (a producer's retry across the broker's crash) is recognised as a duplicate, not learnt again.
    // The broker takes about 14 s to come back here, then a debug build of the learner beside
    // other tests on two cores works through the backlog at a few hundred labels a second (32-58 s
    // after healing, measured; CI saw one still learning a minute after): the wait goes on while
    // the count moves, and ends after 90 s without progress (or 5 minutes in all).
    let (started, mut moved) = (Instant::now(), (f64::MIN, Instant::now()));
    let (settled, duplicates) = loop {
        let duplicates =
            metric_sum(learner_port, "vigil_learner_label_problems_total{model=\"fraud\",kind=\"duplicate-label\"}");
        let settled = metric_sum(learner_port, "vigil_learner_examples_total")
            + metric_sum(learner_port, "vigil_learner_label_problems_total")
            - duplicates.max(0.0);
        if settled > moved.0 {
            moved = (settled, Instant::now());
        }
        let stuck = moved.1.elapsed() > Duration::from_secs(90) || started.elapsed() > Duration::from_secs(300);
        if settled >= labels as f64 || stuck {
            break (settled, duplicates.max(0.0));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if settled != labels as f64 {
        // Whether the labels short wait in the join (for events, or for the input to be caught up)
        // or were never read, and what the learner logged meanwhile.
        let gauges: Vec<String> =
            ["vigil_learner_waiting_labels", "vigil_learner_buffered_events", "vigil_learner_consumer_lag_records"]
                .iter()
                .map(|g| format!("{g} {}", metric_sum(learner_port, g)))
                .collect();
        let log = std::fs::read_to_string(dir.join("learner.log")).unwrap_or_default();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
        panic!(
            "{fault}/{delivery}: labels settled by the learner: {settled} of {labels}; {}; the learner's last warnings:\n{}",
            gauges.join(", "),
            warnings[warnings.len().saturating_sub(15)..].join("\n")
        );
    }
    println!(
        "{fault}/{delivery}: the learner settled every label {:.1} s after healing",
        healed.elapsed().as_secs_f64()
    );
    if duplicates > 0.0 {
        println!("{fault}/{delivery}: {duplicates} labels read twice, recognised as duplicates");
    }
    assert!(scorer.0.try_wait().unwrap().is_none(), "{fault}/{delivery}: the scorer exited");
    assert!(learner.0.try_wait().unwrap().is_none(), "{fault}/{delivery}: the learner exited");
    let duplicated = records.values().filter(|n| **n > 1).count();
    terminate(&mut scorer.0, Duration::from_secs(20));
    terminate(&mut learner.0, Duration::from_secs(20));
    let log = std::fs::read_to_string(dir.join("scorer.log")).unwrap_or_default();
    let aborted = log.matches("aborting it").count();
    let lost = events as usize - champions.len().min(events as usize);
    Outcome { events, lost, duplicated, recovery, aborted, away, ready_again }
}

/// Polls `/readyz` of each port for `length`: whether each said the Kafka cluster does not answer.
async fn watch_readiness(ports: &[u16], length: Duration) -> Vec<bool> {
    let (until, mut away) = (Instant::now() + length, vec![false; ports.len()]);
    while Instant::now() < until {
        for (port, seen) in ports.iter().zip(away.iter_mut()) {
            *seen |= http_get(*port, "/readyz").is_some_and(|(code, body)| code == 503 && body.contains("Kafka"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    away
}

/// The fault broker, its clients pointed at it, and the proxy in front of it once it answers through it.
async fn behind_a_proxy() -> (FaultBroker, Proxy) {
    let broker = FaultBroker::from_env();
    use_broker(&broker.bootstrap());
    let proxy = Proxy::start(broker.proxy_port, broker.port);
    wait_for(Duration::from_secs(60), "the fault broker through the proxy", || async {
        admin().inner().fetch_metadata(None, Duration::from_secs(2)).ok().map(|_| ())
    })
    .await;
    (broker, proxy)
}

async fn scenarios(delivery: &str) {
    let (broker, proxy) = behind_a_proxy().await;
    let mut aborted = 0;
    // VIGIL_CHAOS_FAULTS picks faults (comma-separated); the full run adds a broker away for 5 min 20 s.
    let chosen = std::env::var("VIGIL_CHAOS_FAULTS").ok();
    let full = std::env::var("VIGIL_CHAOS").is_ok_and(|v| v == "full");
    let all: &[&str] =
        if full { &["kill", "black-hole", "latency", "long-kill"] } else { &["kill", "black-hole", "latency"] };
    for fault in all.iter().copied().filter(|f| chosen.as_deref().is_none_or(|c| c.split(',').any(|x| x == *f))) {
        let o = run(&broker, &proxy, fault, delivery).await;
        println!(
            "fault {fault:<10} {delivery:<13} events {} lost {} duplicated {} aborted {} exits 0, not ready during the fault {:?}, ready again {:.1} s and all scored {:.1} s after healing",
            o.events,
            o.lost,
            o.duplicated,
            o.aborted,
            o.away,
            o.ready_again.as_secs_f64(),
            o.recovery.as_secs_f64()
        );
        aborted += o.aborted;
        assert_eq!(o.lost, 0, "{fault}/{delivery}: events without a champion score");
        if delivery == "exactly-once" {
            assert_eq!(o.duplicated, 0, "{fault}/{delivery}: duplicates under read_committed");
        } else {
            let bound = (plan(fault).rate as f64 * 1.5) as usize;
            assert!(o.duplicated <= bound, "{fault}/{delivery}: {} duplicates (bound {bound})", o.duplicated);
        }
        assert!(o.recovery < Duration::from_secs(30), "{fault}/{delivery}: {:?} to catch up", o.recovery);
    }
    println!("{delivery}: {aborted} transactions aborted over the faults");
    if delivery == "exactly-once" {
        assert!(aborted > 0, "no transaction was aborted: the outages never outlasted the transaction timeout");
    }
}

/// Both delivery modes in one test (the proxy's port is one), then the console across a broker restart
/// and a start while the cluster is away.
#[tokio::test]
async fn broker_and_network_faults_lose_nothing() {
    scenarios("at-least-once").await;
    scenarios("exactly-once").await;
    crate::console::across_a_broker_restart(&FaultBroker::from_env()).await;
    started_while_the_cluster_is_away().await;
}

/// The scorer, the learner and the drift service started while the cluster is away (the proxy a
/// black hole: connections open, nothing answers) stay up and not ready past the 10 s their
/// start-up reads wait for an answer, then become ready and score once it answers.
async fn started_while_the_cluster_is_away() {
    let (_, proxy) = behind_a_proxy().await;
    let stack = Stack::with_learner("fault-start-away", 3, "", "").await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let dir = std::env::temp_dir().join(&stack.prefix);
    std::fs::create_dir_all(&dir).unwrap();
    proxy.set(Fault::BlackHole);
    let services = ["vigil-scorer", "vigil-learner", "vigil-drift"];
    let ports = services.map(|_| free_port());
    let log = |s: &str| dir.join(format!("{s}.log"));
    let mut running: Vec<Running> =
        services.iter().zip(ports).map(|(s, port)| Running(stack.spawn_logged(s, port, &log(s)))).collect();
    let away = watch_readiness(&ports, Duration::from_secs(20)).await;
    proxy.set(Fault::None);
    for (child, s) in running.iter_mut().zip(services) {
        let tail = || std::fs::read_to_string(log(s)).unwrap_or_default();
        assert!(child.0.try_wait().unwrap().is_none(), "{s} exited while the cluster was away:\n{}", tail());
    }
    assert_eq!(away, [true; 3], "not ready (the cluster away) while it was away");
    let healed = Instant::now();
    for (port, s) in ports.iter().zip(services) {
        wait_ready(*port, Duration::from_secs(60), s);
    }
    let ready = healed.elapsed();
    let load = stack.labelled_fraud_load(&format!("{}-", stack.prefix), 500, 500);
    let events = load.join().unwrap()["events"].as_u64().unwrap();
    let tally = Tally::until_every_event(&stack, "read_uncommitted", events).await;
    println!(
        "started while the cluster was away: ready {:.1} s after it answered, {} events scored",
        ready.as_secs_f64(),
        tally.events.len()
    );
    for child in &mut running {
        terminate(&mut child.0, Duration::from_secs(20));
    }
}

/// Three exactly-once scorers on six partitions while one of them, in turn, is killed (and started
/// again) or stopped past its session timeout (and continued, a zombie): every event has exactly
/// one champion score under `read_committed`. `VIGIL_CHAOS=full`: 200k events at 5k/s.
#[tokio::test]
async fn exactly_once_scorers_killed_and_stopped_in_turn_score_each_event_once() {
    let full = std::env::var("VIGIL_CHAOS").is_ok_and(|v| v == "full");
    let (events, rate) = if full { (200_000u64, 5_000u64) } else { (30_000, 2_000) };
    let stack = Stack::new("fleet", 6, "commit-interval-ms = 200\n").await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let ids = ["a", "b", "c"];
    let spawn = |i: usize| {
        Running(stack.spawn(
            "vigil-scorer",
            &[
                ("VIGIL_KAFKA__DELIVERY", "exactly-once"),
                ("VIGIL_SCORER__INSTANCE_ID", ids[i]),
                ("VIGIL_KAFKA__PROPERTIES__SESSION_TIMEOUT_MS", "6000"),
                ("VIGIL_KAFKA__PROPERTIES__HEARTBEAT_INTERVAL_MS", "1000"),
            ],
        ))
    };
    let mut fleet: Vec<Running> = (0..3).map(spawn).collect();
    let load = {
        let (cfg, tx) = (stack.config.clone(), stack.tx.clone());
        std::thread::spawn(move || {
            std::process::Command::new(bin("vigil-load"))
                .args(["fraud", "--topic", &tx, "--labels-topic", "none", "--events", &events.to_string()])
                .args(["--rate", &rate.to_string(), "--id-prefix", "fleet"])
                .env("VIGIL_CONFIG", cfg)
                .env("VIGIL_LOG__LEVEL", "warn")
                .status()
                .unwrap()
        })
    };
    let signal = |pid: u32, sig: &str| {
        let _ = std::process::Command::new("kill").args([sig, &pid.to_string()]).status();
    };
    let (mut turn, mut kills, mut stops) = (0usize, 0, 0);
    while !load.is_finished() {
        tokio::time::sleep(Duration::from_secs(3)).await; // a fault every 3 s (a schedule)
        let i = turn % 3;
        if turn % 2 == 0 {
            kill(&mut fleet[i].0);
            fleet[i] = spawn(i);
            kills += 1;
        } else {
            let pid = fleet[i].0.id();
            signal(pid, "-STOP");
            tokio::time::sleep(Duration::from_secs(8)).await; // past the 6 s session timeout
            signal(pid, "-CONT");
            stops += 1;
        }
        turn += 1;
    }
    assert!(load.join().unwrap().success());
    Tally::until_every_event(&stack, "read_committed", events).await;
    // Everything committed by now, zombies' late commits included (they must have been fenced).
    let mut tally = Tally::default();
    tally.add(&read_all(&stack.scores, "read_committed", Duration::from_secs(3)).await);
    let once = tally.events;
    let duplicated = once.values().filter(|n| **n > 1).count();
    println!(
        "fleet: {events} events, {} scored, {kills} kills, {stops} stops past the session timeout, {duplicated} duplicates",
        once.len()
    );
    assert_eq!(duplicated, 0, "events scored twice under read_committed");
    for mut r in fleet {
        terminate(&mut r.0, Duration::from_secs(20));
    }
    stack.delete().await;
}
