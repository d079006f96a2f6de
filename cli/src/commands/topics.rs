//! `vigil topics create | list`.

use std::process::ExitCode;

use crate::Config;
use vigil_kafka::admin::{self, TopicOutcome};

/// Creates every topic the configuration names; exits 1 when an existing topic has other settings.
pub async fn create(config: &Config) -> anyhow::Result<ExitCode> {
    let admin = admin::admin(&config.kafka)?;
    let specs = admin::topic_specs(&config.topics, &config.inputs);
    let outcomes = admin::create_topics(&admin, &specs).await?;
    let mut code = ExitCode::SUCCESS;
    for ((name, outcome), spec) in outcomes.iter().zip(&specs) {
        let settings: Vec<String> = spec.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        match outcome {
            TopicOutcome::Created => {
                println!("created  {name:<28} partitions={} {}", spec.partitions, settings.join(" "))
            }
            TopicOutcome::Existed => println!("exists   {name:<28} settings as expected"),
            TopicOutcome::Differs(diffs) => {
                code = ExitCode::FAILURE;
                for (k, want, got) in diffs {
                    println!("DIFFERS  {name:<28} {k}: expected {want}, found {got}");
                }
            }
        }
    }
    Ok(code)
}

/// Lists the configured topics and whether they exist as expected.
pub async fn list(config: &Config) -> anyhow::Result<ExitCode> {
    let admin = admin::admin(&config.kafka)?;
    for spec in admin::topic_specs(&config.topics, &config.inputs) {
        match admin::differences(&admin, &spec).await {
            Ok(d) if d.is_empty() => println!("ok       {}", spec.name),
            Ok(d) => {
                for (k, want, got) in d {
                    println!("DIFFERS  {:<28} {k}: expected {want}, found {got}", spec.name);
                }
            }
            Err(e) => println!("missing  {:<28} ({e})", spec.name),
        }
    }
    Ok(ExitCode::SUCCESS)
}
