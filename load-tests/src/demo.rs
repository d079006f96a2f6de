//! The demo's event sources and live summary: card transactions with labels, and texts with labels,
//! at modest rates for a bounded time, with drift injected halfway (transaction amounts grow, and a
//! fraud wave brings a new pattern; texts move to another source). A monitor reads what Vigil publishes (scores,
//! models, alerts, dead letters) and prints one line every few seconds, then a final summary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use vigil_events::{Alert, Codec, ModelCheckpoint, Score};
use vigil_kafka::{client, now_ms};
use vigil_runtime::Config;
use vigil_runtime::config::InputConfig;

use crate::generate::{self, FraudSource, Progress, RunConfig, TextSource};
use crate::sim::fraud::{Drift, DriftKind, FraudConfig, FraudSim, Pattern};
use crate::sim::labels::LabelDelays;
use crate::sim::text::{self, TextDrift, TextSim, TextSurge};

/// Options of `vigil-load demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to produce, seconds.
    #[arg(long, default_value_t = 90.0)]
    pub duration: f64,
    /// Card transactions per second.
    #[arg(long, default_value_t = 300.0)]
    pub tx_rate: f64,
    /// Texts per second.
    #[arg(long, default_value_t = 30.0)]
    pub text_rate: f64,
    /// Share of fraud.
    #[arg(long, default_value_t = 0.02)]
    pub fraud_rate: f64,
    /// Folder with the VADER files (synthetic texts without it).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seconds between summary lines.
    #[arg(long, default_value_t = 5.0)]
    pub every: f64,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Do not inject drift (nor the sentiment surge).
    #[arg(long)]
    pub no_drift: bool,
}

/// What the monitor saw on Vigil's topics.
#[derive(Debug, Default)]
struct Seen {
    scores: BTreeMap<String, u64>,
    dead_letters: u64,
    models: Vec<String>,
    alerts: Vec<String>,
}

/// Runs the demo's sources and monitor; returns the final summary.
pub async fn run(config: &Config, args: DemoArgs) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let codec = Arc::new(Codec::new());
    let prefix = format!("demo-{}", now_ms());
    let shutdown = CancellationToken::new();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let monitor = tokio::spawn(monitor(config.clone(), codec.clone(), seen.clone(), shutdown.clone()));
    let tx_progress = Arc::new(Progress::default());
    let text_progress = Arc::new(Progress::default());
    let mut tasks = Vec::new();
    if let Some(input) = config.inputs.iter().find(|i| i.model == "fraud") {
        tasks.push(fraud_task(config, input, &args, &prefix, codec.clone(), tx_progress.clone()));
    }
    if let Some(input) = config.inputs.iter().find(|i| i.model == "sentiment") {
        tasks.push(text_task(config, input, &args, &prefix, codec.clone(), text_progress.clone())?);
    }

    let started = Instant::now();
    let every = Duration::from_secs_f64(args.every.max(0.5));
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    let mut drift_announced = args.no_drift;
    let mut surge_announced = args.no_drift;
    while tasks.iter().any(|t| !t.is_finished()) {
        ticker.tick().await;
        if !drift_announced && started.elapsed().as_secs_f64() >= args.duration / 2.0 {
            eprintln!(
                "[{:>4.0}s] drift injected: amounts x2.5, a fraud wave (x4) with a new pattern (bust-out); texts change source",
                started.elapsed().as_secs_f64()
            );
            drift_announced = true;
        }
        if !surge_announced && started.elapsed().as_secs_f64() >= args.duration / 4.0 {
            eprintln!(
                "[{:>4.0}s] surge injected for a minute: half the texts are negative ones from one source",
                started.elapsed().as_secs_f64()
            );
            surge_announced = true;
        }
        eprintln!("{}", line(started, &tx_progress, &text_progress, &seen));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await?.map_err(|e| vigil_runtime::error_chain(&e))?);
    }
    // Give Vigil a moment's worth of the monitor's idle wait to publish what the last events caused.
    tokio::time::sleep(every).await;
    shutdown.cancel();
    let _ = monitor.await;
    eprintln!("{}", line(started, &tx_progress, &text_progress, &seen));
    let s = seen.lock().map_err(|_| "monitor state poisoned")?;
    Ok(json!({
        "transactions": tx_progress.events.load(Ordering::Relaxed),
        "fraud": tx_progress.positives.load(Ordering::Relaxed),
        "transaction_labels": tx_progress.labels.load(Ordering::Relaxed),
        "texts": text_progress.events.load(Ordering::Relaxed),
        "text_labels": text_progress.labels.load(Ordering::Relaxed),
        "scores": s.scores,
        "dead_letters": s.dead_letters,
        "models": s.models,
        "alerts": s.alerts,
        "generators": results,
    }))
}

type Task = tokio::task::JoinHandle<Result<generate::Summary, vigil_kafka::KafkaPlumbingError>>;

/// Labels: most within a second, some seconds late.
const DELAYS: LabelDelays =
    LabelDelays { fast_share: 0.9, fast_mean_ms: 500.0, slow_share: 0.07, slow_min_ms: 5_000.0, slow_max_ms: 20_000.0 };

fn run_config(input: &InputConfig, rate: f64, args: &DemoArgs, seed: u64) -> RunConfig {
    RunConfig {
        topic: input.topic.clone(),
        labels_topic: (!input.labels.is_empty()).then(|| input.labels.clone()),
        rate: Some(rate),
        max_events: None,
        duration: Some(Duration::from_secs_f64(args.duration)),
        delays: DELAYS,
        seed,
        label_grace: Duration::from_secs(2),
    }
}

/// Card transactions with labels; halfway, amounts grow, and a fraud wave brings a new pattern.
fn fraud_task(
    config: &Config,
    input: &InputConfig,
    args: &DemoArgs,
    prefix: &str,
    codec: Arc<Codec>,
    progress: Arc<Progress>,
) -> Task {
    let half = (args.tx_rate * args.duration / 2.0) as u64;
    let drifts = if args.no_drift {
        Vec::new()
    } else {
        vec![
            Drift { kind: DriftKind::Amounts { factor: 2.5 }, at: half, over: 0 },
            Drift { kind: DriftKind::PatternStarts(Pattern::BustOut), at: half, over: 0 },
            Drift { kind: DriftKind::FraudRate { factor: 4.0 }, at: half, over: 0 },
        ]
    };
    let sim = FraudSim::new(FraudConfig {
        seed: args.seed,
        fraud_rate: args.fraud_rate,
        id_prefix: format!("{prefix}-tx"),
        drifts,
        // Business time from 14:00 on a Monday, 0.1 s apart at the peak: the demo's few minutes
        // of traffic span half an hour of afternoon, so the only change in them is the injected
        // one (a run across the night would show the day's own rhythm as drift).
        start_time_ms: 1_767_621_600_000,
        peak_gap_ms: 100.0,
        ..FraudConfig::default()
    });
    let cfg = run_config(input, args.tx_rate, args, args.seed);
    let kafka = config.kafka.clone();
    tokio::spawn(async move {
        let mut source = FraudSource { sim, codec: codec.clone() };
        generate::run(&kafka, &mut source, &cfg, &codec, progress).await
    })
}

/// Texts with labels (VADER's when `--data` is given); halfway, they change source.
fn text_task(
    config: &Config,
    input: &InputConfig,
    args: &DemoArgs,
    prefix: &str,
    codec: Arc<Codec>,
    progress: Arc<Progress>,
) -> Result<Task, Box<dyn std::error::Error>> {
    let pool = match &args.data {
        Some(dir) => text::load_vader(dir)?,
        None => Vec::new(),
    };
    let half = (args.text_rate * args.duration / 2.0) as u64;
    let (to_source, surging) =
        if pool.is_empty() { ("synthetic-app", "synthetic-support") } else { ("movie-reviews", "tweets") };
    let drift = (!args.no_drift).then(|| TextDrift { at: half, to_source: to_source.into() });
    let mut sim = TextSim::new(args.seed + 1, pool, drift);
    if !args.no_drift {
        // A minute of bad news in one source, a quarter of the way in.
        let from = half / 2;
        let to = from + (args.text_rate * 60.0) as u64;
        sim = sim.with_surge(TextSurge { from, to, source: surging.into() });
    }
    let cfg = run_config(input, args.text_rate, args, args.seed + 1);
    let kafka = config.kafka.clone();
    let id_prefix = format!("{prefix}-text");
    Ok(tokio::spawn(async move {
        let mut source = TextSource { sim, codec: codec.clone(), id_prefix, start_time_ms: 1_767_571_200_000, i: 0 };
        generate::run(&kafka, &mut source, &cfg, &codec, progress).await
    }))
}

fn line(started: Instant, tx: &Progress, text: &Progress, seen: &Mutex<Seen>) -> String {
    let s = match seen.lock() {
        Ok(s) => s,
        Err(_) => return "monitor state poisoned".into(),
    };
    let scores: Vec<String> = s.scores.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "[{:>4.0}s] transactions {} (fraud {}) labels {} | texts {} labels {} | scores {} | dead letters {} | models {} | alerts {}",
        started.elapsed().as_secs_f64(),
        tx.events.load(Ordering::Relaxed),
        tx.positives.load(Ordering::Relaxed),
        tx.labels.load(Ordering::Relaxed),
        text.events.load(Ordering::Relaxed),
        text.labels.load(Ordering::Relaxed),
        if scores.is_empty() { "0".into() } else { scores.join(" ") },
        s.dead_letters,
        s.models.last().cloned().unwrap_or_else(|| "none".into()),
        s.alerts.last().cloned().unwrap_or_else(|| "none".into()),
    )
}

async fn monitor(config: Config, codec: Arc<Codec>, seen: Arc<Mutex<Seen>>, shutdown: CancellationToken) {
    let t = &config.topics;
    let group = format!("vigil-demo-monitor-{}", now_ms());
    let mut cc = client::consumer_config(&config.kafka, "demo-monitor", &group);
    cc.set("auto.offset.reset", "latest");
    let consumer: StreamConsumer<client::LogContext> = match cc.create_with_context(client::LogContext) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "the demo monitor cannot start");
            return;
        }
    };
    if let Err(e) = consumer.subscribe(&[t.scores.as_str(), t.models.as_str(), t.alerts.as_str(), t.dlq.as_str()]) {
        tracing::warn!(error = %e, "the demo monitor cannot subscribe");
        return;
    }
    loop {
        let m = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = consumer.recv() => m,
        };
        let Ok(m) = m else { continue };
        let Ok(mut s) = seen.lock() else { return };
        let payload = m.payload().unwrap_or(&[]);
        if m.topic() == t.scores {
            if let Ok(score) = codec.decode_event::<Score>(payload) {
                let variant = if score.variant == vigil_events::Variant::Champion { "" } else { "/shadow" };
                *s.scores.entry(format!("{}:v{}{variant}", score.model, score.model_version)).or_default() += 1;
            }
        } else if m.topic() == t.dlq {
            s.dead_letters += 1;
        } else if m.topic() == t.models {
            if let Ok(c) = codec.decode_event::<ModelCheckpoint>(payload) {
                s.models.push(format!("{} v{} {:?}", c.model, c.version, c.status));
            }
        } else if m.topic() == t.alerts
            && let Ok(a) = codec.decode_event::<Alert>(payload)
        {
            if a.kind == vigil_events::AlertKind::SentimentSurge {
                eprintln!("  surge alert ({:?}): {}", a.state, a.message);
            }
            s.alerts.push(format!("{:?} {:?} {}", a.kind, a.state, a.message));
        }
    }
}
