//! The learner against the real broker: from transactions and delayed labels to a promoted checkpoint
//! that a running scorer picks up; resuming after a SIGKILL applies every label once and ends with the
//! model an uninterrupted run ends with; malformed and unknown labels are counted and dead-lettered; a
//! learner whose consumer hands over nothing with records behind reads again with a new consumer.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value as Json, json};
use vigil_e2e::*;
use vigil_events::{CheckpointStatus, Codec, Encoding, ModelCheckpoint, RecordReader, Score, Variant, Wanted};
use vigil_features::{FeatureSpec, Featurizer, Row};
use vigil_kafka::dlq;
use vigil_models::{Provider, Runtime};

const T: Duration = Duration::from_secs(180);

fn checkpoints(records: &[vigil_kafka::Input]) -> Vec<ModelCheckpoint> {
    let codec = Codec::new();
    records
        .iter()
        .filter_map(|m| m.payload.as_deref())
        .filter_map(|p| codec.decode_event::<ModelCheckpoint>(p).ok())
        .collect()
}

fn learnt(records: &[vigil_kafka::Input], model: &str) -> Vec<ModelCheckpoint> {
    checkpoints(records).into_iter().filter(|c| c.model == model && c.learner_state.is_some()).collect()
}

fn state(cp: &ModelCheckpoint) -> Json {
    serde_json::from_slice(cp.learner_state.as_deref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_make_a_promoted_model_that_the_scorer_serves() {
    let stack = Stack::with_learner(
        "learn",
        1,
        "challenger-share = 0.0\n",
        // The margin alone: this test is about a promoted checkpoint being served; on this
        // stationary stream the learner's gain over the bootstrap is small (see
        // `a_paired_test_promotes_on_evidence_not_on_a_lucky_window` for the paired test).
        "checkpoint-every = 2000\nmin-examples = 1000\nwindow = 1000\npromotion-test = \"none\"\n",
    )
    .await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    // The scorer serves the bootstrap version before any label comes (under load, a scorer slower to
    // start than the learner to promote never scored with v1).
    let port = free_port();
    let log = std::env::temp_dir().join(unique("learn-scorer.log"));
    let mut scorer = stack.spawn_logged("vigil-scorer", port, &log);
    wait_ready(port, T, "the scorer");
    let mut learner = stack.spawn("vigil-learner", &[]);
    let first = 6000u64;
    stack.load(&[
        "fraud",
        "--topic",
        &stack.tx,
        "--labels-topic",
        &stack.tx_labels,
        "--rate",
        "3000",
        "--events",
        &first.to_string(),
        "--fraud-rate",
        "0.05",
        "--label-fast-mean-ms",
        "20",
        "--label-slow-share",
        "0",
        "--label-grace",
        "3",
        "--id-prefix",
        "first",
    ]);
    let models = collect_until(&stack.models, "read_committed", T, "a promoted learner checkpoint", |r| {
        learnt(r, "fraud").iter().any(|c| c.status == CheckpointStatus::Promoted)
    })
    .await;
    let promoted = learnt(&models, "fraud").into_iter().find(|c| c.status == CheckpointStatus::Promoted).unwrap();
    assert!(promoted.version >= 2, "the bootstrap model is v1");
    let m = promoted.metrics.clone().expect("a learner checkpoint carries its metrics");
    assert!(m.examples_seen >= 1000 && m.auc.unwrap_or(0.0) > 0.8, "{m:?}");
    assert!(!promoted.reference.is_empty(), "reference statistics for the drift detector");
    assert!(promoted.offsets.iter().any(|o| o.topic == stack.tx_labels), "the label offsets it consumed");

    // New events are scored by the promoted version.
    let second = 2000u64;
    stack.load(&[
        "fraud",
        "--topic",
        &stack.tx,
        "--labels-topic",
        "none",
        "--rate",
        "2000",
        "--events",
        &second.to_string(),
        "--id-prefix",
        "second",
    ]);
    let scores =
        collect_until(&stack.scores, "read_committed", T, "every event scored", |r| r.len() as u64 >= first + second)
            .await;
    terminate(&mut scorer, Duration::from_secs(20));
    terminate(&mut learner, Duration::from_secs(20));
    let codec = Codec::new();
    let s: Vec<Score> = scores.iter().map(|m| codec.decode_event(m.payload.as_deref().unwrap()).unwrap()).collect();
    let ids: HashSet<&str> = s.iter().filter(|x| x.variant == Variant::Champion).map(|x| x.event_id.as_str()).collect();
    assert_eq!(ids.len() as u64, first + second, "no event lost");
    let late: Vec<&Score> = s.iter().filter(|x| x.event_id.starts_with("second")).collect();
    assert!(
        late.iter().all(|x| x.model_version >= promoted.version),
        "events after the promotion are scored by the new version"
    );
    assert!(s.iter().any(|x| x.model_version == 1), "earlier events were scored by the bootstrap version");

    // The checkpoint's graph scores in Python's onnxruntime as in Vigil's, on featurised transactions.
    let spec = FeatureSpec::parse(&promoted.feature_spec).unwrap();
    let f = Featurizer::new(&spec, codec.schema(vigil_events::schemas::names::TRANSACTION).unwrap()).unwrap();
    let txs = consume(&stack.tx, 64, T, "read_committed").await;
    let reader =
        RecordReader::new(&codec, vigil_events::schemas::names::TRANSACTION, Encoding::Avro, Wanted::new(f.fields()))
            .unwrap();
    let mut x = Vec::new();
    for m in &txs {
        match reader.read(&codec, m.payload.as_deref().unwrap(), |fields| f.row(fields)).unwrap().unwrap() {
            Row::Dense(row) => x.extend(row),
            other => panic!("{other:?} for a transaction"),
        }
    }
    let onnx = promoted.onnx.clone().unwrap();
    let rt = Runtime::global(None).unwrap();
    let (_, vigil) = rt.session(&onnx, Provider::Cpu, 1).unwrap().run_f32(&x, txs.len(), f.width()).unwrap();
    let path = temp_file("checkpoint.onnx", "");
    std::fs::write(&path, &onnx).unwrap();
    let manifest = json!([{"name": "learner-checkpoint", "path": path, "expected": vigil,
        "inputs": {"features": {"dtype": "float32", "shape": [txs.len(), f.width()], "data": x}}}]);
    let mpath = temp_file("manifest.json", &manifest.to_string());
    let (code, out, err) = python_support("onnx_parity.py", &[mpath.to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}{err}");
    stack.delete().await;
}

async fn learn_to_the_end(stack: &Stack, kill_after_first_checkpoint: bool) -> ModelCheckpoint {
    // A fixed rate (not as fast as possible): label due times, and so the label order, follow the schedule.
    stack.load(&[
        "fraud",
        "--topic",
        &stack.tx,
        "--labels-topic",
        &stack.tx_labels,
        "--rate",
        "20000",
        "--events",
        "6000",
        "--fraud-rate",
        "0.05",
        "--label-fast-mean-ms",
        "5",
        "--label-slow-share",
        "0",
        "--label-grace",
        "3",
        "--seed",
        "77",
        "--id-prefix",
        "r",
    ]);
    let labels = read_all(&stack.tx_labels, "read_committed", Duration::from_secs(3)).await.len();
    let mut learner = stack.spawn("vigil-learner", &[]);
    if kill_after_first_checkpoint {
        collect_until(&stack.models, "read_committed", T, "a first checkpoint", |r| !learnt(r, "fraud").is_empty())
            .await;
        kill(&mut learner);
        learner = stack.spawn("vigil-learner", &[]);
    }
    let models = collect_until(&stack.models, "read_committed", T, "a checkpoint with every label", |r| {
        learnt(r, "fraud")
            .iter()
            .any(|c| state(c)["counts"]["labels"].as_u64() == Some(labels as u64) && state(c)["since_checkpoint"] == 0)
    })
    .await;
    terminate(&mut learner, Duration::from_secs(20));
    let last = learnt(&models, "fraud").into_iter().max_by_key(|c| c.version).unwrap();
    let s = state(&last);
    assert_eq!(s["counts"]["trained"].as_u64(), Some(labels as u64), "every label applied exactly once");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_learner_applies_every_label_once_and_ends_with_the_same_model() {
    let settings = "checkpoint-every = 1500\ncheckpoint-interval-ms = 3600000\nmin-examples = 500\nwindow = 500\n";
    let steady = Stack::with_learner("resume-a", 1, "", settings).await;
    let crashed = Stack::with_learner("resume-b", 1, "", settings).await;
    let a = learn_to_the_end(&steady, false).await;
    let b = learn_to_the_end(&crashed, true).await;
    assert!(b.version > 1, "the crashed run checkpointed before and after the kill");
    let (la, lb) = (&state(&a)["learner"], &state(&b)["learner"]);
    if la != lb {
        let diff: Vec<String> = la
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| lb.get(k.as_str()) != Some(v))
            .map(|(k, v)| format!("{k}: {} vs {}", short(v), short(&lb[k.as_str()])))
            .collect();
        panic!("the resumed learner's model differs from the uninterrupted one's: {diff:?}");
    }
    steady.delete().await;
    crashed.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_labels_are_counted_and_dead_lettered() {
    let stack =
        Stack::with_learner("badlabels", 1, "", "checkpoint-every = 1000\nmin-examples = 500\nwindow = 500\n").await;
    stack.load(&[
        "fraud",
        "--topic",
        &stack.tx,
        "--labels-topic",
        &stack.tx_labels,
        "--rate",
        "0",
        "--events",
        "3000",
        "--label-fast-mean-ms",
        "5",
        "--label-slow-share",
        "0",
        "--label-grace",
        "3",
        "--id-prefix",
        "ok",
    ]);
    let good = read_all(&stack.tx_labels, "read_committed", Duration::from_secs(3)).await.len();
    let codec = Codec::new();
    let p = producer();
    let label = |id: &str, y: f64| {
        codec.encode_event(&vigil_events::Label { event_id: id.into(), label: y, label_time: 0, source: None }).unwrap()
    };
    produce(&p, &stack.tx_labels, Some(b"x"), b"not avro at all").await;
    produce(&p, &stack.tx_labels, Some(b"y"), &label("no-such-event", 1.0)).await;
    produce(&p, &stack.tx_labels, Some(b"z"), &label("ok-0", 7.0)).await;
    let mut learner = stack.spawn("vigil-learner", &[]);
    let dead = consume_exactly(&stack.dlq, 3, T, Duration::from_secs(3)).await;
    let kinds: HashSet<String> =
        dead.iter().map(|m| String::from_utf8(m.header(dlq::ERROR_KIND).unwrap().to_vec()).unwrap()).collect();
    assert_eq!(kinds, HashSet::from(["bad-magic".to_string(), "unknown-event".to_string(), "label-value".to_string()]));
    let models = collect_until(&stack.models, "read_committed", T, "a checkpoint after the bad labels", |r| {
        learnt(r, "fraud").iter().any(|c| state(c)["counts"]["labels"].as_u64() == Some(good as u64 + 3))
    })
    .await;
    terminate(&mut learner, Duration::from_secs(20));
    let last = learnt(&models, "fraud").into_iter().max_by_key(|c| c.version).unwrap();
    let counts = &state(&last)["counts"];
    assert_eq!(counts["malformed"], 2, "{counts}");
    assert_eq!(counts["unknown"], 1, "{counts}");
    assert_eq!(counts["trained"].as_u64(), Some(good as u64), "training carried on: {counts}");
    stack.delete().await;
}

fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.len() > 300 { format!("{}…", &s[..300]) } else { s }
}

/// The stall watch's way out ([`vigil_kafka::stall`]) on a real broker: the labels topic ends in an
/// aborted transaction, so the learner's `read_committed` consumer hands over nothing while its
/// partition is records behind its end. After the idle wait the learner reads again with a new
/// consumer, once, and that consumer reads what comes next.
#[tokio::test]
async fn a_learner_idle_with_records_behind_reads_again_with_a_new_consumer() {
    use rdkafka::producer::{FutureRecord, Producer};
    let stack = Stack::with_learner("stall", 1, "", "").await;
    let codec = Codec::new();
    let txn: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("transactional.id", format!("{}-aborting", stack.prefix))
        .create()
        .unwrap();
    txn.init_transactions(Duration::from_secs(30)).unwrap();
    txn.begin_transaction().unwrap();
    for i in 0..5 {
        let label = vigil_events::Label { event_id: format!("ghost-{i}"), label: 1.0, label_time: 0, source: None };
        let payload = codec.encode_event(&label).unwrap();
        txn.send(FutureRecord::<[u8], [u8]>::to(&stack.tx_labels).payload(&payload), Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    txn.abort_transaction(Duration::from_secs(30)).unwrap();
    let dir = std::env::temp_dir().join(&stack.prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("learner.log");
    let mut learner = Running(stack.spawn_logged_with("vigil-learner", free_port(), &log, &[]));
    let read_again =
        || std::fs::read_to_string(&log).unwrap_or_default().matches("reading again with a new consumer").count();
    // Idle for the watch's 30 s, then compared every 5 s.
    wait_for(Duration::from_secs(120), "the learner to read again with a new consumer", || async {
        (read_again() > 0).then_some(())
    })
    .await;
    // The new consumer reads on: a label after the aborted ones is read (and dead-lettered: not Avro).
    produce(&producer(), &stack.tx_labels, Some(b"x"), b"not avro at all").await;
    let dead = consume_exactly(&stack.dlq, 1, T, Duration::from_secs(3)).await;
    assert_eq!(dead[0].header(dlq::ERROR_KIND), Some(&b"bad-magic"[..]));
    assert_eq!(read_again(), 1, "read again once: {}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(learner.0.try_wait().unwrap().is_none(), "the learner exited");
    terminate(&mut learner.0, Duration::from_secs(20));
    stack.delete().await;
}
