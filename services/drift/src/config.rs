//! The drift service's section of the configuration (`[drift]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_runtime::config::{InputConfig, Section, check_listen, check_models, millis};
use vigil_stats::{Correction, DetectorConfig};

/// The drift service's view of the configuration document.
pub type Config =
    vigil_runtime::Config<vigil_runtime::config::Unchecked, vigil_runtime::config::Unchecked, DriftConfig>;

/// The drift service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DriftConfig {
    /// Metrics and health endpoint.
    pub http_listen: String,
    /// The group of the drift services that share these models: one holds the lease and watches,
    /// the others stand by and take over when it stops.
    pub group_id: String,
    /// How long a silent lease holder keeps the lease before another instance takes over, ms.
    #[serde(rename = "lease-timeout-ms", with = "millis")]
    pub lease_timeout: Duration,
    /// Models to watch (by name); empty: the model of every configured input.
    pub models: Vec<String>,
    /// Live window, in events per model (features and scores) and in labelled events (errors).
    pub window: usize,
    /// Events that form the reference when the champion's checkpoint carries none (warm-up).
    pub warmup: usize,
    /// Compare the windows with the reference every this many events.
    pub evaluate_every: usize,
    /// Significance of the per-feature tests, after multiple-testing correction.
    pub significance: f64,
    /// Multiple-testing correction across one evaluation's tests: benjamini-hochberg, bonferroni or none.
    pub correction: Correction,
    /// Smallest KS distance (or, for categorical features, total-variation distance) that counts as
    /// drift, however small the p-value: large windows make negligible shifts significant.
    pub min_effect: f64,
    /// Features not tested (e.g. time-of-day features on a stream whose reference spans part of a day).
    pub exclude_features: Vec<String>,
    /// Labelled events in the window before accuracy and AUC are held to their thresholds.
    pub min_labelled: usize,
    /// Alert (PERFORMANCE) when windowed accuracy falls below this; 0 turns it off.
    pub min_accuracy: f64,
    /// Alert (PERFORMANCE) when windowed ROC AUC falls below this; 0 turns it off.
    pub min_auc: f64,
    /// Alert (LATENCY) when the window's p99 produce-to-score latency exceeds this, ms; 0 turns it off.
    pub max_p99_latency_ms: f64,
    /// An open condition is not alerted again within this many ms (deduplication).
    #[serde(rename = "cooldown-ms", with = "millis")]
    pub cooldown: Duration,
    /// Consecutive clean evaluations before an open condition is resolved (hysteresis).
    pub resolve_after: u32,
    /// A DriftReport per model on the drift topic every this many ms.
    #[serde(rename = "report-interval-ms", with = "millis")]
    pub report_interval: Duration,
    /// Scores kept waiting for their labels (and labels for their scores), per model.
    pub join_window: usize,
    /// A score or label waiting longer than this (record time) for its other half is dropped: the
    /// join holds at most this much traffic, so memory settles once it has passed.
    #[serde(rename = "join-max-age-ms", with = "millis")]
    pub join_max_age: Duration,
    /// Surge alerts (inputs with a `group-field`): predictions per group in the live window...
    pub surge_window: usize,
    /// ...at least this many in the window and in the baseline before a group is tested...
    pub surge_min_count: usize,
    /// ...and the rise in the share of negative predictions that counts (besides significance).
    pub surge_min_effect: f64,
    /// Groups watched per model at most (later ones are counted, not watched).
    pub surge_max_groups: usize,
    /// Where reading starts: `window` (the last `window` records of every partition, so a restart
    /// refills its windows at once) or `earliest` (everything the topics retain: a backfill).
    pub start_from: StartFrom,
    /// Detector of concept drift on the stream of errors, by name with its parameters
    /// (`kind` = adwin, ddm, page-hinkley or kswin; parameters left out take River's defaults).
    pub concept_detector: DetectorConfig,
}

/// Where the drift service starts reading.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StartFrom {
    /// The last `window` records of every partition.
    Window,
    /// Everything the topics retain.
    Earliest,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            http_listen: "127.0.0.1:9473".into(),
            group_id: "vigil-drift".into(),
            lease_timeout: Duration::from_secs(10),
            models: Vec::new(),
            window: 1000,
            warmup: 1000,
            evaluate_every: 250,
            significance: 0.01,
            correction: Correction::BenjaminiHochberg,
            min_effect: 0.1,
            exclude_features: Vec::new(),
            min_labelled: 200,
            min_accuracy: 0.0,
            min_auc: 0.0,
            max_p99_latency_ms: 0.0,
            cooldown: Duration::from_secs(300),
            resolve_after: 3,
            report_interval: Duration::from_secs(10),
            join_window: 100_000,
            join_max_age: Duration::from_secs(86_400),
            surge_window: 200,
            surge_min_count: 50,
            surge_min_effect: 0.15,
            surge_max_groups: 1000,
            start_from: StartFrom::Window,
            concept_detector: DetectorConfig::default(),
        }
    }
}

impl Section for DriftConfig {
    fn validate(&self, inputs: &[InputConfig]) -> Vec<String> {
        let mut p: Vec<String> = check_listen("drift.http-listen", &self.http_listen).into_iter().collect();
        if self.lease_timeout < Duration::from_secs(1) {
            p.push("drift.lease-timeout-ms: at least 1000".into());
        }
        if self.group_id.trim().is_empty() {
            p.push("drift.group-id: must not be empty".into());
        }
        if self.window < 30 || self.warmup < 30 {
            p.push("drift.window and drift.warmup must be at least 30 events".into());
        }
        if self.evaluate_every == 0
            || self.join_window == 0
            || self.join_max_age.is_zero()
            || self.resolve_after == 0
            || self.report_interval.is_zero()
        {
            p.push("drift.evaluate-every, join-window, join-max-age-ms, resolve-after and report-interval-ms must be at least 1".into());
        }
        if !(self.significance > 0.0 && self.significance < 1.0) {
            p.push(format!("drift.significance: {} is not in (0, 1)", self.significance));
        }
        if self.surge_window < self.surge_min_count || self.surge_min_count < 10 || self.surge_max_groups == 0 {
            p.push(
                "drift.surge-min-count must be at least 10 and at most surge-window; surge-max-groups at least 1"
                    .into(),
            );
        }
        if !(0.0..1.0).contains(&self.surge_min_effect) {
            p.push(format!("drift.surge-min-effect: {} is not in [0, 1)", self.surge_min_effect));
        }
        if !(0.0..1.0).contains(&self.min_effect) {
            p.push(format!("drift.min-effect: {} is not in [0, 1)", self.min_effect));
        }
        p.extend(self.concept_detector.validate("drift.concept-detector"));
        if !((0.0..=1.0).contains(&self.min_accuracy) && (0.0..=1.0).contains(&self.min_auc)) {
            p.push("drift.min-accuracy and drift.min-auc must be in [0, 1]".into());
        }
        if self.max_p99_latency_ms.is_nan() || self.max_p99_latency_ms < 0.0 {
            p.push("drift.max-p99-latency-ms must not be negative".into());
        }
        p.extend(check_models("drift", &self.models, inputs, false));
        p
    }
}
