//! `vigil ab start | status | stop`: live A/B tests. `start` writes a RUNNING experiment to the
//! experiments topic — arm A the champion, arm B the challenger unless named, a share of the keys in
//! B — after checking that both versions can serve and that the key field is in the input's schema;
//! the scorer splits the traffic from then on and the drift service judges it. `status` prints every
//! model's latest experiment with its figures; `stop` ends a running one by hand.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use vigil_events::{Codec, Experiment, ExperimentState, OutcomeMetric};
use vigil_kafka::experiments::{self, Experiments};
use vigil_kafka::{models, now_ms};

use crate::Config;

/// The outcome an A/B test compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Metric {
    /// Accuracy of the decisions.
    Accuracy,
    /// AUC of the scores.
    Auc,
    /// Mean cost of the decisions (`--fp-cost`, `--fn-cost`; lower is better).
    Cost,
}

/// `vigil ab start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The model.
    model: String,
    /// Arm B's version (default: the challenger, the newest candidate above the champion).
    #[arg(long)]
    b: Option<i64>,
    /// Arm A's version (default: the champion).
    #[arg(long)]
    a: Option<i64>,
    /// Share of the keys in arm B (0 to 1, exclusive).
    #[arg(long, default_value_t = 0.5)]
    share: f64,
    /// Input field whose value decides the arm (e.g. account_id); default: the event id.
    #[arg(long, default_value = "")]
    key_field: String,
    /// The outcome compared.
    #[arg(long, value_enum, default_value = "accuracy")]
    metric: Metric,
    /// Cost of a false positive (metric cost).
    #[arg(long, default_value_t = 1.0)]
    fp_cost: f64,
    /// Cost of a false negative (metric cost).
    #[arg(long, default_value_t = 1.0)]
    fn_cost: f64,
    /// Level of the sequential test.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Smallest difference in the metric worth knowing.
    #[arg(long, default_value_t = 0.02)]
    min_effect: f64,
    /// Labels per arm after which the test ends with no difference.
    #[arg(long, default_value_t = 100_000)]
    max_labels: i64,
    /// Promote B when it wins (the learner does it, signed).
    #[arg(long)]
    auto_promote: bool,
}

/// The `ab` subcommands.
#[derive(Debug, Subcommand)]
pub enum AbCommand {
    /// Start an A/B test: a share of the traffic, stable by a key field, is decided by version B.
    Start(StartArgs),
    /// Every model's latest A/B test, with its figures.
    Status {
        /// Only this model.
        model: Option<String>,
        /// `text` or `json`.
        #[arg(long, value_enum, default_value = "text")]
        output: super::Output,
    },
    /// Stop a model's running A/B test; the champion serves all traffic again.
    Stop {
        /// The model.
        model: String,
        /// Why.
        #[arg(long, default_value = "stopped by hand")]
        reason: String,
    },
}

/// Runs an `ab` subcommand.
pub async fn run(config: &Config, cmd: AbCommand) -> anyhow::Result<ExitCode> {
    // The inputs' schemas, to check a key field against.
    let (codec, config) = super::with_input_schemas(config).await;
    let config = &config;
    match cmd {
        AbCommand::Start(args) => start(config, &codec, args).await,
        AbCommand::Status { model, output } => status(config, &codec, model.as_deref(), output),
        AbCommand::Stop { model, reason } => {
            let Some(running) = read(config, &codec)?.running(&model).cloned() else {
                bail!("{model} has no running A/B test");
            };
            let stopped =
                Experiment { state: ExperimentState::Stopped, updated_at: now_ms(), message: reason, ..running };
            publish(config, &codec, &stopped).await?;
            println!("{} stopped", stopped.experiment_id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `vigil ab start`: checks everything, then writes the RUNNING experiment.
async fn start(config: &Config, codec: &Codec, args: StartArgs) -> anyhow::Result<ExitCode> {
    let StartArgs {
        model,
        b,
        a,
        share,
        key_field,
        metric,
        fp_cost,
        fn_cost,
        alpha,
        min_effect,
        max_labels,
        auto_promote,
    } = args;
    let (a, b) = arms(config, codec, &model, a, b)?;
    let mut problems = Vec::new();
    if !(share > 0.0 && share < 1.0) {
        problems.push(format!("--share {share} is not in (0, 1)"));
    }
    if !(alpha > 0.0 && alpha < 0.5) {
        problems.push(format!("--alpha {alpha} is not in (0, 0.5)"));
    }
    if !(min_effect > 0.0 && min_effect.is_finite()) || max_labels < 100 {
        problems.push("--min-effect must be above 0 and --max-labels at least 100".into());
    }
    if !(fp_cost >= 0.0 && fn_cost >= 0.0 && fp_cost + fn_cost > 0.0) {
        problems.push("--fp-cost and --fn-cost must not be negative, nor both zero".into());
    }
    problems.extend(check_key_field(config, codec, &model, &key_field));
    if !problems.is_empty() {
        bail!("cannot start the A/B test:\n  {}", problems.join("\n  "));
    }
    if let Some(running) = read(config, codec)?.running(&model) {
        bail!("{model} already has a running A/B test ({}); stop it first", running.experiment_id);
    }
    let now = now_ms();
    let e = Experiment {
        key_field,
        metric: match metric {
            Metric::Accuracy => OutcomeMetric::Accuracy,
            Metric::Auc => OutcomeMetric::Auc,
            Metric::Cost => OutcomeMetric::Cost,
        },
        false_positive_cost: fp_cost,
        false_negative_cost: fn_cost,
        alpha,
        min_effect,
        max_labels,
        auto_promote,
        message: "started with vigil ab start".into(),
        ..Experiment::running(&format!("ab-{model}-{now}"), &model, (a, b), share, now)
    };
    publish(config, codec, &e).await?;
    println!("{} started: {model} v{a} (A) against v{b} (B), {:.0}% of keys in B", e.experiment_id, share * 100.0);
    Ok(ExitCode::SUCCESS)
}

/// Arms A and B: the named versions, else the champion and the challenger; each must be one the
/// services keep ready to serve (the three newest promoted versions, the newest candidate).
fn arms(config: &Config, codec: &Codec, model: &str, a: Option<i64>, b: Option<i64>) -> anyhow::Result<(i64, i64)> {
    let r = super::models::registry(config, codec)?;
    let champion = r.champion(model).with_context(|| format!("{model} has no champion"))?.version;
    let a = a.unwrap_or(champion);
    let b = match b {
        Some(b) => b,
        None => r.challenger(model).with_context(|| format!("{model} has no challenger; name arm B with --b"))?.version,
    };
    if a == b {
        bail!("arms A and B are both v{a}");
    }
    let servable: Vec<i64> = r
        .promoted(model)
        .iter()
        .take(vigil_kafka::model_registry::KEEP_PROMOTED)
        .chain(r.challenger(model).iter())
        .map(|cp| cp.version)
        .collect();
    for v in [a, b] {
        if !servable.contains(&v) {
            bail!(
                "{model} v{v} cannot be an arm: the services keep ready only {servable:?} (the newest promoted versions and the challenger)"
            );
        }
    }
    Ok((a, b))
}

/// Problems with the key field: it must be a field of the model's input schema.
fn check_key_field(config: &Config, codec: &Codec, model: &str, key: &str) -> Vec<String> {
    if key.is_empty() {
        return Vec::new();
    }
    let Some(input) = config.inputs.iter().find(|i| i.model == model) else {
        return vec![format!("no input is scored by {model}")];
    };
    match codec.schema(&input.schema) {
        Ok(apache_avro::Schema::Record(r)) if r.fields.iter().any(|f| f.name == key) => Vec::new(),
        Ok(apache_avro::Schema::Record(r)) => {
            let names: Vec<&str> = r.fields.iter().map(|f| f.name.as_str()).collect();
            vec![format!("--key-field {key} is not a field of {} (fields: {})", input.schema, names.join(", "))]
        }
        Ok(_) => vec![format!("{} is not a record schema", input.schema)],
        Err(e) => vec![format!("{}: {e}", input.schema)],
    }
}

/// The experiments topic, folded.
fn read(config: &Config, codec: &Codec) -> anyhow::Result<Experiments> {
    let mut x = Experiments::default();
    for payload in super::read_topic(config, &config.topics.experiments, None)? {
        if let Err(e) = x.apply_bytes(codec, Some(&payload)) {
            eprintln!("vigil: skipping an experiment record: {e}");
        }
    }
    Ok(x)
}

async fn publish(config: &Config, codec: &Codec, e: &Experiment) -> anyhow::Result<()> {
    let producer = models::producer(&config.kafka)?;
    experiments::publish(&producer, codec, &config.topics.experiments, e).await?;
    Ok(())
}

/// `vigil ab status`.
fn status(config: &Config, codec: &Codec, model: Option<&str>, output: super::Output) -> anyhow::Result<ExitCode> {
    let x = read(config, codec)?;
    let shown: Vec<&Experiment> = x.all().into_iter().filter(|e| model.is_none_or(|m| e.model == m)).collect();
    if output == super::Output::Json {
        println!("{}", serde_json::to_string(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    if shown.is_empty() {
        println!("no A/B tests");
    }
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for e in shown {
        println!(
            "{} {} {:?}: A v{} ({} labels, {}) / B v{} ({} labels, {}), {:.0}% in B by {}, {:?}, p {}{}",
            e.model,
            e.experiment_id,
            e.state,
            e.version_a,
            e.labels_a,
            fmt(e.metric_a),
            e.version_b,
            e.labels_b,
            fmt(e.metric_b),
            e.share_b * 100.0,
            if e.key_field.is_empty() { "event id" } else { &e.key_field },
            e.metric,
            fmt(e.p_value),
            e.verdict.map_or(String::new(), |v| format!(", verdict {v:?}")),
        );
        if !e.message.is_empty() {
            println!("  {}", e.message);
        }
    }
    Ok(ExitCode::SUCCESS)
}
