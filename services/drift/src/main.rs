//! `vigil-drift`: parses the configuration, starts logging, runs the drift service until SIGTERM / SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Vigil's drift service.
#[derive(Debug, Parser)]
#[command(name = "vigil-drift", version)]
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
            eprintln!("vigil-drift: {e}");
            return ExitCode::from(2);
        }
    };
    vigil_runtime::telemetry::init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigil-drift: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = vigil_runtime::shutdown::on_signals();
        match vigil_drift::run(config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "drift service failed");
                eprintln!("vigil-drift: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
