//! Whether the Kafka cluster answers, for readiness: a watcher thread asks for one topic's metadata
//! every second; while the request fails the service's `/readyz` says the cluster is away (the
//! service keeps its state and waits: its producers never give a record up, its consumers resume
//! where they were), and once it answers again readiness is the service's own again. A start-up
//! read that fails while the cluster is away is tried again ([`when_reachable`]) instead of stopping
//! the service.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;
use vigil_runtime::config::KafkaConfig;
use vigil_runtime::metrics::Health;

use crate::KafkaPlumbingError;
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

/// Runs `read` until it does not fail on a read from the cluster ([`KafkaPlumbingError::is_failed_read`]):
/// a service started during an outage waits for the cluster instead of stopping (CI saw a learner
/// stop on a metadata read that timed out while the broker was down, and never come back). Such a
/// failure is tried again every second, logged once (the watch above reports the outage too);
/// anything else is returned. `None` when `shutdown` comes first. Blocks: call from a blocking thread.
pub fn when_reachable<T>(
    shutdown: &CancellationToken,
    mut read: impl FnMut() -> Result<T, KafkaPlumbingError>,
) -> Result<Option<T>, KafkaPlumbingError> {
    let started = std::time::Instant::now();
    let mut failed = false;
    loop {
        match read() {
            Err(e) if e.is_failed_read() => {
                if !failed {
                    let error = vigil_runtime::error_chain(&e);
                    tracing::warn!(error, "the Kafka cluster does not answer; trying again every second");
                }
                failed = true;
            }
            other => {
                if failed {
                    tracing::info!(waited_s = started.elapsed().as_secs(), "the Kafka cluster answers; starting");
                }
                return other.map(Some);
            }
        }
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use vigil_events::Codec;

    use super::*;

    fn timed_out(what: &'static str) -> KafkaPlumbingError {
        KafkaPlumbingError::Client { what, source: KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut) }
    }

    /// Replaying the models topic from a cluster that does not answer (nothing listens on the
    /// address) fails as a read, which a start-up waits out; other failures are not reads.
    #[test]
    fn a_models_topic_that_does_not_answer_is_a_failed_read() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let kafka = KafkaConfig { bootstrap_servers: format!("127.0.0.1:{port}"), ..KafkaConfig::default() };
        let error = crate::models::read_to_end(&kafka, "vigil.models", &Codec::new()).unwrap_err();
        assert!(error.is_failed_read(), "{error}");
        assert!(!KafkaPlumbingError::Delivery("the models topic has 2 partitions".into()).is_failed_read());
        assert!(!timed_out("creating the models reader").is_failed_read());
    }

    /// Failed reads are tried again until one answers; any other error ends the wait at once.
    #[test]
    fn the_wait_ends_at_the_first_answer_or_another_error() {
        let shutdown = CancellationToken::new();
        let mut tries = 0;
        let answered = when_reachable(&shutdown, || {
            tries += 1;
            if tries < 3 { Err(timed_out("reading metadata")) } else { Ok(tries) }
        });
        assert_eq!(answered.unwrap(), Some(3));
        let mut tries = 0;
        let refused = when_reachable(&shutdown, || -> Result<(), _> {
            tries += 1;
            Err(KafkaPlumbingError::Delivery("broken".into()))
        });
        assert!(matches!(refused, Err(KafkaPlumbingError::Delivery(_))));
        assert_eq!(tries, 1, "not a read: not tried again");
    }
}
