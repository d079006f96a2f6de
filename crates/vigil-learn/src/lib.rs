//! Continual learning for Vigil, in pure Rust and without I/O: online model families behind one
//! trait ([`family`]: logistic regression, MLP, hashed text, one module each), online standardisation ([`scaler`]), prequential metrics
//! ([`metrics`]), online model selection ([`select`]), the rehearsal buffer ([`rehearsal`]), and the
//! per-model learner that ties them together and exports scoring models ([`learner`]). Deterministic
//! for a given seed ([`rng`]).

pub mod family;
pub mod learner;
pub mod metrics;
pub mod rehearsal;
pub mod rng;
pub mod scaler;
pub mod select;

pub use learner::{Example, Learner, Setup};

#[cfg(test)]
mod tests;
