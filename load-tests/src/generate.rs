//! The generator: takes records from a source and produces them to Kafka on an open-loop schedule
//! (event `i` is due at `start + i / rate`, whether or not the system under test keeps up, so queueing
//! delay shows up in the measured latency instead of slowing the load down), or as fast as possible.
//! Runs are bounded by an event count and a duration. Labels are produced to the label topic when
//! their delay has passed.
//!
//! Every record carries the header `vigil.load.scheduled.us`: the wall-clock microsecond it was due,
//! which the latency probe measures from. Its Kafka timestamp is the same instant in milliseconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_events::{Codec, Label, TextEvent};
use vigil_kafka::sink::{Output, Sink};
use vigil_kafka::tracker::Tracker;
use vigil_kafka::{KafkaPlumbingError, client};
use vigil_runtime::config::KafkaConfig;

/// How long the end of a run waits for its last records to be acknowledged (a broker away for
/// minutes is waited out).
const FLUSH_LIMIT: Duration = Duration::from_secs(900);

use crate::sim::dist::Dist;
use crate::sim::fraud::FraudSim;
use crate::sim::labels::LabelDelays;
use crate::sim::replay::Row;
use crate::sim::text::TextSim;

/// Header with the microsecond a record was due.
pub const SCHEDULED_HEADER: &str = "vigil.load.scheduled.us";

/// One record to produce, and its label if it gets one.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The event id (labels refer to it).
    pub event_id: String,
    /// Kafka key.
    pub key: Option<Vec<u8>>,
    /// Encoded value.
    pub payload: Vec<u8>,
    /// The true label.
    pub label: Option<f64>,
    /// What the label source is called (`chargeback`, `rating`, …).
    pub label_source: &'static str,
    /// Whether the event is fraud (for summaries).
    pub positive: bool,
}

/// Where records come from.
pub trait Source: Send {
    /// The next record, or `None` when the source is exhausted.
    fn next_item(&mut self) -> Option<Item>;
}

/// Card transactions from the fraud simulator, as Avro.
pub struct FraudSource {
    /// The simulator.
    pub sim: FraudSim,
    /// The codec.
    pub codec: Arc<Codec>,
}

impl Source for FraudSource {
    fn next_item(&mut self) -> Option<Item> {
        let s = self.sim.transaction();
        let payload = self.codec.encode_event(&s.tx).ok()?;
        Some(Item {
            event_id: s.tx.event_id.clone(),
            key: Some(s.tx.account_id.into_bytes()),
            payload,
            label: Some(if s.fraud { 1.0 } else { 0.0 }),
            label_source: if s.fraud { "chargeback" } else { "settled" },
            positive: s.fraud,
        })
    }
}

/// Texts with sentiment labels, as Avro `TextEvent`s.
pub struct TextSource {
    /// The simulator.
    pub sim: TextSim,
    /// The codec.
    pub codec: Arc<Codec>,
    /// Prefix of event ids.
    pub id_prefix: String,
    /// Business clock of the first text (epoch ms); texts are 1 s apart.
    pub start_time_ms: i64,
    /// Texts so far.
    pub i: u64,
}

impl Source for TextSource {
    fn next_item(&mut self) -> Option<Item> {
        let t = self.sim.text();
        let event = TextEvent {
            event_id: format!("{}-{}", self.id_prefix, self.i),
            event_time: self.start_time_ms + self.i as i64 * 1000,
            source: t.source,
            text: t.text,
            language: Some("en".into()),
            author_id: None,
        };
        self.i += 1;
        Some(Item {
            event_id: event.event_id.clone(),
            key: Some(event.event_id.clone().into_bytes()),
            payload: self.codec.encode_event(&event).ok()?,
            label: Some(t.label),
            label_source: "rating",
            positive: t.label == 1.0,
        })
    }
}

/// Rows of a CSV file, as JSON records.
pub struct ReplaySource {
    /// The rows, in file order.
    pub rows: std::vec::IntoIter<Row>,
    /// With the records' schema (its full name in the codec): Avro records; without: JSON.
    pub avro: Option<(Arc<Codec>, String)>,
}

impl ReplaySource {
    fn payload(&self, r: &Row) -> Option<Vec<u8>> {
        let Some((codec, name)) = &self.avro else { return Some(r.record.to_string().into_bytes()) };
        let schema = codec.schema(name).ok()?;
        let value = vigil_events::json::from_json(&r.record, schema)
            .map_err(|e| tracing::warn!(event = %r.event_id, error = %e, "a row does not fit the schema; skipped"))
            .ok()?;
        codec.encode_value(name, &value).ok()
    }
}

impl Source for ReplaySource {
    fn next_item(&mut self) -> Option<Item> {
        let r = self.rows.next()?;
        Some(Item {
            key: Some(r.event_id.clone().into_bytes()),
            payload: self.payload(&r)?,
            event_id: r.event_id,
            label: Some(r.label),
            label_source: "dataset",
            positive: r.label == 1.0,
        })
    }
}

/// The same payload again and again (the raw-rate baseline).
pub struct RawSource {
    /// The payload.
    pub payload: Vec<u8>,
    /// Records so far.
    pub i: u64,
}

impl Source for RawSource {
    fn next_item(&mut self) -> Option<Item> {
        self.i += 1;
        Some(Item {
            event_id: self.i.to_string(),
            key: None,
            payload: self.payload.clone(),
            label: None,
            label_source: "",
            positive: false,
        })
    }
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Topic for the records.
    pub topic: String,
    /// Topic for the labels (none: no labels).
    pub labels_topic: Option<String>,
    /// Records per second; `None` for as fast as possible.
    pub rate: Option<f64>,
    /// Stop after this many records.
    pub max_events: Option<u64>,
    /// Stop after this long (schedule time at a fixed rate, wall time otherwise).
    pub duration: Option<Duration>,
    /// Label delays.
    pub delays: LabelDelays,
    /// Seed of the label delays.
    pub seed: u64,
    /// After the last record, keep producing labels that fall due within this long.
    pub label_grace: Duration,
}

/// Counters of a run, readable while it goes.
#[derive(Debug, Default)]
pub struct Progress {
    /// Records produced.
    pub events: AtomicU64,
    /// Labels produced.
    pub labels: AtomicU64,
    /// Positive records (fraud) produced.
    pub positives: AtomicU64,
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Records produced.
    pub events: u64,
    /// Labels produced.
    pub labels: u64,
    /// Labels still pending when the run ended (their delay had not passed).
    pub labels_not_sent: u64,
    /// Positive records.
    pub positives: u64,
    /// Wall-clock seconds from the first record to the last acknowledgement.
    pub elapsed_s: f64,
    /// Records per second over that time.
    pub events_per_s: f64,
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Runs `source` into Kafka per `cfg`.
pub async fn run(
    kafka: &KafkaConfig,
    source: &mut dyn Source,
    cfg: &RunConfig,
    codec: &Codec,
    progress: Arc<Progress>,
) -> Result<Summary, KafkaPlumbingError> {
    // The generator is a test tool, not the system under test: it produces with acks=all but without
    // idempotence, whose producer-id handshake would hold the first half second of records back and
    // be measured as the system's latency (seen: p99 430 ms at 2,000/s, 12 ms without).
    // Like the services, it never gives a record up while the broker is away (the fault table
    // holds the broker away for longer than librdkafka's default five minutes).
    let mut producer = client::service_producer_config(kafka, "load");
    producer.set("enable.idempotence", "false");
    let sink = Sink::new(&producer, Arc::new(Mutex::new(Tracker::new())))?;
    // Connect before the schedule's clock starts.
    warm_up(&sink, &cfg.topic)?;
    if let Some(labels) = &cfg.labels_topic {
        warm_up(&sink, labels)?;
    }
    let mut delays = Dist::new(cfg.seed ^ 0x001a_be15);
    let mut pending: BinaryHeap<Reverse<(i64, u64, String, u64)>> = BinaryHeap::new(); // (due µs, seq, event id, label bits)
    let start = Instant::now();
    let start_us = now_us();
    let mut i: u64 = 0;
    let mut label_seq = 0u64;
    loop {
        if cfg.max_events.is_some_and(|m| i >= m) {
            break;
        }
        let offset_us = cfg.rate.map(|r| (i as f64 * 1e6 / r) as i64);
        let elapsed = match offset_us {
            Some(off) => Duration::from_micros(off as u64),
            None => start.elapsed(),
        };
        if cfg.duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        if let Some(off) = offset_us {
            let due = start + Duration::from_micros(off as u64);
            if due > Instant::now() + Duration::from_millis(1) {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let Some(item) = source.next_item() else { break };
        let scheduled_us = offset_us.map(|o| start_us + o).unwrap_or_else(now_us);
        // Labels due by this record's schedule time go first: at a fixed rate the interleaving of
        // records and labels, and the order of the labels, follow the schedule, not the wall clock.
        send_due_labels(&sink, cfg, codec, &mut pending, scheduled_us, &progress).await?;
        let output = Output {
            topic: cfg.topic.clone(),
            key: item.key,
            payload: item.payload,
            headers: vec![(SCHEDULED_HEADER.into(), scheduled_us.to_string().into_bytes())],
            timestamp: Some(scheduled_us / 1000),
        };
        sink.send(&output, None).await?;
        progress.events.fetch_add(1, Ordering::Relaxed);
        if item.positive {
            progress.positives.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(label), Some(_)) = (item.label, &cfg.labels_topic)
            && let Some(delay_ms) = cfg.delays.draw(&mut delays)
        {
            label_seq += 1;
            let due = scheduled_us + delay_ms as i64 * 1000;
            pending.push(Reverse((
                due,
                label_seq,
                format!("{}\u{0}{}", item.event_id, item.label_source),
                label.to_bits(),
            )));
        }
        i += 1;
    }
    // Labels that fall due within the grace period.
    let end_us = now_us() + cfg.label_grace.as_micros() as i64;
    while let Some(Reverse((due, ..))) = pending.peek() {
        if *due > end_us {
            break;
        }
        let wait = (*due - now_us()).max(0) as u64;
        tokio::time::sleep(Duration::from_micros(wait)).await;
        send_due_labels(&sink, cfg, codec, &mut pending, now_us(), &progress).await?;
    }
    sink.flush(FLUSH_LIMIT)?;
    if sink.failures().count() > 0 {
        return Err(KafkaPlumbingError::Delivery(sink.failures().last().unwrap_or_default()));
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let events = progress.events.load(Ordering::Relaxed);
    Ok(Summary {
        events,
        labels: progress.labels.load(Ordering::Relaxed),
        labels_not_sent: pending.len() as u64,
        positives: progress.positives.load(Ordering::Relaxed),
        elapsed_s,
        events_per_s: events as f64 / elapsed_s.max(1e-9),
    })
}

fn warm_up(sink: &Sink, topic: &str) -> Result<(), KafkaPlumbingError> {
    use rdkafka::producer::Producer;
    sink.producer()
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .map_err(|source| KafkaPlumbingError::Client { what: "fetching metadata before producing", source })?;
    Ok(())
}

async fn send_due_labels(
    sink: &Sink,
    cfg: &RunConfig,
    codec: &Codec,
    pending: &mut BinaryHeap<Reverse<(i64, u64, String, u64)>>,
    now: i64,
    progress: &Progress,
) -> Result<(), KafkaPlumbingError> {
    let Some(topic) = &cfg.labels_topic else { return Ok(()) };
    while let Some(Reverse((due, ..))) = pending.peek() {
        if *due > now {
            break;
        }
        let Some(Reverse((due, _, id_source, bits))) = pending.pop() else { break };
        let (event_id, source) = id_source.split_once('\u{0}').unwrap_or((&id_source, ""));
        let label = Label {
            event_id: event_id.to_string(),
            label: f64::from_bits(bits),
            label_time: due / 1000,
            source: (!source.is_empty()).then(|| source.to_string()),
        };
        let payload = codec.encode_event(&label).map_err(|e| KafkaPlumbingError::Delivery(e.to_string()))?;
        let output = Output {
            topic: topic.clone(),
            key: Some(label.event_id.into_bytes()),
            payload,
            headers: vec![(SCHEDULED_HEADER.into(), due.to_string().into_bytes())],
            timestamp: Some(due / 1000),
        };
        sink.send(&output, None).await?;
        progress.labels.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
