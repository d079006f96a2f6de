//! The scorer's metrics and the log lines that go with them, defined in one place. Names follow
//! `vigil_scorer_<name>_<unit>`; counters end in `_total` (the exporter adds it).

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use vigil_kafka::pipeline::Counters;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Every metric of the scorer.
pub struct Metrics {
    events: Family<Labels, Counter>,
    scores: Family<Labels, Counter>,
    dead_letters: Family<Labels, Counter>,
    batch_size: Histogram,
    inference: Family<Labels, Histogram>,
    latency: Histogram,
    model_version: Family<Labels, Gauge>,
    rejected: Family<Labels, Counter>,
    /// Consumer lag (records behind the partitions' ends), updated from librdkafka statistics.
    pub lag: Gauge,
    /// The pipeline's own counters (consumed, produced, commits, aborts).
    pub pipeline: Arc<Counters>,
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            events: Family::default(),
            scores: Family::default(),
            dead_letters: Family::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            inference: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_05, 2.0, 16))),
            latency: Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            model_version: Family::default(),
            rejected: Family::default(),
            lag: Gauge::default(),
            pipeline: Arc::new(Counters::default()),
        };
        let r = registry.sub_registry_with_prefix("vigil_scorer");
        r.register("events", "Input records consumed, by topic", m.events.clone());
        r.register("scores", "Scores produced, by model and variant", m.scores.clone());
        r.register("dead_letters", "Records sent to the dead-letter topic, by stage and kind", m.dead_letters.clone());
        r.register("batch_size_records", "Records per micro-batch", m.batch_size.clone());
        r.register("inference_seconds", "ONNX Runtime time per micro-batch, by model", m.inference.clone());
        r.register("end_to_end_latency_seconds", "Input record timestamp to score, seconds", m.latency.clone());
        r.register("model_version", "Model version in use, by model and variant", m.model_version.clone());
        r.register("models_rejected", "Checkpoints refused by validation, by model", m.rejected.clone());
        r.register("consumer_lag_records", "Records behind the input partitions' ends", m.lag.clone());
        m
    }

    /// A micro-batch of `n` records from `topic` arrived.
    pub fn batch(&self, n: usize) {
        self.batch_size.observe(n as f64);
    }

    /// Records from `topic` consumed.
    pub fn consumed(&self, topic: &str, n: u64) {
        self.events.get_or_create(&labels(&[("topic", topic)])).inc_by(n);
    }

    /// Scores produced.
    pub fn scored(&self, model: &str, variant: &str, n: u64) {
        self.scores.get_or_create(&labels(&[("model", model), ("variant", variant)])).inc_by(n);
    }

    /// A record was dead-lettered.
    pub fn dead_letter(&self, stage: &str, kind: &str, error: &str) {
        tracing::debug!(stage, kind, error, "dead letter");
        self.dead_letters.get_or_create(&labels(&[("stage", stage), ("kind", kind)])).inc();
    }

    /// A batch ran through a model.
    pub fn inference(&self, model: &str, seconds: f64) {
        self.inference.get_or_create(&labels(&[("model", model)])).observe(seconds);
    }

    /// One record's end-to-end latency.
    pub fn latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    /// A model version started serving.
    pub fn serving(&self, model: &str, variant: &str, version: i64, provider: &str) {
        tracing::info!(model, variant, version, provider, "model version serving");
        self.model_version.get_or_create(&labels(&[("model", model), ("variant", variant)])).set(version);
    }

    /// A variant stopped serving (no challenger any more).
    pub fn not_serving(&self, model: &str, variant: &str) {
        tracing::info!(model, variant, "no model version serves this variant now");
        self.model_version.get_or_create(&labels(&[("model", model), ("variant", variant)])).set(0);
    }

    /// A checkpoint was refused.
    pub fn rejected(&self, model: &str, version: i64, check: &str, reason: &str) {
        tracing::warn!(model, version, check, reason, "checkpoint refused; the serving version stays");
        self.rejected.get_or_create(&labels(&[("model", model)])).inc();
    }
}
