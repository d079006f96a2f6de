//! `vigil-bench`: Vigil's benchmarks, each side by side with its baseline in one run; JSON reports
//! under `target/bench/`. `make bench` starts the broker and runs `vigil-bench all`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use vigil_load::bench::{self, Env};

/// Benchmarks with their baselines.
#[derive(Debug, Parser)]
#[command(name = "vigil-bench", version)]
struct Cli {
    /// Which benchmark.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// Vigil configuration file (Kafka settings); `VIGIL_*` variables apply too.
    #[arg(long, short, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    /// Rounds of A/B alternation.
    #[arg(long, env = "VIGIL_BENCH_ROUNDS", default_value_t = 3)]
    rounds: usize,
    /// Rounds of the scorer benchmark's drains against the forwarder (at least `rounds`).
    #[arg(long, env = "VIGIL_BENCH_DRAIN_ROUNDS", default_value_t = 7)]
    drain_rounds: usize,
    /// Records per throughput run.
    #[arg(long, env = "VIGIL_BENCH_EVENTS", default_value_t = 200_000)]
    events: u64,
    /// Seconds of load per latency run.
    #[arg(long, env = "VIGIL_BENCH_LATENCY_SECS", default_value_t = 15.0)]
    latency_secs: f64,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Log level of the systems under test (`info` shows where each consume loop's time went).
    #[arg(long, env = "VIGIL_BENCH_LOG_LEVEL", default_value = "warn")]
    log_level: String,
    /// Report folder (default: target/bench).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    All,
    Forwarder,
    Scorer,
    Learner,
    Drift,
    Byo,
    Scale,
    Sentiment,
    Ab,
    Python,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config: vigil_runtime::Config = match vigil_runtime::Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vigil-bench: {e}");
            return ExitCode::from(2);
        }
    };
    vigil_runtime::telemetry::init_logging(&vigil_runtime::config::LogConfig {
        level: "warn".into(),
        ..config.log.clone()
    });
    let bin_dir = match std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)) {
        Some(d) => d,
        None => {
            eprintln!("vigil-bench: cannot tell where the binaries are");
            return ExitCode::FAILURE;
        }
    };
    let out_dir = cli.out.clone().unwrap_or_else(|| bench::repo_root(&bin_dir).join("target/bench"));
    let env = Env {
        kafka: config.kafka.clone(),
        bin_dir,
        out_dir,
        rounds: cli.rounds.max(1),
        drain_rounds: cli.drain_rounds.max(cli.rounds).max(1),
        events: cli.events.max(1000),
        latency_secs: cli.latency_secs.max(1.0),
        partitions: cli.partitions.max(1),
        log_level: cli.log_level.clone(),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let started = std::time::Instant::now();
        if cli.which != Which::Ab {
            bench::warm_up(&env).await?;
        }
        if matches!(cli.which, Which::All | Which::Forwarder) {
            bench::forwarder(&env).await?;
        }
        if matches!(cli.which, Which::All | Which::Scorer) {
            bench::scorer(&env).await?;
        }
        if matches!(cli.which, Which::All | Which::Learner) {
            bench::learner(&env).await?;
        }
        if matches!(cli.which, Which::All | Which::Drift) {
            bench::drift(&env).await?;
        }
        if matches!(cli.which, Which::All | Which::Byo) {
            bench::byo(&env).await?;
        }
        if matches!(cli.which, Which::All | Which::Scale) {
            bench::scale(&env).await?;
        }
        if matches!(cli.which, Which::All | Which::Sentiment) {
            bench::sentiment(&env).await?;
        }
        if matches!(cli.which, Which::All | Which::Python) {
            bench::python(&env).await?;
        }
        if matches!(cli.which, Which::All | Which::Ab) {
            bench::ab(&env).await?;
        }
        eprintln!("\nbenchmarks took {:.0} s", started.elapsed().as_secs_f64());
        Ok::<(), bench::BenchError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
