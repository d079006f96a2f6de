//! Unit and property tests of the codec against the shipped schemas.

use apache_avro::Schema;
use apache_avro::types::Value;
use proptest::prelude::*;

use crate::codec::{Codec, SINGLE_OBJECT_HEADER, Wanted, WriterId, frame};
use crate::error::{CodecError, Disposition};
use crate::events::*;
use crate::fast::Field;
use crate::json::{BytesOut, from_json, to_json};
use crate::schemas::{self, names};

fn score(i: i64) -> Score {
    Score {
        event_id: format!("e-{i}"),
        model: "fraud".into(),
        model_version: 3,
        variant: if i % 2 == 0 { Variant::Champion } else { Variant::Challenger },
        score: 0.25,
        scores: vec![0.75, 0.25],
        predicted_label: 0.0,
        event_time: 1_700_000_000_000 + i,
        scored_at: 1_700_000_000_050 + i,
        source_topic: "fraud.transactions".into(),
        source_partition: 2,
        source_offset: 40 + i,
        experiment_id: (i % 3 == 1).then(|| "ab-1".into()),
        arm: (i % 3 == 1).then(|| if i % 2 == 0 { "A" } else { "B" }.into()),
    }
}

fn checkpoint() -> ModelCheckpoint {
    ModelCheckpoint {
        model: "fraud".into(),
        version: 7,
        parent_version: Some(6),
        created_at: 1,
        updated_at: 2,
        status: CheckpointStatus::Candidate,
        status_reason: "beat the champion".into(),
        onnx: Some(vec![0, 1, 2, 255]),
        onnx_uri: None,
        sha256: "ab".repeat(32),
        size_bytes: 4,
        feature_spec: "[features]".into(),
        metrics: Some(PrequentialMetrics {
            examples_seen: 10,
            log_loss: 0.3,
            accuracy: 0.9,
            auc: None,
            window: 1000,
            overall_accuracy: Some(0.8),
            precision: None,
            recall: Some(0.5),
            threshold: 0.5,
        }),
        offsets: vec![TopicOffset { topic: "t".into(), partition: 0, offset: 12 }],
        reference: vec![FeatureReference {
            feature: "amount".into(),
            kind: FeatureKind::Numeric,
            count: 3,
            edges: vec![0.0, 1.0],
            categories: vec![],
            counts: vec![3],
            sample: vec![0.5],
        }],
        learner_state: None,
        signature: Some(vec![9; 64]),
        signer: Some("k1".into()),
    }
}

#[test]
fn typed_events_round_trip_with_single_object_encoding() {
    let codec = Codec::new();
    let s = score(1);
    let bytes = codec.encode_event(&s).unwrap();
    assert_eq!(&bytes[..2], &[0xC3, 0x01]);
    let fp = schemas::current(names::SCORE).unwrap().fingerprint;
    assert_eq!(&bytes[2..SINGLE_OBJECT_HEADER], &fp);
    assert_eq!(codec.decode_event::<Score>(&bytes).unwrap(), s);

    let c = checkpoint();
    assert_eq!(codec.decode_event::<ModelCheckpoint>(&codec.encode_event(&c).unwrap()).unwrap(), c);
}

#[test]
fn confluent_framing_is_used_once_an_id_is_set_and_both_decode() {
    let codec = Codec::new();
    let l = Label { event_id: "e".into(), label: 1.0, label_time: 5, source: Some("chargeback".into()) };
    let single = codec.encode_event(&l).unwrap();
    codec.add_registry_schema(42, schemas::current(names::LABEL).unwrap().text).unwrap();
    codec.set_encode_id(names::LABEL, 42);
    let framed = codec.encode_event(&l).unwrap();
    assert_eq!(&framed[..5], &[0, 0, 0, 0, 42]);
    assert_eq!(&framed[5..], &single[SINGLE_OBJECT_HEADER..], "same Avro body under both framings");
    assert_eq!(codec.decode_event::<Label>(&framed).unwrap(), l);
    assert_eq!(codec.decode_event::<Label>(&single).unwrap(), l);
}

#[test]
fn framing_errors_are_typed() {
    let codec = Codec::new();
    let good = codec.encode_event(&score(0)).unwrap();
    let err = |b: &[u8]| codec.decode(b, names::SCORE).unwrap_err();

    assert!(matches!(err(&[]), CodecError::Truncated { .. }));
    assert!(matches!(err(&[0x7b, 0x22]), CodecError::BadMagic { found: 0x7b, offset: 0 }));
    assert!(matches!(err(&[0xC3, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]), CodecError::BadMagic { found: 0x02, offset: 1 }));
    assert!(matches!(err(&good[..6]), CodecError::Truncated { .. }));
    assert!(matches!(err(&good[..good.len() - 3]), CodecError::Truncated { .. }));
    assert!(matches!(err(&[0, 0, 0]), CodecError::Truncated { .. }));
    let unknown = [0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0];
    assert!(matches!(err(&unknown), CodecError::UnknownFingerprint(_)));
    let id = err(&[0, 0, 0, 1, 0, 2]);
    assert!(matches!(id, CodecError::UnknownSchemaId(256)));
    assert_eq!(id.disposition(), Disposition::FetchSchema);

    // A label decoded as a score: the writer schema is another record.
    let label = codec.encode_event(&Label { event_id: "e".into(), label: 0.0, label_time: 0, source: None }).unwrap();
    let mismatch = err(&label);
    assert!(matches!(mismatch, CodecError::SchemaMismatch { .. }), "{mismatch}");
    assert_eq!(mismatch.disposition(), Disposition::DeadLetter);

    // Trailing garbage after a complete record.
    let mut long = good.clone();
    long.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(err(&long), CodecError::SchemaMismatch { .. }));
    assert!(err(&[0x42]).to_string().contains("bad magic byte 0x42"));
}

/// BACKWARD_TRANSITIVE: every historical version of a schema is readable by the current one.
#[test]
fn records_written_with_every_earlier_version_decode_with_the_current_schema() {
    let codec = Codec::new();
    let mut checked = 0;
    for old in schemas::shipped().iter().filter(|s| !s.current) {
        let value = sample_value(&old.schema);
        let body = apache_avro::writer::datum::GenericDatumWriter::builder(&old.schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap();
        let mut bytes = vec![0xC3, 0x01];
        bytes.extend_from_slice(&old.fingerprint);
        bytes.extend_from_slice(&body);
        let decoded = codec.decode(&bytes, &old.name).unwrap_or_else(|e| panic!("{} v{}: {e}", old.name, old.version));
        let current = schemas::current(&old.name).unwrap();
        assert!(decoded.validate(&current.schema), "{}: decoded value does not fit the current schema", old.name);
        checked += 1;
    }
    assert!(checked >= 3, "history holds Score, Label and Transaction versions");
    // And typed: a v1 transaction becomes a current Transaction with the new fields at their defaults.
    let v1 = schemas::shipped().iter().find(|s| s.name == names::TRANSACTION && !s.current).unwrap();
    let body = apache_avro::writer::datum::GenericDatumWriter::builder(&v1.schema)
        .build()
        .unwrap()
        .write_value_to_vec(sample_value(&v1.schema))
        .unwrap();
    let mut bytes = vec![0xC3, 0x01];
    bytes.extend_from_slice(&v1.fingerprint);
    bytes.extend_from_slice(&body);
    let t = codec.decode_event::<Transaction>(&bytes).unwrap();
    assert_eq!(t.device_id, None);
    assert_eq!(t.distance_from_home_km, None);
}

/// Every current schema keeps the rules that make evolution safe: new fields carry defaults.
#[test]
fn current_schemas_add_only_defaulted_fields_over_their_history() {
    for old in schemas::shipped().iter().filter(|s| !s.current) {
        let current = schemas::current(&old.name).unwrap();
        let (Schema::Record(o), Schema::Record(c)) = (&old.schema, &current.schema) else { panic!("records") };
        for f in &c.fields {
            if !o.fields.iter().any(|x| x.name == f.name) {
                assert!(f.default.is_some(), "{}: new field {} has no default", old.name, f.name);
            }
        }
    }
}

/// A value that fits `schema`, with every field present.
fn sample_value(schema: &Schema) -> Value {
    match schema {
        Schema::Record(r) => {
            Value::Record(r.fields.iter().map(|f| (f.name.clone(), sample_value(&f.schema))).collect())
        }
        Schema::String => Value::String("x".into()),
        Schema::Long => Value::Long(7),
        Schema::Int => Value::Int(3),
        Schema::Double => Value::Double(1.5),
        Schema::Boolean => Value::Boolean(true),
        Schema::TimestampMillis => Value::TimestampMillis(1_700_000_000_000),
        Schema::Enum(e) => Value::Enum(0, e.symbols[0].clone()),
        Schema::Union(u) => Value::Union(0, Box::new(sample_value(&u.variants()[0]))),
        Schema::Null => Value::Null,
        Schema::Array(_) => Value::Array(vec![]),
        Schema::Bytes => Value::Bytes(vec![1, 2]),
        other => panic!("no sample for {other:?}"),
    }
}

#[test]
fn json_input_accepts_plain_and_avro_json_unions_and_fills_defaults() {
    let codec = Codec::new();
    let schema = codec.schema(names::TRANSACTION).unwrap();
    let plain = serde_json::json!({
        "event_id": "e1", "account_id": "a", "card_id": "c", "event_time": 1_700_000_000_000i64,
        "amount": 12, "currency": "EUR", "merchant_id": "m", "merchant_category": "5411",
        "channel": "pos", "country": "DE", "card_present": true, "account_age_days": 400,
        "device_id": {"string": "d-1"}
    });
    let value = from_json(&plain, schema).unwrap();
    let bytes = codec.encode_value(names::TRANSACTION, &value).unwrap();
    let t = codec.decode_event::<Transaction>(&bytes).unwrap();
    assert_eq!(t.amount, 12.0);
    assert_eq!(t.device_id.as_deref(), Some("d-1"));
    assert_eq!(t.distance_from_home_km, None);
    // And back to JSON.
    let (decoded, name) = codec.decode_as_written(&bytes).unwrap();
    assert_eq!(name, names::TRANSACTION);
    let json = to_json(&decoded, BytesOut::Full);
    assert_eq!(json["device_id"], "d-1");
    assert_eq!(json["distance_from_home_km"], serde_json::Value::Null);
    assert_eq!(json["event_time"], 1_700_000_000_000i64);
}

#[test]
fn json_errors_name_the_field() {
    let codec = Codec::new();
    let schema = codec.schema(names::LABEL).unwrap();
    let e = from_json(&serde_json::json!({"event_id": "e", "label": "yes", "label_time": 1}), schema).unwrap_err();
    assert!(e.to_string().contains("$.label"), "{e}");
    let e = from_json(&serde_json::json!({"event_id": "e", "label": 1}), schema).unwrap_err();
    assert!(e.to_string().contains("$.label_time") && e.to_string().contains("missing"), "{e}");
    let e =
        from_json(&serde_json::json!({"event_id": "e", "label": 1, "label_time": 1, "colour": 1}), schema).unwrap_err();
    assert!(e.to_string().contains("unknown field `colour`"), "{e}");
    let alert = codec.schema(names::ALERT).unwrap();
    let e = from_json(
        &serde_json::json!({"alert_id": "a", "time": 1, "kind": "METEOR", "state": "FIRING", "severity": "INFO",
            "message": "m", "dedup_key": "k"}),
        alert,
    )
    .unwrap_err();
    assert!(e.to_string().contains("METEOR"), "{e}");
}

#[test]
fn long_bytes_are_summarised_in_json_output() {
    let codec = Codec::new();
    let mut c = checkpoint();
    c.onnx = Some(vec![7; 1000]);
    let (v, _) = codec.decode_as_written(&codec.encode_event(&c).unwrap()).unwrap();
    assert_eq!(to_json(&v, BytesOut::SummaryOver(64))["onnx"], "<1000 bytes>");
    let full = to_json(&v, BytesOut::Full);
    assert_eq!(full["onnx"].as_str().unwrap().chars().count(), 1000);
}

#[test]
fn the_leading_event_id_is_read_without_decoding() {
    let codec = Codec::new();
    let s = score(3);
    let bytes = codec.encode_event(&s).unwrap();
    assert_eq!(codec.leading_string(&bytes, "event_id"), Some("e-3"));
    assert_eq!(codec.leading_string(&bytes, "model"), None);
    let long_id = Label { event_id: "x".repeat(300), label: 0.0, label_time: 0, source: None };
    let bytes = codec.encode_event(&long_id).unwrap();
    assert_eq!(codec.leading_string(&bytes, "event_id").map(str::len), Some(300));
    assert_eq!(codec.leading_string(&bytes[..20], "event_id"), None, "truncated");
    assert_eq!(codec.leading_string(b"junk", "event_id"), None);
}

fn sample_transaction() -> Transaction {
    Transaction {
        event_id: "t-1".into(),
        account_id: "a".into(),
        card_id: "c".into(),
        event_time: 1_700_000_000_123,
        amount: 12.5,
        currency: "EUR".into(),
        merchant_id: "m".into(),
        merchant_category: "5411".into(),
        channel: "pos".into(),
        country: "DE".into(),
        card_present: true,
        account_age_days: 77,
        device_id: Some("d9".into()),
        distance_from_home_km: None,
    }
}

/// A transaction written with the first version of its schema (single-object encoding).
fn version_1_transaction() -> Vec<u8> {
    let v1 = schemas::shipped().iter().find(|s| s.name == names::TRANSACTION && !s.current).unwrap();
    let mut old = vec![0xC3, 0x01];
    old.extend_from_slice(&v1.fingerprint);
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&v1.schema).build().unwrap();
    old.extend_from_slice(&writer.write_value_to_vec(sample_value(&v1.schema)).unwrap());
    old
}

/// Every wanted field read by the fast path equals what the value-tree decoder gives, for current
/// and historical writers.
#[test]
fn the_fast_path_reads_what_the_value_decoder_reads() {
    let codec = Codec::new();
    let wanted = Wanted::new(&[
        "amount",
        "event_id",
        "device_id",
        "card_present",
        "account_age_days",
        "event_time",
        "channel",
        "distance_from_home_km",
    ]);
    let tx = sample_transaction();
    let bytes = codec.encode_event(&tx).unwrap();
    let (plan, body) = codec.plan(&bytes, names::TRANSACTION, &wanted).unwrap().unwrap();
    let mut out = Vec::new();
    plan.read(body, &mut out).unwrap();
    assert_eq!(
        out,
        vec![
            Field::Float(12.5),
            Field::Str("t-1"),
            Field::Str("d9"),
            Field::Bool(true),
            Field::Int(77),
            Field::Int(1_700_000_000_123),
            Field::Str("pos"),
            Field::Null
        ]
    );
    // A version-1 record: the fields it lacks take the current schema's defaults.
    let old = version_1_transaction();
    let (plan, body) = codec.plan(&old, names::TRANSACTION, &wanted).unwrap().unwrap();
    plan.read(body, &mut out).unwrap();
    assert_eq!(out[2], Field::Null, "device_id defaults to null");
    assert_eq!(out[0], Field::Float(1.5));
    // Truncated bodies and other schemas are errors, not panics.
    let (plan, body) = codec.plan(&bytes, names::TRANSACTION, &wanted).unwrap().unwrap();
    assert!(matches!(plan.read(&body[..body.len() - 3], &mut out), Err(CodecError::Truncated { .. })));
    let label = codec.encode_event(&Label { event_id: "e".into(), label: 1.0, label_time: 0, source: None }).unwrap();
    assert!(matches!(codec.plan(&label, names::TRANSACTION, &wanted), Err(CodecError::SchemaMismatch { .. })));
}

/// A reader keeps the first writer's plan and the last other writer's: records of two writer
/// schemas, interleaved, each read with their own (the version-1 record's missing field defaults).
#[test]
fn a_reader_reads_records_of_interleaved_writers_with_each_ones_plan() {
    let codec = Codec::new();
    let reader = crate::RecordReader::new(
        &codec,
        names::TRANSACTION,
        crate::Encoding::Avro,
        Wanted::new(&["amount", "device_id"]),
    )
    .unwrap();
    let current = codec.encode_event(&sample_transaction()).unwrap();
    let old = version_1_transaction();
    let read = |bytes: &[u8]| reader.read(&codec, bytes, |f| format!("{f:?}")).unwrap();
    let (new_fields, old_fields) = ("[Float(12.5), Str(\"d9\")]", "[Float(1.5), Null]");
    for (i, bytes) in [&current, &old, &old, &current, &old, &current].into_iter().enumerate() {
        let want = if *bytes == current { new_fields } else { old_fields };
        assert_eq!(read(bytes), want, "record {i}");
    }
    assert!(reader.read(&codec, &current[..current.len() - 3], |_| ()).is_err(), "a truncated record");
}

/// Fields nobody reads are moved over without checking their text: a record whose unread string
/// is not UTF-8 still gives its read fields (and its length is still checked), while the same bytes
/// in a read field are refused.
#[test]
fn unread_fields_are_skipped_not_checked() {
    let codec = Codec::new();
    let mut tx = sample_transaction();
    tx.country = "XY".into();
    let mut bytes = codec.encode_event(&tx).unwrap();
    let at = bytes.windows(3).position(|w| w == [4, b'X', b'Y']).expect("country's bytes") + 1;
    bytes[at] = 0xFF;
    let mut out = Vec::new();
    let wanted = Wanted::new(&["event_id", "device_id", "distance_from_home_km"]);
    let (plan, body) = codec.plan(&bytes, names::TRANSACTION, &wanted).unwrap().unwrap();
    plan.read(body, &mut out).unwrap();
    assert_eq!(out, vec![Field::Str("t-1"), Field::Str("d9"), Field::Null]);
    let wanted = Wanted::new(&["event_id", "country"]);
    let (plan, body) = codec.plan(&bytes, names::TRANSACTION, &wanted).unwrap().unwrap();
    let err = plan.read(body, &mut out).unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    // A skipped field that runs past the end is still an error.
    let (plan, body) = codec.plan(&bytes, names::TRANSACTION, &Wanted::new(&["event_id"])).unwrap().unwrap();
    assert!(matches!(plan.read(&body[..body.len() - 3], &mut out), Err(CodecError::Truncated { .. })));
}

/// Plans are cached under the fields they read: two consumers of one schema asking for different
/// fields (two models over one input topic) each get their own, and a consumer whose fields change
/// (a new champion with another feature layout) gets a new plan, never the stale one.
#[test]
fn plans_are_keyed_by_the_fields_they_read() {
    let codec = Codec::new();
    let tx = sample_transaction();
    let bytes = codec.encode_event(&tx).unwrap();
    let read = |wanted: &Wanted| {
        let (plan, body) = codec.plan(&bytes, names::TRANSACTION, wanted).unwrap().unwrap();
        let mut out = Vec::new();
        plan.read(body, &mut out).unwrap();
        out.iter()
            .map(|f| match f {
                Field::Str(s) => s.to_string(),
                Field::Float(x) => x.to_string(),
                Field::Int(i) => i.to_string(),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    // Two models, one schema, the same number of fields: no collision.
    let fraud = Wanted::new(&["event_id", "amount"]);
    let other = Wanted::new(&["event_id", "channel"]);
    assert_eq!(read(&fraud), vec!["t-1", "12.5"]);
    assert_eq!(read(&other), vec!["t-1", "pos"]);
    assert_eq!(read(&fraud), vec!["t-1", "12.5"]);
    // A champion whose layout changes mid-stream: the new field list reads the new fields, even
    // when built anew with the same names as before (equal lists share a plan).
    let wider = Wanted::new(&["event_id", "account_age_days", "amount"]);
    assert_eq!(read(&wider), vec!["t-1", "77", "12.5"]);
    assert_eq!(read(&Wanted::new(&["event_id", "amount"])), vec!["t-1", "12.5"]);
    assert_eq!(Wanted::new(&["a", "b"]), Wanted::new(&["a", "b"]));
    assert_ne!(Wanted::new(&["a", "b"]), Wanted::new(&["b", "a"]));
}

#[test]
fn fields_are_lent_null_on_the_stack_or_the_heap_alike() {
    for n in [0, 3, 48, 49, 200] {
        let (len, all_null) = crate::fast::with_fields(n, |f| {
            let all_null = f.iter().all(|x| *x == Field::Null);
            f.iter_mut().for_each(|x| *x = Field::Int(7));
            (f.len(), all_null)
        });
        assert_eq!((len, all_null), (n, true), "{n} fields");
    }
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic_the_fast_path(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let codec = Codec::new();
        let mut input = vec![0xC3, 0x01];
        input.extend_from_slice(&schemas::current(names::TRANSACTION).unwrap().fingerprint);
        input.extend_from_slice(&bytes);
        if let Ok(Some((plan, body))) = codec.plan(&input, names::TRANSACTION, &Wanted::new(&["amount", "channel"])) {
            let mut out = Vec::new();
            let _ = plan.read(body, &mut out);
        }
    }
}

#[test]
fn user_schemas_can_be_added() {
    let codec = Codec::new();
    let (name, fp) = codec
        .add_schema(r#"{"type":"record","name":"Reading","namespace":"acme","fields":[{"name":"v","type":"double"}]}"#)
        .unwrap();
    assert_eq!(name, "acme.Reading");
    assert!(codec.knows(WriterId::Fingerprint(fp)));
    let v = Value::Record(vec![("v".into(), Value::Double(2.5))]);
    let bytes = codec.encode_value("acme.Reading", &v).unwrap();
    assert_eq!(codec.decode(&bytes, "acme.Reading").unwrap(), v);
    assert!(matches!(codec.add_schema("{not json"), Err(CodecError::InvalidSchema(_))));
}

fn arb_score() -> impl Strategy<Value = Score> {
    (
        ".{0,40}",
        "[a-z]{1,12}",
        any::<i64>(),
        any::<bool>(),
        any::<f64>(),
        proptest::collection::vec(any::<f64>(), 0..5),
        any::<i64>(),
        any::<i64>(),
        any::<i32>(),
        any::<i64>(),
        proptest::option::of(("[a-z0-9-]{0,12}", "[AB]")),
    )
        .prop_map(|(event_id, model, version, champion, score, scores, t, offset, partition, scored, ab)| Score {
            event_id,
            model,
            model_version: version,
            variant: if champion { Variant::Champion } else { Variant::Challenger },
            score,
            scores,
            predicted_label: 1.0,
            event_time: t,
            scored_at: scored,
            source_topic: "in".into(),
            source_partition: partition,
            source_offset: offset,
            experiment_id: ab.as_ref().map(|(e, _)| e.clone()),
            arm: ab.map(|(_, a)| a),
        })
}

fn arb_transaction() -> impl Strategy<Value = Transaction> {
    (
        ".{0,20}",
        ".{0,20}",
        any::<f64>(),
        any::<bool>(),
        any::<i32>(),
        proptest::option::of(".{0,10}"),
        proptest::option::of(any::<f64>()),
        any::<i64>(),
    )
        .prop_map(|(event_id, account_id, amount, card_present, age, device_id, dist, t)| Transaction {
            event_id,
            account_id,
            card_id: "c".into(),
            event_time: t,
            amount,
            currency: "EUR".into(),
            merchant_id: "m".into(),
            merchant_category: "5411".into(),
            channel: "pos".into(),
            country: "FR".into(),
            card_present,
            account_age_days: age,
            device_id,
            distance_from_home_km: dist,
        })
}

/// Floats compared bit for bit, so that NaN round-trips count as equal.
fn same_score(a: &Score, b: &Score) -> bool {
    a.score.to_bits() == b.score.to_bits()
        && a.scores.iter().map(|x| x.to_bits()).eq(b.scores.iter().map(|x| x.to_bits()))
        && Score { score: 0.0, scores: vec![], ..a.clone() } == Score { score: 0.0, scores: vec![], ..b.clone() }
}

proptest! {
    #[test]
    fn the_hand_written_score_encoder_writes_what_the_generic_one_does(s in arb_score()) {
        let codec = Codec::new();
        let mut fast = Vec::new();
        codec.encode_score_into(&s.view(), &mut fast).unwrap();
        prop_assert_eq!(&fast, &codec.encode_event(&s).unwrap());
        let mut with = Vec::new();
        Codec::encode_score_with(&codec.score_header().unwrap(), &s.view(), &mut with);
        prop_assert_eq!(with, fast);
    }

    #[test]
    fn scores_round_trip_under_both_framings(s in arb_score(), id in 1u32..u32::MAX) {
        let codec = Codec::new();
        let single = codec.encode_event(&s).unwrap();
        prop_assert!(same_score(&codec.decode_event::<Score>(&single).unwrap(), &s));
        codec.add_registry_schema(id, schemas::current(names::SCORE).unwrap().text).unwrap();
        codec.set_encode_id(names::SCORE, id);
        let framed = codec.encode_event(&s).unwrap();
        prop_assert_eq!(frame(&framed).unwrap().writer, WriterId::RegistryId(id));
        prop_assert!(same_score(&codec.decode_event::<Score>(&framed).unwrap(), &s));
        // The scorer's header, taken once, frames its scores the same way.
        let mut with = Vec::new();
        Codec::encode_score_with(&codec.score_header().unwrap(), &s.view(), &mut with);
        prop_assert_eq!(with, framed);
    }

    #[test]
    fn transactions_round_trip_through_json_and_avro(t in arb_transaction()) {
        prop_assume!(t.amount.is_finite() && t.distance_from_home_km.is_none_or(f64::is_finite));
        let codec = Codec::new();
        let bytes = codec.encode_event(&t).unwrap();
        prop_assert_eq!(&codec.decode_event::<Transaction>(&bytes).unwrap(), &t);
        let (value, _) = codec.decode_as_written(&bytes).unwrap();
        let json = to_json(&value, BytesOut::Full);
        let back = from_json(&json, codec.schema(names::TRANSACTION).unwrap()).unwrap();
        let again = codec.encode_value(names::TRANSACTION, &back).unwrap();
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64), header in any::<bool>()) {
        let codec = Codec::new();
        let mut input = Vec::new();
        if header {
            input.extend_from_slice(&[0xC3, 0x01]);
            input.extend_from_slice(&schemas::current(names::SCORE).unwrap().fingerprint);
        }
        input.extend_from_slice(&bytes);
        let _ = codec.decode(&input, names::SCORE);
        let _ = codec.decode_as_written(&input);
    }
}

#[test]
fn arms_are_stable_per_key_and_near_the_share() {
    let ab = |id: &str, share: f64| Experiment::running(id, "fraud", (1, 2), share, 0);
    let (e, other) = (ab("ab-1", 0.3), ab("ab-2", 0.3));
    let keys: Vec<String> = (0..20_000).map(|i| format!("acct-{i}")).collect();
    let b = keys.iter().filter(|k| e.in_b(k)).count() as f64 / keys.len() as f64;
    assert!((b - 0.3).abs() < 0.015, "share of B {b}");
    assert!(keys.iter().all(|k| e.in_b(k) == e.in_b(k)));
    // Another experiment splits the same keys afresh.
    let same = keys.iter().filter(|k| e.in_b(k) == other.in_b(k)).count() as f64 / keys.len() as f64;
    assert!((same - 0.58).abs() < 0.03, "agreement {same}");
    assert!(!keys.iter().any(|k| ab("x", 0.0).in_b(k)));
    assert!(keys.iter().all(|k| ab("x", 1.0).in_b(k)));
    // Round trip.
    let codec = Codec::new();
    let bytes = codec.encode_event(&e).unwrap();
    assert_eq!(codec.decode_event::<Experiment>(&bytes).unwrap(), e);
}
