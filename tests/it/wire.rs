//! The wire format through a real broker, read and written by independent clients: Python's
//! confluent-kafka with fastavro, and kcat.

use std::time::Duration;

use serde_json::{Value as Json, json};
use vigil_e2e::*;
use vigil_events::schemas::{self, names};
use vigil_events::{Codec, Label, Score, Transaction, WriterId, frame};

const T: Duration = Duration::from_secs(60);

fn labels() -> Vec<Json> {
    (0..3)
        .map(|i| {
            json!({"event_id": format!("e{i}"), "label": (i % 2) as f64, "label_time": 1_700_000_000_000i64 + i,
            "source": if i == 0 { Json::Null } else { json!("chargeback") }})
        })
        .collect()
}

fn lines(v: &[Json]) -> String {
    v.iter().map(|j| j.to_string() + "\n").collect()
}

#[tokio::test]
async fn vigil_single_object_records_are_read_by_python_and_kcat() {
    let topic = unique("labels");
    create_topics(&[&topic], 1).await;
    let input = labels();
    let (code, _, err) = vigil(&["produce", &topic, "--schema", names::LABEL], &[], Some(&lines(&input)));
    assert_eq!(code, 0, "vigil produce failed: {err}");

    let (code, out, err) =
        python_support("interop.py", &["read", "--bootstrap", &bootstrap(), "--topic", &topic, "--count", "3"], None);
    assert_eq!(code, 0, "python reader failed: {err}");
    let read: Vec<Json> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(read.len(), 3);
    for (got, want) in read.iter().zip(&input) {
        assert_eq!(got["framing"], "single-object");
        assert_eq!(&got["value"], want, "python decoded something else");
        assert_eq!(got["key"], want["event_id"], "labels are keyed by event id");
    }

    // kcat sees the raw bytes: C3 01 and the fingerprint fastavro computed for the same schema.
    let out = std::process::Command::new("kcat")
        .args(["-b", &bootstrap(), "-C", "-t", &topic, "-o", "beginning", "-c", "1", "-e", "-f", "%s"])
        .output()
        .expect("kcat is installed by scripts/setup.sh");
    assert!(out.status.success(), "kcat failed: {}", String::from_utf8_lossy(&out.stderr));
    let fp = schemas::current(names::LABEL).unwrap().fingerprint;
    assert_eq!(frame(&out.stdout).unwrap().writer, WriterId::Fingerprint(fp));
    let label: Label = Codec::new().decode_event(&out.stdout).unwrap();
    assert_eq!(label.event_id, "e0");
    delete_topics(&[&topic]).await;
}

#[tokio::test]
async fn python_records_written_with_an_older_schema_are_read_by_vigil() {
    let topic = unique("tx");
    create_topics(&[&topic], 1).await;
    let v1 = root().join("schemas/history/Transaction.v1.avsc");
    let records: Vec<Json> = (0..4)
        .map(|i| json!({"event_id": format!("t{i}"), "account_id": "a1", "card_id": "c1", "event_time": 1_700_000_000_000i64,
            "amount": 10.5 * i as f64, "currency": "EUR", "merchant_id": "m", "merchant_category": "5411", "channel": "pos",
            "country": "DE", "card_present": true, "account_age_days": 30 + i}))
        .collect();
    let (code, _, err) = python_support(
        "interop.py",
        &["write", "--bootstrap", &bootstrap(), "--topic", &topic, "--schema", v1.to_str().unwrap()],
        Some(&lines(&records)),
    );
    assert_eq!(code, 0, "python writer failed: {err}");

    // vigil tail prints what was written, as written.
    let (code, out, err) = vigil(&["tail", &topic, "--max", "4", "--idle-timeout", "30", "--values-only"], &[], None);
    assert_eq!(code, 0, "{err}");
    let tailed: Vec<Json> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(tailed.len(), 4, "{out}");
    for (got, want) in tailed.iter().zip(&records) {
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&got[k], v, "field {k}");
        }
    }
    // And the codec resolves them to the current Transaction, new fields at their defaults.
    let raw = consume(&topic, 4, T, "read_committed").await;
    let codec = Codec::new();
    for (m, want) in raw.iter().zip(&records) {
        let t: Transaction = codec.decode_event(m.payload.as_deref().unwrap()).unwrap();
        assert_eq!(t.event_id, want["event_id"].as_str().unwrap());
        assert_eq!(t.amount, want["amount"].as_f64().unwrap());
        assert_eq!(t.device_id, None);
    }
    delete_topics(&[&topic]).await;
}

#[tokio::test]
async fn confluent_framing_round_trips_through_a_registry() {
    let registry = registry_url();
    let env = [("VIGIL_SCHEMA_REGISTRY__URL", registry.as_str())];

    // Vigil writes with the registry: 00 + id framing, read by Python through the registry.
    let topic = unique("labels-sr");
    create_topics(&[&topic], 1).await;
    let input = labels();
    let (code, _, err) = vigil(&["produce", &topic, "--schema", names::LABEL], &env, Some(&lines(&input)));
    assert_eq!(code, 0, "{err}");
    let raw = consume(&topic, 3, T, "read_committed").await;
    assert!(
        raw.iter().all(|m| matches!(frame(m.payload.as_deref().unwrap()).unwrap().writer, WriterId::RegistryId(_)))
    );
    let (code, out, err) = python_support(
        "interop.py",
        &["read", "--bootstrap", &bootstrap(), "--topic", &topic, "--count", "3", "--registry", &registry],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let read: Vec<Json> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (got, want) in read.iter().zip(&input) {
        assert_eq!(got["framing"], "confluent");
        assert_eq!(&got["value"], want);
    }

    // Python registers a schema and writes Confluent-framed scores; vigil fetches the id and reads them.
    let scores_topic = unique("scores-sr");
    create_topics(&[&scores_topic], 1).await;
    let score = json!({"event_id": "e9", "model": "fraud", "model_version": 4, "variant": "CHALLENGER", "score": 0.875,
        "scores": [0.125, 0.875], "predicted_label": 1.0, "event_time": 5, "scored_at": 6, "source_topic": "in",
        "source_partition": 1, "source_offset": 77});
    let schema_file = root().join("schemas/Score.avsc");
    let (code, _, err) = python_support(
        "interop.py",
        &[
            "write",
            "--bootstrap",
            &bootstrap(),
            "--topic",
            &scores_topic,
            "--schema",
            schema_file.to_str().unwrap(),
            "--registry",
            &registry,
        ],
        Some(&lines(std::slice::from_ref(&score))),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) =
        vigil(&["tail", &scores_topic, "--max", "1", "--idle-timeout", "30", "--values-only"], &env, None);
    assert_eq!(code, 0, "{err}");
    let got: Json = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    for (k, v) in score.as_object().unwrap() {
        assert_eq!(&got[k], v, "field {k}");
    }
    // Without the registry the same record is an unknown schema id, reported, not a crash.
    let (code, out, _) =
        vigil(&["tail", &scores_topic, "--max", "1", "--idle-timeout", "30", "--values-only"], &[], None);
    assert_eq!(code, 0);
    assert!(out.contains("unknown schema id"), "{out}");
    let decoded: Score = {
        let codec = Codec::new();
        let raw = consume(&scores_topic, 1, T, "read_committed").await;
        let bytes = raw[0].payload.clone().unwrap();
        let WriterId::RegistryId(id) = frame(&bytes).unwrap().writer else { panic!("not confluent framing") };
        codec.add_registry_schema(id, schemas::current(names::SCORE).unwrap().text).unwrap();
        codec.decode_event(&bytes).unwrap()
    };
    assert_eq!(decoded.score, 0.875);
    delete_topics(&[&topic, &scores_topic]).await;
}
