//! The drift service's metrics and the log lines that go with them (`vigil_drift_*`).

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vigil_events::Alert;

use crate::alerts::Outcome;
use crate::monitor::{Evaluation, Quality};

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Every metric of the drift service.
pub struct Metrics {
    records: Family<Labels, Counter>,
    undecodable: Family<Labels, Counter>,
    evaluations: Family<Labels, Counter>,
    alerts: Family<Labels, Counter>,
    suppressed: Family<Labels, Counter>,
    statistic: Family<Labels, Gauge<f64, AtomicU64>>,
    p_value: Family<Labels, Gauge<f64, AtomicU64>>,
    drifted: Family<Labels, Gauge>,
    quality: Family<Labels, Gauge<f64, AtomicU64>>,
    reference_version: Family<Labels, Gauge>,
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
            quality: Family::default(),
            reference_version: Family::default(),
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
        r.register("quality", "Windowed error rate, accuracy, AUC and p99 latency (ms)", m.quality.clone());
        r.register(
            "reference_version",
            "Champion version whose checkpoint supplies the reference (0: the warm-up window)",
            m.reference_version.clone(),
        );
        m
    }

    /// A record of `stream` was read for `model`.
    pub fn record(&self, model: &str, stream: &str) {
        self.records.get_or_create(&labels(&[("model", model), ("stream", stream)])).inc();
    }

    /// A record of `stream` could not be used.
    pub fn undecodable(&self, model: &str, stream: &str, why: &str) {
        tracing::debug!(model, stream, why, "record not used");
        self.undecodable.get_or_create(&labels(&[("model", model), ("stream", stream)])).inc();
    }

    /// An evaluation ran.
    pub fn evaluated(&self, model: &str, e: &Evaluation, reference_version: Option<i64>) {
        self.evaluations.get_or_create(&labels(&[("model", model)])).inc();
        for f in &e.features {
            let l = labels(&[("model", model), ("feature", &f.feature)]);
            self.statistic.get_or_create(&l).set(f.statistic);
            self.p_value.get_or_create(&l).set(f.adjusted_p_value);
            self.drifted.get_or_create(&l).set(i64::from(f.drifted));
        }
        self.reference_version.get_or_create(&labels(&[("model", model)])).set(reference_version.unwrap_or(0));
    }

    /// Windowed quality.
    pub fn quality(&self, model: &str, q: &Quality) {
        for (name, v) in [
            ("error_rate", q.error_rate),
            ("accuracy", q.accuracy),
            ("auc", q.auc),
            ("p99_latency_ms", q.p99_latency_ms),
        ] {
            if let Some(v) = v {
                self.quality.get_or_create(&labels(&[("model", model), ("figure", name)])).set(v);
            }
        }
    }

    /// What became of a finding.
    pub fn outcome(&self, model: &str, outcome: Outcome, alert: Option<&Alert>, kind: &str) {
        if let Some(a) = alert {
            let state = if a.state == vigil_events::AlertState::Firing { "firing" } else { "resolved" };
            tracing::info!(model, kind, state, key = %a.dedup_key, message = %a.message, "alert");
            self.alerts.get_or_create(&labels(&[("model", model), ("kind", kind), ("state", state)])).inc();
        }
        if outcome == Outcome::Suppressed {
            self.suppressed.get_or_create(&labels(&[("model", model), ("kind", kind)])).inc();
        }
    }
}
