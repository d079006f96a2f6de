//! Faults between Vigil and the broker: a TCP proxy the fault broker advertises (so every client's
//! connection goes through it) that passes bytes, delays them, holds them (a black hole: the
//! connections stay open and nothing moves) or resets every connection; and the fault broker itself,
//! killed with SIGKILL and started again (`scripts/kafka.sh kill` / `start`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes them.
    None,
    /// Delays each chunk by this much.
    Latency(Duration),
    /// Holds them (and new connections) until the fault ends.
    BlackHole,
}

/// A running proxy from `listen` to `upstream`, on a runtime of its own (a test's blocking calls —
/// running the CLI, waiting for a service — must not stop the bytes of the clients they wait for).
pub struct Proxy {
    fault: watch::Sender<Fault>,
    resets: watch::Sender<u64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts proxying 127.0.0.1:`listen` to 127.0.0.1:`upstream`.
    pub fn start(listen: u16, upstream: u16) -> Proxy {
        let (fault, fault_rx) = watch::channel(Fault::None);
        let (resets, resets_rx) = watch::channel(0u64);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, is_bound) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind(("127.0.0.1", listen)).await.unwrap();
                bound.send(()).unwrap();
                let accept = async {
                    while let Ok((client, _)) = listener.accept().await {
                        tokio::spawn(connection(client, upstream, fault_rx.clone(), resets_rx.clone()));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_background();
        });
        is_bound.recv().unwrap();
        Proxy { fault, resets, stop: Some(stop), thread: Some(thread) }
    }

    /// Sets the fault (`Fault::None` heals).
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Resets every open connection (clients see their connections drop).
    pub fn reset(&self) {
        self.resets.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.reset();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The listener is closed when the thread ends: the next proxy can bind the port.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn connection(
    client: TcpStream,
    upstream: u16,
    mut fault: watch::Receiver<Fault>,
    mut resets: watch::Receiver<u64>,
) {
    // A black hole holds new connections too: nothing answers until it ends.
    while *fault.borrow() == Fault::BlackHole {
        if fault.changed().await.is_err() {
            return;
        }
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let generation = *resets.borrow_and_update();
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::select! {
        _ = pump(cr, sw, fault.clone()) => {}
        _ = pump(sr, cw, fault) => {}
        _ = async { while *resets.borrow() == generation { if resets.changed().await.is_err() { break } } } => {}
    }
    // Dropping the halves closes both sockets.
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            let now = *fault.borrow_and_update();
            match now {
                Fault::None => break,
                Fault::Latency(d) => {
                    tokio::time::sleep(d).await;
                    break;
                }
                Fault::BlackHole => {
                    if fault.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The fault broker: its own port (`VIGIL_FAULT_BROKER_PORT`), advertising the proxy's
/// (`VIGIL_FAULT_PROXY_PORT`); `make test` starts it.
pub struct FaultBroker {
    /// Where the broker listens.
    pub port: u16,
    /// Where clients connect (the proxy).
    pub proxy_port: u16,
}

impl FaultBroker {
    /// From the environment `make test` sets.
    pub fn from_env() -> FaultBroker {
        let var = |k: &str| -> u16 {
            std::env::var(k)
                .unwrap_or_else(|_| panic!("{k} is not set: make test starts the fault broker and sets it"))
                .parse()
                .unwrap()
        };
        FaultBroker { port: var("VIGIL_FAULT_BROKER_PORT"), proxy_port: var("VIGIL_FAULT_PROXY_PORT") }
    }

    /// The address clients use.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.proxy_port)
    }

    fn script(&self, command: &str) {
        let status = std::process::Command::new(crate::root().join("scripts/kafka.sh"))
            .arg(command)
            .env("VIGIL_KAFKA_PORT", self.port.to_string())
            .env("VIGIL_KAFKA_ADVERTISED_PORT", self.proxy_port.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "scripts/kafka.sh {command} failed");
    }

    /// SIGKILL.
    pub fn kill(&self) {
        self.script("kill");
    }

    /// Starts it again (same storage); returns when it answers.
    pub fn start(&self) {
        self.script("start");
    }
}
