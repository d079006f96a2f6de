//! The scorer against the real broker: conservation with malformed input, hot swap under load with
//! refused checkpoints, and crashes under at-least-once and exactly-once delivery.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use vigil_e2e::*;
use vigil_events::{AlertKind, CheckpointStatus, Codec, Score, Transaction, Variant};
use vigil_features::FRAUD_SPEC;
use vigil_kafka::{dlq, models, now_ms};
use vigil_models::checkpoint::{self, NewCheckpoint};
use vigil_models::{Model, families::Dense};

const T: Duration = Duration::from_secs(120);

fn fraud_width() -> usize {
    vigil_features::FeatureSpec::parse(FRAUD_SPEC).unwrap().width()
}

/// A fraud checkpoint whose model is an MLP with weights from `seed`.
fn fraud_checkpoint(
    version: i64,
    status: CheckpointStatus,
    seed: u32,
    key: Option<&SigningKey>,
) -> vigil_events::ModelCheckpoint {
    let d = fraud_width();
    let w = |n: usize, s: u32| -> Vec<f32> {
        (0..n).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ s) % 1000) as f32 / 2000.0 - 0.25).collect()
    };
    let model = Model::Mlp {
        layers: vec![
            Dense { inputs: d, outputs: 8, w: w(d * 8, seed), b: vec![0.0; 8] },
            Dense { inputs: 8, outputs: 1, w: w(8, seed + 1), b: vec![-1.0] },
        ],
    };
    checkpoint::build(
        NewCheckpoint {
            model: "fraud",
            version,
            parent: None,
            onnx: model.to_onnx("fraud", version).to_bytes(),
            spec: FRAUD_SPEC,
            status,
            reason: "test".into(),
            now_ms: now_ms(),
        },
        key,
    )
}

async fn publish(stack: &Stack, cp: &vigil_events::ModelCheckpoint) {
    let producer = models::producer(&kafka_config()).unwrap();
    models::publish(&producer, &Codec::new(), &stack.models, cp).await.unwrap();
}

fn scores(records: &[vigil_kafka::Input]) -> Vec<Score> {
    let codec = Codec::new();
    records.iter().map(|m| codec.decode_event::<Score>(m.payload.as_deref().unwrap()).unwrap()).collect()
}

/// The distinct event ids with a champion score, counted as records arrive (each decoded once:
/// `collect_until` asks after every record).
#[derive(Default)]
struct ChampionIds {
    read: usize,
    ids: HashSet<String>,
}

impl ChampionIds {
    fn count(&mut self, records: &[vigil_kafka::Input]) -> usize {
        let new = scores(&records[self.read..]);
        self.read = records.len();
        self.ids.extend(new.into_iter().filter(|s| s.variant == Variant::Champion).map(|s| s.event_id));
        self.ids.len()
    }
}

#[tokio::test]
async fn every_record_is_one_score_per_variant_or_one_dead_letter() {
    let stack = Stack::new("conserve", 2, "challenger-share = 0.5\n").await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    publish(&stack, &fraud_checkpoint(2, CheckpointStatus::Candidate, 9, None)).await;

    let good_tx = 1500u64;
    let good_texts = 300u64;
    stack.load(&[
        "fraud",
        "--topic",
        &stack.tx,
        "--labels-topic",
        "none",
        "--rate",
        "0",
        "--events",
        &good_tx.to_string(),
        "--id-prefix",
        "ok",
    ]);
    stack.load(&[
        "text",
        "--topic",
        &stack.texts,
        "--labels-topic",
        "none",
        "--rate",
        "0",
        "--events",
        &good_texts.to_string(),
        "--id-prefix",
        "okt",
    ]);
    // Malformed input of every kind, with the stage that must catch it.
    let codec = Codec::new();
    let sample = |amount: f64| {
        codec
            .encode_event(&Transaction {
                event_id: format!("nan-{amount}"),
                account_id: "a".into(),
                card_id: "c".into(),
                event_time: 0,
                amount,
                currency: "EUR".into(),
                merchant_id: "m".into(),
                merchant_category: "5411".into(),
                channel: "pos".into(),
                country: "DE".into(),
                card_present: true,
                account_age_days: 1,
                device_id: None,
                distance_from_home_km: None,
            })
            .unwrap()
    };
    let good = sample(10.0);
    let oversized = codec
        .encode_event(&vigil_events::TextEvent {
            event_id: "huge".into(),
            event_time: 0,
            source: "s".into(),
            text: "word ".repeat(2000),
            language: None,
            author_id: None,
        })
        .unwrap();
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        (&stack.tx, b"{\"amount\": 1}".to_vec(), "decode"),
        (&stack.tx, good[..good.len() - 5].to_vec(), "decode"),
        (&stack.tx, sample(f64::NAN), "featurise"),
        (&stack.tx, sample(f64::INFINITY), "featurise"),
        (&stack.tx, Vec::new(), "decode"),
        (&stack.texts, oversized, "featurise"),
        (&stack.texts, good.clone(), "decode"), // a transaction on the text topic: schema mismatch
    ];
    let p = producer();
    for (topic, payload, _) in &bad {
        produce(&p, topic, Some(b"k"), payload).await;
    }

    let mut scorer = stack.spawn("vigil-scorer", &[]);
    let expected_champion = (good_tx + good_texts) as usize;
    let mut ids = ChampionIds::default();
    collect_until(&stack.scores, "read_committed", T, "every champion score", |r| ids.count(r) >= expected_champion)
        .await;
    let dead = consume_exactly(&stack.dlq, bad.len(), T, Duration::from_secs(3)).await;
    let (clean, status) = terminate(&mut scorer, Duration::from_secs(20));
    assert!(clean && status.is_some_and(|s| s.success()), "SIGTERM must drain and exit 0: {status:?}");

    // Everything the scorer wrote, now that it stopped.
    let all = read_all(&stack.scores, "read_committed", Duration::from_secs(3)).await;
    let s = scores(&all);
    let mut per_variant: HashMap<(String, Variant), usize> = HashMap::new();
    for x in &s {
        *per_variant.entry((x.event_id.clone(), x.variant)).or_default() += 1;
        assert!((0.0..=1.0).contains(&x.score));
    }
    assert!(per_variant.values().all(|n| *n == 1), "a duplicate score per event and variant");
    let keyed_by_id = all.iter().zip(&s).all(|(r, x)| r.key.as_deref() == Some(x.event_id.as_bytes()));
    assert!(keyed_by_id, "scores are keyed by their event ids by default");
    let champions = s.iter().filter(|x| x.variant == Variant::Champion).count();
    assert_eq!(champions + dead.len(), expected_champion + bad.len(), "scores + dead letters = inputs");
    let challengers: Vec<&Score> = s.iter().filter(|x| x.variant == Variant::Challenger).collect();
    assert!(challengers.iter().all(|c| c.model == "fraud" && c.model_version == 2));
    let share = challengers.len() as f64 / good_tx as f64;
    assert!((share - 0.5).abs() < 0.06, "challenger share {share}");
    assert!(s.iter().filter(|x| x.variant == Variant::Champion).all(|x| x.model_version == 1));
    let mut stages: Vec<String> =
        dead.iter().map(|m| String::from_utf8(m.header(dlq::STAGE).unwrap().to_vec()).unwrap()).collect();
    let mut want: Vec<String> = bad.iter().map(|b| b.2.to_string()).collect();
    stages.sort();
    want.sort();
    assert_eq!(stages, want);
    stack.delete().await;
}

#[tokio::test]
async fn a_new_champion_takes_over_without_a_gap_and_bad_checkpoints_are_refused() {
    let trusted = SigningKey::from_bytes(&[3u8; 32]);
    let stranger = SigningKey::from_bytes(&[4u8; 32]);
    let extra = format!("trusted-keys = [\"{}\"]\n", hex::encode(trusted.verifying_key().to_bytes()));
    let stack = Stack::new("swap", 3, &extra).await;
    publish(&stack, &fraud_checkpoint(1, CheckpointStatus::Promoted, 1, Some(&trusted))).await;
    publish(&stack, &{
        let mut s = vigil_models::checkpoint::build(
            NewCheckpoint {
                model: "sentiment",
                version: 1,
                parent: None,
                onnx: Model::HashedText { table: vec![0.0; 65536], b: 0.0 }.to_onnx("sentiment", 1).to_bytes(),
                spec: vigil_features::SENTIMENT_SPEC,
                status: CheckpointStatus::Promoted,
                reason: String::new(),
                now_ms: now_ms(),
            },
            None,
        );
        s.updated_at = now_ms();
        // Signed after its last change: the signature covers the whole record.
        vigil_models::checkpoint::sign(&mut s, &trusted);
        s
    })
    .await;
    let mut scorer = stack.spawn("vigil-scorer", &[]);
    let n = 6000u64;
    let load = {
        let stack_config = stack.config.clone();
        let tx = stack.tx.clone();
        std::thread::spawn(move || {
            std::process::Command::new(bin("vigil-load"))
                .args([
                    "fraud",
                    "--topic",
                    &tx,
                    "--labels-topic",
                    "none",
                    "--rate",
                    "1000",
                    "--events",
                    &n.to_string(),
                    "--id-prefix",
                    "swap",
                ])
                .env("VIGIL_CONFIG", stack_config)
                .env("VIGIL_LOG__LEVEL", "warn")
                .status()
                .unwrap()
        })
    };
    // Mid-stream: a corrupt checkpoint, one signed by a stranger, then a good new champion.
    collect_until(&stack.scores, "read_committed", T, "the first 1500 scores", |r| r.len() >= 1500).await;
    let mut corrupt = fraud_checkpoint(2, CheckpointStatus::Promoted, 2, Some(&trusted));
    if let Some(b) = corrupt.onnx.as_mut() {
        b[10] ^= 0x55;
    }
    publish(&stack, &corrupt).await;
    publish(&stack, &fraud_checkpoint(3, CheckpointStatus::Promoted, 3, Some(&stranger))).await;
    publish(&stack, &fraud_checkpoint(4, CheckpointStatus::Promoted, 4, Some(&trusted))).await;
    assert!(load.join().unwrap().success());

    let mut ids = ChampionIds::default();
    let records =
        collect_until(&stack.scores, "read_committed", T, "every score", |r| ids.count(r) >= n as usize).await;
    terminate(&mut scorer, Duration::from_secs(20));
    let s = scores(&records);
    let mut seen: HashMap<String, i64> = HashMap::new();
    for x in &s {
        assert!(seen.insert(x.event_id.clone(), x.model_version).is_none(), "{} scored twice", x.event_id);
    }
    assert_eq!(seen.len(), n as usize, "every event scored");
    let versions: HashSet<i64> = seen.values().copied().collect();
    assert_eq!(versions, HashSet::from([1, 4]), "only the valid versions served");
    // Per partition, once v4 served, v1 never did again.
    let mut by_partition: HashMap<i32, Vec<(i64, i64)>> = HashMap::new();
    for x in &s {
        by_partition.entry(x.source_partition).or_default().push((x.source_offset, x.model_version));
    }
    for (p, mut v) in by_partition {
        v.sort();
        let first_new = v.iter().position(|(_, ver)| *ver == 4).unwrap_or(v.len());
        assert!(v[first_new..].iter().all(|(_, ver)| *ver == 4), "partition {p} went back to v1 after v4");
    }
    let codec = Codec::new();
    let versions = |r: &[vigil_kafka::Input]| -> HashSet<i64> {
        r.iter()
            .filter_map(|m| codec.decode_event::<vigil_events::Alert>(m.payload.as_deref()?).ok())
            .filter(|a| a.kind == AlertKind::ModelRejected && a.model.as_deref() == Some("fraud"))
            .filter_map(|a| a.model_version)
            .collect()
    };
    let alerts = collect_until(&stack.alerts, "read_committed", T, "alerts for v2 and v3", |r| {
        let v = versions(r);
        v.contains(&2) && v.contains(&3)
    })
    .await;
    let alerts: Vec<vigil_events::Alert> =
        alerts.iter().map(|m| codec.decode_event(m.payload.as_deref().unwrap()).unwrap()).collect();
    let rejected: HashMap<i64, String> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::ModelRejected)
        .map(|a| (a.model_version.unwrap(), a.statistic.clone().unwrap_or_default()))
        .collect();
    assert_eq!(rejected.get(&2).map(String::as_str), Some("checksum"), "{alerts:?}");
    assert_eq!(rejected.get(&3).map(String::as_str), Some("signature"), "{alerts:?}");
    stack.delete().await;
}

/// With `scores-key = "input"`, a score keeps its input's key (the account id of the generated
/// transactions) and so lands in the partition its input came from.
#[tokio::test]
async fn scores_keyed_by_their_inputs_key_land_in_their_inputs_partition() {
    let stack = Stack::new("input-key", 3, "scores-key = \"input\"\n").await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let n = 600u64;
    let events = n.to_string();
    stack.load(&["fraud", "--topic", &stack.tx, "--labels-topic", "none", "--rate", "0", "--events", &events]);
    let mut scorer = stack.spawn("vigil-scorer", &[]);
    let mut ids = ChampionIds::default();
    let records =
        collect_until(&stack.scores, "read_committed", T, "every event scored", |r| ids.count(r) >= n as usize).await;
    let (clean, _) = terminate(&mut scorer, Duration::from_secs(20));
    assert!(clean, "the scorer must stop on SIGTERM");
    let inputs = read_all(&stack.tx, "read_committed", Duration::from_secs(3)).await;
    let by_position: HashMap<(i32, i64), &vigil_kafka::Input> =
        inputs.iter().map(|i| ((i.partition, i.offset), i)).collect();
    let mut partitions = HashSet::new();
    for (record, score) in records.iter().zip(scores(&records)) {
        let input = by_position[&(score.source_partition, score.source_offset)];
        assert!(input.key.is_some(), "generated transactions are keyed by account");
        assert_eq!(record.key, input.key, "the score of {} keeps its input's key", score.event_id);
        assert_eq!(record.partition, input.partition, "the score of {} is in its input's partition", score.event_id);
        partitions.insert(record.partition);
    }
    assert_eq!(partitions.len(), 3, "600 transactions fill every partition");
    stack.delete().await;
}

async fn crash_and_restart(delivery: &str) -> (Stack, Vec<Score>, u64) {
    let stack = Stack::new(&format!("crash-{delivery}"), 3, "commit-interval-ms = 100\n").await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let env = [("VIGIL_KAFKA__DELIVERY", delivery)];
    let n = 5000u64;
    let load = {
        let (cfg, tx) = (stack.config.clone(), stack.tx.clone());
        std::thread::spawn(move || {
            std::process::Command::new(bin("vigil-load"))
                .args([
                    "fraud",
                    "--topic",
                    &tx,
                    "--labels-topic",
                    "none",
                    "--rate",
                    "2000",
                    "--events",
                    &n.to_string(),
                    "--id-prefix",
                    "crash",
                ])
                .env("VIGIL_CONFIG", cfg)
                .env("VIGIL_LOG__LEVEL", "warn")
                .status()
                .unwrap()
        })
    };
    let mut scorer = stack.spawn("vigil-scorer", &env);
    // Kill it without warning once it is well into the stream.
    collect_until(&stack.scores, "read_uncommitted", T, "1000 scores", |r| r.len() >= 1000).await;
    kill(&mut scorer);
    assert!(load.join().unwrap().success());
    let mut scorer = stack.spawn("vigil-scorer", &env);
    let mut ids = ChampionIds::default();
    let records = collect_until(&stack.scores, "read_committed", T, "every event scored after the restart", |r| {
        ids.count(r) >= n as usize
    })
    .await;
    let (clean, _) = terminate(&mut scorer, Duration::from_secs(20));
    assert!(clean, "the restarted scorer must stop on SIGTERM");
    // Everything committed, read once more with read_committed after the scorer stopped.
    let total = consume(&stack.scores, records.len(), T, "read_committed").await;
    (stack, scores(&total), n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_loses_nothing_across_a_sigkill() {
    let (stack, s, n) = crash_and_restart("at-least-once").await;
    let ids: HashSet<&str> = s.iter().map(|x| x.event_id.as_str()).collect();
    assert_eq!(ids.len(), n as usize, "every event scored at least once");
    eprintln!("at-least-once: {} scores for {n} events ({} duplicates after the crash)", s.len(), s.len() - n as usize);
    stack.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_shows_every_event_once_to_read_committed_consumers() {
    let (stack, s, n) = crash_and_restart("exactly-once").await;
    let mut count: HashMap<&str, usize> = HashMap::new();
    for x in &s {
        *count.entry(x.event_id.as_str()).or_default() += 1;
    }
    assert_eq!(count.len(), n as usize, "every event scored");
    let dupes: Vec<_> = count.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        dupes.is_empty(),
        "{} events scored more than once: {:?}",
        dupes.len(),
        dupes.iter().take(5).collect::<Vec<_>>()
    );
    // Make sure the test really crossed a crash: the consumer had read uncommitted output earlier.
    let uncommitted = consume(&stack.scores, s.len(), T, "read_uncommitted").await;
    eprintln!(
        "exactly-once: {} committed scores, {} records in the log including aborted ones",
        s.len(),
        uncommitted.len()
    );
    stack.delete().await;
}
