//! The learner's metrics and the log lines that go with them (`vigil_learner_*`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Every metric of the learner.
pub struct Metrics {
    trained: Family<Labels, Counter>,
    label_problems: Family<Labels, Counter>,
    bad_events: Family<Labels, Counter>,
    checkpoints: Family<Labels, Counter>,
    promotions: Family<Labels, Counter>,
    challengers: Family<Labels, Counter>,
    waiting_labels: Family<Labels, Gauge>,
    buffered_events: Family<Labels, Gauge>,
    evicted: Family<Labels, Gauge>,
    candidates: Family<Labels, Gauge>,
    window_metric: Family<Labels, Gauge<f64, AtomicU64>>,
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
            challengers: Family::default(),
            waiting_labels: Family::default(),
            buffered_events: Family::default(),
            evicted: Family::default(),
            candidates: Family::default(),
            window_metric: Family::default(),
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
        r.register(
            "fresh_challengers",
            "Times fresh challengers were started after a concept-drift alert",
            m.challengers.clone(),
        );
        r.register("waiting_labels", "Labels waiting for their event", m.waiting_labels.clone());
        r.register("buffered_events", "Events waiting for their label (join window)", m.buffered_events.clone());
        r.register("evicted_events", "Events evicted from the join window without a label", m.evicted.clone());
        r.register("candidates", "Candidate configurations being trained", m.candidates.clone());
        r.register(
            "window_metric",
            "Prequential metrics of the served predictions over the window",
            m.window_metric.clone(),
        );
        m
    }

    /// An example was learnt.
    pub fn trained(&self, model: &str) {
        self.trained.get_or_create(&labels(&[("model", model)])).inc();
    }

    /// A label could not be learnt from.
    pub fn label_problem(&self, model: &str, kind: &str) {
        tracing::debug!(model, kind, "label not learnt from");
        self.label_problems.get_or_create(&labels(&[("model", model), ("kind", kind)])).inc();
    }

    /// An event could not be featurised.
    pub fn bad_event(&self, model: &str) {
        self.bad_events.get_or_create(&labels(&[("model", model)])).inc();
    }

    /// A checkpoint was published.
    pub fn checkpoint(&self, model: &str, version: i64, promoted: bool, why: &str) {
        tracing::info!(model, version, promoted, why, "checkpoint published");
        self.checkpoints.get_or_create(&labels(&[("model", model)])).inc();
        if promoted {
            self.promotions.get_or_create(&labels(&[("model", model)])).inc();
        }
    }

    /// Fresh challengers were started.
    pub fn challengers_added(&self, model: &str, why: &str) {
        tracing::info!(model, why, "concept drift: fresh challengers start on post-drift data");
        self.challengers.get_or_create(&labels(&[("model", model)])).inc();
    }

    /// Updates the gauges of a model.
    pub fn observe(
        &self,
        model: &str,
        waiting: usize,
        buffered: usize,
        evicted: u64,
        candidates: usize,
        served: &vigil_learn::metrics::Prequential,
    ) {
        let l = labels(&[("model", model)]);
        self.waiting_labels.get_or_create(&l).set(waiting as i64);
        self.buffered_events.get_or_create(&l).set(buffered as i64);
        self.evicted.get_or_create(&l).set(evicted as i64);
        self.candidates.get_or_create(&l).set(candidates as i64);
        let auc = served.window_auc().unwrap_or(0.5);
        for (name, v) in [("accuracy", served.window_accuracy()), ("auc", auc), ("log_loss", served.window_log_loss())]
        {
            self.window_metric.get_or_create(&labels(&[("model", model), ("metric", name)])).set(v);
        }
    }
}
