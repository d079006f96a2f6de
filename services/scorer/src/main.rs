//! `vigil-scorer`: parses the configuration, starts logging, runs the scorer until SIGTERM / SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Vigil's scorer service.
#[derive(Debug, Parser)]
#[command(name = "vigil-scorer", version)]
struct Args {
    /// Configuration file (TOML); `VIGIL_<SECTION>__<KEY>` variables override it.
    #[arg(long, short, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    vigil_runtime::service_main("vigil-scorer", args.config.as_deref(), |config, shutdown| async move {
        vigil_scorer::run(config, shutdown, None).await.map_err(|e| vigil_runtime::error_chain(&e))
    })
}
