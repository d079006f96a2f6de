//! `vigil`: the admin and developer command. Thin: parses arguments, loads the configuration,
//! starts logging and calls the command in [`commands`].

#![allow(clippy::print_stdout)] // a CLI prints its results

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The whole configuration document, every service's section checked.
pub type Config =
    vigil_runtime::Config<vigil_scorer::ScorerConfig, vigil_learner::LearnerConfig, vigil_drift::DriftConfig>;

/// Vigil: scoring, continual learning and drift detection on Apache Kafka.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about)]
struct Cli {
    /// Configuration file (TOML); `VIGIL_CONFIG` names one too. `VIGIL_<SECTION>__<KEY>` variables
    /// override it.
    #[arg(long, short, global = true, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Topics Vigil owns.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Print the records of a topic as JSON lines (any Vigil schema, decoded by its fingerprint or id).
    Tail(commands::tail::TailArgs),
    /// Read JSON lines on standard input and produce them as Avro records.
    Produce(commands::produce::ProduceArgs),
    /// The model registry on the models topic.
    Models {
        #[command(subcommand)]
        command: commands::models::ModelsCommand,
    },
    /// Live A/B tests: start one, see how it stands, stop it.
    Ab {
        #[command(subcommand)]
        command: commands::ab::AbCommand,
    },
    /// Feature specs: infer one from a sample, list a spec's input columns.
    Spec {
        #[command(subcommand)]
        command: commands::spec::SpecCommand,
    },
    /// Sentence encoders for text models: build one's ONNX graph from its weights.
    Encoder {
        #[command(subcommand)]
        command: commands::encoder::EncoderCommand,
    },
    /// List the shipped Avro schemas with their versions and fingerprints.
    Schemas {
        /// `text` (a table) or `json` (one array).
        #[arg(long, value_enum, default_value = "text")]
        output: commands::Output,
    },
    /// Models and their champions, inputs with their rates and the scorer's lag, open alerts.
    Status {
        /// Redraw every this many seconds (until interrupted).
        #[arg(long)]
        watch: Option<f64>,
    },
    /// A page a person can read about one model: ROC curve and calibration of the champion on its
    /// labelled window, accuracy, AUC and drift statistics over time, version history (HTML, SVG charts).
    Report {
        /// The model.
        model: String,
        /// Where to write the page.
        #[arg(long, default_value = "report.html")]
        out: PathBuf,
    },
    /// A live page about every model (events/s, latency, score distributions, accuracy / AUC, version
    /// timeline, drift per feature, alerts), served until interrupted.
    Console {
        /// Address to serve on (localhost unless told otherwise).
        #[arg(long, env = "VIGIL_CONSOLE_LISTEN", default_value = "127.0.0.1:8090")]
        listen: String,
    },
    /// A shell completion script on standard output (e.g. `vigil completions bash > /etc/bash_completion.d/vigil`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Check the configuration (every section) and print it as TOML, secrets redacted.
    Config {
        /// Print the built-in defaults as a TOML file instead.
        #[arg(long)]
        defaults: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create every topic the configuration names, with the settings Vigil needs.
    Create,
    /// List the topics the configuration names and how they are set (exit 1 when one is missing or differs).
    List {
        /// `text` (a table) or `json` (one array).
        #[arg(long, value_enum, default_value = "text")]
        output: commands::Output,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory;
        clap_complete::generate(shell, &mut Cli::command(), "vigil", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vigil: {e}");
            return ExitCode::from(2);
        }
    };
    vigil_runtime::telemetry::init_logging(&config.log);
    if let Err(e) = vigil_kafka::client::check_features(&config.kafka) {
        eprintln!("vigil: invalid configuration (1 problem)\n  - {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigil: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Topics { command: TopicsCommand::Create } => commands::topics::create(&config).await,
            Command::Topics { command: TopicsCommand::List { output } } => {
                commands::topics::list(&config, output).await
            }
            Command::Tail(args) => commands::tail::run(&config, args).await,
            Command::Produce(args) => commands::produce::run(&config, args).await,
            Command::Models { command } => commands::models::run(&config, command).await,
            Command::Ab { command } => commands::ab::run(&config, command).await,
            Command::Spec { command } => commands::spec::run(&config, command).await,
            Command::Encoder { command } => commands::encoder::run(command),
            Command::Schemas { output } => commands::schemas(output),
            Command::Status { watch } => commands::status::run(&config, watch),
            Command::Report { model, out } => commands::report::run(&config, &model, &out),
            Command::Console { listen } => commands::console::run(&config, &listen).await,
            Command::Completions { .. } => Ok(ExitCode::SUCCESS),
            Command::Config { defaults: true } => commands::print_defaults(),
            Command::Config { defaults: false } => commands::print_config(&config),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}
