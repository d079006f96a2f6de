//! The `[kafka]` and `[schema-registry]` sections: the cluster, client settings and the optional
//! Confluent-compatible schema registry.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::types::{REDACTED, Secret};
use crate::layered;

/// Kafka connection and client settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// `client.id` prefix; each client appends its role.
    pub client_id: String,
    /// `security.protocol`.
    pub security_protocol: SecurityProtocol,
    /// `sasl.mechanism` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER); empty when unused.
    pub sasl_mechanism: String,
    /// `sasl.username`.
    pub sasl_username: String,
    /// `sasl.password` (a secret: never logged).
    pub sasl_password: Secret,
    /// Producer `linger.ms`: how long the producer waits to fill a batch.
    pub linger_ms: u32,
    /// Producer `batch.size` in bytes.
    pub batch_size: u32,
    /// Producer `compression.type`.
    pub compression: Compression,
    /// Producer `queue.buffering.max.messages`: the bound on records waiting for delivery.
    pub queue_max_messages: u32,
    /// Consumer `queued.max.messages.kbytes`: the bound on prefetched data per client.
    pub consumer_queue_max_kbytes: u32,
    /// `message.max.bytes` for producers (checkpoints can be large).
    pub message_max_bytes: u32,
    /// Delivery guarantee of services that produce what they consume.
    pub delivery: Delivery,
    /// `transaction.timeout.ms` of transactional producers (exactly-once): a transaction open this
    /// long (a broker or network away) is aborted by the coordinator, and the service rewinds.
    pub transaction_timeout_ms: u32,
    /// Prefix of `transactional.id`s (exactly-once); the service and partition set are appended.
    pub transactional_id_prefix: String,
    /// Any other librdkafka property, passed straight through (e.g. `"ssl.ca.location"`).
    pub properties: BTreeMap<String, String>,
}

/// `security.protocol` (lower case, or upper case as Kafka's own tools write it).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    #[serde(alias = "PLAINTEXT")]
    Plaintext,
    /// TLS.
    #[serde(alias = "SSL")]
    Ssl,
    /// SASL without TLS.
    #[serde(alias = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// SASL over TLS.
    #[serde(alias = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// librdkafka's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    /// Whether it authenticates with SASL.
    pub fn is_sasl(&self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// Producer `compression.type`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// None.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// librdkafka's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
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

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            client_id: "vigil".into(),
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: String::new(),
            sasl_username: String::new(),
            sasl_password: Secret::default(),
            linger_ms: 5,
            batch_size: 1_000_000,
            compression: Compression::Lz4,
            queue_max_messages: 100_000,
            consumer_queue_max_kbytes: 16_384,
            message_max_bytes: 67_108_864,
            delivery: Delivery::AtLeastOnce,
            transaction_timeout_ms: 60_000,
            transactional_id_prefix: "vigil".into(),
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Every problem of the section.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.bootstrap_servers.trim().is_empty() {
            p.push("kafka.bootstrap-servers: must name at least one host:port".into());
        }
        for server in self.bootstrap_servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !valid_host_port(server) {
                p.push(format!("kafka.bootstrap-servers: `{server}` is not host:port"));
            }
        }
        if self.security_protocol.is_sasl() && self.sasl_mechanism.is_empty() {
            p.push("kafka.sasl-mechanism: required when kafka.security-protocol is sasl_*".into());
        }
        if self.queue_max_messages == 0 {
            p.push("kafka.queue-max-messages: must be at least 1".into());
        }
        if self.transaction_timeout_ms < 1000 {
            p.push("kafka.transaction-timeout-ms: must be at least 1000".into());
        }
        if self.transactional_id_prefix.is_empty() {
            p.push("kafka.transactional-id-prefix: must not be empty".into());
        }
        for key in self.properties.keys() {
            if key.trim().is_empty() || key.contains(char::is_whitespace) {
                p.push(format!("kafka.properties: `{key}` is not a librdkafka property name"));
            }
        }
        p
    }
}

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if layered::is_secret(k) && !v.is_empty() { REDACTED } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password)
            .field("linger_ms", &self.linger_ms)
            .field("batch_size", &self.batch_size)
            .field("compression", &self.compression)
            .field("queue_max_messages", &self.queue_max_messages)
            .field("consumer_queue_max_kbytes", &self.consumer_queue_max_kbytes)
            .field("message_max_bytes", &self.message_max_bytes)
            .field("delivery", &self.delivery)
            .field("transaction_timeout_ms", &self.transaction_timeout_ms)
            .field("transactional_id_prefix", &self.transactional_id_prefix)
            .field("properties", &props)
            .finish()
    }
}

/// Schema registry settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SchemaRegistryConfig {
    /// Base URL, e.g. `http://127.0.0.1:8081`; empty to use Avro single-object encoding.
    pub url: String,
    /// Basic-auth user, if the registry needs one.
    pub username: String,
    /// Basic-auth password (a secret: never logged).
    pub password: Secret,
}

impl SchemaRegistryConfig {
    /// Every problem of the section.
    pub fn validate(&self) -> Vec<String> {
        let url = &self.url;
        if url.is_empty() || url.starts_with("http://") || url.starts_with("https://") {
            Vec::new()
        } else {
            vec![format!("schema-registry.url: `{url}` must start with http:// or https://")]
        }
    }
}
