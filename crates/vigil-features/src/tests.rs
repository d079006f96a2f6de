//! Tests of the spec and the featurisers against the shipped schemas.

use proptest::prelude::*;
use vigil_events::schemas::{current, names};
use vigil_events::{Codec, Encoding as Encoding_, Event, RecordReader, TextEvent, Transaction, Wanted};

use crate::featurize::{FeatureError, Featurizer, Row};
use crate::spec::{Encoding, FeatureSpec};
use crate::text::{hash_ngrams, tokens};
use crate::{FRAUD_SPEC, SENTIMENT_SPEC};

fn tx() -> Transaction {
    Transaction {
        event_id: "e".into(),
        account_id: "a".into(),
        card_id: "c".into(),
        event_time: 1_767_571_200_000 + 6 * 3_600_000, // 06:00 UTC
        amount: 100.0,
        currency: "EUR".into(),
        merchant_id: "m".into(),
        merchant_category: "5411".into(),
        channel: "ecommerce".into(),
        country: "DE".into(),
        card_present: false,
        account_age_days: 400,
        device_id: Some("d".into()),
        distance_from_home_km: None,
    }
}

/// The featurizer's row of an event, read the way the services read it.
fn row_of<T: Event>(f: &Featurizer, event: &T) -> Result<Row, FeatureError> {
    let codec = Codec::new();
    let reader = RecordReader::new(&codec, T::SCHEMA, Encoding_::Avro, Wanted::new(f.fields())).unwrap();
    reader.read(&codec, &codec.encode_event(event).unwrap(), |fields| f.row(fields)).unwrap()
}

fn dense(f: &Featurizer, t: &Transaction) -> Result<Vec<f32>, FeatureError> {
    match row_of(f, t)? {
        Row::Dense(x) => Ok(x),
        other => panic!("{other:?} from a tabular spec"),
    }
}

fn fraud() -> Featurizer {
    let spec = FeatureSpec::parse(FRAUD_SPEC).unwrap();
    Featurizer::new(&spec, &current(names::TRANSACTION).unwrap().schema).unwrap()
}

#[test]
fn the_demo_specs_parse_and_fit_their_schemas() {
    let f = fraud();
    assert_eq!(f.width(), 7 + 6 + 14 + 16);
    assert_eq!(f.spec().input_names().len(), f.width());
    let s = FeatureSpec::parse(SENTIMENT_SPEC).unwrap();
    assert!(s.is_text());
    Featurizer::new(&s, &current(names::TEXT_EVENT).unwrap().schema).unwrap();
    // The spec survives its own TOML round trip (it travels inside checkpoints).
    assert_eq!(FeatureSpec::parse(&f.spec().to_toml()).unwrap(), *f.spec());
}

#[test]
fn dense_rows_follow_the_spec() {
    let f = fraud();
    let row = dense(&f, &tx()).unwrap();
    assert_eq!(row.len(), f.width());
    let spec = f.spec();
    let z = |i: usize, x: f64| ((x - spec.numeric[i].mean) / spec.numeric[i].std) as f32;
    assert!((row[0] - z(0, 101f64.ln())).abs() < 1e-6, "log1p amount");
    assert!((row[1] - z(1, 401f64.ln())).abs() < 1e-6);
    assert!((row[2] - z(2, 7.0)).abs() < 1e-6, "distance imputed");
    assert!((row[3] - z(3, 0.0)).abs() < 1e-6, "card not present");
    assert!((row[4] - z(4, 1.0)).abs() < 1e-6, "has a device");
    assert!((row[5] - 1.0).abs() < 1e-6 && row[6].abs() < 1e-6, "06:00 is sin = 1, cos = 0");
    // channel one-hot: ecommerce is the third value.
    assert_eq!(&row[7..13], &[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    assert_eq!(row[13..27].iter().sum::<f32>(), 1.0);
    assert_eq!(row[13], 1.0, "5411 is the first MCC");
    assert_eq!(row[27..].iter().sum::<f32>(), 1.0, "one hashed country bucket");
    // An unknown channel goes to the extra slot.
    let mut other = tx();
    other.channel = "teleport".into();
    assert_eq!(dense(&f, &other).unwrap()[12], 1.0);
}

#[test]
fn bad_values_are_typed_errors() {
    let f = fraud();
    let mut nan = tx();
    nan.amount = f64::NAN;
    assert!(matches!(dense(&f, &nan), Err(FeatureError::NonFinite { .. })));
    let mut inf = tx();
    inf.distance_from_home_km = Some(f64::INFINITY);
    assert_eq!(dense(&f, &inf).unwrap_err().kind(), "non-finite-feature");
    let strict = FeatureSpec::parse(
        &FRAUD_SPEC.replace("impute = 7.0", "").replace("missing = \"impute\"", "missing = \"reject\""),
    )
    .unwrap();
    let strict = Featurizer::new(&strict, &current(names::TRANSACTION).unwrap().schema).unwrap();
    assert_eq!(dense(&strict, &tx()).unwrap_err(), FeatureError::Missing("distance_from_home_km".into()));
}

#[test]
fn specs_report_every_problem() {
    let err = FeatureSpec::parse(
        r#"
model = ""
schema = "x"
[[numeric]]
field = "a"
std = 0
[[numeric]]
field = "a"
[[categorical]]
field = "c"
encoding = "one-hot"
"#,
    )
    .unwrap_err();
    assert_eq!(err.problems.len(), 4, "{err}");
    let unknown = FeatureSpec::parse("model = \"m\"\nschema = \"s\"\ncolour = 1\n").unwrap_err();
    assert!(unknown.to_string().contains("colour"), "{unknown}");
    let spec = FeatureSpec::parse("model = \"m\"\nschema = \"s\"\n[[numeric]]\nfield = \"nope\"\n").unwrap();
    let problems = Featurizer::new(&spec, &current(names::TRANSACTION).unwrap().schema).unwrap_err();
    assert!(problems[0].contains("`nope` is not in the schema"), "{problems:?}");
}

#[test]
fn texts_hash_into_padded_rows_and_oversized_ones_are_refused() {
    let spec = FeatureSpec::parse(SENTIMENT_SPEC).unwrap();
    let f = Featurizer::new(&spec, &current(names::TEXT_EVENT).unwrap().schema).unwrap();
    let event = |text: &str| TextEvent {
        event_id: "t".into(),
        event_time: 0,
        source: "s".into(),
        text: text.into(),
        language: None,
        author_id: None,
    };
    let Row::Text(idx, val) = row_of(&f, &event("Great phone, GREAT price!")).unwrap() else { panic!("a dense row") };
    assert_eq!(idx.len(), f.text_len());
    // 4 words: 4 unigrams + 3 bigrams; char 3-grams of <great> (5) x2, <phone> (5), <price> (5).
    let used = val.iter().filter(|v| **v > 0.0).count();
    assert_eq!(used, 4 + 3 + 20);
    assert!(idx[..used].iter().all(|i| (0..65536).contains(i)));
    assert!(idx[used..].iter().all(|i| *i == 0) && val[used..].iter().all(|v| *v == 0.0), "padding");
    let norm: f32 = val.iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-5);
    assert_eq!(idx[0], idx[2], "lower-cased: great and GREAT hash alike");
    let long = "a".repeat(5001);
    assert!(matches!(row_of(&f, &event(&long)), Err(FeatureError::Oversized { .. })));
    assert_eq!(tokens("Don't stop—it's 2 good!", true), vec!["don't", "stop", "it's", "2", "good"]);
}

/// The n-gram hashing as first written (every n-gram computed, chars collected per word): the
/// faster one must give the same slots.
fn reference_hash_ngrams(text: &str, spec: &crate::spec::Text, indices: &mut [i64], values: &mut [f32]) {
    use crate::text::Fnv;
    let cap = indices.len().min(values.len());
    let buckets = u64::from(spec.buckets.max(1));
    let normalised = if spec.lowercase { text.to_lowercase() } else { text.to_string() };
    let toks: Vec<String> = normalised
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|t| t.trim_matches('\''))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let mut hashes = Vec::new();
    let [wmin, wmax] = spec.word_ngrams;
    if wmin >= 1 {
        for n in wmin as usize..=wmax as usize {
            for start in 0..toks.len().saturating_sub(n - 1) {
                let mut h = Fnv::new(n as u64);
                for (k, t) in toks[start..start + n].iter().enumerate() {
                    if k > 0 {
                        h.write(b" ");
                    }
                    h.write(t.as_bytes());
                }
                hashes.push(h.finish());
            }
        }
    }
    let [cmin, cmax] = spec.char_ngrams;
    if cmin >= 1 {
        for t in &toks {
            let chars: Vec<char> = std::iter::once('<').chain(t.chars()).chain(std::iter::once('>')).collect();
            for n in cmin as usize..=cmax as usize {
                for w in chars.windows(n) {
                    let mut h = Fnv::new(100 + n as u64);
                    let mut buf = [0u8; 4];
                    for c in w {
                        h.write(c.encode_utf8(&mut buf).as_bytes());
                    }
                    hashes.push(h.finish());
                }
            }
        }
    }
    let n_out = hashes.len().min(cap);
    let weight = if n_out == 0 { 0.0 } else { 1.0 / (n_out as f32).sqrt() };
    for i in 0..cap {
        (indices[i], values[i]) = if i < n_out { ((hashes[i] % buckets) as i64, weight) } else { (0, 0.0) };
    }
}

proptest! {
    #[test]
    fn the_fast_hashing_fills_the_same_slots_as_the_first(
        text in "(\\PC|[ A-Za-z'é日😀]){0,300}|[ A-Za-z0-9',.!?-]{0,300}",
        slots in 0usize..300, lowercase: bool, words in 0u32..3, chars in 0u32..6,
    ) {
        let spec = FeatureSpec::parse(SENTIMENT_SPEC).unwrap();
        let mut t = spec.text.clone().unwrap();
        t.lowercase = lowercase;
        t.word_ngrams = [words.min(1), words];
        t.char_ngrams = [chars.min(2), chars];
        let (mut a, mut av) = (vec![7i64; slots], vec![7f32; slots]);
        let (mut b, mut bv) = (vec![7i64; slots], vec![7f32; slots]);
        let used = hash_ngrams(&text, &t, &mut a, &mut av);
        reference_hash_ngrams(&text, &t, &mut b, &mut bv);
        prop_assert_eq!(used, bv.iter().filter(|v| **v != 0.0).count(), "the slots used are the weighted ones");
        prop_assert_eq!(a, b);
        prop_assert_eq!(av, bv);
    }

    #[test]
    fn any_text_hashes_in_range_with_unit_norm(text in "\\PC{0,400}") {
        let spec = FeatureSpec::parse(SENTIMENT_SPEC).unwrap();
        let t = spec.text.as_ref().unwrap();
        let (mut idx, mut val) = (vec![0i64; 256], vec![0f32; 256]);
        hash_ngrams(&text, t, &mut idx, &mut val);
        prop_assert!(idx.iter().all(|i| (0..i64::from(t.buckets)).contains(i)));
        let norm: f32 = val.iter().map(|v| v * v).sum();
        prop_assert!(norm == 0.0 || (norm - 1.0).abs() < 1e-4);
    }
}

/// A sample of a record type of another shape: each field becomes what its type and values call
/// for, the TOML says why and reads back as the same spec, and the spec featurises the records.
#[test]
fn specs_are_inferred_from_a_sample_with_their_reasons() {
    use crate::infer::{InferOptions, infer};
    use crate::spec::Transform;
    use apache_avro::types::Value;
    let text = r#"{"type": "record", "name": "Loan", "namespace": "it.acme", "fields": [
            {"name": "loan_id", "type": "string"},
            {"name": "applied_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "income", "type": ["null", "double"], "default": null},
            {"name": "age", "type": "int"},
            {"name": "term_months", "type": "int"},
            {"name": "purpose", "type": "string"},
            {"name": "region", "type": "string"},
            {"name": "verified", "type": "boolean"},
            {"name": "constant", "type": "double"},
            {"name": "defaulted", "type": "int"}]}"#;
    let schema = apache_avro::Schema::parse_str(text).unwrap();
    let mut rng = vigil_events::schemas::names::SCORE.len() as u64;
    let mut next = || {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (rng >> 33) as f64 / (1u64 << 31) as f64
    };
    let rows: Vec<Value> = (0..2000)
        .map(|i| {
            let u = next();
            Value::Record(vec![
                ("loan_id".into(), Value::String(format!("L{i}"))),
                ("applied_at".into(), Value::TimestampMillis(1_700_000_000_000 + i)),
                (
                    "income".into(),
                    if i % 20 == 0 {
                        Value::Union(0, Box::new(Value::Null))
                    } else {
                        Value::Union(1, Box::new(Value::Double((-(1.0 - u).ln() * 3.0).exp() * 1000.0)))
                    },
                ),
                ("age".into(), Value::Int(20 + (next() * 50.0) as i32)),
                ("term_months".into(), Value::Int([12, 24, 36, 60][i as usize % 4])),
                ("purpose".into(), Value::String(["car", "home", "study"][i as usize % 3].into())),
                ("region".into(), Value::String(format!("r{}", (next() * 200.0) as u32))),
                ("verified".into(), Value::Boolean(i % 3 == 0)),
                ("constant".into(), Value::Double(1.0)),
                ("defaulted".into(), Value::Int(i32::from(u < 0.2))),
            ])
        })
        .collect();
    let opts = InferOptions { model: "loans".into(), label: Some("defaulted".into()), ..InferOptions::default() };
    let inferred = infer(&schema, &rows, &opts).unwrap();
    let spec = &inferred.spec;
    let numeric: Vec<(&str, Transform)> = spec.numeric.iter().map(|n| (n.field.as_str(), n.transform)).collect();
    assert_eq!(numeric, vec![("income", Transform::Log1p), ("age", Transform::None), ("verified", Transform::None)]);
    let cats: Vec<(&str, Encoding)> = spec.categorical.iter().map(|c| (c.field.as_str(), c.encoding)).collect();
    assert_eq!(
        cats,
        vec![("term_months", Encoding::OneHot), ("purpose", Encoding::OneHot), ("region", Encoding::Hash)]
    );
    let age = &spec.numeric[1];
    assert!((age.mean - 44.5).abs() < 2.0 && (age.std - 14.4).abs() < 1.5, "{age:?}");
    for (needle, why) in [
        ("loan_id: an identifier", "ids are left out"),
        ("applied_at: a time", "times are left out"),
        ("defaulted: the label", "the label is left out"),
        ("constant: constant", "constant fields are left out"),
        ("heavy right tail", "the reason for log1p"),
        ("5.0% missing, imputed at the mean", "missing values"),
        ("hashed into", "high-cardinality strings are hashed"),
    ] {
        assert!(inferred.toml.contains(needle), "{why}: `{needle}` not in\n{}", inferred.toml);
    }
    assert_eq!(FeatureSpec::parse(&inferred.toml).unwrap(), *spec, "{}", inferred.toml);
    let f = Featurizer::new(spec, &schema).unwrap();
    assert_eq!(f.width(), spec.input_names().len());
    let codec = Codec::new();
    let (name, _) = codec.add_schema(text).unwrap();
    let reader = RecordReader::new(&codec, &name, Encoding_::Avro, Wanted::new(f.fields())).unwrap();
    let bytes = codec.encode_value(&name, &rows[20]).unwrap();
    assert!(matches!(reader.read(&codec, &bytes, |fields| f.row(fields)).unwrap(), Ok(Row::Dense(_))));
}
