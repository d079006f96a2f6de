//! Model safety against the real broker: hostile checkpoints are refused within seconds while
//! scoring goes on, a challenger that fails at run time through many swaps costs no champion score,
//! and a models topic with thousands of versions does not slow start-up.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use vigil_e2e::*;
use vigil_events::{Alert, AlertKind, CheckpointStatus, Codec, ModelCheckpoint, PrequentialMetrics, Score, Variant};
use vigil_features::{FRAUD_SPEC, FeatureSpec, SENTIMENT_SPEC};
use vigil_kafka::model_registry::transition;
use vigil_kafka::{models, now_ms};
use vigil_models::Model;
use vigil_models::checkpoint::{self, NewCheckpoint};

const T: Duration = Duration::from_secs(120);

fn width() -> usize {
    FeatureSpec::parse(FRAUD_SPEC).unwrap().width()
}

/// A checkpoint of `model` with `onnx` and `spec`, signed by `key` when given.
fn checkpoint(model: &str, version: i64, status: CheckpointStatus, onnx: Vec<u8>, spec: &str) -> ModelCheckpoint {
    let new =
        NewCheckpoint { model, version, parent: None, onnx, spec, status, reason: "test".into(), now_ms: now_ms() };
    checkpoint::build(new, None)
}

fn signed(mut cp: ModelCheckpoint, key: &SigningKey) -> ModelCheckpoint {
    checkpoint::sign(&mut cp, key);
    cp
}

/// A good fraud model (a logistic regression with weights from `seed`).
fn fraud(version: i64, status: CheckpointStatus, seed: u32) -> ModelCheckpoint {
    let w =
        (0..width()).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 100) as f32 / 500.0 - 0.1).collect();
    checkpoint(
        "fraud",
        version,
        status,
        Model::Logistic { w, b: -1.0 }.to_onnx("fraud", version).to_bytes(),
        FRAUD_SPEC,
    )
}

/// A fraud checkpoint that carries no graph, only a URI.
fn by_uri(version: i64, uri: &str) -> ModelCheckpoint {
    let mut cp = fraud(version, CheckpointStatus::Candidate, 1);
    cp.onnx = None;
    cp.onnx_uri = Some(uri.to_string());
    cp
}

fn sentiment(version: i64, status: CheckpointStatus, table: usize, spec: &str) -> ModelCheckpoint {
    let onnx = Model::HashedText { table: vec![0.01; table], b: 0.0 }.to_onnx("sentiment", version).to_bytes();
    checkpoint("sentiment", version, status, onnx, spec)
}

async fn publish(stack: &Stack, cp: &ModelCheckpoint) {
    let producer = models::producer(&kafka_config()).unwrap();
    models::publish(&producer, &Codec::new(), &stack.models, cp).await.unwrap();
}

/// Writes the hostile graphs (tests/support/hostile_models.py) into a fresh folder.
fn hostile_graphs(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    let (code, out, err) =
        python_support("hostile_models.py", &[dir.to_str().unwrap(), "--features", &width().to_string()], None);
    assert_eq!(code, 0, "{out}{err}");
    dir
}

fn graph(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("{name}.onnx"))).unwrap()
}

fn decode<T: vigil_events::Event>(records: &[vigil_kafka::Input]) -> Vec<T> {
    let codec = Codec::new();
    records.iter().filter_map(|m| codec.decode_event(m.payload.as_deref()?).ok()).collect()
}

/// Produces fraud transactions in the background; the thread returns how many.
fn load(stack: &Stack, rate: u32, seconds: u32, prefix: &str) -> std::thread::JoinHandle<u64> {
    let (cfg, tx, prefix) = (stack.config.clone(), stack.tx.clone(), prefix.to_string());
    std::thread::spawn(move || {
        let out = std::process::Command::new(bin("vigil-load"))
            .args(["fraud", "--topic", &tx, "--labels-topic", "none", "--rate", &rate.to_string()])
            .args(["--duration", &seconds.to_string(), "--id-prefix", &prefix])
            .env("VIGIL_CONFIG", cfg)
            .env("VIGIL_LOG__LEVEL", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["events"].as_u64().unwrap()
    })
}

/// The distinct events with a champion score, counted as records arrive (each decoded once).
#[derive(Default)]
struct Champions {
    read: usize,
    ids: HashSet<String>,
}

impl Champions {
    fn count(&mut self, records: &[vigil_kafka::Input], model: &str) -> u64 {
        let new = decode::<Score>(&records[self.read..]);
        self.read = records.len();
        self.ids
            .extend(new.into_iter().filter(|s| s.model == model && s.variant == Variant::Champion).map(|s| s.event_id));
        self.ids.len() as u64
    }
}

/// The fraud challenger's version, from the scorer's metrics.
fn challenger_version(port: u16) -> Option<i64> {
    let (_, text) = http_get(port, "/metrics")?;
    let line = text.lines().find(|l| {
        l.starts_with("vigil_scorer_model_version{")
            && l.contains("model=\"fraud\"")
            && l.contains("variant=\"challenger\"")
    })?;
    line.rsplit(' ').next()?.parse().ok()
}

/// Whether `text` holds a run of 64 hex digits (a SHA-256).
fn has_digest(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_hexdigit()).any(|run| run.len() >= 64)
}

/// The longest stall in scoring `model`, ms: an interval between consecutive champion scores
/// while an event was waiting (produced — by its record's timestamp in `produced` — before it
/// began, scored after it ended). A pause of the producer is not a stall of the scorer.
fn longest_gap(scores: &[Score], model: &str, produced: &HashMap<(i32, i64), i64>) -> i64 {
    let mut s: Vec<(i64, i64)> = scores
        .iter()
        .filter(|s| s.model == model && s.variant == Variant::Champion)
        .filter_map(|s| Some((s.scored_at, *produced.get(&(s.source_partition, s.source_offset))?)))
        .collect();
    s.sort_unstable();
    // The oldest event among those scored at or after each position.
    let mut oldest_after = vec![i64::MAX; s.len() + 1];
    for i in (0..s.len()).rev() {
        oldest_after[i] = oldest_after[i + 1].min(s[i].1);
    }
    (1..s.len()).filter(|&i| oldest_after[i] <= s[i - 1].0).map(|i| s[i].0 - s[i - 1].0).max().unwrap_or(0)
}

/// Every hostile checkpoint of the issue is refused within seconds, with an alert that names no
/// path and no digest, while the champion scores every event with no pause over a second, the
/// scorer never exits and its memory stays within 256 MiB of where it started.
#[tokio::test]
async fn hostile_checkpoints_are_refused_while_scoring_goes_on() {
    let _heavy = heavy().await;
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let dir = hostile_graphs("hostile");
    let fifo = dir.join("pipe.onnx");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.onnx")).unwrap();
    let extra = format!(
        "trusted-keys = [\"{}\"]\nmodel-dirs = [\"{}\"]\nchallenger-share = 0.5\nvalidation-timeout-ms = 10000\n",
        hex::encode(key.verifying_key().to_bytes()),
        dir.display()
    );
    let stack = Stack::new("hostile", 2, &extra).await;
    publish(&stack, &signed(fraud(1, CheckpointStatus::Promoted, 1), &key)).await;
    publish(&stack, &signed(sentiment(1, CheckpointStatus::Promoted, 65536, SENTIMENT_SPEC), &key)).await;
    let log = dir.join("scorer.log");
    let mut scorer = Running(stack.spawn_logged("vigil-scorer", free_port(), &log));
    let producing = load(&stack, 800, 45, "hostile");
    let broker = BrokerProbe::start();
    collect_until(&stack.scores, "read_uncommitted", T, "the first scores", |r| r.len() >= 500).await;
    let baseline = rss_mib(scorer.0.id());

    let promoted = signed(fraud(12, CheckpointStatus::Promoted, 12), &key);
    let mut tampered = signed(fraud(9, CheckpointStatus::Candidate, 9), &key);
    tampered.feature_spec = tampered.feature_spec.replacen("model = \"fraud\"", "model = \"fraud\"\n# changed", 1);
    let mut threshold = fraud(10, CheckpointStatus::Candidate, 10);
    threshold.metrics = Some(PrequentialMetrics {
        examples_seen: 1000,
        log_loss: 0.5,
        accuracy: 0.9,
        auc: None,
        window: 1000,
        overall_accuracy: None,
        precision: None,
        recall: None,
        threshold: 2.0,
    });
    let huge_tokens = SENTIMENT_SPEC.replace("max-tokens = 256", "max-tokens = 4000000000");
    // (model, version) → the check that must refuse it.
    let refusals: Vec<(ModelCheckpoint, &str)> = vec![
        (checkpoint("fraud", 2, CheckpointStatus::Candidate, graph(&dir, "fixed4"), FRAUD_SPEC), "signature-mismatch"),
        (checkpoint("fraud", 3, CheckpointStatus::Candidate, graph(&dir, "huge"), FRAUD_SPEC), "graph"),
        (checkpoint("fraud", 4, CheckpointStatus::Candidate, graph(&dir, "loop"), FRAUD_SPEC), "graph"),
        (by_uri(5, "file:///dev/zero"), "load"),
        (by_uri(6, &format!("file://{}", dir.join("zero.onnx").display())), "load"),
        (by_uri(7, &format!("file://{}", fifo.display())), "load"),
        (by_uri(8, "file:///etc/passwd"), "load"),
        (tampered, "signature"),
        (threshold, "threshold"),
        (sentiment(2, CheckpointStatus::Candidate, 65536, &huge_tokens), "spec"),
        (sentiment(3, CheckpointStatus::Candidate, 1000, SENTIMENT_SPEC), "probe"),
    ];
    let mut sent = HashMap::new();
    for (cp, check) in refusals {
        let cp = if cp.signature.is_some() { cp } else { signed(cp, &key) };
        sent.insert((cp.model.clone(), cp.version), (check, now_ms()));
        publish(&stack, &cp).await;
    }
    // A version that scores NaN off the probe serves as challenger: its NaN shadow scores are lost,
    // the champion's are not.
    publish(
        &stack,
        &signed(checkpoint("fraud", 11, CheckpointStatus::Candidate, graph(&dir, "nan"), FRAUD_SPEC), &key),
    )
    .await;
    // Promoted, then rolled back; its old promoted record replayed; a version dated in 2036.
    publish(&stack, &promoted).await;
    let mut rolled = transition(&promoted, CheckpointStatus::RolledBack, "test", now_ms());
    checkpoint::sign(&mut rolled, &key);
    publish(&stack, &rolled).await;
    publish(&stack, &promoted).await;
    let mut future = fraud(13, CheckpointStatus::Promoted, 13);
    future.updated_at = now_ms() + 10 * 365 * 86_400_000;
    publish(&stack, &signed(future, &key)).await;
    let settled = now_ms();

    let mut peak = baseline;
    let alerts = collect_until(&stack.alerts, "read_uncommitted", T, "an alert per hostile checkpoint", |r| {
        peak = peak.max(rss_mib(scorer.0.id()));
        let got: HashSet<(String, i64)> = decode::<Alert>(r)
            .into_iter()
            .filter(|a| a.kind == AlertKind::ModelRejected)
            .map(|a| (a.model.unwrap_or_default(), a.model_version.unwrap_or_default()))
            .collect();
        sent.keys().all(|k| got.contains(k))
    })
    .await;
    let mut slowest = 0;
    for a in decode::<Alert>(&alerts).into_iter().filter(|a| a.kind == AlertKind::ModelRejected) {
        let key = (a.model.clone().unwrap_or_default(), a.model_version.unwrap_or_default());
        let Some((check, at)) = sent.get(&key) else { continue };
        assert_eq!(a.statistic.as_deref(), Some(*check), "{key:?}: {}", a.message);
        assert!(a.time - at < 15_000, "{key:?} refused after {} ms", a.time - at);
        slowest = slowest.max(a.time - at);
        for leak in ["/dev/", "/etc/", "passwd", dir.to_str().unwrap(), "No such file", "os error"] {
            assert!(!a.message.contains(leak), "{key:?} alert leaks `{leak}`: {}", a.message);
        }
        assert!(!has_digest(&a.message), "{key:?} alert carries a digest: {}", a.message);
    }
    let events = producing.join().unwrap();
    let mut champions = Champions::default();
    let records = collect_until(&stack.scores, "read_uncommitted", T, "a champion score per event", |r| {
        peak = peak.max(rss_mib(scorer.0.id()));
        champions.count(r, "fraud") >= events
    })
    .await;
    assert!(scorer.0.try_wait().unwrap().is_none(), "the scorer exited");
    let scores = decode::<Score>(&records);
    let produced: HashMap<(i32, i64), i64> = read_all(&stack.tx, "read_uncommitted", Duration::from_secs(2))
        .await
        .iter()
        .filter_map(|r| Some(((r.partition, r.offset), r.timestamp?)))
        .collect();
    let stall = longest_gap(&scores, "fraud", &produced);
    let broker = i64::try_from(broker.finish().as_millis()).unwrap_or(i64::MAX);
    // A validation that held scoring up would stall it for its time limit (10 s here) or a blocking
    // read; debug builds of every test side by side on two cores gave gaps of up to 1.4 s without
    // one. A broker starved of CPU pauses of its own (hence `heavy`): in one CI run the fault
    // test's broker restart left it answering nothing for 3.2 s, and scoring waited 3.2 s with it.
    // So the bound is 3 s, or the broker's own longest pause and a second to catch up.
    let bound = 3000.max(broker.saturating_add(1000));
    assert!(
        stall < bound,
        "scoring stalled for {stall} ms with events waiting (the broker's longest answer: {broker} ms)"
    );
    let late: HashSet<i64> = scores
        .iter()
        .filter(|s| s.model == "fraud" && s.variant == Variant::Champion && s.scored_at > settled + 3000)
        .map(|s| s.model_version)
        .collect();
    assert_eq!(late, HashSet::from([1]), "after the rollback, neither the replay nor the 2036 record serves");
    let shadow_after = scores
        .iter()
        .any(|s| s.model_version == 11 && s.variant == Variant::Challenger && s.scored_at > settled + 3000);
    assert!(shadow_after, "v11 serves in shadow again after the rollback");
    assert!(scores.iter().all(|s| s.score.is_finite()), "a NaN score was published");
    assert!(peak < baseline + 256.0, "memory grew from {baseline:.0} to {peak:.0} MiB");
    println!(
        "{} hostile checkpoints refused, the slowest after {slowest} ms; {events} events, longest stall {} ms \
         (broker's longest answer {broker} ms); scorer RSS {baseline:.0} -> peak {peak:.0} MiB",
        sent.len(),
        stall
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("not loaded"), "{text}");
    terminate(&mut scorer.0, Duration::from_secs(20));
    stack.delete().await;
}

/// A challenger that fails about 1 % of its batches, replaced by a new version again and again
/// under load: no exit, every event gets its champion score, never "not loaded". VIGIL_SWAPS sets
/// the number of swaps (100 here; `make soak` runs 500).
#[tokio::test]
async fn a_flaky_challenger_swapped_under_load_costs_no_champion_score() {
    let _heavy = heavy().await;
    let swaps: i64 = std::env::var("VIGIL_SWAPS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let dir = hostile_graphs("flaky");
    let flaky = graph(&dir, "flaky");
    let stack = Stack::new("flaky", 3, "challenger-share = 0.5\nmax-wait-ms = 5\n").await;
    publish(&stack, &fraud(1, CheckpointStatus::Promoted, 1)).await;
    let (port, log) = (free_port(), dir.join("scorer.log"));
    let mut scorer = Running(stack.spawn_logged("vigil-scorer", port, &log));
    wait_ready(port, T, "the scorer");
    let producing = load(&stack, 4000, (swaps as u32 / 4).max(20), "flaky");
    let mut rss = vec![rss_mib(scorer.0.id())];
    let (producer, codec) = (models::producer(&kafka_config()).unwrap(), Codec::new());
    let mut served = 0;
    let start = Instant::now();
    for v in 2..2 + swaps {
        if producing.is_finished() {
            break;
        }
        let cp = checkpoint("fraud", v, CheckpointStatus::Candidate, flaky.clone(), FRAUD_SPEC);
        models::publish(&producer, &codec, &stack.models, &cp).await.unwrap();
        // The swap is done when the scorer says the new version is the challenger.
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until && challenger_version(port) != Some(v) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        served += i64::from(challenger_version(port) == Some(v));
        if v % 50 == 0 {
            rss.push(rss_mib(scorer.0.id()));
        }
    }
    let events = producing.join().unwrap();
    assert!(served >= swaps * 9 / 10, "only {served} of {swaps} swaps served before the load ended");
    let mut champions = Champions::default();
    collect_until(&stack.scores, "read_uncommitted", T, "a champion score per event", |r| {
        champions.count(r, "fraud") >= events
    })
    .await;
    assert!(scorer.0.try_wait().unwrap().is_none(), "the scorer exited");
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    let lost: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("vigil_scorer_shadow_scores_lost"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(lost > 0.0, "the flaky challenger never failed (so this test showed nothing)");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("not loaded"), "{text}");
    let rss: Vec<String> = rss.iter().map(|m| format!("{m:.0}")).collect();
    println!(
        "{served} swaps in {:.1} s, {events} events, {lost} shadow scores lost; scorer RSS every 50 swaps (MiB): {}",
        start.elapsed().as_secs_f64(),
        rss.join(" ")
    );
    terminate(&mut scorer.0, Duration::from_secs(20));
    stack.delete().await;
}

/// A models topic with 10,000 versions of history: the scorer, the learner and the drift service
/// are each ready within 30 s, and the learner prunes the history to `learner.keep-versions`.
#[tokio::test]
async fn ten_thousand_versions_of_history_do_not_slow_start_up() {
    let _heavy = heavy().await;
    let stack = Stack::with_learner("history", 1, "", "keep-versions = 50\n").await;
    let (producer, codec) = (models::producer(&kafka_config()).unwrap(), Codec::new());
    let template = fraud(1, CheckpointStatus::Candidate, 1);
    let n = 10_000i64;
    let mut pending = Vec::new();
    for v in 1..=n {
        let status = if v % 500 == 0 { CheckpointStatus::Promoted } else { CheckpointStatus::Candidate };
        let cp = ModelCheckpoint { version: v, status, ..template.clone() };
        let (payload, key) = (codec.encode_event(&cp).unwrap(), cp.key());
        let record = rdkafka::producer::FutureRecord::to(&stack.models).key(key.as_bytes()).payload(&payload[..]);
        pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        if pending.len() == 1000 {
            for p in pending.drain(..) {
                p.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        }
    }
    for p in pending {
        p.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    let dir = std::env::temp_dir().join(unique("history"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut running = Vec::new();
    let mut took = Vec::new();
    for service in ["vigil-scorer", "vigil-learner", "vigil-drift"] {
        let port = free_port();
        running.push(Running(stack.spawn_logged(service, port, &dir.join(format!("{service}.log")))));
        took.push((service, wait_ready(port, Duration::from_secs(30), service)));
    }
    println!("ready after {took:?} with {n} versions on the models topic");
    let tombstones = collect_until(&stack.models, "read_uncommitted", T, "the learner's tombstones", |r| {
        r.iter().filter(|m| m.payload.is_none()).count() as i64 >= n - 50 - 5
    })
    .await;
    let deleted: HashSet<String> = tombstones
        .iter()
        .filter(|m| m.payload.is_none())
        .map(|m| String::from_utf8_lossy(m.key.as_deref().unwrap()).to_string())
        .collect();
    assert!(!deleted.contains(&format!("fraud/{n}")), "the champion was deleted");
    assert!(!deleted.contains(&format!("fraud/{}", n - 500)), "the fallback was deleted");
    for mut r in running {
        terminate(&mut r.0, Duration::from_secs(20));
    }
    stack.delete().await;
}
