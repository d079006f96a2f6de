//! Vigil's learner service: joins labels with the events they belong to ([`join`]), trains every
//! served model online with model selection and rehearsal ([`trainer`] over `vigil-learn`), and
//! publishes checkpoints that the scorer picks up, promoting them when they beat the champion
//! ([`model`], evaluating the champion with [`champion`]), and rolls back a new champion that falls
//! behind the version it replaced ([`guard`]). It runs as a service of `vigil-kafka`'s
//! owned-models loop ([`service`]) and resumes from its latest checkpoint and the offsets recorded in
//! it, so every label updates the model once, across crashes.

pub mod champion;
pub mod config;
pub mod guard;
pub mod join;
pub mod model;
pub mod service;
pub mod telemetry;
pub mod trainer;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use vigil_events::Codec;
use vigil_kafka::inputs::load_schemas;
use vigil_kafka::lease::LeaseConfig;
use vigil_kafka::owned::{self, OwnedConfig};
use vigil_kafka::schema_registry::Resolver;
use vigil_runtime::Health;

pub use crate::config::{Config, LearnerConfig};

/// Runs the learner until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), String> {
    let models =
        if config.learner.models.is_empty() { config.input_models(true) } else { config.learner.models.clone() };
    if models.is_empty() {
        return Err("no input has a label topic: nothing to learn from".into());
    }
    vigil_kafka::client::check_features(&config.kafka)?;
    let mut registry = Registry::default();
    let metrics = Arc::new(telemetry::Metrics::new(&mut registry));
    let health = Health::new();
    health.set_not_ready("resuming");
    tracing::info!(?models, "learner starting");
    let listen = config.learner.http_listen.clone();
    vigil_kafka::cluster::watch(&config.kafka, &config.topics.models, health.clone(), shutdown.clone());
    let ready = health.clone();
    vigil_runtime::metrics::run_blocking("learner", &listen, registry, health, shutdown, move |stop, handle| {
        let mut config = config;
        let codec = Codec::new();
        handle.block_on(load_schemas(&codec, &mut config.inputs, &config.schema_registry)).map_err(|p| p.join("; "))?;
        let resolver = Resolver::new(&config.schema_registry, handle).map_err(|e| vigil_runtime::error_chain(&e))?;
        let group = &config.learner.group_id;
        let mut loop_config = OwnedConfig::new("learner", &format!("{group}-reader"), &config.topics.models);
        // One learner of a group works, the others stand by; its writes are transactions under an
        // id the group shares, so that a new holder of the lease fences the former one.
        loop_config.lease = Some(LeaseConfig {
            group: group.clone(),
            topic: config.topics.models.clone(),
            session_timeout: config.learner.lease_timeout,
        });
        loop_config.transactional_id = Some(format!("learner-{group}"));
        let kafka = config.kafka.clone();
        let models_codec = Codec::new();
        let build = |registry: &vigil_kafka::ModelRegistry| {
            service::Learner::build(config, codec, resolver, &models, metrics, registry)
        };
        owned::run(&kafka, &loop_config, &models_codec, build, &ready, &stop)
            .map_err(|e| vigil_runtime::error_chain(&e))
    })
    .await
}
