//! The output side of a consume → produce loop: an idempotent producer whose delivery reports mark
//! inputs done in the shared [`Tracker`], so that offsets are committed only after their outputs are
//! acknowledged. A full producer queue is back-pressure: `send` waits, memory does not grow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::tracker::{Ticket, Tracker};
use crate::{KafkaPlumbingError, client};

/// One record to produce.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Destination topic.
    pub topic: String,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes; empty: a null value (a tombstone on a compacted topic).
    pub payload: Vec<u8>,
    /// Headers as (name, value).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Record timestamp (epoch ms); the producer's clock when `None`.
    pub timestamp: Option<i64>,
}

/// Delivery failures seen by the producer's callback, for the loop to act on.
#[derive(Debug, Default)]
pub struct Failures {
    count: AtomicU64,
    last: Mutex<Option<String>>,
}

impl Failures {
    /// Number of failed deliveries so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// The last failure's description.
    pub fn last(&self) -> Option<String> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

/// Producer context: acknowledgements go to the tracker, failures are recorded.
pub struct SinkContext {
    tracker: Arc<Mutex<Tracker>>,
    failures: Arc<Failures>,
    acked: Arc<AtomicU64>,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        client::log_line(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Box<Option<Ticket>>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                if let Some(ticket) = ticket.as_ref()
                    && let Ok(mut t) = self.tracker.lock()
                {
                    t.ack(ticket);
                }
            }
            Err((e, _)) => {
                // The idempotent producer has retried until delivery.timeout.ms: the input stays
                // uncommitted, and the loop stops so that a restart consumes it again.
                let n = self.failures.count.fetch_add(1, Ordering::SeqCst) + 1;
                if let Ok(mut last) = self.failures.last.lock() {
                    *last = Some(e.to_string());
                }
                // The 1st, 2nd, 4th, 8th… failure is logged: a purged queue of 100,000 records at
                // shutdown is 17 lines, not 100,000.
                if n.is_power_of_two() {
                    tracing::error!(error = %e, failures = n, "delivery failed; its input will not be committed");
                }
            }
        }
    }
}

fn queue_full_at_shutdown(output: &Output) -> KafkaPlumbingError {
    KafkaPlumbingError::Delivery(format!(
        "shutting down with the producer's queue full: a record for {} was not sent",
        output.topic
    ))
}

/// An idempotent producer tied to a tracker.
pub struct Sink {
    producer: Arc<ThreadedProducer<SinkContext>>,
    failures: Arc<Failures>,
    acked: Arc<AtomicU64>,
    /// Waits for room in a full producer queue.
    pub full_waits: AtomicU64,
}

impl Sink {
    /// Creates the producer from `config` (see [`client::producer_config`]).
    pub fn new(config: &ClientConfig, tracker: Arc<Mutex<Tracker>>) -> Result<Sink, KafkaPlumbingError> {
        let failures = Arc::new(Failures::default());
        let acked = Arc::new(AtomicU64::new(0));
        let context = SinkContext { tracker, failures: failures.clone(), acked: acked.clone() };
        let producer = config
            .create_with_context(context)
            .map_err(|source| KafkaPlumbingError::Client { what: "creating a producer", source })?;
        Ok(Sink { producer: Arc::new(producer), failures, acked, full_waits: AtomicU64::new(0) })
    }

    /// Enqueues `output`; its acknowledgement acks `ticket` in the tracker. Waits while the
    /// producer's queue is full.
    pub async fn send(&self, output: &Output, ticket: Option<Ticket>) -> Result<(), KafkaPlumbingError> {
        let mut opaque = Box::new(ticket);
        loop {
            match self.enqueue(output, opaque)? {
                None => return Ok(()),
                Some(back) => {
                    opaque = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }

    /// [`Sink::send`] unless `shutdown` is cancelled while the queue is full (then the record is not
    /// enqueued and the call fails: stopping never waits on a queue a broker outage keeps full).
    pub async fn send_until(
        &self,
        output: &Output,
        ticket: Option<Ticket>,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<(), KafkaPlumbingError> {
        let mut opaque = Box::new(ticket);
        while let Some(back) = self.enqueue_unless_stopping(output, opaque, shutdown)? {
            opaque = back;
            self.full_waits.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// [`Sink::send`] for a blocking thread: waits while the queue is full, unless `shutdown` is
    /// cancelled (then the record is not enqueued and the call fails, so that stopping never spins
    /// on a queue a broker outage keeps full).
    pub fn send_blocking(
        &self,
        output: &Output,
        ticket: Option<Ticket>,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<(), KafkaPlumbingError> {
        let mut opaque = Box::new(ticket);
        while let Some(back) = self.enqueue_unless_stopping(output, opaque, shutdown)? {
            opaque = back;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Enqueues once; with the queue full, gives the opaque back to wait and retry, or fails when
    /// `shutdown` is cancelled.
    fn enqueue_unless_stopping(
        &self,
        output: &Output,
        opaque: Box<Option<Ticket>>,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<Option<Box<Option<Ticket>>>, KafkaPlumbingError> {
        match self.enqueue(output, opaque)? {
            Some(_) if shutdown.is_cancelled() => Err(queue_full_at_shutdown(output)),
            back => Ok(back),
        }
    }

    /// Enqueues once; gives the opaque back when the queue is full.
    fn enqueue(
        &self,
        output: &Output,
        opaque: Box<Option<Ticket>>,
    ) -> Result<Option<Box<Option<Ticket>>>, KafkaPlumbingError> {
        let mut record: BaseRecord<'_, [u8], [u8], Box<Option<Ticket>>> =
            BaseRecord::with_opaque_to(&output.topic, opaque);
        if !output.payload.is_empty() {
            record = record.payload(&output.payload[..]);
        }
        if let Some(k) = &output.key {
            record = record.key(&k[..]);
        }
        if let Some(ts) = output.timestamp {
            record = record.timestamp(ts);
        }
        if !output.headers.is_empty() {
            let mut h = OwnedHeaders::new_with_capacity(output.headers.len());
            for (name, value) in &output.headers {
                h = h.insert(Header { key: name, value: Some(&value[..]) });
            }
            record = record.headers(h);
        }
        match self.producer.send(record) {
            Ok(()) => Ok(None),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => Ok(Some(back.delivery_opaque)),
            Err((source, _)) => Err(KafkaPlumbingError::Produce { topic: output.topic.clone(), source }),
        }
    }

    /// Failed deliveries so far.
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    /// Acknowledged deliveries so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until every enqueued record is delivered or failed, at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaPlumbingError> {
        self.producer
            .flush(timeout)
            .map_err(|source| KafkaPlumbingError::Client { what: "flushing the producer", source })
    }

    /// The underlying producer (transactions use it directly).
    pub fn producer(&self) -> &ThreadedProducer<SinkContext> {
        &self.producer
    }

    /// A shared handle on the producer (the consumer's rebalance callback commits transactions).
    pub fn shared(&self) -> Arc<ThreadedProducer<SinkContext>> {
        self.producer.clone()
    }
}
