//! `vigil-learner`: parses the configuration, starts logging, runs the learner until SIGTERM / SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Vigil's learner service.
#[derive(Debug, Parser)]
#[command(name = "vigil-learner", version)]
struct Args {
    /// Configuration file (TOML); `VIGIL_<SECTION>__<KEY>` variables override it.
    #[arg(long, short, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match vigil_runtime::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vigil-learner: {e}");
            return ExitCode::from(2);
        }
    };
    vigil_runtime::telemetry::init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigil-learner: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = vigil_runtime::shutdown::on_signals();
        match vigil_learner::run(config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "learner failed");
                eprintln!("vigil-learner: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
