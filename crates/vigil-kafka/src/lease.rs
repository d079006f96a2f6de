//! One active instance per set of models: a lease held through a Kafka consumer group. Instances of
//! the learner (or the drift service) with the same group id join that group, subscribed to the
//! models topic, which has one partition: the member assigned it holds the lease and works, the
//! others stand by (not ready) and take over when the holder leaves or stops heartbeating (within
//! the session timeout). The group is an ordinary consumer group: `kafka-consumer-groups.sh
//! --describe` lists the instances.
//!
//! The lease consumer never reads: what it is assigned is paused. Assignment is cooperative-sticky,
//! so a rebalance that keeps the lease with this instance (a broker restarted, a member joined)
//! changes nothing; an assignment without it means another instance holds it now, and this one must stop writing (its writes are fenced by
//! the transactional id the holders share, see [`crate::owned`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;
use vigil_runtime::config::KafkaConfig;

use crate::{KafkaPlumbingError, client};

/// Where the lease lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The group of the instances that share it (stable across restarts).
    pub group: String,
    /// The topic whose partition 0 is the lease (the models topic: one partition).
    pub topic: String,
    /// How long a silent holder keeps it.
    pub session_timeout: Duration,
}

/// Whether this instance holds the lease, as the last assignment said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// No assignment yet, or taken back and not handed out again yet.
    Unknown,
    /// Partition 0 is ours.
    Yes,
    /// Another member has it.
    No,
}

struct LeaseContext {
    topic: String,
    held: Arc<Mutex<Held>>,
}

impl ClientContext for LeaseContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        client::log_line(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
    }
}

impl ConsumerContext for LeaseContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Cooperative rebalances hand out and take back partitions incrementally: the whole
        // assignment after the change says who holds partition 0.
        let ours = consumer
            .assignment()
            .map(|tpl| tpl.elements().iter().any(|e| e.topic() == self.topic && e.partition() == 0))
            .unwrap_or(false);
        // A revocation alone (the session lost while the broker was away) does not say another
        // instance holds the lease: if one does, its transactional id fences this one's writes.
        let now = match (ours, rebalance) {
            (true, _) => Held::Yes,
            (false, Rebalance::Revoke(_)) => Held::Unknown,
            (false, _) => Held::No,
        };
        if let Ok(mut h) = self.held.lock() {
            *h = now;
        }
        if let Rebalance::Assign(tpl) = rebalance {
            // Membership only: nothing is fetched.
            let _ = consumer.pause(tpl);
        }
    }
}

/// A lease being held or waited for.
pub struct Lease {
    consumer: BaseConsumer<LeaseContext>,
    held: Arc<Mutex<Held>>,
    topic: String,
}

impl Lease {
    /// Joins the lease group.
    pub fn join(kafka: &KafkaConfig, service: &str, cfg: &LeaseConfig) -> Result<Lease, KafkaPlumbingError> {
        let held = Arc::new(Mutex::new(Held::Unknown));
        let context = LeaseContext { topic: cfg.topic.clone(), held: held.clone() };
        let mut c = client::base_config(kafka, &format!("{service}-lease"));
        c.set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            // Sticky: a member that joins does not take the lease from its holder.
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", cfg.session_timeout.as_millis().to_string())
            // A holder whose round waits for a broker that is away keeps the lease (liveness is the
            // session's heartbeats, which run on their own thread): the longest interval allowed.
            .set("max.poll.interval.ms", "86400000")
            .set("heartbeat.interval.ms", (cfg.session_timeout.as_millis() / 5).max(100).to_string());
        let consumer: BaseConsumer<LeaseContext> = c
            .create_with_context(context)
            .map_err(|source| KafkaPlumbingError::Client { what: "creating the lease consumer", source })?;
        consumer
            .subscribe(&[&cfg.topic])
            .map_err(|source| KafkaPlumbingError::Client { what: "joining the lease group", source })?;
        Ok(Lease { consumer, held, topic: cfg.topic.clone() })
    }

    /// Keeps the membership alive (call every round) and says whether the lease is ours.
    pub fn poll(&self) -> Held {
        // Paused partitions return nothing; the call runs heartbeats and rebalance callbacks.
        self.poll_for(Duration::ZERO)
    }

    /// Polls once (waiting at most `wait`), then reads the state the rebalance callbacks left.
    fn poll_for(&self, wait: Duration) -> Held {
        let _ = self.consumer.poll(wait);
        self.held.lock().map(|h| *h).unwrap_or(Held::Unknown)
    }

    /// Whether the lease is still ours after polling for `within` (a session timeout: long enough
    /// for a heartbeat to learn that the group moved on) with no revocation in between. A holder
    /// that was stopped or cut off asks this before it acts as the holder again.
    pub fn confirm(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.poll_for(Duration::from_millis(100)) != Held::Yes {
                return false;
            }
        }
        true
    }

    /// Waits until the lease is ours (true) or `shutdown` (false), calling `standing_by` once
    /// another member is seen to hold it.
    pub fn acquire(&self, shutdown: &CancellationToken, mut standing_by: impl FnMut()) -> bool {
        let mut told = false;
        let since = Instant::now();
        while !shutdown.is_cancelled() {
            match self.poll_for(Duration::from_millis(100)) {
                Held::Yes => {
                    tracing::info!(topic = %self.topic, waited_s = since.elapsed().as_secs_f64(), "holding the lease");
                    return true;
                }
                Held::No if !told => {
                    tracing::info!(topic = %self.topic, "another instance holds the lease; standing by");
                    standing_by();
                    told = true;
                }
                _ => {}
            }
        }
        false
    }
}
