//! librdkafka client configuration built from Vigil's configuration, and the client context that
//! routes librdkafka's own log lines into `tracing` (never printing the configuration, so secrets
//! stay out of logs).

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
#[cfg(test)]
use vigil_runtime::config::Compression;
use vigil_runtime::config::{Delivery, KafkaConfig};

/// Settings every client shares: brokers, identity, security, pass-through properties.
pub fn base_config(k: &KafkaConfig, role: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.bootstrap_servers)
        .set("client.id", format!("{}-{role}", k.client_id))
        .set("security.protocol", k.security_protocol.as_str())
        // After an outage a client retries its connections with a backoff that grows to this
        // (librdkafka's default 10 s; the Java client's 1 s): a broker back from a restart is found
        // within a second, not after up to ten seconds per client.
        .set("reconnect.backoff.max.ms", "1000");
    if !k.sasl_mechanism.is_empty() {
        c.set("sasl.mechanism", &k.sasl_mechanism);
    }
    if !k.sasl_username.is_empty() {
        c.set("sasl.username", &k.sasl_username);
    }
    if !k.sasl_password.is_empty() {
        c.set("sasl.password", k.sasl_password.expose());
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    c
}

/// An idempotent producer's settings (acks=all; batching and compression from the configuration;
/// keys hashed with murmur2 as Java producers do, so that a key lands where theirs does).
pub fn producer_config(k: &KafkaConfig, role: &str) -> ClientConfig {
    let mut c = base_config(k, role);
    c.set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("acks", "all")
        .set("linger.ms", k.linger_ms.to_string())
        .set("batch.size", k.batch_size.to_string())
        .set("compression.type", k.compression.as_str())
        .set("queue.buffering.max.messages", k.queue_max_messages.to_string())
        .set("message.max.bytes", k.message_max_bytes.to_string());
    // Pass-through properties win over Vigil's choices.
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    c
}

/// A service's idempotent producer: like [`producer_config`], but a record is never given up while
/// the broker is away (`message.timeout.ms = 0`): a service waits out an outage of any length, its
/// queue full (back-pressure), rather than failing a delivery and exiting.
pub fn service_producer_config(k: &KafkaConfig, role: &str) -> ClientConfig {
    let mut c = producer_config(k, role);
    if !k.properties.contains_key("message.timeout.ms") {
        c.set("message.timeout.ms", "0");
    }
    c
}

/// A transactional producer's settings (exactly-once); `id` must be stable for the instance.
pub fn transactional_config(k: &KafkaConfig, role: &str, id: &str) -> ClientConfig {
    let mut c = producer_config(k, role);
    c.set("transactional.id", format!("{}-{id}", k.transactional_id_prefix))
        .set("transaction.timeout.ms", k.transaction_timeout_ms.to_string());
    c
}

/// A consumer's settings: manual offset storage and commits, earliest reset, bounded prefetch;
/// `read_committed` so that aborted transactional output is never consumed.
pub fn consumer_config(k: &KafkaConfig, role: &str, group: &str) -> ClientConfig {
    let mut c = base_config(k, role);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("queued.max.messages.kbytes", k.consumer_queue_max_kbytes.to_string())
        // When the prefetch queue is over its bounds, librdkafka waits this long before fetching
        // that partition again; its default, 1 s, left the loop waiting for records (`vigil-bench
        // forwarder`, 3 rounds each: drain 172k/s and p99 128 ms at half the live maximum with 1 s,
        // 473k/s and 49 ms with 10 ms).
        .set("fetch.queue.backoff.ms", "10")
        .set("partition.assignment.strategy", "cooperative-sticky")
        // A member that went silent (killed, or cut off by an outage longer than this) is replaced
        // within 10 s, not librdkafka's 45: after a long outage a consumer rejoins as a new member
        // and the group waits for its old self to time out before assigning anything.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000");
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    c
}

/// A consumer for the models topic: like [`consumer_config`], but fetching messages as large as the
/// largest checkpoint (input consumers keep librdkafka's 1 MiB fetches, so that memory stays bounded).
pub fn large_message_consumer_config(k: &KafkaConfig, role: &str, group: &str) -> ClientConfig {
    let mut c = consumer_config(k, role, group);
    c.set("fetch.message.max.bytes", k.message_max_bytes.to_string())
        .set("max.partition.fetch.bytes", k.message_max_bytes.to_string());
    c
}

/// Refuses settings this build of librdkafka cannot honour: a compression codec it was built
/// without (every codec a Java producer may use — gzip, snappy, lz4, zstd — is built in here), or a
/// SASL mechanism it lacks (GSSAPI, OAUTHBEARER with OIDC).
pub fn check_features(k: &KafkaConfig) -> Result<(), String> {
    let native = ClientConfig::new().create_native_config().map_err(|e| e.to_string())?;
    let features = native.get("builtin.features").map_err(|e| e.to_string())?;
    let built: Vec<&str> = features.split(',').collect();
    let codec = k.compression.as_str();
    if codec != "none" && !built.contains(&codec) {
        return Err(format!("kafka.compression: {codec} is not built into this librdkafka ({features})"));
    }
    let mechanism = k.sasl_mechanism.to_ascii_uppercase();
    let needs = match mechanism.as_str() {
        "GSSAPI" => Some("sasl_gssapi"),
        "SCRAM-SHA-256" | "SCRAM-SHA-512" => Some("sasl_scram"),
        "OAUTHBEARER" => Some("sasl_oauthbearer"),
        "PLAIN" => Some("sasl_plain"),
        _ => None,
    };
    if k.security_protocol.is_sasl()
        && let Some(f) = needs.filter(|f| !built.contains(f))
    {
        return Err(format!("kafka.sasl-mechanism: {mechanism} needs {f}, which this librdkafka lacks ({features})"));
    }
    Ok(())
}

/// Whether the configuration asks for transactions.
pub fn exactly_once(k: &KafkaConfig) -> bool {
    k.delivery == Delivery::ExactlyOnce
}

/// A client context that logs through `tracing`.
#[derive(Debug, Clone, Default)]
pub struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_line(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
    }
}

impl ConsumerContext for LogContext {}

/// Emits one librdkafka log line at the matching `tracing` level.
pub fn log_line(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility = fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility = fac, "{message}"),
    }
}

/// A partition's (low, high) watermarks, retried for up to `patience` while the broker is still
/// electing the partition's leader or spreading a new topic's metadata (what a topic created a
/// moment ago answers), so that start-up right after `vigil topics create` does not fail.
pub fn watermarks<C: ConsumerContext, T: rdkafka::consumer::Consumer<C>>(
    consumer: &T,
    topic: &str,
    partition: i32,
    patience: std::time::Duration,
) -> Result<(i64, i64), KafkaError> {
    use rdkafka::types::RDKafkaErrorCode as Code;
    let deadline = std::time::Instant::now() + patience;
    loop {
        match consumer.fetch_watermarks(topic, partition, std::time::Duration::from_secs(10)) {
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        Code::NotLeaderForPartition
                            | Code::LeaderNotAvailable
                            | Code::UnknownTopicOrPartition
                            | Code::UnknownPartition
                    )
                ) && std::time::Instant::now() < deadline =>
            {
                tracing::debug!(topic, partition, error = %e, "watermarks not available yet; retrying");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_is_idempotent_and_passes_properties_through() {
        let mut k = KafkaConfig::default();
        k.properties.insert("ssl.ca.location".into(), "/ca.pem".into());
        k.properties.insert("linger.ms".into(), "20".into());
        k.security_protocol = vigil_runtime::config::SecurityProtocol::SaslSsl;
        k.sasl_mechanism = "SCRAM-SHA-512".into();
        k.sasl_username = "u".into();
        k.sasl_password = vigil_runtime::config::Secret::new("p");
        let c = producer_config(&k, "scorer");
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(c.get("linger.ms"), Some("20"), "pass-through wins");
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("client.id"), Some("vigil-scorer"));
        assert_eq!(c.get("partitioner"), Some("murmur2_random"), "keys land where Java producers put them");
        let t = transactional_config(&k, "scorer", "scorer-0");
        assert_eq!(t.get("transactional.id"), Some("vigil-scorer-0"));
    }

    #[test]
    fn every_codec_a_java_producer_uses_is_built_in() {
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let k = KafkaConfig { compression: codec, ..KafkaConfig::default() };
            assert_eq!(check_features(&k), Ok(()), "{codec:?}");
        }
        let gssapi = KafkaConfig {
            security_protocol: vigil_runtime::config::SecurityProtocol::SaslSsl,
            sasl_mechanism: "GSSAPI".into(),
            ..KafkaConfig::default()
        };
        assert!(check_features(&gssapi).unwrap_err().contains("GSSAPI"));
    }

    #[test]
    fn consumer_commits_manually() {
        let c = consumer_config(&KafkaConfig::default(), "scorer", "g");
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("group.id"), Some("g"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("10"), "a full prefetch queue does not stall for a second");
    }

    #[test]
    fn clients_reconnect_within_a_second_unless_told_otherwise() {
        assert_eq!(base_config(&KafkaConfig::default(), "scorer").get("reconnect.backoff.max.ms"), Some("1000"));
        let mut k = KafkaConfig::default();
        k.properties.insert("reconnect.backoff.max.ms".into(), "5000".into());
        assert_eq!(consumer_config(&k, "scorer", "g").get("reconnect.backoff.max.ms"), Some("5000"));
    }
}
