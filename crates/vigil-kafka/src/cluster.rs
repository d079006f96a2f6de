//! Whether the Kafka cluster answers, for readiness: a watcher thread asks for one topic's metadata
//! every second; while the request fails the service's `/readyz` says the cluster is away (the
//! service keeps its state and waits: its producers never give a record up, its consumers resume
//! where they were), and once it answers again readiness is the service's own again.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;
use vigil_runtime::config::KafkaConfig;
use vigil_runtime::metrics::Health;

use crate::client::{self, LogContext};

/// How often the cluster is asked.
const PERIOD: Duration = Duration::from_secs(1);
/// An answer slower than this counts as no answer (well above a slow network's few hundred ms).
const PATIENCE: Duration = Duration::from_secs(3);

/// Watches the cluster behind `kafka` until `shutdown`, asking for `topic`'s metadata, and records
/// in `health` whether it answers. The thread ends at shutdown.
pub fn watch(kafka: &KafkaConfig, topic: &str, health: Arc<Health>, shutdown: CancellationToken) -> JoinHandle<()> {
    let config = client::base_config(kafka, "watch");
    let topic = topic.to_string();
    std::thread::spawn(move || {
        let consumer: BaseConsumer<LogContext> = match config.create_with_context(LogContext) {
            Ok(c) => c,
            Err(e) => return tracing::warn!(error = %e, "cannot watch the Kafka cluster"),
        };
        let mut away = false;
        while !shutdown.is_cancelled() {
            let answer = consumer.fetch_metadata(Some(&topic), PATIENCE);
            match (&answer, away) {
                (Err(e), false) => {
                    tracing::warn!(error = %e, "the Kafka cluster does not answer: not ready until it does");
                    health.set_cluster(Some(format!("the Kafka cluster does not answer ({e})")));
                }
                (Ok(_), true) => {
                    tracing::info!("the Kafka cluster answers again");
                    health.set_cluster(None);
                }
                _ => {}
            }
            away = answer.is_err();
            let until = std::time::Instant::now() + PERIOD;
            while !shutdown.is_cancelled() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}
