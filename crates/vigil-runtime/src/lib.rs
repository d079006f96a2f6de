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

/// An error and its causes on one line, for logs and messages.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
