//! Vigil's configuration: one TOML document with a section per concern, shared by every service and
//! the CLI (each reads the sections it needs). Defaults run the demo on a local broker.
//!
//! Loaded in layers by [`crate::layered`]; see `config/vigil.example.toml` for every key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Value;

use crate::layered::{self, ConfigError, Layered};

/// The whole configuration.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    /// The Kafka cluster and client settings.
    pub kafka: KafkaConfig,
    /// An optional Confluent-compatible schema registry (empty URL: Avro single-object encoding).
    pub schema_registry: SchemaRegistryConfig,
    /// Names and settings of the topics Vigil owns.
    pub topics: TopicsConfig,
    /// The input topics Vigil scores and learns from.
    pub inputs: Vec<InputConfig>,
    /// Logging.
    pub log: LogConfig,
    /// The CLI's and tests' telemetry endpoint; each service has its own `http-listen` too.
    pub http: HttpConfig,
    /// The scorer service.
    pub scorer: ScorerConfig,
    /// The learner service.
    pub learner: LearnerConfig,
    /// The drift service.
    pub drift: DriftConfig,
}

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
    pub provider: String,
    /// Inference worker threads (one ONNX Runtime session per worker and model version).
    pub workers: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// Largest micro-batch.
    pub max_batch: usize,
    /// Longest wait for a micro-batch to fill, ms.
    pub max_wait_ms: u64,
    /// Share of events the newest candidate also scores, in shadow (0 to 1).
    pub challenger_share: f64,
    /// Decision threshold when a checkpoint records none.
    pub threshold: f64,
    /// Refuse checkpoints that are not signed by a trusted key.
    pub require_signature: bool,
    /// Ed25519 public keys (hex) whose signatures are trusted.
    pub trusted_keys: Vec<String>,
    /// Largest ONNX model accepted, bytes.
    pub max_model_bytes: u64,
    /// Stable id of this instance (part of its transactional id under exactly-once delivery).
    pub instance_id: String,
    /// How often offsets are committed (at-least-once) or transactions committed (exactly-once), ms.
    pub commit_interval_ms: u64,
    /// Deadline for draining on shutdown and revocation, ms.
    pub drain_timeout_ms: u64,
    /// Path of libonnxruntime.so; empty: `ORT_DYLIB_PATH`.
    pub onnxruntime: String,
}

/// The learner service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LearnerConfig {
    /// Metrics and health endpoint.
    pub http_listen: String,
    /// Name of this learner in client ids (it assigns partitions itself: one learner per model).
    pub group_id: String,
    /// Models to train (by name); empty: every input model that has a label topic.
    pub models: Vec<String>,
    /// Events kept waiting for their labels (the join window, in events per model).
    pub join_window: usize,
    /// Checkpoint after this many new labelled examples...
    pub checkpoint_every: u64,
    /// ...or this many ms since the last checkpoint (with at least one new example).
    pub checkpoint_interval_ms: u64,
    /// Labelled examples before the first checkpoint.
    pub min_examples: u64,
    /// Promote a candidate when its windowed metric beats the champion's by this margin.
    pub promote_margin: f64,
    /// The metric candidates are ranked and promoted by: auc, accuracy or log-loss.
    pub metric: String,
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
}

/// The drift service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DriftConfig {
    /// Metrics and health endpoint.
    pub http_listen: String,
    /// Name of this service in client ids (it assigns partitions itself: one drift service watches
    /// every partition of a model).
    pub group_id: String,
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
    pub correction: String,
    /// Smallest KS distance (or, for categorical features, total-variation distance) that counts as
    /// drift, however small the p-value: large windows make negligible shifts significant.
    pub min_effect: f64,
    /// Features not tested (e.g. time-of-day features on a stream whose reference spans part of a day).
    pub exclude_features: Vec<String>,
    /// Detector of concept drift on the stream of errors: adwin, ddm or page-hinkley.
    pub concept_detector: String,
    /// ADWIN's confidence (smaller: fewer false alarms, later detections).
    pub adwin_delta: f64,
    /// Labelled events in the window before accuracy and AUC are held to their thresholds.
    pub min_labelled: usize,
    /// Alert (PERFORMANCE) when windowed accuracy falls below this; 0 turns it off.
    pub min_accuracy: f64,
    /// Alert (PERFORMANCE) when windowed ROC AUC falls below this; 0 turns it off.
    pub min_auc: f64,
    /// Alert (LATENCY) when the window's p99 produce-to-score latency exceeds this, ms; 0 turns it off.
    pub max_p99_latency_ms: f64,
    /// An open condition is not alerted again within this many ms (deduplication).
    pub cooldown_ms: u64,
    /// Consecutive clean evaluations before an open condition is resolved (hysteresis).
    pub resolve_after: u32,
    /// A DriftReport per model on the drift topic every this many ms.
    pub report_interval_ms: u64,
    /// Scores kept waiting for their labels, per model.
    pub join_window: usize,
    /// Where reading starts: `window` (the last `window` records of every partition, so a restart
    /// refills its windows at once) or `earliest` (everything the topics retain: a backfill).
    pub start_from: String,
}

impl Default for ScorerConfig {
    fn default() -> Self {
        ScorerConfig {
            http_listen: "127.0.0.1:9471".into(),
            group_id: "vigil-scorer".into(),
            models: Vec::new(),
            provider: "cpu".into(),
            workers: 1,
            intra_threads: 1,
            max_batch: 512,
            max_wait_ms: 2,
            challenger_share: 0.1,
            threshold: 0.5,
            require_signature: false,
            trusted_keys: Vec::new(),
            max_model_bytes: 64 << 20,
            instance_id: "0".into(),
            commit_interval_ms: 200,
            drain_timeout_ms: 10_000,
            onnxruntime: String::new(),
        }
    }
}

impl Default for LearnerConfig {
    fn default() -> Self {
        LearnerConfig {
            http_listen: "127.0.0.1:9472".into(),
            group_id: "vigil-learner".into(),
            models: Vec::new(),
            join_window: 200_000,
            checkpoint_every: 5_000,
            checkpoint_interval_ms: 30_000,
            min_examples: 1_000,
            promote_margin: 0.005,
            metric: "auc".into(),
            window: 2_000,
            rehearsal: 2_000,
            replay_ratio: 0.5,
            serve_top: 2,
            anchor: 0.0,
            seed: 42,
            sign_key: String::new(),
        }
    }
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            http_listen: "127.0.0.1:9473".into(),
            group_id: "vigil-drift".into(),
            models: Vec::new(),
            window: 1000,
            warmup: 1000,
            evaluate_every: 250,
            significance: 0.01,
            correction: "benjamini-hochberg".into(),
            min_effect: 0.1,
            exclude_features: Vec::new(),
            concept_detector: "adwin".into(),
            adwin_delta: 0.002,
            min_labelled: 200,
            min_accuracy: 0.0,
            min_auc: 0.0,
            max_p99_latency_ms: 0.0,
            cooldown_ms: 300_000,
            resolve_after: 3,
            report_interval_ms: 10_000,
            join_window: 100_000,
            start_from: "window".into(),
        }
    }
}

/// Kafka connection and client settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// `client.id` prefix; each client appends its role.
    pub client_id: String,
    /// `security.protocol`: plaintext, ssl, sasl_plaintext or sasl_ssl.
    pub security_protocol: String,
    /// `sasl.mechanism` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER); empty when unused.
    pub sasl_mechanism: String,
    /// `sasl.username`.
    pub sasl_username: String,
    /// `sasl.password` (a secret: never logged).
    pub sasl_password: String,
    /// Producer `linger.ms`: how long the producer waits to fill a batch.
    pub linger_ms: u32,
    /// Producer `batch.size` in bytes.
    pub batch_size: u32,
    /// Producer `compression.type`: none, gzip, snappy, lz4 or zstd.
    pub compression: String,
    /// Producer `queue.buffering.max.messages`: the bound on records waiting for delivery.
    pub queue_max_messages: u32,
    /// Consumer `queued.max.messages.kbytes`: the bound on prefetched data per client.
    pub consumer_queue_max_kbytes: u32,
    /// `message.max.bytes` for producers (checkpoints can be large).
    pub message_max_bytes: u32,
    /// Delivery guarantee of services that produce what they consume.
    pub delivery: Delivery,
    /// Prefix of `transactional.id`s (exactly-once); the service and partition set are appended.
    pub transactional_id_prefix: String,
    /// Any other librdkafka property, passed straight through (e.g. `"ssl.ca.location"`).
    pub properties: BTreeMap<String, String>,
}

/// Delivery guarantee.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Idempotent producer; offsets committed after the output is acknowledged.
    AtLeastOnce,
    /// Kafka transactions: output and offsets commit together.
    ExactlyOnce,
}

/// Schema registry settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
#[derive(Default)]
pub struct SchemaRegistryConfig {
    /// Base URL, e.g. `http://127.0.0.1:8081`; empty to use Avro single-object encoding.
    pub url: String,
    /// Basic-auth user, if the registry needs one.
    pub username: String,
    /// Basic-auth password (a secret: never logged).
    pub password: String,
}

/// Topics owned by Vigil.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TopicsConfig {
    /// Scores written by the scorer.
    pub scores: String,
    /// Model checkpoints and registry transitions (compacted).
    pub models: String,
    /// Alerts.
    pub alerts: String,
    /// Periodic drift reports.
    pub drift: String,
    /// Dead letters.
    pub dlq: String,
    /// Partitions of topics `vigil topics create` makes (the models topic always has 1, so that
    /// every reader sees transitions in order).
    pub partitions: i32,
    /// Replication factor of the topics it makes.
    pub replication_factor: i32,
    /// `max.message.bytes` of the models topic.
    pub models_max_message_bytes: u32,
    /// `retention.ms` of the scores, alerts, drift and dead-letter topics.
    pub retention_ms: i64,
}

/// One input topic and what Vigil does with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct InputConfig {
    /// The topic upstream systems produce to.
    pub topic: String,
    /// Value encoding: avro (single-object or Confluent framing, told apart by the first byte) or json.
    pub format: Encoding,
    /// Full name of the record schema (reader schema), e.g. `dev.vigil.demo.Transaction`.
    pub schema: String,
    /// The model that scores this topic.
    pub model: String,
    /// The topic carrying this input's labels; empty when there is none.
    pub labels: String,
}

pub use vigil_events::Encoding;

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LogConfig {
    /// pretty (for people) or json (one object per line, for collectors).
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,vigil_kafka=debug`.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// An HTTP listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HttpConfig {
    /// Address to bind; loopback unless an operator decides otherwise. Port 0 picks a free port.
    pub listen: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kafka: KafkaConfig::default(),
            schema_registry: SchemaRegistryConfig::default(),
            topics: TopicsConfig::default(),
            inputs: vec![
                InputConfig {
                    topic: "fraud.transactions".into(),
                    format: Encoding::Avro,
                    schema: "dev.vigil.demo.Transaction".into(),
                    model: "fraud".into(),
                    labels: "fraud.labels".into(),
                },
                InputConfig {
                    topic: "sentiment.texts".into(),
                    format: Encoding::Avro,
                    schema: "dev.vigil.demo.TextEvent".into(),
                    model: "sentiment".into(),
                    labels: "sentiment.labels".into(),
                },
            ],
            log: LogConfig::default(),
            http: HttpConfig::default(),
            scorer: ScorerConfig::default(),
            learner: LearnerConfig::default(),
            drift: DriftConfig::default(),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            client_id: "vigil".into(),
            security_protocol: "plaintext".into(),
            sasl_mechanism: String::new(),
            sasl_username: String::new(),
            sasl_password: String::new(),
            linger_ms: 5,
            batch_size: 1_000_000,
            compression: "lz4".into(),
            queue_max_messages: 100_000,
            consumer_queue_max_kbytes: 16_384,
            message_max_bytes: 67_108_864,
            delivery: Delivery::AtLeastOnce,
            transactional_id_prefix: "vigil".into(),
            properties: BTreeMap::new(),
        }
    }
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            scores: "vigil.scores".into(),
            models: "vigil.models".into(),
            alerts: "vigil.alerts".into(),
            drift: "vigil.drift".into(),
            dlq: "vigil.dlq".into(),
            partitions: 3,
            replication_factor: 1,
            models_max_message_bytes: 67_108_864,
            retention_ms: 7 * 24 * 3_600_000,
        }
    }
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            topic: String::new(),
            format: Encoding::Avro,
            schema: String::new(),
            model: String::new(),
            labels: String::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Pretty, level: "info".into() }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: "127.0.0.1:0".into() }
    }
}

const SECURITY_PROTOCOLS: &[&str] = &["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
const COMPRESSIONS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];

impl Layered for Config {
    fn array_templates() -> Vec<(&'static str, Value)> {
        vec![("inputs", Value::try_from(InputConfig::default()).unwrap_or(Value::Table(Default::default())))]
    }

    fn free_tables() -> &'static [&'static str] {
        &["kafka.properties"]
    }

    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let k = &self.kafka;
        if k.bootstrap_servers.trim().is_empty() {
            p.push("kafka.bootstrap-servers: must name at least one host:port".into());
        }
        for server in k.bootstrap_servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !valid_host_port(server) {
                p.push(format!("kafka.bootstrap-servers: `{server}` is not host:port"));
            }
        }
        if !SECURITY_PROTOCOLS.contains(&k.security_protocol.to_ascii_lowercase().as_str()) {
            p.push(format!(
                "kafka.security-protocol: `{}` is not one of {}",
                k.security_protocol,
                SECURITY_PROTOCOLS.join(", ")
            ));
        }
        if k.security_protocol.to_ascii_lowercase().starts_with("sasl") && k.sasl_mechanism.is_empty() {
            p.push("kafka.sasl-mechanism: required when kafka.security-protocol is sasl_*".into());
        }
        if !COMPRESSIONS.contains(&k.compression.as_str()) {
            p.push(format!("kafka.compression: `{}` is not one of {}", k.compression, COMPRESSIONS.join(", ")));
        }
        if k.queue_max_messages == 0 {
            p.push("kafka.queue-max-messages: must be at least 1".into());
        }
        if k.transactional_id_prefix.is_empty() {
            p.push("kafka.transactional-id-prefix: must not be empty".into());
        }
        for key in k.properties.keys() {
            if key.trim().is_empty() || key.contains(char::is_whitespace) {
                p.push(format!("kafka.properties: `{key}` is not a librdkafka property name"));
            }
        }
        let r = &self.schema_registry;
        if !(r.url.is_empty() || r.url.starts_with("http://") || r.url.starts_with("https://")) {
            p.push(format!("schema-registry.url: `{}` must start with http:// or https://", r.url));
        }
        let t = &self.topics;
        for (key, name) in
            [("scores", &t.scores), ("models", &t.models), ("alerts", &t.alerts), ("drift", &t.drift), ("dlq", &t.dlq)]
        {
            if let Err(why) = valid_topic(name) {
                p.push(format!("topics.{key}: {why}"));
            }
        }
        if t.partitions < 1 {
            p.push("topics.partitions: must be at least 1".into());
        }
        if t.replication_factor < 1 {
            p.push("topics.replication-factor: must be at least 1".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, input) in self.inputs.iter().enumerate() {
            if let Err(why) = valid_topic(&input.topic) {
                p.push(format!("inputs[{i}].topic: {why}"));
            } else if !seen.insert(input.topic.as_str()) {
                p.push(format!("inputs[{i}].topic: `{}` is listed twice", input.topic));
            }
            if input.model.is_empty() {
                p.push(format!("inputs[{i}].model: must name the model that scores this topic"));
            }
            if input.schema.is_empty() {
                p.push(format!("inputs[{i}].schema: must name the record schema, e.g. dev.vigil.demo.Transaction"));
            }
            if !input.labels.is_empty()
                && let Err(why) = valid_topic(&input.labels)
            {
                p.push(format!("inputs[{i}].labels: {why}"));
            }
        }
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            p.push(format!("log.level: `{}` is not a tracing filter: {e}", self.log.level));
        }
        for (key, listen) in [
            ("http.listen", &self.http.listen),
            ("scorer.http-listen", &self.scorer.http_listen),
            ("learner.http-listen", &self.learner.http_listen),
            ("drift.http-listen", &self.drift.http_listen),
        ] {
            if listen.parse::<SocketAddr>().is_err() {
                p.push(format!("{key}: `{listen}` is not an ip:port address"));
            }
        }
        let sc = &self.scorer;
        if !["cpu", "cuda", "auto"].contains(&sc.provider.as_str()) {
            p.push(format!("scorer.provider: `{}` is not one of cpu, cuda, auto", sc.provider));
        }
        if sc.workers == 0 || sc.intra_threads == 0 || sc.max_batch == 0 {
            p.push("scorer.workers, scorer.intra-threads and scorer.max-batch must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&sc.challenger_share) {
            p.push(format!("scorer.challenger-share: {} is not in [0, 1]", sc.challenger_share));
        }
        if !(sc.threshold > 0.0 && sc.threshold < 1.0) {
            p.push(format!("scorer.threshold: {} is not in (0, 1)", sc.threshold));
        }
        for (i, k) in sc.trusted_keys.iter().enumerate() {
            if k.len() != 64 || !k.chars().all(|c| c.is_ascii_hexdigit()) {
                p.push(format!("scorer.trusted-keys[{i}]: an ed25519 public key is 64 hex digits"));
            }
        }
        if sc.require_signature && sc.trusted_keys.is_empty() {
            p.push("scorer.require-signature: needs at least one scorer.trusted-keys entry".into());
        }
        if sc.commit_interval_ms == 0 {
            p.push("scorer.commit-interval-ms: must be at least 1".into());
        }
        let lc = &self.learner;
        if !["auc", "accuracy", "log-loss"].contains(&lc.metric.as_str()) {
            p.push(format!("learner.metric: `{}` is not one of auc, accuracy, log-loss", lc.metric));
        }
        if lc.join_window == 0 || lc.checkpoint_every == 0 || lc.window == 0 || lc.serve_top == 0 {
            p.push("learner.join-window, checkpoint-every, window and serve-top must be at least 1".into());
        }
        if !(lc.promote_margin >= 0.0 && lc.replay_ratio >= 0.0 && lc.anchor >= 0.0) {
            p.push("learner.promote-margin, replay-ratio and anchor must not be negative".into());
        }
        for m in &lc.models {
            if !self.inputs.iter().any(|i| &i.model == m && !i.labels.is_empty()) {
                p.push(format!("learner.models: no input with labels is scored by `{m}`"));
            }
        }
        for m in &sc.models {
            if !self.inputs.iter().any(|i| &i.model == m) {
                p.push(format!("scorer.models: no input is scored by `{m}`"));
            }
        }
        let dc = &self.drift;
        if dc.window < 30 || dc.warmup < 30 {
            p.push("drift.window and drift.warmup must be at least 30 events".into());
        }
        if dc.evaluate_every == 0 || dc.join_window == 0 || dc.resolve_after == 0 || dc.report_interval_ms == 0 {
            p.push("drift.evaluate-every, join-window, resolve-after and report-interval-ms must be at least 1".into());
        }
        if !(dc.significance > 0.0 && dc.significance < 1.0) {
            p.push(format!("drift.significance: {} is not in (0, 1)", dc.significance));
        }
        if !["benjamini-hochberg", "bonferroni", "none"].contains(&dc.correction.as_str()) {
            p.push(format!("drift.correction: `{}` is not one of benjamini-hochberg, bonferroni, none", dc.correction));
        }
        if !(0.0..1.0).contains(&dc.min_effect) {
            p.push(format!("drift.min-effect: {} is not in [0, 1)", dc.min_effect));
        }
        if !["window", "earliest"].contains(&dc.start_from.as_str()) {
            p.push(format!("drift.start-from: `{}` is not one of window, earliest", dc.start_from));
        }
        if !["adwin", "ddm", "page-hinkley"].contains(&dc.concept_detector.as_str()) {
            p.push(format!("drift.concept-detector: `{}` is not one of adwin, ddm, page-hinkley", dc.concept_detector));
        }
        if !(dc.adwin_delta > 0.0 && dc.adwin_delta < 1.0) {
            p.push(format!("drift.adwin-delta: {} is not in (0, 1)", dc.adwin_delta));
        }
        if !((0.0..=1.0).contains(&dc.min_accuracy) && (0.0..=1.0).contains(&dc.min_auc)) {
            p.push("drift.min-accuracy and drift.min-auc must be in [0, 1]".into());
        }
        if dc.max_p99_latency_ms.is_nan() || dc.max_p99_latency_ms < 0.0 {
            p.push("drift.max-p99-latency-ms must not be negative".into());
        }
        for m in &dc.models {
            if !self.inputs.iter().any(|i| &i.model == m) {
                p.push(format!("drift.models: no input is scored by `{m}`"));
            }
        }
        for (key, group) in [
            ("scorer.group-id", &self.scorer.group_id),
            ("learner.group-id", &self.learner.group_id),
            ("drift.group-id", &self.drift.group_id),
        ] {
            if group.trim().is_empty() {
                p.push(format!("{key}: must not be empty"));
            }
        }
        p
    }
}

impl Config {
    /// The models the inputs are scored by, each once, in configuration order (`labelled`: only
    /// those of inputs with a label topic).
    pub fn input_models(&self, labelled: bool) -> Vec<String> {
        let mut models: Vec<String> = Vec::new();
        for i in self.inputs.iter().filter(|i| !labelled || !i.labels.is_empty()) {
            if !models.contains(&i.model) {
                models.push(i.model.clone());
            }
        }
        models
    }

    /// Loads the configuration from defaults, the optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        layered::load(file, layered::process_env())
    }

    /// The input configured for `topic`, if any.
    pub fn input(&self, topic: &str) -> Option<&InputConfig> {
        self.inputs.iter().find(|i| i.topic == topic)
    }
}

/// Whether `s` is a Kafka topic name: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn valid_topic(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 249 {
        return Err(format!("`{s}` is longer than 249 characters"));
    }
    if s == "." || s == ".." {
        return Err(format!("`{s}` is not allowed as a topic name"));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("`{s}` contains `{c}`; topic names use letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

const REDACTED: &str = "<redacted>";

fn redact(value: &str) -> &str {
    if value.is_empty() { "" } else { REDACTED }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if layered::is_secret(k) { redact(v) } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &redact(&self.sasl_password))
            .field("linger_ms", &self.linger_ms)
            .field("batch_size", &self.batch_size)
            .field("compression", &self.compression)
            .field("queue_max_messages", &self.queue_max_messages)
            .field("consumer_queue_max_kbytes", &self.consumer_queue_max_kbytes)
            .field("message_max_bytes", &self.message_max_bytes)
            .field("delivery", &self.delivery)
            .field("transactional_id_prefix", &self.transactional_id_prefix)
            .field("properties", &props)
            .finish()
    }
}

impl fmt::Debug for SchemaRegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistryConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .finish()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("kafka", &self.kafka)
            .field("schema_registry", &self.schema_registry)
            .field("topics", &self.topics)
            .field("inputs", &self.inputs)
            .field("log", &self.log)
            .field("http", &self.http)
            .field("scorer", &self.scorer)
            .field("learner", &self.learner)
            .field("drift", &self.drift)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c: Config = layered::load(None, Vec::new()).unwrap();
        assert_eq!(c, Config::default());
        assert!(c.validate().is_empty());
    }

    /// `config/vigil.example.toml` documents every key at its default; it must not drift from the code
    /// (regenerate it with `vigil config --defaults`).
    #[test]
    fn the_example_file_is_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/vigil.example.toml");
        let c: Config = layered::load(Some(&path), Vec::new()).unwrap();
        assert_eq!(c, Config::default());
        let text = std::fs::read_to_string(&path).unwrap();
        let body: String = text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
        let defaults = toml::to_string_pretty(&Config::default()).unwrap();
        assert_eq!(body.trim(), defaults.trim(), "regenerate config/vigil.example.toml with `vigil config --defaults`");
    }

    #[test]
    fn cross_field_rules_are_all_reported() {
        let env = vec![
            ("VIGIL_KAFKA__BOOTSTRAP_SERVERS".to_string(), "nohost".to_string()),
            ("VIGIL_KAFKA__SECURITY_PROTOCOL".to_string(), "sasl_ssl".to_string()),
            ("VIGIL_TOPICS__SCORES".to_string(), "bad topic!".to_string()),
            ("VIGIL_HTTP__LISTEN".to_string(), "everywhere".to_string()),
            ("VIGIL_TOPICS__PARTITIONS".to_string(), "0".to_string()),
            ("VIGIL_DRIFT__START_FROM".to_string(), "yesterday".to_string()),
            ("VIGIL_DRIFT__CONCEPT_DETECTOR".to_string(), "hunch".to_string()),
        ];
        let err = layered::load::<Config>(None, env).unwrap_err();
        let text = err.to_string();
        for needle in [
            "kafka.bootstrap-servers",
            "kafka.sasl-mechanism",
            "topics.scores",
            "http.listen",
            "topics.partitions",
            "drift.start-from",
            "drift.concept-detector",
        ] {
            assert!(text.contains(needle), "missing {needle}:\n{text}");
        }
        assert_eq!(err.problems.len(), 7, "{text}");
    }

    #[test]
    fn input_models_are_listed_once_each() {
        let mut c = Config::default();
        let template = c.inputs[0].clone();
        let input = |topic: &str, model: &str, labels: &str| InputConfig {
            topic: topic.into(),
            model: model.into(),
            labels: labels.into(),
            ..template.clone()
        };
        c.inputs = vec![input("a", "fraud", "a.labels"), input("b", "sentiment", ""), input("c", "fraud", "")];
        assert_eq!(c.input_models(false), vec!["fraud", "sentiment"]);
        assert_eq!(c.input_models(true), vec!["fraud"]);
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut c = Config::default();
        c.kafka.sasl_password = "hunter2".into();
        c.kafka.properties.insert("sasl.oauthbearer.client.secret".into(), "s3cr3t".into());
        c.kafka.properties.insert("ssl.ca.location".into(), "/etc/ca.pem".into());
        c.schema_registry.password = "pw-registry".into();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cr3t") && !shown.contains("pw-registry"), "{shown}");
        assert!(shown.contains("/etc/ca.pem"));
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(valid_topic("vigil.scores").is_ok());
        assert!(valid_topic("a_b-c.1").is_ok());
        assert!(valid_topic("").is_err());
        assert!(valid_topic("..").is_err());
        assert!(valid_topic("a/b").is_err());
        assert!(valid_topic(&"x".repeat(250)).is_err());
    }
}
