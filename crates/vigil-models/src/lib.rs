//! Models for Vigil: ONNX graphs built from weights held in Rust ([`graph`], over the protobuf
//! messages in [`onnx`]) and ONNX Runtime sessions that run them ([`runtime`]).

pub mod graph;
pub mod onnx;
pub mod runtime;

pub use runtime::{Provider, Runtime, RuntimeError, Session};
