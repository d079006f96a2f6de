//! The learner's telemetry: every metric and the log lines that go with them (`vigil_learner_*`),
//! with typed label sets; each model takes its per-label counter once ([`Metrics::trained_counter`]).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProblemLabels {
    model: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    model: String,
    metric: &'static str,
}

/// Every metric of the learner.
pub struct Metrics {
    trained: Family<ModelLabel, Counter>,
    label_problems: Family<ProblemLabels, Counter>,
    bad_events: Family<ModelLabel, Counter>,
    checkpoints: Family<ModelLabel, Counter>,
    promotions: Family<ModelLabel, Counter>,
    rollbacks: Family<ModelLabel, Counter>,
    challengers: Family<ModelLabel, Counter>,
    waiting_labels: Family<ModelLabel, Gauge>,
    buffered_events: Family<ModelLabel, Gauge>,
    evicted: Family<ModelLabel, Gauge>,
    candidates: Family<ModelLabel, Gauge>,
    window_metric: Family<MetricLabels, Gauge<f64, AtomicU64>>,
    lag: Gauge,
}

fn model(name: &str) -> ModelLabel {
    ModelLabel { model: name.to_string() }
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            trained: Family::default(),
            label_problems: Family::default(),
            bad_events: Family::default(),
            checkpoints: Family::default(),
            promotions: Family::default(),
            rollbacks: Family::default(),
            challengers: Family::default(),
            waiting_labels: Family::default(),
            buffered_events: Family::default(),
            evicted: Family::default(),
            candidates: Family::default(),
            window_metric: Family::default(),
            lag: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("vigil_learner");
        r.register("examples", "Labelled examples learnt from, by model", m.trained.clone());
        r.register(
            "label_problems",
            "Labels not learnt from, by model and kind (late-label, unknown-event, malformed kinds)",
            m.label_problems.clone(),
        );
        r.register("bad_events", "Input events that could not be decoded or featurised", m.bad_events.clone());
        r.register("checkpoints", "Checkpoints published", m.checkpoints.clone());
        r.register("promotions", "Checkpoints promoted", m.promotions.clone());
        r.register("rollbacks", "Champions rolled back by the guard", m.rollbacks.clone());
        r.register("fresh_challengers", "Fresh challengers started after concept-drift alerts", m.challengers.clone());
        r.register("waiting_labels", "Labels waiting for their event", m.waiting_labels.clone());
        r.register("buffered_events", "Events waiting for their label (join window)", m.buffered_events.clone());
        r.register("evicted_events", "Events evicted from the join window without a label", m.evicted.clone());
        r.register("candidates", "Candidate configurations being trained", m.candidates.clone());
        r.register(
            "window_metric",
            "Prequential metrics of the served predictions over the window",
            m.window_metric.clone(),
        );
        r.register(
            "consumer_lag_records",
            "Records behind the ends of the input, label and alert partitions the learner reads",
            m.lag.clone(),
        );
        m
    }

    /// Records behind the ends of what the learner reads.
    pub fn set_lag(&self, records: i64) {
        self.lag.set(records);
    }

    /// The counter of examples `model` learnt from (taken once, counted per label).
    pub fn trained_counter(&self, name: &str) -> Counter {
        self.trained.get_or_create(&model(name)).clone()
    }

    /// A label could not be learnt from.
    pub fn label_problem(&self, name: &str, kind: &'static str) {
        tracing::debug!(model = name, kind, "label not learnt from");
        self.label_problems.get_or_create(&ProblemLabels { model: name.to_string(), kind }).inc();
    }

    /// An event could not be featurised.
    pub fn bad_event(&self, name: &str) {
        self.bad_events.get_or_create(&model(name)).inc();
    }

    /// The guard rolled a champion back.
    pub fn rolled_back(&self, name: &str) {
        self.rollbacks.get_or_create(&model(name)).inc();
    }

    /// A checkpoint was published (and maybe promoted).
    pub fn checkpoint(&self, name: &str, version: i64, promoted: bool, why: &str) {
        tracing::info!(model = name, version, promoted, why, "checkpoint published");
        self.checkpoints.get_or_create(&model(name)).inc();
        if promoted {
            self.promotions.get_or_create(&model(name)).inc();
        }
    }

    /// Fresh challengers were started.
    pub fn challengers_added(&self, name: &str, added: usize, why: &str) {
        tracing::info!(model = name, added, why, "concept drift: fresh challengers start on post-drift data");
        self.challengers.get_or_create(&model(name)).inc_by(added as u64);
    }

    /// Updates the gauges of a model.
    pub fn observe(
        &self,
        name: &str,
        waiting: usize,
        buffered: usize,
        evicted: u64,
        candidates: usize,
        served: &vigil_learn::metrics::Prequential,
    ) {
        let l = model(name);
        self.waiting_labels.get_or_create(&l).set(waiting as i64);
        self.buffered_events.get_or_create(&l).set(buffered as i64);
        self.evicted.get_or_create(&l).set(evicted as i64);
        self.candidates.get_or_create(&l).set(candidates as i64);
        let auc = served.window_auc().unwrap_or(0.5);
        for (metric, v) in
            [("accuracy", served.window_accuracy()), ("auc", auc), ("log_loss", served.window_log_loss())]
        {
            self.window_metric.get_or_create(&MetricLabels { model: name.to_string(), metric }).set(v);
        }
    }
}
