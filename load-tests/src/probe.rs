//! The latency probe: consumes an input topic and an output topic, matches each output to its input
//! by event id, and records end-to-end latency — from the moment the input was due to be produced
//! (header `vigil.load.scheduled.us`, else its Kafka timestamp) to the moment the output was
//! consumed — in an HDR histogram (microseconds, 3 significant digits). Each latency is also split
//! at the output's Kafka timestamp, which the system's producer stamps when it is handed the record:
//! the way to the system and through it (due → handed to the producer), and the way back (handed to
//! the producer → consumed), so that a tail can be placed on one side or the other.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;
use vigil_events::{AvroValue, Codec};
use vigil_kafka::{KafkaPlumbingError, client};
use vigil_runtime::config::KafkaConfig;

use crate::generate::SCHEDULED_HEADER;

/// Matches outputs to inputs and keeps the latency histogram.
pub struct Latencies {
    inputs: HashMap<String, i64>,
    /// Outputs read before their input: when consumed (µs) and their Kafka timestamp (ms).
    early_outputs: HashMap<String, (i64, Option<i64>)>,
    matched: std::collections::HashSet<String>,
    hist: Histogram<u64>,
    /// Due → the output's Kafka timestamp (the system handed it to its producer).
    to_output: Histogram<u64>,
    /// The output's Kafka timestamp → consumed by the probe.
    after_output: Histogram<u64>,
    /// Outputs whose event had already been matched (e.g. a challenger's score).
    pub duplicates: u64,
    first_input_us: Option<i64>,
    last_output_us: Option<i64>,
}

/// Percentiles of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Matched events.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median of the way in and through the system: due → the output handed to the system's
    /// producer (its Kafka timestamp, to the millisecond), ms.
    pub to_output_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub to_output_p99_ms: f64,
    /// Median of the way back: the output handed to the producer → consumed, ms.
    pub after_output_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub after_output_p99_ms: f64,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    /// Empty.
    pub fn new() -> Latencies {
        // 1 µs .. 1 h, 3 significant digits.
        let hist = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid histogram bounds");
        Latencies {
            inputs: HashMap::new(),
            early_outputs: HashMap::new(),
            matched: std::collections::HashSet::new(),
            hist: hist(),
            to_output: hist(),
            after_output: hist(),
            duplicates: 0,
            first_input_us: None,
            last_output_us: None,
        }
    }

    /// An input was seen, due at `produced_us`.
    pub fn input(&mut self, event_id: &str, produced_us: i64) {
        if let Some((out_us, out_ms)) = self.early_outputs.remove(event_id) {
            self.record(event_id, produced_us, out_us, out_ms);
        } else if !self.matched.contains(event_id) {
            self.inputs.insert(event_id.to_string(), produced_us);
        }
    }

    /// An output for `event_id` was consumed at `consumed_us`; `output_ms`: its Kafka timestamp.
    pub fn output(&mut self, event_id: &str, consumed_us: i64, output_ms: Option<i64>) {
        if self.matched.contains(event_id) || self.early_outputs.contains_key(event_id) {
            self.duplicates += 1;
            return;
        }
        match self.inputs.remove(event_id) {
            Some(produced_us) => self.record(event_id, produced_us, consumed_us, output_ms),
            None => {
                self.early_outputs.insert(event_id.to_string(), (consumed_us, output_ms));
            }
        }
    }

    fn record(&mut self, event_id: &str, produced_us: i64, consumed_us: i64, output_ms: Option<i64>) {
        self.matched.insert(event_id.to_string());
        self.first_input_us = Some(self.first_input_us.map_or(produced_us, |f| f.min(produced_us)));
        self.last_output_us = Some(self.last_output_us.map_or(consumed_us, |l| l.max(consumed_us)));
        let _ = self.hist.record((consumed_us - produced_us).max(1) as u64);
        if let Some(handed_us) = output_ms.map(|ms| ms * 1000) {
            let _ = self.to_output.record((handed_us - produced_us).max(1) as u64);
            let _ = self.after_output.record((consumed_us - handed_us).max(1) as u64);
        }
    }

    /// Matched events so far.
    pub fn matched(&self) -> u64 {
        self.hist.len()
    }

    /// Matched events per second, from the first matched input's production to the last matched
    /// output's consumption.
    pub fn rate(&self) -> f64 {
        match (self.first_input_us, self.last_output_us) {
            (Some(a), Some(b)) if b > a => self.matched() as f64 / ((b - a) as f64 / 1e6),
            _ => 0.0,
        }
    }

    /// When the last matched output was consumed (µs since the epoch).
    pub fn last_output_us(&self) -> Option<i64> {
        self.last_output_us
    }

    /// Inputs still waiting for their output.
    pub fn unmatched_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// The percentiles.
    pub fn percentiles(&self) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: self.hist.len(),
            p50_ms: ms(self.hist.value_at_quantile(0.5)),
            p99_ms: ms(self.hist.value_at_quantile(0.99)),
            p999_ms: ms(self.hist.value_at_quantile(0.999)),
            max_ms: ms(self.hist.max()),
            mean_ms: self.hist.mean() / 1000.0,
            to_output_p50_ms: ms(self.to_output.value_at_quantile(0.5)),
            to_output_p99_ms: ms(self.to_output.value_at_quantile(0.99)),
            after_output_p50_ms: ms(self.after_output.value_at_quantile(0.5)),
            after_output_p99_ms: ms(self.after_output.value_at_quantile(0.99)),
        }
    }
}

/// The `event_id` field of a decoded record.
pub fn event_id(codec: &Codec, payload: &[u8]) -> Option<String> {
    if payload.first() == Some(&b'{') {
        let j: serde_json::Value = serde_json::from_slice(payload).ok()?;
        return j.get("event_id")?.as_str().map(str::to_string);
    }
    if let Some(id) = codec.leading_string(payload, "event_id") {
        return Some(id.to_string());
    }
    let (value, _) = codec.decode_as_written(payload).ok()?;
    match value {
        AvroValue::Record(fields) => fields.into_iter().find(|(k, _)| k == "event_id").and_then(|(_, v)| match v {
            AvroValue::String(s) => Some(s),
            _ => None,
        }),
        _ => None,
    }
}

/// Settings of a probe run.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The input topic.
    pub input: String,
    /// The output topic.
    pub output: String,
    /// Stop once this many events are matched.
    pub expect: Option<u64>,
    /// Stop when nothing arrived for this long.
    pub idle: Duration,
    /// Stop after this long in any case.
    pub max_time: Duration,
    /// Only events whose id starts with this count (e.g. to leave a warm-up out).
    pub id_prefix: Option<String>,
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Consumes both topics from the beginning and measures.
pub async fn run(kafka: &KafkaConfig, cfg: &ProbeConfig) -> Result<Latencies, KafkaPlumbingError> {
    let group = format!("vigil-probe-{}-{}", std::process::id(), now_us());
    let mut cc = client::consumer_config(kafka, "probe", &group);
    cc.set("isolation.level", "read_committed").set("fetch.wait.max.ms", "5");
    let consumer: StreamConsumer<client::LogContext> = cc
        .create_with_context(client::LogContext)
        .map_err(|source| KafkaPlumbingError::Client { what: "creating the probe's consumer", source })?;
    // Assign every partition from the beginning rather than join a group: no rebalance delay before
    // the first record (a group join takes seconds and would be measured as latency).
    let mut tpl = TopicPartitionList::new();
    for topic in [&cfg.input, &cfg.output] {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|source| KafkaPlumbingError::Client { what: "fetching the probe's metadata", source })?;
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                    .map_err(|source| KafkaPlumbingError::Client { what: "assigning the probe", source })?;
            }
        }
    }
    consumer.assign(&tpl).map_err(|source| KafkaPlumbingError::Client { what: "assigning the probe", source })?;
    let codec = Codec::new();
    let mut lat = Latencies::new();
    let started = Instant::now();
    loop {
        if cfg.expect.is_some_and(|n| lat.matched() >= n) || started.elapsed() > cfg.max_time {
            break;
        }
        let m = match tokio::time::timeout(cfg.idle, consumer.recv()).await {
            Err(_) => break,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "probe consume error");
                continue;
            }
            Ok(Ok(m)) => m,
        };
        let consumed_us = now_us();
        let Some(payload) = m.payload() else { continue };
        let Some(id) = event_id(&codec, payload) else { continue };
        if cfg.id_prefix.as_deref().is_some_and(|p| !id.starts_with(p)) {
            continue;
        }
        if m.topic() == cfg.input {
            let scheduled = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == SCHEDULED_HEADER))
                .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse::<i64>().ok());
            let produced = scheduled.or_else(|| m.timestamp().to_millis().map(|ms| ms * 1000)).unwrap_or(consumed_us);
            lat.input(&id, produced);
        } else {
            lat.output(&id, consumed_us, m.timestamp().to_millis());
        }
    }
    Ok(lat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_latencies() {
        let mut l = Latencies::new();
        // 1000 events with latencies 1..=1000 ms, each output handed to the system's producer a
        // quarter of the way (whole milliseconds); some outputs arrive before their input is read.
        for i in 1..=1000i64 {
            let id = format!("e{i}");
            let handed_ms = Some(10_000 + i / 4);
            if i % 3 == 0 {
                l.output(&id, 10_000_000 + i * 1000, handed_ms);
                l.input(&id, 10_000_000);
            } else {
                l.input(&id, 10_000_000);
                l.output(&id, 10_000_000 + i * 1000, handed_ms);
            }
        }
        l.output("e5", 99_999_999, None); // a second output for the same event is not a new latency
        let p = l.percentiles();
        assert_eq!(p.count, 1000);
        assert_eq!(l.duplicates, 1);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(p.p50_ms, 500.0), "p50 {}", p.p50_ms);
        assert!(close(p.p99_ms, 990.0), "p99 {}", p.p99_ms);
        assert!(close(p.p999_ms, 999.0), "p999 {}", p.p999_ms);
        assert!(close(p.max_ms, 1000.0), "max {}", p.max_ms);
        assert!((p.mean_ms - 500.5).abs() < 0.5, "mean {}", p.mean_ms);
        // The split: a quarter before the output's timestamp, three quarters after.
        assert!(close(p.to_output_p99_ms, 247.0), "to output p99 {}", p.to_output_p99_ms);
        assert!(close(p.after_output_p99_ms, 743.0), "after output p99 {}", p.after_output_p99_ms);
        assert!(close(p.to_output_p50_ms, 125.0) && close(p.after_output_p50_ms, 375.0), "{p:?}");
        assert_eq!(l.unmatched_inputs(), 0);
        // 1000 events from t=10 s to t=11 s.
        assert!((l.rate() - 1000.0).abs() < 1e-6, "rate {}", l.rate());
    }

    #[test]
    fn event_ids_come_from_avro_and_json_records() {
        let codec = Codec::new();
        let label = vigil_events::Label { event_id: "abc".into(), label: 1.0, label_time: 0, source: None };
        assert_eq!(event_id(&codec, &codec.encode_event(&label).unwrap()).as_deref(), Some("abc"));
        assert_eq!(event_id(&codec, br#"{"event_id":"j1","x":1}"#).as_deref(), Some("j1"));
        assert_eq!(event_id(&codec, b"garbage"), None);
    }
}
