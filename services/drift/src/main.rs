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
    vigil_runtime::service_main("vigil-drift", args.config.as_deref(), vigil_drift::run)
}
