//! The scorer's section of the configuration (`[scorer]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_models::Provider;
use vigil_runtime::config::{InputConfig, Section, check_listen, check_models, millis};

/// The scorer's view of the configuration document.
pub type Config = vigil_runtime::Config<ScorerConfig>;

/// The scorer service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ScorerConfig {
    /// Metrics and health endpoint.
    pub http_listen: String,
    /// Consumer group.
    pub group_id: String,
    /// Models to serve (by name); empty: the model of every configured input.
    pub models: Vec<String>,
    /// Execution provider: cpu, cuda, or auto (CUDA when it registers, else the CPU).
    pub provider: Provider,
    /// Inference worker threads (one ONNX Runtime session per worker and model version).
    pub workers: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// A micro-batch that its model version is expected to score in less than this (from its
    /// recent batches) runs on the consume loop's thread instead of a worker, sparing two thread
    /// hand-offs; µs, 0: always on a worker.
    #[serde(rename = "inline-below-us")]
    pub inline_below_us: u64,
    /// Largest micro-batch.
    pub max_batch: usize,
    /// Longest wait for a micro-batch to fill, ms.
    #[serde(rename = "max-wait-ms", with = "millis")]
    pub max_wait: Duration,
    /// Share of events the newest candidate also scores, in shadow (0 to 1).
    pub challenger_share: f64,
    /// What a score's Kafka key is, and so which partition of the scores topic it goes to.
    pub scores_key: ScoresKey,
    /// Decision threshold when a checkpoint records none.
    pub threshold: f64,
    /// Refuse checkpoints that are not signed by a trusted key (on by default: set the keys, or
    /// turn this off knowingly).
    pub require_signature: bool,
    /// Ed25519 public keys (hex) whose signatures are trusted.
    pub trusted_keys: Vec<String>,
    /// Largest ONNX model accepted, bytes.
    pub max_model_bytes: u64,
    /// Folders a checkpoint's `onnx_uri` (`file://`) may point into, and where the artifacts an
    /// `[encoder]` spec names by digest (encoder graph, tokenizer) are found; empty: neither.
    pub model_dirs: Vec<String>,
    /// Longest a checkpoint's validation (load and probe) may take, ms.
    #[serde(rename = "validation-timeout-ms", with = "millis")]
    pub validation_timeout: Duration,
    /// Stable id of this instance (part of its transactional id under exactly-once delivery);
    /// empty: the host's name, so that replicas on different hosts never fence each other (set it
    /// per replica when several run on one host).
    pub instance_id: String,
    /// How often offsets are committed (at-least-once) or transactions committed (exactly-once), ms.
    #[serde(rename = "commit-interval-ms", with = "millis")]
    pub commit_interval: Duration,
    /// Deadline for draining on shutdown and revocation, ms.
    #[serde(rename = "drain-timeout-ms", with = "millis")]
    pub drain_timeout: Duration,
    /// Path of libonnxruntime.so; empty: `ORT_DYLIB_PATH`.
    pub onnxruntime: String,
}

/// What a score's Kafka key is (`scores-key`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ScoresKey {
    /// Its event id: scores are partitioned as label topics keyed by event id are (a downstream
    /// stream join of scores and labels finds them co-partitioned), spread over every partition.
    EventId,
    /// Its input record's key (the event id for an input without one), as a Kafka Streams
    /// `mapValues` keeps it: a score lands in the partition its input came from when the two topics
    /// have as many partitions, an entity's scores stay in order, and a batch of inputs from one
    /// partition is produced to one (the README's Benchmarks gives the CPU this saves, the
    /// broker's above all).
    Input,
}

impl Default for ScorerConfig {
    fn default() -> Self {
        ScorerConfig {
            http_listen: "127.0.0.1:9471".into(),
            group_id: "vigil-scorer".into(),
            models: Vec::new(),
            provider: Provider::Cpu,
            workers: 1,
            intra_threads: 1,
            inline_below_us: 500,
            max_batch: 512,
            max_wait: Duration::from_millis(2),
            challenger_share: 0.1,
            scores_key: ScoresKey::EventId,
            threshold: 0.5,
            require_signature: true,
            trusted_keys: Vec::new(),
            max_model_bytes: 64 << 20,
            model_dirs: Vec::new(),
            validation_timeout: Duration::from_secs(30),
            instance_id: String::new(),
            commit_interval: Duration::from_millis(200),
            drain_timeout: Duration::from_secs(10),
            onnxruntime: String::new(),
        }
    }
}

impl Section for ScorerConfig {
    fn validate(&self, inputs: &[InputConfig]) -> Vec<String> {
        let mut p: Vec<String> = check_listen("scorer.http-listen", &self.http_listen).into_iter().collect();
        if self.group_id.trim().is_empty() {
            p.push("scorer.group-id: must not be empty".into());
        }
        if self.workers == 0 || self.intra_threads == 0 || self.max_batch == 0 {
            p.push("scorer.workers, scorer.intra-threads and scorer.max-batch must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.challenger_share) {
            p.push(format!("scorer.challenger-share: {} is not in [0, 1]", self.challenger_share));
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            p.push(format!("scorer.threshold: {} is not in (0, 1)", self.threshold));
        }
        for (i, k) in self.trusted_keys.iter().enumerate() {
            if k.len() != 64 || !k.chars().all(|c| c.is_ascii_hexdigit()) {
                p.push(format!("scorer.trusted-keys[{i}]: an ed25519 public key is 64 hex digits"));
            }
        }
        for (i, d) in self.model_dirs.iter().enumerate() {
            if !std::path::Path::new(d).is_absolute() {
                p.push(format!("scorer.model-dirs[{i}]: `{d}` is not an absolute path"));
            }
        }
        if self.validation_timeout.is_zero() {
            p.push("scorer.validation-timeout-ms: must be at least 1".into());
        }
        if self.commit_interval.is_zero() {
            p.push("scorer.commit-interval-ms: must be at least 1".into());
        }
        p.extend(check_models("scorer", &self.models, inputs, false));
        p
    }
}
