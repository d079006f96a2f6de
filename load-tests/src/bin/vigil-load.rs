//! `vigil-load`: produces card transactions (with labels and drift), texts, CSV replays or a fixed
//! payload to Kafka on an open-loop schedule; measures end-to-end latency (`probe`); drives the demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use vigil_events::Codec;
use vigil_load::generate::{self, FraudSource, Progress, RawSource, ReplaySource, RunConfig, Source, TextSource};
use vigil_load::probe::{self, ProbeConfig};
use vigil_load::sim::fraud::{Drift, FraudConfig, FraudSim, Pattern};
use vigil_load::sim::labels::LabelDelays;
use vigil_load::sim::replay::{self, Mapping};
use vigil_load::sim::text::{self, TextDrift, TextSim, TextSurge};

/// Load generator and latency probe for Vigil.
#[derive(Debug, Parser)]
#[command(name = "vigil-load", version)]
struct Cli {
    /// Vigil configuration file (Kafka settings); `VIGIL_*` variables apply too.
    #[arg(long, short, global = true, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Card transactions with fraud, and their labels.
    Fraud(FraudArgs),
    /// Texts for sentiment scoring, and their labels.
    Text(TextArgs),
    /// A CSV dataset in file order as JSON records, and its labels.
    Replay(ReplayArgs),
    /// One fixed, real transaction record again and again (the raw producer rate).
    Raw(RawArgs),
    /// Match outputs to inputs by event id and report end-to-end latency percentiles.
    Probe(ProbeArgs),
    /// Drive the demo: transactions, labels and texts with drift midway, with a live summary.
    Demo(vigil_load::demo::DemoArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Records per second (open loop); 0 for as fast as possible.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Stop after this many records.
    #[arg(long)]
    events: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Seed of everything random.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Prefix of event ids (vary it between runs into the same topics).
    #[arg(long, default_value = "tx")]
    id_prefix: String,
    /// Share of labels that come soon.
    #[arg(long, default_value_t = 0.85)]
    label_fast_share: f64,
    /// Mean delay of the soon ones, ms (exponential).
    #[arg(long, default_value_t = 1000.0)]
    label_fast_mean_ms: f64,
    /// Share of labels that come late.
    #[arg(long, default_value_t = 0.10)]
    label_slow_share: f64,
    /// Shortest late delay, ms.
    #[arg(long, default_value_t = 10_000.0)]
    label_slow_min_ms: f64,
    /// Longest late delay, ms (hours are fine: labels not due by the end of the run are not sent).
    #[arg(long, default_value_t = 60_000.0)]
    label_slow_max_ms: f64,
    /// After the last record, keep sending labels that fall due within this many seconds.
    #[arg(long, default_value_t = 0.0)]
    label_grace: f64,
}

impl RunArgs {
    fn run_config(&self, topic: &str, labels: &str) -> Result<RunConfig, String> {
        let delays = LabelDelays {
            fast_share: self.label_fast_share,
            fast_mean_ms: self.label_fast_mean_ms,
            slow_share: self.label_slow_share,
            slow_min_ms: self.label_slow_min_ms,
            slow_max_ms: self.label_slow_max_ms,
        };
        delays.validate()?;
        if self.rate < 0.0 || !self.rate.is_finite() {
            return Err("--rate must be 0 (as fast as possible) or positive".into());
        }
        if self.events.is_none() && self.duration.is_none() {
            return Err("bound the run with --events and/or --duration".into());
        }
        Ok(RunConfig {
            topic: topic.to_string(),
            labels_topic: (!labels.is_empty() && labels != "none").then(|| labels.to_string()),
            rate: (self.rate > 0.0).then_some(self.rate),
            max_events: self.events,
            duration: self.duration.map(Duration::from_secs_f64),
            delays,
            seed: self.seed,
            label_grace: Duration::from_secs_f64(self.label_grace.max(0.0)),
        })
    }
}

#[derive(Debug, Args)]
struct FraudArgs {
    /// Topic for the transactions.
    #[arg(long, default_value = "fraud.transactions")]
    topic: String,
    /// Topic for the labels (`none` for no labels).
    #[arg(long, default_value = "fraud.labels")]
    labels_topic: String,
    /// Share of fraud.
    #[arg(long, default_value_t = 0.01)]
    fraud_rate: f64,
    /// Card holders.
    #[arg(long, default_value_t = 5000)]
    accounts: usize,
    /// Fraud patterns active from the start (comma-separated).
    #[arg(long, default_value = "card-testing,account-takeover,cloned-card")]
    patterns: String,
    /// Drift to inject, repeatable: `amounts:F,at=N[,over=M]`, `merchants,at=N`, `pattern-starts:P,at=N`,
    /// `pattern-stops:P,at=N`.
    #[arg(long)]
    drift: Vec<String>,
    /// Mean business time between transactions at the daily peak, ms (the simulated clock behind
    /// event_time and the hour features; small values keep the hour, and so the stream, stationary).
    #[arg(long, default_value_t = 3000.0)]
    business_gap_ms: f64,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct TextArgs {
    /// Topic for the texts.
    #[arg(long, default_value = "sentiment.texts")]
    topic: String,
    /// Topic for the labels (`none` for no labels).
    #[arg(long, default_value = "sentiment.labels")]
    labels_topic: String,
    /// Folder with the VADER ground-truth files; synthetic texts without it.
    #[arg(long)]
    data: Option<PathBuf>,
    /// From this event on, texts come only from `--drift-to`.
    #[arg(long)]
    drift_at: Option<u64>,
    /// The source texts come from after the drift (`movie-reviews`, … or `synthetic`).
    #[arg(long, default_value = "movie-reviews")]
    drift_to: String,
    /// A surge: from event `--surge-from` to `--surge-to`, half the texts are negative ones from
    /// this source.
    #[arg(long)]
    surge_source: Option<String>,
    /// First event of the surge.
    #[arg(long, default_value_t = 0)]
    surge_from: u64,
    /// Event where the surge ends.
    #[arg(long, default_value_t = u64::MAX)]
    surge_to: u64,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// The CSV file.
    #[arg(long)]
    csv: PathBuf,
    /// Topic for the records (an input topic with `format = "json"`, or Avro with --schema-file).
    #[arg(long)]
    topic: String,
    /// Write Avro records of this schema (`.avsc`), typed column by column; the id column's value
    /// is the event id as it is.
    #[arg(long)]
    schema_file: Option<PathBuf>,
    /// Topic for the labels.
    #[arg(long)]
    labels_topic: String,
    /// The label column.
    #[arg(long)]
    label_column: String,
    /// The label value meaning positive; without it the label column must be numeric.
    #[arg(long)]
    positive: Option<String>,
    /// Column holding a unique id.
    #[arg(long)]
    id_column: Option<String>,
    /// Columns to leave out (comma-separated).
    #[arg(long, default_value = "")]
    drop: String,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct RawArgs {
    /// Topic.
    #[arg(long)]
    topic: String,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct ProbeArgs {
    /// The input topic.
    #[arg(long)]
    input: String,
    /// The output topic (scores, or the forwarder's output).
    #[arg(long)]
    output: String,
    /// Stop once this many events are matched.
    #[arg(long)]
    expect: Option<u64>,
    /// Stop when nothing arrived for this many seconds.
    #[arg(long, default_value_t = 10.0)]
    idle_timeout: f64,
    /// Stop after this many seconds in any case.
    #[arg(long, default_value_t = 3600.0)]
    max_time: f64,
    /// Only events whose id starts with this count.
    #[arg(long)]
    id_prefix: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config: vigil_runtime::Config = match vigil_runtime::Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vigil-load: {e}");
            return ExitCode::from(2);
        }
    };
    vigil_runtime::telemetry::init_logging(&config.log);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&config, cli.command)) {
        Ok(json) => {
            #[allow(clippy::print_stdout)]
            {
                println!("{json}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil-load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: &vigil_runtime::Config, command: Command) -> Result<serde_json::Value, String> {
    let codec = Arc::new(Codec::new());
    let (mut source, cfg): (Box<dyn Source>, RunConfig) = match command {
        Command::Fraud(a) => {
            let patterns = a
                .patterns
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|p| Pattern::parse(p).ok_or_else(|| format!("unknown pattern `{p}`")))
                .collect::<Result<Vec<_>, _>>()?;
            let drifts = a.drift.iter().map(|d| Drift::parse(d)).collect::<Result<Vec<_>, _>>()?;
            if !(0.0..=1.0).contains(&a.fraud_rate) {
                return Err("--fraud-rate must lie in [0, 1]".into());
            }
            if !(a.business_gap_ms > 0.0 && a.business_gap_ms.is_finite()) {
                return Err("--business-gap-ms must be positive".into());
            }
            let sim = FraudSim::new(FraudConfig {
                seed: a.run.seed,
                accounts: a.accounts,
                fraud_rate: a.fraud_rate,
                id_prefix: a.run.id_prefix.clone(),
                patterns,
                drifts,
                peak_gap_ms: a.business_gap_ms,
                ..FraudConfig::default()
            });
            (Box::new(FraudSource { sim, codec: codec.clone() }), a.run.run_config(&a.topic, &a.labels_topic)?)
        }
        Command::Text(a) => {
            let pool = match &a.data {
                Some(dir) => text::load_vader(dir)?,
                None => Vec::new(),
            };
            if pool.is_empty() {
                tracing::info!("no --data: texts are synthetic (sources synthetic-app, -support, -social)");
            }
            let drift = a.drift_at.map(|at| TextDrift { at, to_source: a.drift_to.clone() });
            let mut sim = TextSim::new(a.run.seed, pool, drift);
            if let Some(source) = a.surge_source {
                sim = sim.with_surge(TextSurge { from: a.surge_from, to: a.surge_to, source });
            }
            let source = TextSource {
                sim,
                codec: codec.clone(),
                id_prefix: a.run.id_prefix.clone(),
                start_time_ms: 1_767_571_200_000,
                i: 0,
            };
            (Box::new(source), a.run.run_config(&a.topic, &a.labels_topic)?)
        }
        Command::Replay(a) => {
            let avro = match &a.schema_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                    let (name, _) = codec.add_schema(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                    Some(name)
                }
                None => None,
            };
            let mapping = Mapping {
                label_column: a.label_column.clone(),
                positive: a.positive.clone(),
                id_column: a.id_column.clone(),
                drop: a.drop.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
                id_prefix: a.run.id_prefix.clone(),
                schema: avro.as_ref().and_then(|n| codec.schema(n).ok().cloned()),
            };
            let rows = replay::load(&a.csv, &mapping)?;
            let source = ReplaySource { rows: rows.into_iter(), avro: avro.map(|n| (codec.clone(), n)) };
            (Box::new(source), a.run.run_config(&a.topic, &a.labels_topic)?)
        }
        Command::Raw(a) => {
            let mut sim = FraudSim::new(FraudConfig::default());
            let payload = codec.encode_event(&sim.transaction().tx).map_err(|e| e.to_string())?;
            (Box::new(RawSource { payload, i: 0 }), a.run.run_config(&a.topic, "none")?)
        }
        Command::Probe(a) => {
            let cfg = ProbeConfig {
                input: a.input,
                output: a.output,
                expect: a.expect,
                idle: Duration::from_secs_f64(a.idle_timeout),
                max_time: Duration::from_secs_f64(a.max_time),
                id_prefix: a.id_prefix,
            };
            let lat = probe::run(&config.kafka, &cfg).await.map_err(|e| vigil_load::error_chain(&e))?;
            let mut json = serde_json::to_value(lat.percentiles()).map_err(|e| e.to_string())?;
            json["unmatched_inputs"] = lat.unmatched_inputs().into();
            json["duplicate_outputs"] = lat.duplicates.into();
            return Ok(json);
        }
        Command::Demo(a) => return vigil_load::demo::run(config, a).await.map_err(|e| vigil_load::error_chain(&*e)),
    };
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(cfg.max_events, progress.clone());
    let summary = generate::run(&config.kafka, source.as_mut(), &cfg, &codec, progress).await;
    bar.abort();
    let summary = summary.map_err(|e| vigil_load::error_chain(&e))?;
    serde_json::to_value(summary).map_err(|e| e.to_string())
}

/// A progress bar of the records produced, on standard error when it is a terminal (a run's JSON
/// summary goes to standard output either way); the returned task draws it until aborted.
fn progress_bar(events: Option<u64>, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    use std::io::IsTerminal;
    use std::sync::atomic::Ordering;
    let bar = match events {
        _ if !std::io::stderr().is_terminal() => indicatif::ProgressBar::hidden(),
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::no_length(),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records  {per_sec}  eta {eta}") {
        bar.set_style(style);
    }
    tokio::spawn(async move {
        loop {
            bar.set_position(progress.events.load(Ordering::Relaxed));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
}
