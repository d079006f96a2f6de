//! What every Vigil process needs besides its own work: layered configuration
//! ([`config`], [`layered`]), logs ([`telemetry`]), the metrics and health endpoint ([`metrics`]) and
//! the shutdown tree ([`shutdown`]).

pub mod config;
pub mod layered;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;

pub use config::Config;
pub use layered::ConfigError;
pub use metrics::Health;
