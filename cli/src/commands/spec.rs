//! `vigil spec infer | columns`: a feature spec inferred from a sample of records (a CSV or
//! JSON-lines file, or a topic), and the input columns a spec gives a model, in order.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use vigil_events::Codec;
use vigil_events::json::from_json;
use vigil_features::FeatureSpec;
use vigil_features::infer::{InferOptions, infer};
use vigil_kafka::client;
use vigil_kafka::schema_registry::Registry;

use super::records;
use crate::Config;

/// `vigil spec` subcommands.
#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// Infer a commented feature spec from a sample (prints TOML).
    Infer {
        /// The records' schema: a `.avsc` file or the full name of a known schema.
        #[arg(long)]
        schema: String,
        /// A CSV (with a header) or JSON-lines file of records.
        #[arg(long, conflicts_with = "topic")]
        file: Option<PathBuf>,
        /// A topic to sample instead (from its beginning).
        #[arg(long)]
        topic: Option<String>,
        /// The model's name (default: the schema's name, lower-cased).
        #[arg(long)]
        model: Option<String>,
        /// The label column (left out of the features).
        #[arg(long)]
        label: Option<String>,
        /// More columns to leave out (comma-separated).
        #[arg(long, default_value = "")]
        leave_out: String,
        /// Records to read at most.
        #[arg(long, default_value_t = 10_000)]
        sample: usize,
    },
    /// The model's input columns, in the order a graph trained elsewhere must take them.
    Columns {
        /// The spec file.
        spec: PathBuf,
    },
}

/// Runs a `spec` subcommand.
pub async fn run(config: &Config, cmd: SpecCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SpecCommand::Columns { spec } => columns(&spec),
        SpecCommand::Infer { schema, file, topic, model, label, leave_out, sample } => {
            let codec = Codec::new();
            let name = records::schema_arg(&codec, &schema)?;
            let avro = codec.schema(&name)?;
            let (values, source) = match (&file, &topic) {
                (Some(f), _) => (from_file(f, avro, sample)?, format!("{}", f.display())),
                (None, Some(t)) => (from_topic(config, &codec, t, &name, sample).await?, format!("topic {t}")),
                (None, None) => bail!("give --file or --topic"),
            };
            let model = model.unwrap_or_else(|| name.rsplit('.').next().unwrap_or(&name).to_lowercase());
            let leave_out = leave_out.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
            let opts = InferOptions { model, label, leave_out, source };
            let inferred = infer(avro, &values, &opts).map_err(anyhow::Error::msg)?;
            print!("{}", inferred.toml);
            eprintln!(
                "vigil spec infer: {} records -> {} input columns (vigil spec columns FILE lists them)",
                values.len(),
                inferred.spec.input_names().len().max(usize::from(inferred.spec.is_text()))
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn columns(path: &PathBuf) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let spec = FeatureSpec::parse(&text)?;
    if let Some(t) = &spec.text {
        println!("indices int64 [batch, {}]  (hashed n-grams of `{}`)", t.max_tokens, t.field);
        println!("values  float [batch, {}]", t.max_tokens);
        return Ok(ExitCode::SUCCESS);
    }
    println!("# {} float [batch, {}], in this order:", spec.graph.input, spec.width());
    for (i, name) in spec.input_names().iter().enumerate() {
        println!("{i:>4}  {name}");
    }
    Ok(ExitCode::SUCCESS)
}

fn from_file(
    path: &std::path::Path,
    schema: &apache_avro::Schema,
    sample: usize,
) -> anyhow::Result<Vec<apache_avro::types::Value>> {
    let mut values = Vec::new();
    for row in records::read(path, schema)?.into_iter().take(sample) {
        let value = row.record.and_then(|j| from_json(&j, schema).map_err(|e| e.to_string()));
        match value {
            Ok(v) => values.push(v),
            Err(e) => eprintln!("vigil spec infer: {} line {}: {e} (skipped)", path.display(), row.line),
        }
    }
    Ok(values)
}

async fn from_topic(
    config: &Config,
    codec: &Codec,
    topic: &str,
    name: &str,
    sample: usize,
) -> anyhow::Result<Vec<apache_avro::types::Value>> {
    let registry = Registry::from_config(&config.schema_registry)?;
    let group = format!("vigil-spec-{}", vigil_kafka::now_ms());
    let consumer: StreamConsumer<client::LogContext> =
        client::consumer_config(&config.kafka, "spec", &group).create_with_context(client::LogContext)?;
    consumer.subscribe(&[topic])?;
    let mut values = Vec::new();
    while values.len() < sample {
        let Ok(m) = tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await else { break };
        let m = m?;
        let payload = m.payload().unwrap_or_default();
        if let Some(r) = &registry {
            r.resolve(codec, payload).await;
        }
        match codec.decode(payload, name) {
            Ok(v) => values.push(v),
            Err(e) => eprintln!("vigil spec infer: {topic} offset {}: {e} (skipped)", m.offset()),
        }
    }
    Ok(values)
}
