//! Model families through ONNX Runtime, and checkpoint validation.

use ed25519_dalek::SigningKey;
use vigil_events::CheckpointStatus;
use vigil_events::schemas::{current, names};
use vigil_features::{FRAUD_SPEC, FeatureSpec, SENTIMENT_SPEC};

use crate::checkpoint::{self, NewCheckpoint, Policy};
use crate::families::{Dense, Model, sigmoid};
use crate::runtime::{Provider, Runtime};

fn runtime() -> Runtime {
    Runtime::global(None).unwrap_or_else(|e| panic!("{}", vigil_runtime::error_chain(&e)))
}

/// Deterministic pseudo-random weights.
pub(crate) fn weights(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

pub(crate) fn mlp(d: usize, hidden: usize) -> Model {
    Model::Mlp {
        layers: vec![
            Dense { inputs: d, outputs: hidden, w: weights(d * hidden, 1), b: weights(hidden, 2) },
            Dense { inputs: hidden, outputs: 1, w: weights(hidden, 3), b: vec![0.1] },
        ],
    }
}

#[test]
fn tabular_graphs_score_like_the_rust_models() {
    let d = 43;
    let rows = 17;
    let x: Vec<f32> = weights(rows * d, 9).iter().map(|v| v * 3.0).collect();
    for model in [Model::Logistic { w: weights(d, 4), b: -0.3 }, mlp(d, 16)] {
        let onnx = model.to_onnx("fraud", 1).to_bytes();
        let mut s = runtime().session(&onnx, Provider::Cpu, 1).unwrap();
        let (shape, got) = s.run_f32(&x, rows, d).unwrap();
        assert_eq!(shape, vec![rows as i64, 1]);
        for r in 0..rows {
            let want = sigmoid(model.logit_dense(&x[r * d..(r + 1) * d]));
            assert!((got[r] - want).abs() < 1e-5, "{} row {r}: {} vs {want}", model.family(), got[r]);
        }
    }
}

#[test]
fn the_text_graph_gathers_weights_like_the_rust_model() {
    let buckets = 1000;
    let model = Model::HashedText { table: weights(buckets, 5), b: 0.2 };
    let (rows, len) = (5, 12);
    let idx: Vec<i64> = (0..rows * len).map(|i| ((i * 37) % buckets) as i64).collect();
    let val: Vec<f32> = (0..rows * len).map(|i| if i % len < 2 * (i / len) { 0.3 } else { 0.0 }).collect();
    let mut s = runtime().session(&model.to_onnx("sentiment", 1).to_bytes(), Provider::Cpu, 1).unwrap();
    let got = s.run_text(&idx, &val, rows, len).unwrap();
    for r in 0..rows {
        let want = sigmoid(model.logit_text(&idx[r * len..(r + 1) * len], &val[r * len..(r + 1) * len]));
        assert!((got[r] - want).abs() < 1e-5, "row {r}: {} vs {want}", got[r]);
    }
}

/// Text batches arrive cut to their longest row: a graph exported with its token dimension fixed
/// gets the padding back, and scores as it would the full rows.
#[test]
fn a_text_graph_with_a_fixed_token_dimension_scores_cut_batches() {
    use crate::onnx::{DimensionValue, ModelProto};
    let (buckets, fixed, rows, len) = (1000, 16, 3, 5);
    let model = Model::HashedText { table: weights(buckets, 6), b: -0.1 };
    let mut proto: ModelProto = model.to_onnx("sentiment", 1);
    for input in &mut proto.graph.as_mut().unwrap().input {
        let shape = input.r#type.as_mut().and_then(|t| t.tensor_type.as_mut()).and_then(|t| t.shape.as_mut()).unwrap();
        shape.dim[1].value = Some(DimensionValue::DimValue(fixed as i64));
    }
    let idx: Vec<i64> = (0..rows * len).map(|i| ((i * 53) % buckets) as i64).collect();
    let val: Vec<f32> = (0..rows * len).map(|i| 0.1 + (i % len) as f32 * 0.05).collect();
    let graph = vigil_features::spec::Graph::default();
    let mut s = runtime().session(&proto.to_bytes(), Provider::Cpu, 1).unwrap();
    let got = s.text(&graph, &idx, &val, rows, len).unwrap();
    let mut full = runtime().session(&model.to_onnx("sentiment", 1).to_bytes(), Provider::Cpu, 1).unwrap();
    let want = full.text(&graph, &idx, &val, rows, len).unwrap();
    assert_eq!(got.rows(), rows);
    for r in 0..rows {
        assert!(
            (got.positive(r) - want.positive(r)).abs() < 1e-6,
            "row {r}: {} vs {}",
            got.positive(r),
            want.positive(r)
        );
    }
}

fn fraud_checkpoint(model: &Model, key: Option<&SigningKey>) -> vigil_events::ModelCheckpoint {
    checkpoint::build(
        NewCheckpoint {
            model: "fraud",
            version: 3,
            parent: None,
            onnx: model.to_onnx("fraud", 3).to_bytes(),
            spec: FRAUD_SPEC,
            status: CheckpointStatus::Candidate,
            reason: String::new(),
            now_ms: 1,
        },
        key,
    )
}

#[test]
fn good_checkpoints_pass_and_bad_ones_are_refused_with_the_reason() {
    let rt = runtime();
    let schema = &current(names::TRANSACTION).unwrap().schema;
    let d = FeatureSpec::parse(FRAUD_SPEC).unwrap().width();
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let other = SigningKey::from_bytes(&[8u8; 32]);
    let policy = Policy { trusted_keys: vec![key.verifying_key()], ..Policy::default() };
    let good = fraud_checkpoint(&mlp(d, 8), Some(&key));
    let v = checkpoint::validate(&good, schema, &policy, &rt).unwrap();
    assert_eq!(v.featurizer.width(), d);

    let check = |cp: &vigil_events::ModelCheckpoint, policy: &Policy| {
        checkpoint::validate(cp, schema, policy, &rt).unwrap_err().check
    };
    let mut corrupt = good.clone();
    if let Some(b) = corrupt.onnx.as_mut() {
        let n = b.len() / 2;
        b[n] ^= 0xff;
    }
    assert_eq!(check(&corrupt, &policy), "checksum");
    assert_eq!(check(&fraud_checkpoint(&mlp(d, 8), Some(&other)), &policy), "signature");
    let strict = Policy { require_signature: true, ..policy.clone() };
    assert_eq!(check(&fraud_checkpoint(&mlp(d, 8), None), &strict), "signature");
    assert!(
        checkpoint::validate(&fraud_checkpoint(&mlp(d, 8), None), schema, &policy, &rt).is_ok(),
        "unsigned is fine unless required"
    );
    assert_eq!(check(&fraud_checkpoint(&mlp(d + 1, 8), Some(&key)), &policy), "signature-mismatch");
    assert_eq!(
        check(&fraud_checkpoint(&Model::Logistic { w: vec![f32::NAN; d], b: 0.0 }, Some(&key)), &policy),
        "probe"
    );
    let tiny = Policy { max_bytes: 100, ..policy.clone() };
    assert_eq!(check(&good, &tiny), "size");
    let mut garbage = good.clone();
    garbage.onnx = Some(b"not onnx".to_vec());
    garbage.size_bytes = 8;
    garbage.sha256 = checkpoint::sha256_hex(b"not onnx");
    garbage.signature = None;
    // The static inspection reads the bytes first: what is not ONNX is refused there, named so.
    let refused = checkpoint::validate(&garbage, schema, &policy, &rt).unwrap_err();
    assert_eq!(refused.check, "graph");
    assert!(refused.reason.contains("not an ONNX model"), "{}", refused.reason);
    let mut wrong_spec = good.clone();
    wrong_spec.feature_spec = SENTIMENT_SPEC.into();
    assert_eq!(check(&wrong_spec, &policy), "signature", "the signature covers the spec");
    wrong_spec.signature = None;
    assert_eq!(check(&wrong_spec, &policy), "spec", "unsigned: the spec does not fit the input");
    let text = checkpoint::build(
        NewCheckpoint {
            model: "sentiment",
            version: 1,
            parent: None,
            onnx: Model::HashedText { table: weights(65536, 1), b: 0.0 }.to_onnx("sentiment", 1).to_bytes(),
            spec: SENTIMENT_SPEC,
            status: CheckpointStatus::Promoted,
            reason: String::new(),
            now_ms: 1,
        },
        None,
    );
    checkpoint::validate(&text, &current(names::TEXT_EVENT).unwrap().schema, &Policy::default(), &rt).unwrap();
}
