//! Rust types for the records in `schemas/`, field for field. Timestamps are UTC epoch
//! milliseconds (`i64`); see the schemas for each field's documentation.

use serde::{Deserialize, Serialize};

use crate::codec::Event;
use crate::schemas::names;

/// Which role a model version played for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Variant {
    /// The score acted on: the promoted version's, or during an A/B test the version of the
    /// event's arm.
    Champion,
    /// The newest candidate, scoring a share of traffic in shadow.
    Challenger,
}

/// A model's verdict on one event (`vigil.scores`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Score {
    pub event_id: String,
    pub model: String,
    pub model_version: i64,
    pub variant: Variant,
    pub score: f64,
    pub scores: Vec<f64>,
    pub predicted_label: f64,
    pub event_time: i64,
    pub scored_at: i64,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub experiment_id: Option<String>,
    pub arm: Option<String>,
}

impl Event for Score {
    const SCHEMA: &'static str = names::SCORE;
}

/// The true outcome of an event (label topics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Label {
    pub event_id: String,
    pub label: f64,
    pub label_time: i64,
    pub source: Option<String>,
}

impl Event for Label {
    const SCHEMA: &'static str = names::LABEL;
}

/// Registry state of a model version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum CheckpointStatus {
    Candidate,
    Promoted,
    RolledBack,
    Rejected,
}

/// Prequential quality of a model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PrequentialMetrics {
    pub examples_seen: i64,
    pub log_loss: f64,
    pub accuracy: f64,
    pub auc: Option<f64>,
    pub window: i64,
    pub overall_accuracy: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub threshold: f64,
}

/// The next offset to consume on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TopicOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Kind of a reference distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum FeatureKind {
    Numeric,
    Categorical,
    Score,
}

/// Reference distribution of one feature over a training window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FeatureReference {
    pub feature: String,
    pub kind: FeatureKind,
    pub count: i64,
    pub edges: Vec<f64>,
    pub categories: Vec<String>,
    pub counts: Vec<i64>,
    pub sample: Vec<f64>,
}

/// A model version and its registry state (`vigil.models`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ModelCheckpoint {
    pub model: String,
    pub version: i64,
    pub parent_version: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub status: CheckpointStatus,
    pub status_reason: String,
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub onnx: Option<Vec<u8>>,
    pub onnx_uri: Option<String>,
    pub sha256: String,
    pub size_bytes: i64,
    pub feature_spec: String,
    pub metrics: Option<PrequentialMetrics>,
    pub offsets: Vec<TopicOffset>,
    pub reference: Vec<FeatureReference>,
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub learner_state: Option<Vec<u8>>,
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub signature: Option<Vec<u8>>,
    pub signer: Option<String>,
}

impl Event for ModelCheckpoint {
    const SCHEMA: &'static str = names::MODEL_CHECKPOINT;
}

impl ModelCheckpoint {
    /// The Kafka key of this checkpoint on the compacted models topic.
    pub fn key(&self) -> String {
        format!("{}/{}", self.model, self.version)
    }
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum AlertKind {
    DataDrift,
    PredictionDrift,
    ConceptDrift,
    Performance,
    Latency,
    ModelRejected,
    ModelPromoted,
    ModelRolledBack,
    DeadLetterSpike,
    Other,
    /// The share of negative predictions in one group rose against its own baseline.
    SentimentSurge,
    /// A live A/B test ended with a verdict (a winner, or no difference).
    AbTest,
}

/// Whether an alert opens or closes a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum AlertState {
    Firing,
    Resolved,
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Something an operator or another service should know (`vigil.alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Alert {
    pub alert_id: String,
    pub time: i64,
    pub kind: AlertKind,
    pub state: AlertState,
    pub severity: Severity,
    pub model: Option<String>,
    pub model_version: Option<i64>,
    pub feature: Option<String>,
    pub detector: Option<String>,
    pub statistic: Option<String>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub p_value: Option<f64>,
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
    pub message: String,
    pub dedup_key: String,
}

impl Event for Alert {
    const SCHEMA: &'static str = names::ALERT;
}

/// One feature's comparison with its reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FeatureDrift {
    pub feature: String,
    pub test: String,
    pub statistic: f64,
    pub p_value: f64,
    pub adjusted_p_value: f64,
    pub psi: Option<f64>,
    pub drifted: bool,
}

/// Periodic summary of a model's live windows (`vigil.drift`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DriftReport {
    pub report_id: String,
    pub time: i64,
    pub model: String,
    pub model_version: Option<i64>,
    pub window_start: i64,
    pub window_end: i64,
    pub events: i64,
    pub features: Vec<FeatureDrift>,
    pub labelled: i64,
    pub error_rate: Option<f64>,
    pub accuracy: Option<f64>,
    pub auc: Option<f64>,
    pub p99_latency_ms: Option<f64>,
}

impl Event for DriftReport {
    const SCHEMA: &'static str = names::DRIFT_REPORT;
}

/// The demo's card transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Transaction {
    pub event_id: String,
    pub account_id: String,
    pub card_id: String,
    pub event_time: i64,
    pub amount: f64,
    pub currency: String,
    pub merchant_id: String,
    pub merchant_category: String,
    pub channel: String,
    pub country: String,
    pub card_present: bool,
    pub account_age_days: i32,
    pub device_id: Option<String>,
    pub distance_from_home_km: Option<f64>,
}

impl Event for Transaction {
    const SCHEMA: &'static str = names::TRANSACTION;
}

/// The demo's text to score for sentiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TextEvent {
    pub event_id: String,
    pub event_time: i64,
    pub source: String,
    pub text: String,
    pub language: Option<String>,
    pub author_id: Option<String>,
}

impl Event for TextEvent {
    const SCHEMA: &'static str = names::TEXT_EVENT;
}

/// The outcome an A/B test compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutcomeMetric {
    /// Accuracy of the decisions at each version's threshold.
    Accuracy,
    /// AUC of the scores.
    Auc,
    /// Mean cost of the decisions (lower is better).
    Cost,
}

/// Where an A/B test stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum ExperimentState {
    Running,
    Stopped,
    Done,
}

/// How an A/B test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum Verdict {
    A,
    B,
    NoDifference,
}

/// A live A/B test of one model (`vigil.experiments`, key = model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Experiment {
    pub experiment_id: String,
    pub model: String,
    pub version_a: i64,
    pub version_b: i64,
    pub share_b: f64,
    pub key_field: String,
    pub metric: OutcomeMetric,
    pub false_positive_cost: f64,
    pub false_negative_cost: f64,
    pub alpha: f64,
    pub min_effect: f64,
    pub max_labels: i64,
    pub auto_promote: bool,
    pub state: ExperimentState,
    pub started_at: i64,
    pub updated_at: i64,
    pub verdict: Option<Verdict>,
    pub labels_a: i64,
    pub labels_b: i64,
    pub metric_a: Option<f64>,
    pub metric_b: Option<f64>,
    pub p_value: Option<f64>,
    pub message: String,
}

impl Event for Experiment {
    const SCHEMA: &'static str = names::EXPERIMENT;
}

impl Experiment {
    /// A running experiment of `model`, A against B with `share_b` of the keys in B, started at
    /// `now_ms`, with the schema's defaults elsewhere (accuracy, level 0.05, smallest effect 0.02,
    /// 100,000 labels per arm, keys by event id, no automatic promotion).
    pub fn running(id: &str, model: &str, (a, b): (i64, i64), share_b: f64, now_ms: i64) -> Experiment {
        Experiment {
            experiment_id: id.to_string(),
            model: model.to_string(),
            version_a: a,
            version_b: b,
            share_b,
            key_field: String::new(),
            metric: OutcomeMetric::Accuracy,
            false_positive_cost: 1.0,
            false_negative_cost: 1.0,
            alpha: 0.05,
            min_effect: 0.02,
            max_labels: 100_000,
            auto_promote: false,
            state: ExperimentState::Running,
            started_at: now_ms,
            updated_at: now_ms,
            verdict: None,
            labels_a: 0,
            labels_b: 0,
            metric_a: None,
            metric_b: None,
            p_value: None,
            message: String::new(),
        }
    }

    /// Whether the event whose key field holds `key` is in arm B: FNV-1a (64-bit) over the
    /// experiment id, a zero byte and the key, mixed by SplitMix64's finaliser, below `share_b` of
    /// the range — stable per key and experiment, across restarts, releases and languages.
    pub fn in_b(&self, key: &str) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let bytes = self.experiment_id.bytes().chain(std::iter::once(0)).chain(key.bytes());
        for b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        ((h >> 11) as f64 / (1u64 << 53) as f64) < self.share_b
    }
}
