//! The drift service's telemetry: every metric and the log lines that go with them
//! (`vigil_drift_*`), with typed label sets; each watched model takes its per-record counters once
//! ([`Metrics::streams`]).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vigil_events::Alert;

use crate::alerts::Outcome;
use crate::monitor::{Evaluation, Quality};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    model: String,
    stream: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    model: String,
    kind: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    model: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeatureLabels {
    model: String,
    feature: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric of the drift service.
pub struct Metrics {
    records: Family<StreamLabels, Counter>,
    undecodable: Family<StreamLabels, Counter>,
    evaluations: Family<ModelLabel, Counter>,
    alerts: Family<AlertLabels, Counter>,
    suppressed: Family<KindLabels, Counter>,
    statistic: Family<FeatureLabels, FloatGauge>,
    p_value: Family<FeatureLabels, FloatGauge>,
    drifted: Family<FeatureLabels, Gauge>,
    error_rate: Family<ModelLabel, FloatGauge>,
    accuracy: Family<ModelLabel, FloatGauge>,
    auc: Family<ModelLabel, FloatGauge>,
    p99_latency: Family<ModelLabel, FloatGauge>,
    reference_version: Family<ModelLabel, Gauge>,
    join_waiting: Family<StreamLabels, Gauge>,
    lag: Gauge,
}

/// A watched model's per-record counters, taken once.
#[derive(Debug, Clone)]
pub struct Streams {
    /// Input events read.
    pub events: Counter,
    /// Champion scores read.
    pub scores: Counter,
    /// Labels read.
    pub labels: Counter,
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            records: Family::default(),
            undecodable: Family::default(),
            evaluations: Family::default(),
            alerts: Family::default(),
            suppressed: Family::default(),
            statistic: Family::default(),
            p_value: Family::default(),
            drifted: Family::default(),
            error_rate: Family::default(),
            accuracy: Family::default(),
            auc: Family::default(),
            p99_latency: Family::default(),
            reference_version: Family::default(),
            join_waiting: Family::default(),
            lag: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("vigil_drift");
        r.register("records", "Records read, by model and stream (events, scores, labels)", m.records.clone());
        r.register(
            "undecodable",
            "Records that could not be decoded or featurised, by model and stream",
            m.undecodable.clone(),
        );
        r.register("evaluations", "Comparisons of the live windows with the reference", m.evaluations.clone());
        r.register("alerts", "Alerts sent, by model, kind and state", m.alerts.clone());
        r.register(
            "suppressed",
            "Repeats of an open condition within the cool-down, by model and kind",
            m.suppressed.clone(),
        );
        r.register("statistic", "Last test statistic per feature (KS D or chi-squared)", m.statistic.clone());
        r.register("p_value", "Last adjusted p-value per feature", m.p_value.clone());
        r.register("drifted", "Whether the feature drifted at the last evaluation (0/1)", m.drifted.clone());
        r.register("error_rate", "Windowed share of wrong decisions of the champion (0-1)", m.error_rate.clone());
        r.register("accuracy", "Windowed accuracy of the champion (0-1)", m.accuracy.clone());
        r.register("auc", "Windowed ROC AUC of the champion (0-1)", m.auc.clone());
        r.register(
            "p99_latency_seconds",
            "p99 of input record time to score over the window, seconds",
            m.p99_latency.clone(),
        );
        r.register(
            "reference_version",
            "Champion version whose checkpoint supplies the reference (0: the warm-up window)",
            m.reference_version.clone(),
        );
        r.register(
            "join_waiting",
            "Scores waiting for their label and labels waiting for their score, by model and stream",
            m.join_waiting.clone(),
        );
        r.register(
            "consumer_lag_records",
            "Records behind the ends of the input, score and label partitions the drift service reads",
            m.lag.clone(),
        );
        m
    }

    /// Records behind the ends of what the drift service reads.
    pub fn set_lag(&self, records: i64) {
        self.lag.set(records);
    }

    /// How many scores and labels of `model` wait for their other half.
    pub fn join_waiting(&self, model: &str, (scores, labels): (usize, usize)) {
        for (stream, n) in [("scores", scores), ("labels", labels)] {
            self.join_waiting.get_or_create(&StreamLabels { model: model.to_string(), stream }).set(n as i64);
        }
    }

    /// The per-record counters of `model`.
    pub fn streams(&self, model: &str) -> Streams {
        let c = |stream| self.records.get_or_create(&StreamLabels { model: model.to_string(), stream }).clone();
        Streams { events: c("events"), scores: c("scores"), labels: c("labels") }
    }

    /// A record of `stream` could not be used.
    pub fn undecodable(&self, model: &str, stream: &'static str, why: &str) {
        tracing::debug!(model, stream, why, "record not used");
        self.undecodable.get_or_create(&StreamLabels { model: model.to_string(), stream }).inc();
    }

    /// An evaluation ran.
    pub fn evaluated(&self, model: &str, e: &Evaluation, reference_version: Option<i64>) {
        self.evaluations.get_or_create(&ModelLabel { model: model.to_string() }).inc();
        for f in &e.features {
            let l = FeatureLabels { model: model.to_string(), feature: f.feature.clone() };
            self.statistic.get_or_create(&l).set(f.statistic);
            self.p_value.get_or_create(&l).set(f.adjusted_p_value);
            self.drifted.get_or_create(&l).set(i64::from(f.drifted));
        }
        self.reference_version
            .get_or_create(&ModelLabel { model: model.to_string() })
            .set(reference_version.unwrap_or(0));
    }

    /// Windowed quality.
    pub fn quality(&self, model: &str, q: &Quality) {
        let l = ModelLabel { model: model.to_string() };
        for (family, v) in [
            (&self.error_rate, q.error_rate),
            (&self.accuracy, q.accuracy),
            (&self.auc, q.auc),
            (&self.p99_latency, q.p99_latency_ms.map(|ms| ms / 1000.0)),
        ] {
            if let Some(v) = v {
                family.get_or_create(&l).set(v);
            }
        }
    }

    /// What became of a finding.
    pub fn outcome(&self, model: &str, outcome: Outcome, alert: Option<&Alert>, kind: &str) {
        if let Some(a) = alert {
            let state = if a.state == vigil_events::AlertState::Firing { "firing" } else { "resolved" };
            tracing::info!(model, kind, state, key = %a.dedup_key, message = %a.message, "alert");
            self.alerts.get_or_create(&AlertLabels { model: model.to_string(), kind: kind.to_string(), state }).inc();
        }
        if outcome == Outcome::Suppressed {
            self.suppressed.get_or_create(&KindLabels { model: model.to_string(), kind: kind.to_string() }).inc();
        }
    }
}
