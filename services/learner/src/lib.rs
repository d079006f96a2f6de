//! Vigil's learner service: joins labels with the events they belong to ([`join`]), trains every
//! served model online with model selection and rehearsal ([`trainer`] over `vigil-learn`), and
//! publishes checkpoints that the scorer picks up, promoting them when they beat the champion
//! ([`service`]). It resumes from its latest checkpoint and the offsets recorded in it, so every label
//! updates the model once, across crashes.

pub mod events;
pub mod join;
pub mod service;
pub mod trainer;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use vigil_runtime::{Config, Health};

/// Runs the learner until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), String> {
    let models: Vec<String> = if config.learner.models.is_empty() {
        let mut m: Vec<String> =
            config.inputs.iter().filter(|i| !i.labels.is_empty()).map(|i| i.model.clone()).collect();
        m.dedup();
        m
    } else {
        config.learner.models.clone()
    };
    if models.is_empty() {
        return Err("no input has a label topic: nothing to learn from".into());
    }
    let mut registry = Registry::default();
    let metrics = Arc::new(events::Metrics::new(&mut registry));
    let health = Health::new();
    health.set_not_ready("resuming");
    let http = vigil_runtime::metrics::serve(
        &config.learner.http_listen,
        Arc::new(registry),
        health.clone(),
        shutdown.child_token(),
    )
    .await
    .map_err(|e| vigil_runtime::error_chain(&e))?;
    tracing::info!(addr = %http.addr, ?models, "learner starting");
    let ctx = service::Context { config, models, metrics, health };
    let handle = tokio::runtime::Handle::current();
    let stop = shutdown.clone();
    let result =
        tokio::task::spawn_blocking(move || service::run(ctx, stop, handle)).await.map_err(|e| e.to_string())?;
    shutdown.cancel();
    result
}
