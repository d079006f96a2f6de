//! The learner's section of the configuration (`[learner]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_learn::select::Metric;
use vigil_runtime::config::{InputConfig, Section, check_listen, check_models, millis};

/// The learner's view of the configuration document.
pub type Config = vigil_runtime::Config<vigil_runtime::config::Unchecked, LearnerConfig>;

/// The learner service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LearnerConfig {
    /// Metrics and health endpoint.
    pub http_listen: String,
    /// The group of the learners that share these models: one holds the lease and learns, the
    /// others stand by and take over when it stops (`kafka-consumer-groups.sh` lists them).
    pub group_id: String,
    /// How long a silent lease holder keeps the lease before another learner takes over, ms.
    #[serde(rename = "lease-timeout-ms", with = "millis")]
    pub lease_timeout: Duration,
    /// Models to train (by name); empty: every input model that has a label topic.
    pub models: Vec<String>,
    /// Events kept waiting for their labels (the join window, in events per model).
    pub join_window: usize,
    /// An event waiting longer than this (record time) for its label is evicted; its label, when it
    /// comes, is late. With `join-window`, this bounds the join's memory.
    #[serde(rename = "join-max-age-ms", with = "millis")]
    pub join_max_age: Duration,
    /// Checkpoint after this many new labelled examples...
    pub checkpoint_every: u64,
    /// ...or this many ms since the last checkpoint (with at least one new example).
    #[serde(rename = "checkpoint-interval-ms", with = "millis")]
    pub checkpoint_interval: Duration,
    /// Labelled examples before the first checkpoint.
    pub min_examples: u64,
    /// Promote a candidate when its windowed metric beats the champion's by this margin.
    pub promote_margin: f64,
    /// `none`: the margin alone decides; `paired`: the gain over the margin must also be significant
    /// on the same labels (DeLong's test for auc, a paired z-test for accuracy and log-loss).
    pub promotion_test: PromotionTest,
    /// Significance of `promotion-test` (one-sided).
    pub promotion_alpha: f64,
    /// No promotion sooner than this many ms after the last one (0: no limit).
    #[serde(rename = "min-promotion-interval-ms", with = "millis")]
    pub min_promotion_interval: Duration,
    /// The metric candidates are ranked and promoted by: auc, accuracy or log-loss.
    pub metric: Metric,
    /// Sliding window of the prequential metrics.
    pub window: usize,
    /// Rehearsal buffer size (0: none).
    pub rehearsal: usize,
    /// Replayed examples per new example.
    pub replay_ratio: f64,
    /// Serve the mean of this many best candidates.
    pub serve_top: usize,
    /// Pull towards the promoted weights (0: none).
    pub anchor: f64,
    /// Seed of everything random.
    pub seed: u64,
    /// Sign checkpoints with this ed25519 secret key file (hex); empty: unsigned.
    pub sign_key: String,
    /// Besides its own key's, the public keys (hex) whose signed checkpoints the learner resumes
    /// from (an operator who promotes with `vigil models promote --sign-key`).
    pub trusted_keys: Vec<String>,
    /// Most candidates in the pool (concept-drift alerts add fresh ones up to this).
    pub max_candidates: usize,
    /// Families of a tabular model's candidates: `logistic`, `mlp`, `tree` (Hoeffding trees) and
    /// `forest` (adaptive random forests); trees and forests are served as ONNX tree ensembles.
    pub families: Vec<String>,
    /// Folders holding the artifacts an `[encoder]` spec names by digest (the encoder graph and its
    /// tokenizer, written by `vigil encoder build --store`).
    pub model_dirs: Vec<String>,
    /// After the champion moves forward, the version it replaced keeps scoring beside it for this
    /// many labelled events; 0: no rollback guard.
    pub rollback_window: u64,
    /// Labels both scored before the guard may judge.
    pub rollback_min_labels: u64,
    /// The new champion is rolled back when its predecessor beats it by more than this on the same
    /// labels (significantly so, at `promotion-alpha`), in `metric`.
    pub rollback_margin: f64,
    /// Versions of each model kept on the models topic; older ones get tombstones (never the
    /// champion, its fallbacks, the challenger or the newest state). 0: keep every version.
    pub keep_versions: usize,
}

/// How much evidence a promotion needs besides the margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromotionTest {
    /// The margin alone.
    None,
    /// A significant gain over the margin on the same labels.
    Paired,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        LearnerConfig {
            http_listen: "127.0.0.1:9472".into(),
            group_id: "vigil-learner".into(),
            lease_timeout: Duration::from_secs(10),
            models: Vec::new(),
            join_window: 200_000,
            join_max_age: Duration::from_secs(86_400),
            checkpoint_every: 5_000,
            checkpoint_interval: Duration::from_secs(30),
            min_examples: 1_000,
            promote_margin: 0.005,
            promotion_test: PromotionTest::Paired,
            promotion_alpha: 0.05,
            min_promotion_interval: Duration::ZERO,
            metric: Metric::Auc,
            window: 2_000,
            rehearsal: 2_000,
            replay_ratio: 0.5,
            serve_top: 2,
            anchor: 0.0,
            seed: 42,
            sign_key: String::new(),
            trusted_keys: Vec::new(),
            max_candidates: 32,
            families: ["logistic", "mlp", "tree", "forest"].map(String::from).to_vec(),
            keep_versions: 50,
            model_dirs: Vec::new(),
            rollback_window: 5_000,
            rollback_min_labels: 500,
            rollback_margin: 0.02,
        }
    }
}

impl Section for LearnerConfig {
    fn validate(&self, inputs: &[InputConfig]) -> Vec<String> {
        let mut p: Vec<String> = check_listen("learner.http-listen", &self.http_listen).into_iter().collect();
        if self.group_id.trim().is_empty() {
            p.push("learner.group-id: must not be empty".into());
        }
        if self.join_max_age.is_zero() {
            p.push("learner.join-max-age-ms: must be at least 1".into());
        }
        if self.join_window == 0 || self.checkpoint_every == 0 || self.window == 0 || self.serve_top == 0 {
            p.push("learner.join-window, checkpoint-every, window and serve-top must be at least 1".into());
        }
        if !(self.promote_margin >= 0.0 && self.replay_ratio >= 0.0 && self.anchor >= 0.0) {
            p.push("learner.promote-margin, replay-ratio and anchor must not be negative".into());
        }
        if self.lease_timeout < Duration::from_secs(1) {
            p.push(
                "learner.lease-timeout-ms: at least 1000 (and at least the broker's group.min.session.timeout.ms, 6000 by default)"
                    .into(),
            );
        }
        if !(self.promotion_alpha > 0.0 && self.promotion_alpha < 1.0) {
            p.push("learner.promotion-alpha: must be in (0, 1)".into());
        }
        if self.rollback_window > 0 && !(30..=self.rollback_window).contains(&self.rollback_min_labels) {
            p.push("learner.rollback-min-labels: must be from 30 to rollback-window".into());
        }
        if !(self.rollback_margin >= 0.0 && self.rollback_margin.is_finite()) {
            p.push("learner.rollback-margin: must not be negative".into());
        }
        if self.max_candidates == 0 {
            p.push("learner.max-candidates: must be at least 1".into());
        }
        if self.families.is_empty() {
            p.push("learner.families: name at least one of logistic, mlp, tree, forest".into());
        }
        for (i, f) in self.families.iter().enumerate() {
            if !vigil_learn::learner::TABULAR_FAMILIES.contains(&f.as_str()) {
                p.push(format!("learner.families[{i}]: `{f}` is not one of logistic, mlp, tree, forest"));
            }
        }
        for (i, k) in self.trusted_keys.iter().enumerate() {
            if vigil_models::checkpoint::verifying_key_from_hex(k).is_err() {
                p.push(format!("learner.trusted-keys[{i}]: an ed25519 public key is 64 hex digits"));
            }
        }
        p.extend(check_models("learner", &self.models, inputs, true));
        p
    }
}
