//! Vigil's drift service: per model, it compares live windows of every feature (data drift), of
//! the champion's scores (prediction drift) and of its errors once labels arrive (concept drift)
//! with the reference statistics of the champion's checkpoint, or a warm-up window when there are
//! none ([`monitor`]); watches windowed accuracy, AUC and scoring latency against thresholds; and
//! turns what it finds into deduplicated alerts with a cool-down, hysteresis and resolution
//! ([`alerts`]) and into periodic drift reports ([`service`]). The statistics live in `vigil-stats`.

pub mod alerts;
pub mod events;
pub mod monitor;
pub mod service;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use vigil_runtime::{Config, Health};

/// Runs the drift service until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), String> {
    let models: Vec<String> = if config.drift.models.is_empty() {
        let mut m: Vec<String> = Vec::new();
        for i in &config.inputs {
            if !m.contains(&i.model) {
                m.push(i.model.clone());
            }
        }
        m
    } else {
        config.drift.models.clone()
    };
    if models.is_empty() {
        return Err("no input is configured: nothing to watch".into());
    }
    let mut registry = Registry::default();
    let metrics = Arc::new(events::Metrics::new(&mut registry));
    let health = Health::new();
    health.set_not_ready("assigning partitions");
    let http = vigil_runtime::metrics::serve(
        &config.drift.http_listen,
        Arc::new(registry),
        health.clone(),
        shutdown.child_token(),
    )
    .await
    .map_err(|e| vigil_runtime::error_chain(&e))?;
    tracing::info!(addr = %http.addr, ?models, "drift service starting");
    let ctx = service::Context { config, models, metrics, health };
    let handle = tokio::runtime::Handle::current();
    let stop = shutdown.clone();
    let result =
        tokio::task::spawn_blocking(move || service::run(ctx, stop, handle)).await.map_err(|e| e.to_string())?;
    shutdown.cancel();
    result
}
