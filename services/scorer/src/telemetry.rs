//! The scorer's telemetry: every metric and the log lines that go with them, defined in one place.
//! Names follow `vigil_scorer_<name>_<unit>`; counters end in `_total` (the exporter adds it).
//! Label sets are typed; the hot path takes its counters once per topic ([`Metrics::topic`]) and
//! per model ([`Metrics::model`]) instead of building labels for every record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use vigil_events::Variant;
use vigil_kafka::pipeline::Counters;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VariantLabels {
    model: String,
    variant: &'static str,
}

/// What a variant serves: its version and graph (an info metric, always 1).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GraphLabels {
    model: String,
    variant: &'static str,
    version: String,
    sha256: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadLetterLabels {
    stage: &'static str,
    kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the scorer.
pub struct Metrics {
    events: Family<TopicLabel, Counter>,
    scores: Family<VariantLabels, Counter>,
    dead_letters: Family<DeadLetterLabels, Counter>,
    batch_size: Histogram,
    inference: HistogramFamily<ModelLabel>,
    latency: BatchHistogram,
    model_version: Family<VariantLabels, Gauge>,
    model_graph: Family<GraphLabels, Gauge>,
    /// The series of `model_graph` now set, per model and variant (the one before is removed).
    graphs: Mutex<HashMap<VariantLabels, GraphLabels>>,
    rejected: Family<ModelLabel, Counter>,
    shadow_lost: Family<ModelLabel, Counter>,
    /// Consumer lag (records behind the partitions' ends), updated from librdkafka statistics.
    pub lag: Gauge,
    /// The pipeline's own counters (consumed, produced, commits, aborts).
    pub pipeline: Arc<Counters>,
}

/// One model's counters, taken once.
#[derive(Debug, Clone)]
pub struct ModelMetrics {
    champion: Counter,
    challenger: Counter,
    inference: Histogram,
}

impl ModelMetrics {
    /// `n` scores of a variant were produced.
    pub fn scored(&self, variant: Variant, n: u64) {
        match variant {
            Variant::Champion => self.champion.inc_by(n),
            Variant::Challenger => self.challenger.inc_by(n),
        };
    }

    /// A batch ran through the model in `seconds`.
    pub fn inference(&self, seconds: f64) {
        self.inference.observe(seconds);
    }
}

/// A histogram whose observations a batch counts in a [`Tally`] of its own and adds under one
/// lock: the end-to-end latency is observed for every score, and [`Histogram::observe`] locks for
/// each observation. Exposed as the same classic histogram.
#[derive(Debug, Clone)]
pub struct BatchHistogram {
    /// The buckets' upper bounds, +∞ last (a batch's tally is made from them without the lock).
    bounds: Arc<[f64]>,
    inner: Arc<Mutex<Tally>>,
}

/// Observations counted by bucket (upper bound, count; the last bound is +∞), with their count and
/// sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
}

impl Tally {
    fn empty(bounds: &[f64]) -> Tally {
        Tally { buckets: bounds.iter().map(|b| (*b, 0)).collect(), count: 0, sum: 0.0 }
    }

    /// Counts one observation.
    pub fn observe(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
        let last = self.buckets.len() - 1;
        let i = self.buckets[..last].iter().position(|(bound, _)| v <= *bound).unwrap_or(last);
        self.buckets[i].1 += 1;
    }
}

impl BatchHistogram {
    /// A histogram with these upper bounds (and +∞).
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> BatchHistogram {
        let bounds: Arc<[f64]> = bounds.into_iter().filter(|b| b.is_finite()).chain([f64::INFINITY]).collect();
        let empty = Tally::empty(&bounds);
        BatchHistogram { bounds, inner: Arc::new(Mutex::new(empty)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty tally with this histogram's buckets.
    pub fn tally(&self) -> Tally {
        Tally::empty(&self.bounds)
    }

    /// Adds a tally made by [`BatchHistogram::tally`].
    pub fn add(&self, t: &Tally) {
        if t.count == 0 {
            return;
        }
        let mut all = self.lock();
        all.sum += t.sum;
        all.count += t.count;
        for (mine, theirs) in all.buckets.iter_mut().zip(&t.buckets) {
            mine.1 += theirs.1;
        }
    }
}

impl EncodeMetric for BatchHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let t = self.lock();
        encoder.encode_histogram::<NoLabelSet>(t.sum, t.count, &t.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn inference_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

fn variant_name(v: Variant) -> &'static str {
    match v {
        Variant::Champion => "champion",
        Variant::Challenger => "challenger",
    }
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            events: Family::default(),
            scores: Family::default(),
            dead_letters: Family::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            inference: Family::new_with_constructor(inference_histogram),
            latency: BatchHistogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            model_version: Family::default(),
            model_graph: Family::default(),
            graphs: Mutex::default(),
            rejected: Family::default(),
            shadow_lost: Family::default(),
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
        r.register(
            "model_graph",
            "The version and graph SHA-256 each variant serves (always 1; one series per model and variant)",
            m.model_graph.clone(),
        );
        r.register(
            "models_rejected",
            "Checkpoints refused by validation or taken out of service, by model",
            m.rejected.clone(),
        );
        r.register(
            "shadow_scores_lost",
            "Challenger scores lost to a failing challenger, by model",
            m.shadow_lost.clone(),
        );
        r.register("consumer_lag_records", "Records behind the input partitions' ends", m.lag.clone());
        m
    }

    /// The counter of records consumed from `topic`.
    pub fn topic(&self, topic: &str) -> Counter {
        self.events.get_or_create(&TopicLabel { topic: topic.to_string() }).clone()
    }

    /// The counters of `model`.
    pub fn model(&self, model: &str) -> ModelMetrics {
        let scores = |variant| self.scores.get_or_create(&VariantLabels { model: model.to_string(), variant }).clone();
        ModelMetrics {
            champion: scores("champion"),
            challenger: scores("challenger"),
            inference: self.inference.get_or_create(&ModelLabel { model: model.to_string() }).clone(),
        }
    }

    /// A micro-batch of `n` records arrived.
    pub fn batch(&self, n: usize) {
        self.batch_size.observe(n as f64);
    }

    /// A record was dead-lettered.
    pub fn dead_letter(&self, stage: &'static str, kind: &'static str, error: &str) {
        tracing::debug!(stage, kind, error, "dead letter");
        self.dead_letters.get_or_create(&DeadLetterLabels { stage, kind }).inc();
    }

    /// An empty tally of end-to-end latencies, for a batch to count its records' into.
    pub fn latencies(&self) -> Tally {
        self.latency.tally()
    }

    /// A batch's end-to-end latencies, counted in `tally`.
    pub fn latency(&self, tally: &Tally) {
        self.latency.add(tally);
    }

    /// A model version started serving.
    pub fn serving(&self, model: &str, variant: Variant, version: i64, sha256: &str) {
        let variant = variant_name(variant);
        let key = VariantLabels { model: model.to_string(), variant };
        self.model_version.get_or_create(&key).set(version);
        let graph =
            GraphLabels { model: model.to_string(), variant, version: version.to_string(), sha256: sha256.into() };
        let mut graphs = self.graphs.lock().unwrap_or_else(|e| e.into_inner());
        if graphs.get(&key) == Some(&graph) {
            return;
        }
        tracing::info!(model, variant, version, sha256, "model version serving");
        if let Some(old) = graphs.insert(key, graph.clone()) {
            self.model_graph.remove(&old);
        }
        self.model_graph.get_or_create(&graph).set(1);
    }

    /// A variant stopped serving (no challenger any more).
    pub fn not_serving(&self, model: &str, variant: Variant) {
        let variant = variant_name(variant);
        let key = VariantLabels { model: model.to_string(), variant };
        self.model_version.get_or_create(&key).set(0);
        if let Some(old) = self.graphs.lock().unwrap_or_else(|e| e.into_inner()).remove(&key) {
            tracing::info!(model, variant, "no model version serves this variant now");
            self.model_graph.remove(&old);
        }
    }

    /// A challenger failed on `n` rows: only their shadow scores are lost.
    pub fn shadow_lost(&self, model: &str, n: u64, error: &str) {
        tracing::warn!(model, rows = n, error, "the challenger failed on a batch; its shadow scores are lost");
        self.shadow_lost.get_or_create(&ModelLabel { model: model.to_string() }).inc_by(n);
    }

    /// A checkpoint was refused.
    pub fn rejected(&self, model: &str, version: i64, check: &str, reason: &str) {
        tracing::warn!(model, version, check, reason, "checkpoint refused; the serving version stays");
        self.rejected.get_or_create(&ModelLabel { model: model.to_string() }).inc();
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    /// Tallied by batches, the latencies are exposed exactly as `Histogram` exposes them observed
    /// one by one (bounds, cumulative counts, +Inf, count and sum), values on the bounds included.
    #[test]
    fn batch_tallies_expose_what_one_by_one_observations_do() {
        let bounds = || exponential_buckets(0.000_5, 2.0, 16);
        let (batched, reference) = (BatchHistogram::new(bounds()), Histogram::new(bounds()));
        let values: Vec<f64> = (0..500).map(|i| f64::from(i * i) * 1e-4).chain([0.0, 0.001, 0.016, 1e9]).collect();
        for batch in values.chunks(37) {
            let mut tally = batched.tally();
            for v in batch {
                tally.observe(*v);
                reference.observe(*v);
            }
            batched.add(&tally);
        }
        batched.add(&batched.tally());
        let text = |register: &dyn Fn(&mut Registry)| {
            let mut registry = Registry::default();
            register(&mut registry);
            let mut out = String::new();
            encode(&mut out, &registry).unwrap();
            out
        };
        let ours = text(&|r| r.register("latency", "h", batched.clone()));
        assert_eq!(ours, text(&|r| r.register("latency", "h", reference.clone())));
        assert!(ours.contains(&format!("latency_count {}", values.len())), "{ours}");
        assert!(ours.contains("latency_bucket{le=\"+Inf\"} 504"), "{ours}");
    }
}
