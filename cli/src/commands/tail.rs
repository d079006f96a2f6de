//! `vigil tail <topic>`: every record as one JSON line on standard output.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::Config;
use clap::Args;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use serde_json::{Value as Json, json};
use vigil_events::json::{BytesOut, to_json};
use vigil_events::{Codec, CodecError, Disposition};
use vigil_kafka::schema_registry::Registry;
use vigil_kafka::{client, now_ms};

/// Options of `vigil tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Topic to read.
    topic: String,
    /// Where to start: beginning or end.
    #[arg(long, default_value = "beginning", value_parser = ["beginning", "end"])]
    from: String,
    /// Stop after this many records.
    #[arg(long)]
    max: Option<u64>,
    /// Stop when no record arrived for this many seconds.
    #[arg(long)]
    idle_timeout: Option<f64>,
    /// Print only the decoded value, without topic, partition, offset, key and headers.
    #[arg(long)]
    values_only: bool,
    /// Print `bytes` fields in full (Avro JSON encoding) rather than summarising those over 64 bytes.
    #[arg(long)]
    full_bytes: bool,
}

/// Runs `vigil tail`.
pub async fn run(config: &Config, args: TailArgs) -> anyhow::Result<ExitCode> {
    let codec = Codec::new();
    let registry = Registry::from_config(&config.schema_registry)?;
    let group = format!("vigil-tail-{}-{}", std::process::id(), now_ms());
    let mut cc = client::consumer_config(&config.kafka, "tail", &group);
    cc.set("auto.offset.reset", if args.from == "end" { "latest" } else { "earliest" });
    let consumer: StreamConsumer<client::LogContext> = cc.create_with_context(client::LogContext)?;
    consumer.subscribe(&[args.topic.as_str()])?;
    let bytes_out = if args.full_bytes { BytesOut::Full } else { BytesOut::SummaryOver(64) };
    let idle = args.idle_timeout.map(Duration::from_secs_f64);
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    loop {
        if args.max.is_some_and(|m| seen >= m) {
            break;
        }
        let next = match idle {
            Some(d) => match tokio::time::timeout(d, consumer.recv()).await {
                Ok(m) => m,
                Err(_) => break,
            },
            None => tokio::select! {
                m = consumer.recv() => m,
                _ = tokio::signal::ctrl_c() => break,
            },
        };
        let m = match next {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "consume error");
                continue;
            }
        };
        let value = match m.payload() {
            None => json!({"tombstone": true}),
            Some(bytes) => decode(&codec, registry.as_ref(), bytes, bytes_out).await,
        };
        let line = if args.values_only {
            value
        } else {
            let headers: serde_json::Map<String, Json> = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (h.key.to_string(), Json::String(String::from_utf8_lossy(h.value.unwrap_or(&[])).into()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut o = json!({
                "topic": m.topic(),
                "partition": m.partition(),
                "offset": m.offset(),
                "timestamp": m.timestamp().to_millis(),
                "key": m.key().map(|k| String::from_utf8_lossy(k).to_string()),
                "value": value,
            });
            if !headers.is_empty() {
                o["headers"] = Json::Object(headers);
            }
            o
        };
        let mut out = stdout.lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        seen += 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// Decodes a record to JSON: `{"schema": name, ...fields}` on success, or an object describing why
/// it does not decode (dead letters hold arbitrary bytes).
async fn decode(codec: &Codec, registry: Option<&Registry>, bytes: &[u8], bytes_out: BytesOut) -> Json {
    let mut result = codec.decode_as_written(bytes);
    if let (Err(e @ CodecError::UnknownSchemaId(id)), Some(r)) = (&result, registry)
        && e.disposition() == Disposition::FetchSchema
    {
        if let Err(fetch) = r.fetch(codec, *id).await {
            tracing::warn!(error = %fetch, "cannot fetch the writer schema");
        }
        result = codec.decode_as_written(bytes);
    }
    match result {
        Ok((value, schema)) => {
            let mut j = to_json(&value, bytes_out);
            if let Json::Object(o) = &mut j {
                o.insert("$schema".into(), Json::String(schema.to_string()));
            }
            j
        }
        Err(e) => json!({
            "$undecodable": e.to_string(),
            "$bytes": String::from_utf8(bytes.to_vec()).unwrap_or_else(|_| bytes.iter().map(|b| char::from(*b)).collect()),
        }),
    }
}
