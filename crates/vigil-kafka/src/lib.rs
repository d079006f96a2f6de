//! Kafka plumbing shared by Vigil's services, its CLI and the load tools: client configuration
//! ([`client`]), whether the cluster answers ([`cluster`]), topic administration ([`admin`]), the commit-after-acknowledgement consume loop
//! ([`pipeline`], over [`tracker`] and [`sink`]), the loop of services that own whole models
//! ([`owned`]), live A/B tests ([`experiments`]), the models topic and the model registry folded from it ([`models`],
//! [`model_registry`]), dead letters ([`dlq`]) and the schema registry client ([`schema_registry`]).

pub mod admin;
pub mod client;
pub mod cluster;
pub mod dlq;
pub mod experiments;
pub mod input;
pub mod inputs;
pub mod lease;
pub mod model_registry;
pub mod models;
pub mod owned;
pub mod pipeline;
pub mod schema_registry;
pub mod sink;
pub mod stall;
pub mod tracker;

pub use input::Input;
pub use model_registry::ModelRegistry;
pub use pipeline::{Handler, HandlerError, Outcome, PipelineConfig};
pub use sink::Output;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Errors of the plumbing, by what the caller must do: all of them stop the loop that hit them.
#[derive(Debug, thiserror::Error)]
pub enum KafkaPlumbingError {
    /// A client operation failed.
    #[error("kafka: {what}")]
    Client {
        /// What was being done.
        what: &'static str,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// A record could not be enqueued.
    #[error("kafka: producing to {topic}")]
    Produce {
        /// The topic.
        topic: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// A delivery failed after the producer's retries.
    #[error("kafka: a delivery failed after retries: {0}")]
    Delivery(String),
    /// An admin operation failed for a topic.
    #[error("kafka admin: topic {topic}: {code}")]
    Admin {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// The handler failed.
    #[error("handler failed")]
    Handler(#[source] HandlerError),
    /// The task consuming records for the loop ended on its own (it panicked).
    #[error("kafka: the task consuming records stopped")]
    FetchStopped,
    /// A lock was poisoned by a panic elsewhere.
    #[error("internal state poisoned by an earlier panic")]
    Poisoned,
}

impl KafkaPlumbingError {
    /// Whether a read from the cluster failed (metadata, watermarks, the models topic): the cluster
    /// may be away, and the same read may answer later ([`cluster::when_reachable`] tries again).
    /// Every such error of this crate names its step "reading …"; writes, local errors and broken
    /// contracts (a models topic with two partitions) are not reads.
    pub fn is_failed_read(&self) -> bool {
        matches!(self, Self::Client { what, .. } if what.starts_with("reading"))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
