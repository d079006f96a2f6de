//! Features for Vigil's models: the feature spec ([`spec`], TOML, carried inside every checkpoint),
//! the featurisers that turn decoded records into model inputs ([`featurize`], [`text`]) and specs
//! inferred from a sample of records ([`infer`]); subword tokens for sentence encoders ([`subword`]).
//! Pure: no
//! I/O, so the scorer, the learner and the drift detector featurise identically.

pub mod batch;
pub mod featurize;
pub mod infer;
pub mod spec;
pub mod subword;
pub mod text;

pub use featurize::{FeatureError, Featurizer, Field, Row};
pub use spec::{FeatureSpec, SpecError};

/// The spec the demo's fraud model starts with (card transactions).
pub const FRAUD_SPEC: &str = include_str!("../specs/fraud.toml");
/// The spec the demo's sentiment model starts with (texts).
pub const SENTIMENT_SPEC: &str = include_str!("../specs/sentiment.toml");

/// The spec of one of the demo's models (`fraud`, `sentiment`), for a model with no champion yet.
pub fn demo_spec(model: &str) -> Option<&'static str> {
    match model {
        "fraud" => Some(FRAUD_SPEC),
        "sentiment" => Some(SENTIMENT_SPEC),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
