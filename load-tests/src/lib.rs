//! Load and measurement for Vigil: seeded simulators of card traffic, labels, texts and CSV replay
//! ([`sim`]), the open-loop generator that produces them ([`generate`]), the forwarder baseline
//! ([`forwarder`]), the end-to-end latency probe ([`probe`]) and the benchmarks ([`bench`]).

pub mod bench;
pub mod demo;
pub mod forwarder;
pub mod generate;
pub mod probe;
pub mod sim;

pub use vigil_runtime::error_chain;
