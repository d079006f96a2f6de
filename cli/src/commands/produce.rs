//! `vigil produce <topic>`: JSON lines in, Avro records out (single-object encoding, or Confluent
//! framing when a schema registry is configured).

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use crate::Config;
use anyhow::Context;
use clap::Args;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::Value as Json;
use vigil_events::Codec;
use vigil_events::json::from_json;
use vigil_events::schemas::names;
use vigil_kafka::client;
use vigil_kafka::schema_registry::Registry;

use super::{key_field, schema_for_topic};

/// Options of `vigil produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to produce to.
    topic: String,
    /// Schema (full name) of the records; by default the one the configuration gives the topic.
    #[arg(long)]
    schema: Option<String>,
    /// Record field whose value becomes the Kafka key; by default the schema's usual key.
    #[arg(long)]
    key_field: Option<String>,
}

/// Runs `vigil produce`.
pub async fn run(config: &Config, args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let schema_name = match args.schema.as_deref().or_else(|| schema_for_topic(config, &args.topic)) {
        Some(s) => s.to_string(),
        None => anyhow::bail!("no schema is configured for topic {}; pass --schema", args.topic),
    };
    let codec = Codec::new();
    let schema = codec.schema(&schema_name)?;
    if let Some(registry) = Registry::from_config(&config.schema_registry)? {
        registry.register(&codec, &args.topic, &schema_name).await?;
    }
    let key_field = args.key_field.clone().or_else(|| key_field(&schema_name).map(str::to_string));
    let producer: FutureProducer<client::LogContext> =
        client::producer_config(&config.kafka, "produce").create_with_context(client::LogContext)?;

    let (mut sent, mut failed) = (0u64, 0u64);
    let mut pending = Vec::new();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let encoded = serde_json::from_str::<Json>(&line).map_err(|e| e.to_string()).and_then(|json| {
            let value = from_json(&json, schema).map_err(|e| e.to_string())?;
            let bytes = codec.encode_value(&schema_name, &value).map_err(|e| e.to_string())?;
            Ok((key_of(&json, &schema_name, key_field.as_deref()), bytes))
        });
        match encoded {
            Ok((key, bytes)) => {
                // Enqueued in input order (one partition per key keeps that order); deliveries are
                // awaited at the end.
                let mut record = FutureRecord::<[u8], [u8]>::to(&args.topic).payload(&bytes[..]);
                if let Some(k) = &key {
                    record = record.key(k.as_bytes());
                }
                let mut record = record;
                loop {
                    match producer.send_result(record) {
                        Ok(delivery) => {
                            pending.push(delivery);
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            producer.poll(Duration::from_millis(10));
                        }
                        Err((e, _)) => {
                            failed += 1;
                            eprintln!("vigil produce: line {}: {e}", i + 1);
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("vigil produce: line {}: {e}", i + 1);
            }
        }
    }
    for delivery in pending {
        match delivery.await {
            Ok(Ok(_)) => sent += 1,
            Ok(Err((e, _))) => {
                failed += 1;
                eprintln!("vigil produce: delivery failed: {e}");
            }
            Err(_) => {
                failed += 1;
                eprintln!("vigil produce: delivery was cancelled");
            }
        }
    }
    producer.flush(Duration::from_secs(30))?;
    eprintln!("vigil produce: {sent} records produced to {}, {failed} failed", args.topic);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn key_of(json: &Json, schema: &str, field: Option<&str>) -> Option<String> {
    if schema == names::MODEL_CHECKPOINT {
        return Some(format!("{}/{}", json.get("model")?.as_str()?, json.get("version")?.as_i64()?));
    }
    match json.get(field?)? {
        Json::String(s) => Some(s.clone()),
        Json::Null => None,
        other => Some(other.to_string()),
    }
}
