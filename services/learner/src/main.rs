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
    vigil_runtime::service_main("vigil-learner", args.config.as_deref(), vigil_learner::run)
}
