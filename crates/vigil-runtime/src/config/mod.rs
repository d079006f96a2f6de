//! Vigil's configuration: one TOML document with a section per concern. The sections every program
//! shares — the cluster (`[kafka]`, `[schema-registry]`, in [`kafka`]), Vigil's own topics
//! (`[topics]`), the inputs (`[[inputs]]`), logging and the CLI's endpoint — are defined here; each
//! service owns its own section (`[scorer]`, `[learner]`, `[drift]`) in its crate and plugs it in as a
//! type parameter of [`Config`]. A program reads its own section with its real types and keeps the
//! others as written ([`Unchecked`]); `vigil config` checks them all.
//!
//! Loaded in layers by [`crate::layered`] (defaults, file, `VIGIL_*` variables), with every problem
//! reported at once; see `config/vigil.example.toml` for every key. The defaults name no input: the
//! demo passes its own file (`config/demo.toml`).

pub mod kafka;
pub mod types;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::Value;

pub use self::kafka::{Compression, Delivery, KafkaConfig, SchemaRegistryConfig, SecurityProtocol};
pub use self::types::{Secret, millis};
use crate::layered::{self, ConfigError, Layered};
pub use vigil_events::Encoding;

/// A service's own section of the document.
pub trait Section: Default + Clone + PartialEq + Debug + Serialize + DeserializeOwned {
    /// Rules that involve more than one key (or the inputs); every problem, with its key's path.
    fn validate(&self, inputs: &[InputConfig]) -> Vec<String>;
}

/// A section this program does not read, kept as written (its own service checks it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Unchecked(toml::Table);

impl Section for Unchecked {
    fn validate(&self, _inputs: &[InputConfig]) -> Vec<String> {
        Vec::new()
    }
}

/// The whole document, with the scorer's, learner's and drift service's sections as `Sc`, `Le`
/// and `Dr` (each [`Unchecked`] for a program that does not read it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config<Sc = Unchecked, Le = Unchecked, Dr = Unchecked> {
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
    pub scorer: Sc,
    /// The learner service.
    pub learner: Le,
    /// The drift service.
    pub drift: Dr,
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
    /// Live A/B tests (compacted, key = model).
    pub experiments: String,
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

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            scores: "vigil.scores".into(),
            models: "vigil.models".into(),
            alerts: "vigil.alerts".into(),
            drift: "vigil.drift".into(),
            dlq: "vigil.dlq".into(),
            experiments: "vigil.experiments".into(),
            partitions: 3,
            replication_factor: 1,
            models_max_message_bytes: 67_108_864,
            retention_ms: 7 * 24 * 3_600_000,
        }
    }
}

impl TopicsConfig {
    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let t = self;
        for (key, name) in [
            ("scores", &t.scores),
            ("models", &t.models),
            ("alerts", &t.alerts),
            ("drift", &t.drift),
            ("dlq", &t.dlq),
            ("experiments", &t.experiments),
        ] {
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
        p
    }
}

/// One input topic and what Vigil does with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct InputConfig {
    /// The topic upstream systems produce to.
    pub topic: String,
    /// Value encoding: avro (single-object or Confluent framing, told apart by the first byte) or json.
    pub format: Encoding,
    /// Full name of the record schema (reader schema), e.g. `dev.vigil.demo.Transaction`: one Vigil
    /// ships, or the one `schema-file` or `schema-subject` holds (then it may be left out).
    pub schema: String,
    /// An Avro schema file (`.avsc`, any namespace) to read the records with.
    pub schema_file: String,
    /// A schema registry subject whose latest version is the reader schema (needs
    /// `schema-registry.url`).
    pub schema_subject: String,
    /// The record field holding the event id (what labels refer to, and what scores are keyed by
    /// unless `scorer.scores-key = "input"`).
    pub id_field: String,
    /// The model that scores this topic.
    pub model: String,
    /// The topic carrying this input's labels; empty when there is none.
    pub labels: String,
    /// A field whose value puts events in groups (a ticker, a topic, a source): the drift service
    /// watches each group's share of negative predictions and raises a `SENTIMENT_SURGE` alert when
    /// it rises against the group's own baseline. Empty: no groups.
    pub group_field: String,
    /// A feature spec file (TOML) for a model that has no version yet: the learner trains it from
    /// the first labels (see `vigil spec infer`).
    pub spec: String,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            topic: String::new(),
            format: Encoding::Avro,
            schema: String::new(),
            schema_file: String::new(),
            schema_subject: String::new(),
            id_field: "event_id".into(),
            model: String::new(),
            labels: String::new(),
            group_field: String::new(),
            spec: String::new(),
        }
    }
}

fn validate_inputs(inputs: &[InputConfig], registry: &SchemaRegistryConfig) -> Vec<String> {
    let mut p = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, input) in inputs.iter().enumerate() {
        if let Err(why) = valid_topic(&input.topic) {
            p.push(format!("inputs[{i}].topic: {why}"));
        } else if !seen.insert(input.topic.as_str()) {
            p.push(format!("inputs[{i}].topic: `{}` is listed twice", input.topic));
        }
        if input.model.is_empty() {
            p.push(format!("inputs[{i}].model: must name the model that scores this topic"));
        }
        if input.id_field.is_empty() {
            p.push(format!("inputs[{i}].id-field: must name the record field holding the event id"));
        }
        if input.schema.is_empty() && input.schema_file.is_empty() && input.schema_subject.is_empty() {
            p.push(format!(
                "inputs[{i}].schema: name the record schema (e.g. dev.vigil.demo.Transaction), a schema-file or a schema-subject"
            ));
        }
        if !input.schema_file.is_empty() && !input.schema_subject.is_empty() {
            p.push(format!("inputs[{i}].schema-file: give a schema-file or a schema-subject, not both"));
        }
        if !input.schema_subject.is_empty() && registry.url.is_empty() {
            p.push(format!("inputs[{i}].schema-subject: needs schema-registry.url"));
        }
        if !input.labels.is_empty()
            && let Err(why) = valid_topic(&input.labels)
        {
            p.push(format!("inputs[{i}].labels: {why}"));
        }
    }
    p
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LogConfig {
    /// pretty (for people) or json (one object per line, for collectors).
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,vigil_kafka=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Pretty, level: "info".into() }
    }
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

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: "127.0.0.1:0".into() }
    }
}

impl<Sc: Section, Le: Section, Dr: Section> Layered for Config<Sc, Le, Dr> {
    fn array_templates() -> Vec<(&'static str, Value)> {
        vec![("inputs", Value::try_from(InputConfig::default()).unwrap_or(Value::Table(Default::default())))]
    }

    fn free_tables() -> &'static [&'static str] {
        &["kafka.properties"]
    }

    fn validate(&self) -> Vec<String> {
        let mut p = self.kafka.validate();
        p.extend(self.schema_registry.validate());
        p.extend(self.topics.validate());
        p.extend(validate_inputs(&self.inputs, &self.schema_registry));
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            p.push(format!("log.level: `{}` is not a tracing filter: {e}", self.log.level));
        }
        p.extend(check_listen("http.listen", &self.http.listen));
        p.extend(self.scorer.validate(&self.inputs));
        p.extend(self.learner.validate(&self.inputs));
        p.extend(self.drift.validate(&self.inputs));
        p
    }
}

impl<Sc: Section, Le: Section, Dr: Section> Config<Sc, Le, Dr> {
    /// Loads the configuration from defaults, the optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        layered::load(file, layered::process_env())
    }
}

impl<Sc, Le, Dr> Config<Sc, Le, Dr> {
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

    /// The input configured for `topic`, if any.
    pub fn input(&self, topic: &str) -> Option<&InputConfig> {
        self.inputs.iter().find(|i| i.topic == topic)
    }
}

/// `[key]: … is not an ip:port address`, when `listen` is not one.
pub fn check_listen(key: &str, listen: &str) -> Option<String> {
    listen.parse::<SocketAddr>().is_err().then(|| format!("{key}: `{listen}` is not an ip:port address"))
}

/// `[section].models`: each named model must be scored by an input (with labels, when `labelled`).
pub fn check_models(section: &str, models: &[String], inputs: &[InputConfig], labelled: bool) -> Vec<String> {
    models
        .iter()
        .filter(|m| !inputs.iter().any(|i| &i.model == *m && (!labelled || !i.labels.is_empty())))
        .map(|m| {
            let with = if labelled { "with labels " } else { "" };
            format!("{section}.models: no input {with}is scored by `{m}`")
        })
        .collect()
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

#[cfg(test)]
mod tests;
