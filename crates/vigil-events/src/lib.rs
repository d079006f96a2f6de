//! Vigil's event contracts and their wire formats, with no I/O: the Avro schemas shipped in
//! `schemas/` ([`schemas`]), Rust types for them ([`events`]), the framed Avro codec
//! ([`codec`]: single-object encoding and Confluent framing) and JSON conversion ([`json`]).
//! Errors are typed and say what to do with the record ([`error`]).

pub mod codec;
pub mod error;
pub mod events;
pub mod fast;
pub mod json;
pub mod schemas;

pub use apache_avro::types::Value as AvroValue;
pub use codec::{Codec, Event, Frame, ScoreRef, WriterId, frame};
pub use error::{CodecError, Disposition};
pub use events::*;

#[cfg(test)]
mod tests;
