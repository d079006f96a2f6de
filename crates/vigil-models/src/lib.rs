//! Models for Vigil: the families it trains and serves ([`families`]: logistic regression, MLP,
//! hashed text), exported as ONNX graphs ([`graph`] over the protobuf messages in [`onnx`]); ONNX
//! Runtime sessions ([`runtime`]); checkpoints and their validation ([`checkpoint`]); a sentence
//! encoder built from a BERT checkpoint's weights ([`encoder`]), stored once by digest
//! ([`artifacts`]) and run in front of a head ([`embed`]). The model
//! registry (which version is champion) is the state of the models topic, in `vigil-kafka`.

pub mod artifacts;
pub mod checkpoint;
pub mod embed;
pub mod encoder;
pub mod families;
pub mod graph;
pub mod inspect;
pub mod onnx;
pub mod runtime;

pub use checkpoint::{Policy, Rejection, Validated};
pub use embed::{Embedder, EncoderArtifact};
pub use families::Model;
pub use runtime::{Probabilities, Provider, Runtime, RuntimeError, Session};

#[cfg(test)]
mod tests;
