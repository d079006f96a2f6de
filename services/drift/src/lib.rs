//! Vigil's drift service: per model, it compares live windows of every feature (data drift), of
//! the champion's scores (prediction drift) and of its errors once labels arrive (concept drift)
//! with the reference statistics of the champion's checkpoint, or a warm-up window when there are
//! none ([`monitor`], with the tests in [`two_sample`]); watches windowed accuracy, AUC and scoring latency against thresholds; and
//! turns what it finds into deduplicated alerts with a cool-down, hysteresis and resolution
//! ([`alerts`]) and into periodic drift reports; [`watched`] holds each model's reading and
//! monitor, [`ab`] judges live A/B tests, [`service`] plugs them into `vigil-kafka`'s owned-models loop. The statistics live in
//! `vigil-stats`.

pub mod ab;
pub mod alerts;
pub mod config;
pub mod monitor;
pub mod pending;
pub mod service;
pub mod surge;
pub mod telemetry;
pub mod two_sample;
pub mod watched;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use vigil_events::Codec;
use vigil_kafka::inputs::load_schemas;
use vigil_kafka::lease::LeaseConfig;
use vigil_kafka::owned::{self, OwnedConfig};
use vigil_kafka::schema_registry::Resolver;
use vigil_runtime::Health;

pub use crate::config::{Config, DriftConfig};

/// Runs the drift service until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), String> {
    let models = if config.drift.models.is_empty() { config.input_models(false) } else { config.drift.models.clone() };
    if models.is_empty() {
        return Err("no input is configured: nothing to watch".into());
    }
    vigil_kafka::client::check_features(&config.kafka)?;
    let mut registry = Registry::default();
    let metrics = Arc::new(telemetry::Metrics::new(&mut registry));
    let health = Health::new();
    health.set_not_ready("assigning partitions");
    tracing::info!(?models, "drift service starting");
    let listen = config.drift.http_listen.clone();
    vigil_kafka::cluster::watch(&config.kafka, &config.topics.models, health.clone(), shutdown.clone());
    let ready = health.clone();
    vigil_runtime::metrics::run_blocking("drift service", &listen, registry, health, shutdown, move |stop, handle| {
        let mut config = config;
        let codec = Codec::new();
        handle.block_on(load_schemas(&codec, &mut config.inputs, &config.schema_registry)).map_err(|p| p.join("; "))?;
        let resolver = Resolver::new(&config.schema_registry, handle).map_err(|e| vigil_runtime::error_chain(&e))?;
        let group = &config.drift.group_id;
        let mut loop_config = OwnedConfig::new("drift", &format!("{group}-reader"), &config.topics.models);
        // One drift service of a group watches, the others stand by.
        loop_config.lease = Some(LeaseConfig {
            group: group.clone(),
            topic: config.topics.models.clone(),
            session_timeout: config.drift.lease_timeout,
        });
        loop_config.max_round = 5000;
        let kafka = config.kafka.clone();
        let build = |registry: &vigil_kafka::ModelRegistry| {
            service::Drift::build(config, codec, resolver, &models, metrics, registry)
        };
        owned::run(&kafka, &loop_config, &Codec::new(), build, &ready, &stop)
            .map_err(|e| vigil_runtime::error_chain(&e))
    })
    .await
}
