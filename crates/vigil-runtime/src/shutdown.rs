//! One cancellation tree per process: SIGINT and SIGTERM cancel the root token, every task holds a
//! child of it, and draining runs against a deadline.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A root token cancelled by the first SIGINT or SIGTERM. A second signal exits at once.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let root = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; draining");
        root.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal; exiting without draining");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for `fut` at most `deadline`; `None` when the deadline passed first.
pub async fn with_deadline<F: std::future::Future>(deadline: Duration, fut: F) -> Option<F::Output> {
    tokio::time::timeout(deadline, fut).await.ok()
}
