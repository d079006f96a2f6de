//! The `vigil` subcommands.

pub mod ab;
pub mod bootstrap;
pub mod console;
pub mod encoder;
pub mod models;
pub mod produce;
pub mod records;
pub mod report;
pub mod spec;
pub mod status;
pub mod svg;
pub mod tail;
pub mod topics;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use vigil_kafka::client;

use crate::Config;
use vigil_events::error::hex;

/// How a list command prints: a table for people, or one JSON array for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Text,
    /// A JSON array of objects.
    Json,
}

/// `vigil schemas`.
pub fn schemas(output: Output) -> anyhow::Result<ExitCode> {
    let shipped = vigil_events::schemas::shipped();
    if output == Output::Json {
        let rows: Vec<serde_json::Value> = shipped
            .iter()
            .map(|s| serde_json::json!({"schema": s.name, "version": s.version, "current": s.current, "fingerprint": hex(&s.fingerprint)}))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<36} {:>7} {:>8} fingerprint (CRC-64-AVRO)", "schema", "version", "current");
    for s in shipped {
        println!("{:<36} {:>7} {:>8} {}", s.name, s.version, if s.current { "yes" } else { "" }, hex(&s.fingerprint));
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil config --defaults`: the built-in defaults as TOML (the source of `config/vigil.example.toml`).
pub fn print_defaults() -> anyhow::Result<ExitCode> {
    print_config(&Config::default())
}

/// `vigil config`: the configuration in effect as TOML (secrets print as `<redacted>`).
pub fn print_config(config: &Config) -> anyhow::Result<ExitCode> {
    println!("{}", toml::to_string_pretty(config)?);
    Ok(ExitCode::SUCCESS)
}

/// A codec that knows the inputs' schemas (from their files or the schema registry), and the
/// configuration with the registry's schemas filled in; what cannot be loaded is said, not fatal.
pub(crate) async fn with_input_schemas(config: &Config) -> (vigil_events::Codec, Config) {
    let codec = vigil_events::Codec::new();
    let mut config = config.clone();
    if let Err(problems) = vigil_kafka::inputs::load_schemas(&codec, &mut config.inputs, &config.schema_registry).await
    {
        eprintln!("vigil: some input schemas are not available: {}", problems.join("; "));
    }
    (codec, config)
}

/// The schema a topic carries, by the configuration.
pub fn schema_for_topic<'a>(config: &'a Config, topic: &str) -> Option<&'a str> {
    use vigil_events::schemas::names;
    let t = &config.topics;
    if topic == t.scores {
        return Some(names::SCORE);
    }
    if topic == t.models {
        return Some(names::MODEL_CHECKPOINT);
    }
    if topic == t.alerts {
        return Some(names::ALERT);
    }
    if topic == t.drift {
        return Some(names::DRIFT_REPORT);
    }
    if topic == t.experiments {
        return Some(names::EXPERIMENT);
    }
    for input in &config.inputs {
        if input.topic == topic {
            return Some(input.schema.as_str());
        }
        if input.labels == topic {
            return Some(names::LABEL);
        }
    }
    None
}

/// The record field used as the Kafka key for a schema (see DESIGN.md's topic table).
pub fn key_field(schema: &str) -> Option<&'static str> {
    use vigil_events::schemas::names;
    match schema {
        names::TRANSACTION => Some("account_id"),
        names::TEXT_EVENT | names::LABEL | names::SCORE => Some("event_id"),
        names::ALERT => Some("dedup_key"),
        names::DRIFT_REPORT | names::EXPERIMENT => Some("model"),
        _ => None,
    }
}

/// Every record's value on `topic` (the `last` ones of each partition, when given), read to the
/// ends the partitions had when asked.
pub(crate) fn read_topic(config: &Config, topic: &str, last: Option<i64>) -> anyhow::Result<Vec<Vec<u8>>> {
    let timeout = Duration::from_secs(10);
    let group = format!("vigil-read-{}-{}", std::process::id(), vigil_kafka::now_ms());
    let consumer: BaseConsumer<client::LogContext> =
        client::consumer_config(&config.kafka, "read", &group).create_with_context(client::LogContext)?;
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let (mut tpl, mut ends) = (TopicPartitionList::new(), HashMap::new());
    for p in md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())) {
        let (low, high) = client::watermarks(&consumer, topic, p, timeout)?;
        if high > low {
            let from = last.map_or(Offset::Beginning, |n| Offset::Offset((high - n).max(low)));
            tpl.add_partition_offset(topic, p, from)?;
            ends.insert(p, high);
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.extend(rdkafka::Message::payload(&m).map(<[u8]>::to_vec));
        }
        let at_end = |e: &rdkafka::topic_partition_list::TopicPartitionListElem<'_>| matches!(e.offset(), Offset::Offset(o) if o >= ends[&e.partition()]);
        if consumer.position()?.elements().iter().all(at_end) {
            break;
        }
    }
    Ok(out)
}
