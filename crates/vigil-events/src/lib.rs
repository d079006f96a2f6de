//! Vigil's event contracts and their wire formats, with no I/O: the Avro schemas shipped in
//! `schemas/` ([`schemas`]), Rust types for them ([`events`]), the framed Avro codec
//! ([`codec`]: single-object encoding and Confluent framing), JSON conversion ([`json`]) and the
//! one way every service reads the fields it wants from an input record ([`reader`]).
//! Errors are typed and say what to do with the record ([`error`]).

pub mod codec;
pub mod error;
pub mod events;
pub mod fast;
pub mod json;
pub mod reader;
pub mod schemas;

pub use apache_avro::types::Value as AvroValue;
pub use codec::{Codec, Event, Frame, ScoreRef, Wanted, WriterId, frame};
pub use error::{CodecError, Disposition};
pub use events::*;
pub use fast::Field;
pub use reader::{Encoding, RecordReader};

#[cfg(test)]
mod tests;
