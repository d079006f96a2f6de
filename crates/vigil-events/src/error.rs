//! Typed codec errors, classified by what the caller must do with the record.

use crate::schemas::Fingerprint;

/// What a consumer does with a record that failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The bytes are bad: send the record to the dead-letter topic and carry on.
    DeadLetter,
    /// The schema is not known yet: fetch it (from the registry) and decode again.
    FetchSchema,
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The first bytes are neither Avro single-object encoding (`C3 01`) nor Confluent framing (`00`).
    #[error(
        "bad magic byte 0x{found:02x} at offset {offset}: neither Avro single-object (C3 01) nor Confluent (00) framing"
    )]
    BadMagic {
        /// The byte found.
        found: u8,
        /// Where it was found (0 or 1).
        offset: usize,
    },
    /// The record ends before its header or body does.
    #[error("truncated record: {what}")]
    Truncated {
        /// What was being read.
        what: String,
    },
    /// Single-object encoding with a fingerprint of no known schema.
    #[error("unknown schema fingerprint {}", hex(.0))]
    UnknownFingerprint(Fingerprint),
    /// Confluent framing with a schema id not fetched from the registry (yet).
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),
    /// A schema name Vigil does not know.
    #[error("unknown schema `{0}`")]
    UnknownSchema(String),
    /// The body does not decode with the writer schema, or does not resolve to the reader schema.
    #[error("record does not match schema {schema}: {detail}")]
    SchemaMismatch {
        /// The schema involved.
        schema: String,
        /// What did not match.
        detail: String,
        /// The Avro library's error, when it produced one.
        #[source]
        source: Option<apache_avro::Error>,
    },
    /// A JSON record does not fit the schema.
    #[error("json record does not fit {schema} at {path}: {reason}")]
    Json {
        /// The schema's full name.
        schema: String,
        /// Where in the record (e.g. `$.amount`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A schema text could not be parsed.
    #[error("invalid Avro schema")]
    InvalidSchema(#[source] apache_avro::Error),
}

impl CodecError {
    /// What the caller should do with the record.
    pub fn disposition(&self) -> Disposition {
        match self {
            CodecError::UnknownSchemaId(_) => Disposition::FetchSchema,
            _ => Disposition::DeadLetter,
        }
    }

    /// A short stable name for metrics labels and dead-letter headers.
    pub fn kind(&self) -> &'static str {
        match self {
            CodecError::BadMagic { .. } => "bad-magic",
            CodecError::Truncated { .. } => "truncated",
            CodecError::UnknownFingerprint(_) => "unknown-fingerprint",
            CodecError::UnknownSchemaId(_) => "unknown-schema-id",
            CodecError::UnknownSchema(_) => "unknown-schema",
            CodecError::SchemaMismatch { .. } => "schema-mismatch",
            CodecError::Json { .. } => "json",
            CodecError::InvalidSchema(_) => "invalid-schema",
        }
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
