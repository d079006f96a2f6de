//! `vigil produce <topic>`: records from JSON lines (standard input or a file) or a CSV file, as
//! Avro of the topic's schema — a shipped one, the configured input's, or any `.avsc` file —
//! with single-object encoding, or Confluent framing when a schema registry is configured (the
//! schema is registered under `<topic>-value`, BACKWARD compatible). With `--label-column` and
//! `--labels-topic`, each row's label goes to the label topic as a `Label` with the record's event
//! id. A progress bar shows on a terminal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use serde_json::Value as Json;
use vigil_events::json::from_json;
use vigil_events::schemas::names;
use vigil_events::{Codec, Label};
use vigil_kafka::schema_registry::Registry;
use vigil_kafka::{client, now_ms};

use super::records::{self, Row};
use super::{key_field, schema_for_topic};
use crate::Config;

/// Options of `vigil produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to produce to.
    topic: String,
    /// Schema of the records: a full name, or a `.avsc` file; by default the one the configuration
    /// gives the topic.
    #[arg(long)]
    schema: Option<String>,
    /// Read this file (`.csv` with a header row, else JSON lines) instead of standard input.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Record field whose value becomes the Kafka key; by default the schema's usual key.
    #[arg(long)]
    key_field: Option<String>,
    /// Column holding each row's label (sent to `--labels-topic`, not into the record unless the
    /// schema has it).
    #[arg(long, requires = "labels_topic")]
    label_column: Option<String>,
    /// Topic for the labels.
    #[arg(long, requires = "label_column")]
    labels_topic: Option<String>,
    /// The label value meaning positive; without it labels are numbers or true / false.
    #[arg(long)]
    positive: Option<String>,
    /// Record field holding the event id the labels refer to.
    #[arg(long, default_value = "event_id")]
    id_field: String,
}

/// What produce counted.
#[derive(Default)]
struct Counts {
    records: u64,
    labels: u64,
    failed: u64,
}

/// Runs `vigil produce`.
pub async fn run(config: &Config, args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let codec = Codec::new();
    let schema_name = match args.schema.as_deref() {
        Some(s) => records::schema_arg(&codec, s)?,
        None => {
            // The configured inputs' schemas (files, registry subjects) are the topic's.
            let mut config = config.clone();
            vigil_kafka::inputs::load_schemas(&codec, &mut config.inputs, &config.schema_registry)
                .await
                .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
            match schema_for_topic(&config, &args.topic) {
                Some(s) => s.to_string(),
                None => bail!("no schema is configured for topic {}; pass --schema", args.topic),
            }
        }
    };
    let schema = codec.schema(&schema_name)?;
    if let Some(registry) = Registry::from_config(&config.schema_registry)? {
        registry.register(&codec, &args.topic, &schema_name).await?;
        if let Some(t) = &args.labels_topic {
            registry.register(&codec, t, names::LABEL).await?;
        }
    }
    let rows = match &args.file {
        Some(path) => records::read(path, schema)?,
        None => records::read(std::path::Path::new("-"), schema)?,
    };
    let key_field = args
        .key_field
        .clone()
        .or_else(|| key_field(&schema_name).map(str::to_string))
        .or_else(|| Some(args.id_field.clone()));
    let producer: FutureProducer<client::LogContext> =
        client::producer_config(&config.kafka, "produce").create_with_context(client::LogContext)?;
    let bar = progress(rows.len() as u64);
    let mut counts = Counts::default();
    let mut pending = Vec::new();
    for row in &rows {
        bar.inc(1);
        match encode(&codec, &schema_name, schema, row, &args, key_field.as_deref()) {
            Ok((key, bytes, label)) => {
                pending.push(enqueue(&producer, &args.topic, key.as_deref(), bytes).await?);
                counts.records += 1;
                if let (Some((id, y)), Some(topic)) = (label, &args.labels_topic) {
                    let l = Label {
                        event_id: id.clone(),
                        label: y,
                        label_time: now_ms(),
                        source: Some("vigil produce".into()),
                    };
                    pending.push(enqueue(&producer, topic, Some(&id), codec.encode_event(&l)?).await?);
                    counts.labels += 1;
                }
            }
            Err(e) => {
                counts.failed += 1;
                bar.suspend(|| eprintln!("vigil produce: line {}: {e}", row.line));
            }
        }
    }
    bar.finish_and_clear();
    for delivery in pending {
        if !matches!(delivery.await, Ok(Ok(_))) {
            counts.failed += 1;
        }
    }
    producer.flush(Duration::from_secs(30))?;
    eprintln!(
        "vigil produce: {} records to {}{}, {} failed",
        counts.records,
        args.topic,
        args.labels_topic.as_ref().map(|t| format!(" and {} labels to {t}", counts.labels)).unwrap_or_default(),
        counts.failed
    );
    Ok(if counts.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A record's key, Avro bytes, and (with a label column) its event id and label.
type Encoded = (Option<String>, Vec<u8>, Option<(String, f64)>);

fn encode(
    codec: &Codec,
    name: &str,
    schema: &apache_avro::Schema,
    row: &Row,
    args: &ProduceArgs,
    key_field: Option<&str>,
) -> Result<Encoded, String> {
    let json = row.record.as_ref().map_err(String::clone)?;
    let value = from_json(json, schema).map_err(|e| e.to_string())?;
    let bytes = codec.encode_value(name, &value).map_err(|e| e.to_string())?;
    let label = match &args.label_column {
        Some(column) => {
            let y = records::label(&row.raw, column, args.positive.as_deref())?;
            let id = json.get(&args.id_field).and_then(Json::as_str).ok_or_else(|| {
                format!("the record has no string `{}` for its label to refer to (pass --id-field)", args.id_field)
            })?;
            Some((id.to_string(), y))
        }
        None => None,
    };
    Ok((key_of(json, name, key_field), bytes, label))
}

/// Enqueues a record, waiting while the producer's queue is full; its delivery is awaited later.
async fn enqueue(
    producer: &FutureProducer<client::LogContext>,
    topic: &str,
    key: Option<&str>,
    bytes: Vec<u8>,
) -> anyhow::Result<DeliveryFuture> {
    let mut record = FutureRecord::<str, [u8]>::to(topic).payload(&bytes[..]);
    if let Some(k) = key {
        record = record.key(k);
    }
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
                tokio::task::yield_now().await;
            }
            Err((e, _)) => bail!("producing to {topic}: {e}"),
        }
    }
}

/// A progress bar on standard error when it is a terminal; hidden otherwise.
fn progress(len: u64) -> indicatif::ProgressBar {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new(len);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records  {per_sec}  eta {eta}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
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
