//! The Prometheus registry a service fills and the HTTP endpoint that serves it with `/healthz` and
//! `/readyz`. Metric names are defined by each component's `events` module, never ad hoc; they follow
//! `vigil_<component>_<name>_<unit>`, counters end in `_total`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Liveness and readiness of a service: its own state (ready, or not and why) and, apart from it,
/// whether the Kafka cluster is reachable ([`Health::set_cluster`]); ready means both.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    reason: Mutex<String>,
    cluster_away: Mutex<Option<String>>,
}

impl Health {
    /// A new service: alive, not ready yet.
    pub fn new() -> Arc<Health> {
        Arc::new(Health { ready: AtomicBool::new(false), reason: Mutex::new("starting".into()), ..Health::default() })
    }

    /// Marks the service ready to take traffic.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
        if let Ok(mut r) = self.reason.lock() {
            r.clear();
        }
    }

    /// Marks the service not ready, with a reason shown by `/readyz`.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        self.ready.store(false, Ordering::SeqCst);
        if let Ok(mut r) = self.reason.lock() {
            *r = reason.into();
        }
    }

    /// Records whether the Kafka cluster is reachable: `Some(why)` while it is away (the service is
    /// not ready, keeps its own state and waits), `None` once it answers again.
    pub fn set_cluster(&self, away: Option<String>) {
        if let Ok(mut a) = self.cluster_away.lock() {
            *a = away;
        }
    }

    /// Whether the service is ready (its own state, and the cluster reachable).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && self.cluster_away.lock().is_ok_and(|a| a.is_none())
    }

    fn reason(&self) -> String {
        if let Some(away) = self.cluster_away.lock().ok().and_then(|a| a.clone()) {
            return away;
        }
        self.reason.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[derive(Clone)]
struct Shared {
    registry: Arc<Registry>,
    health: Arc<Health>,
}

/// Errors of the telemetry endpoint.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} for metrics and health")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running telemetry endpoint.
pub struct HttpServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// Completes when the server stops (after `shutdown` is cancelled).
    pub task: tokio::task::JoinHandle<()>,
}

/// Serves `/metrics` (Prometheus text format), `/healthz` and `/readyz` on `listen` until `shutdown`.
pub async fn serve(
    listen: &str,
    registry: Arc<Registry>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<HttpServer, HttpError> {
    let listener =
        TcpListener::bind(listen).await.map_err(|source| HttpError::Bind { addr: listen.to_string(), source })?;
    let addr = listener.local_addr().map_err(|source| HttpError::Bind { addr: listen.to_string(), source })?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Shared { registry, health });
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "telemetry endpoint stopped with an error");
        }
    });
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    Ok(HttpServer { addr, task })
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {e}"),
        ),
    }
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn readyz(State(s): State<Shared>) -> impl IntoResponse {
    if s.health.is_ready() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", s.health.reason()))
    }
}

/// Runs a service whose loop is blocking (it polls Kafka on its own thread): serves `registry` and
/// `health` on `listen`, runs `work` on a blocking thread with the shutdown token and a handle to
/// this runtime, and cancels `shutdown` when it returns (so the endpoint stops too).
pub async fn run_blocking<F>(
    name: &str,
    listen: &str,
    registry: Registry,
    health: Arc<Health>,
    shutdown: CancellationToken,
    work: F,
) -> Result<(), String>
where
    F: FnOnce(CancellationToken, tokio::runtime::Handle) -> Result<(), String> + Send + 'static,
{
    let http =
        serve(listen, Arc::new(registry), health, shutdown.child_token()).await.map_err(|e| crate::error_chain(&e))?;
    tracing::info!(addr = %http.addr, "{name} serving metrics and health");
    let handle = tokio::runtime::Handle::current();
    let stop = shutdown.clone();
    let result = tokio::task::spawn_blocking(move || work(stop, handle)).await.map_err(|e| e.to_string())?;
    shutdown.cancel();
    result
}

/// A local port free now, for the endpoint of a service that a test or a benchmark starts. Drawn at
/// random below the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), so that no
/// outgoing connection takes it between this check and the service binding it; never handed out
/// twice by one process (tests running side by side in one process draw many); checked by binding.
pub fn free_local_port() -> std::io::Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    const LOWEST: u32 = 20_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768)
        .max(LOWEST + 1_000);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for attempt in 0..10_000u32 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(attempt);
        h.write_u32(std::process::id());
        let port = (LOWEST + (h.finish() % u64::from(ephemeral - LOWEST)) as u32) as u16;
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.unwrap();
        let status = buf.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        (status, body)
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness_on_loopback() {
        let mut registry = Registry::default();
        let c: Counter = Counter::default();
        registry.register("vigil_test_events", "events seen", c.clone());
        c.inc_by(3);
        let health = Health::new();
        let shutdown = CancellationToken::new();
        let server = serve("127.0.0.1:0", Arc::new(registry), health.clone(), shutdown.clone()).await.unwrap();
        assert!(server.addr.ip().is_loopback());

        let (status, body) = get(server.addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("vigil_test_events_total 3"), "{body}");
        assert_eq!(get(server.addr, "/healthz").await.0, 200);
        let (status, body) = get(server.addr, "/readyz").await;
        assert_eq!((status, body.trim()), (503, "not ready: starting"));
        health.set_ready();
        assert_eq!(get(server.addr, "/readyz").await.0, 200);
        health.set_cluster(Some("the Kafka cluster is unreachable".into()));
        let (status, body) = get(server.addr, "/readyz").await;
        assert_eq!((status, body.trim()), (503, "not ready: the Kafka cluster is unreachable"));
        health.set_cluster(None);
        assert_eq!(get(server.addr, "/readyz").await.0, 200, "ready again with the cluster back");
        health.set_not_ready("standing by");
        assert!(get(server.addr, "/readyz").await.1.contains("standing by"));

        shutdown.cancel();
        server.task.await.unwrap();
    }

    #[tokio::test]
    async fn a_busy_port_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let err = serve(&addr, Arc::new(Registry::default()), Health::new(), CancellationToken::new())
            .await
            .err()
            .expect("must fail");
        assert!(err.to_string().contains(&addr), "{err}");
    }

    #[test]
    fn free_local_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| super::free_local_port().unwrap()).collect();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len());
        assert!(ports.iter().all(|p| *p >= 20_000));
        assert!(ports.iter().any(|p| *p < 32_768), "drawn below the ephemeral range");
        std::net::TcpListener::bind(("127.0.0.1", ports[0])).unwrap();
    }
}
