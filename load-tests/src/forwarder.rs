//! The forwarder baseline (B0): consumes a topic and produces the same bytes (key, value, headers) to
//! another, committing after acknowledgement, through the very loop and client settings the scorer
//! uses. Whatever the scorer costs beyond it is decoding, featurising, inference and encoding.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vigil_kafka::pipeline::{self, Counters, Handler, HandlerError, Outcome, PipelineConfig, Summary};
use vigil_kafka::{Input, KafkaPlumbingError, Output};
use vigil_runtime::config::KafkaConfig;

/// Forwards every input unchanged to `output`.
pub struct Forward {
    /// Destination topic.
    pub output: String,
}

impl Handler for Forward {
    async fn handle(&mut self, batch: &[Input]) -> Result<Vec<Outcome>, HandlerError> {
        Ok(batch
            .iter()
            .map(|i| {
                Outcome::Produce(vec![Output {
                    topic: self.output.clone(),
                    key: i.key.clone(),
                    payload: i.payload.clone().unwrap_or_default(),
                    headers: i.headers.clone(),
                    timestamp: None,
                }])
            })
            .collect())
    }
}

/// Runs the forwarder until `shutdown`.
pub async fn run(
    kafka: &KafkaConfig,
    cfg: &PipelineConfig,
    output: &str,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) -> Result<Summary, KafkaPlumbingError> {
    let mut handler = Forward { output: output.to_string() };
    pipeline::run(kafka, cfg, &mut handler, counters, shutdown).await
}
