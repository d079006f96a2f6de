//! `vigil-forwarder`: the no-op baseline (B0) — consume a topic, produce the same bytes to another,
//! commit after acknowledgement, with Vigil's client settings.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use vigil_kafka::pipeline::{Counters, PipelineConfig};

/// Forward records unchanged from one topic to another.
#[derive(Debug, Parser)]
#[command(name = "vigil-forwarder", version)]
struct Args {
    /// Vigil configuration file (Kafka settings); `VIGIL_*` variables apply too.
    #[arg(long, short, env = "VIGIL_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Topic to consume.
    #[arg(long)]
    input: String,
    /// Topic to produce to.
    #[arg(long)]
    output: String,
    /// Consumer group.
    #[arg(long, default_value = "vigil-forwarder")]
    group: String,
    /// Dead-letter topic (unused by the forwarder, which accepts every record).
    #[arg(long, default_value = "vigil.dlq")]
    dlq: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config: vigil_runtime::Config = match vigil_runtime::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vigil-forwarder: {e}");
            return ExitCode::from(2);
        }
    };
    vigil_runtime::telemetry::init_logging(&config.log);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil-forwarder: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let shutdown = vigil_runtime::shutdown::on_signals();
        let cfg = PipelineConfig::new("forwarder", &args.group, vec![args.input.clone()], &args.dlq);
        match vigil_load::forwarder::run(&config.kafka, &cfg, &args.output, Arc::new(Counters::default()), shutdown)
            .await
        {
            Ok(s) => {
                eprintln!("vigil-forwarder: consumed {} produced {} drained {}", s.consumed, s.produced, s.drained);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vigil-forwarder: {}", vigil_load::error_chain(&e));
                ExitCode::FAILURE
            }
        }
    })
}
