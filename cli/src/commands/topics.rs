//! `vigil topics create | list`.

use std::process::ExitCode;

use super::Output;

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

/// Lists the configured topics and whether they exist as expected; exits 1 when one is missing or
/// differs (so that scripts and probes can rely on it).
pub async fn list(config: &Config, output: Output) -> anyhow::Result<ExitCode> {
    let admin = admin::admin(&config.kafka)?;
    let mut code = ExitCode::SUCCESS;
    let mut rows = Vec::new();
    for spec in admin::topic_specs(&config.topics, &config.inputs) {
        let (state, details) = match admin::differences(&admin, &spec).await {
            Ok(d) if d.is_empty() => ("ok", Vec::new()),
            Ok(d) => {
                ("differs", d.into_iter().map(|(k, want, got)| format!("{k}: expected {want}, found {got}")).collect())
            }
            Err(e) => ("missing", vec![e.to_string()]),
        };
        if state != "ok" {
            code = ExitCode::FAILURE;
        }
        match output {
            Output::Json => rows.push(serde_json::json!({"topic": spec.name, "state": state, "details": details})),
            Output::Text if state == "ok" => println!("ok       {}", spec.name),
            Output::Text if state == "missing" => println!("missing  {:<28} ({})", spec.name, details.join("; ")),
            Output::Text => details.iter().for_each(|d| println!("DIFFERS  {:<28} {d}", spec.name)),
        }
    }
    if output == Output::Json {
        println!("{}", serde_json::Value::Array(rows));
    }
    Ok(code)
}
