//! Starting models for the demo, so that there is something to score with before the learner has
//! published anything: a logistic regression over the fraud spec with hand-set weights (large
//! amounts, far from home, new devices, digital goods and ATMs abroad are risky), and a hashed-text
//! model over a small sentiment lexicon. Deliberately simple: the learner replaces them.

use vigil_features::spec::{Encoding, FeatureSpec};
use vigil_features::text::word_bucket;
use vigil_features::{FRAUD_SPEC, SENTIMENT_SPEC};
use vigil_models::Model;

const POSITIVE: &[&str] = &[
    "good",
    "great",
    "excellent",
    "love",
    "loved",
    "wonderful",
    "best",
    "happy",
    "amazing",
    "perfect",
    "fun",
    "nice",
    "enjoy",
    "enjoyed",
    "beautiful",
    "recommend",
    "fantastic",
    "brilliant",
    "awesome",
    "glad",
    "funny",
    "friendly",
    "fast",
];
const NEGATIVE: &[&str] = &[
    "bad",
    "worst",
    "terrible",
    "awful",
    "hate",
    "boring",
    "poor",
    "sad",
    "waste",
    "disappointed",
    "horrible",
    "ugly",
    "stupid",
    "broken",
    "slow",
    "rude",
    "useless",
    "annoying",
    "dull",
    "fails",
    "problem",
    "never",
    "refund",
];

/// (model, spec, ONNX bytes) of each starting model.
pub fn models() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("fraud", FRAUD_SPEC, fraud().to_onnx("fraud", 1).to_bytes()),
        ("sentiment", SENTIMENT_SPEC, sentiment().to_onnx("sentiment", 1).to_bytes()),
    ]
}

fn fraud() -> Model {
    let spec = FeatureSpec::parse(FRAUD_SPEC).unwrap_or_else(|e| unreachable_spec(&e));
    let names = spec.input_names();
    let mut w = vec![0.0f32; names.len()];
    let set = |w: &mut Vec<f32>, name: &str, v: f32| {
        if let Some(i) = names.iter().position(|n| n == name) {
            w[i] = v;
        }
    };
    for (name, v) in [
        ("amount", 0.9),
        ("account_age_days", -0.5),
        ("distance_from_home_km", 1.0),
        ("card_present", -0.3),
        ("has_device", 0.2),
        ("hour_cos", 0.4),
        ("channel=ecommerce", 0.4),
        ("channel=atm", 0.5),
        ("merchant_category=5816", 1.2),
        ("merchant_category=5967", 1.2),
        ("merchant_category=5944", 0.8),
        ("merchant_category=6011", 0.4),
    ] {
        set(&mut w, name, v);
    }
    debug_assert!(spec.categorical.iter().any(|c| c.encoding == Encoding::Hash));
    Model::Logistic { w, b: -4.5 }
}

fn sentiment() -> Model {
    let spec = FeatureSpec::parse(SENTIMENT_SPEC).unwrap_or_else(|e| unreachable_spec(&e));
    let buckets = spec.text.as_ref().map(|t| t.buckets).unwrap_or(65536);
    let mut table = vec![0.0f32; buckets as usize];
    for w in POSITIVE {
        table[word_bucket(w, buckets)] += 4.0;
    }
    for w in NEGATIVE {
        table[word_bucket(w, buckets)] -= 4.0;
    }
    Model::HashedText { table, b: 0.1 }
}

fn unreachable_spec(e: &vigil_features::SpecError) -> FeatureSpec {
    // The shipped specs are checked by vigil-features' tests.
    panic!("a shipped feature spec does not parse: {e}")
}
