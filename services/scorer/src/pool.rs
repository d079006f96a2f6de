//! The inference pool: worker threads off the async runtime, each holding one ONNX Runtime session
//! per loaded model version, fed by bounded channels. A batch goes to one worker (round robin); a
//! model version is loaded into every worker before it may serve, and unloaded when the last holder
//! of its [`Loaded`] handle lets go — the model book and every batch in flight hold one, so a swap
//! never unloads a version a batch still needs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::RecordBatch;
use tokio::sync::oneshot;
use vigil_features::batch::{dense_view, text_view};
use vigil_features::spec::Graph;
use vigil_models::{Probabilities, Provider, Runtime};

/// A model version, as the pool knows it.
pub type Key = (String, i64);

/// A batch's probabilities, or why the model failed on it.
pub type Scored = Result<Probabilities, String>;

enum Job {
    Load { key: Key, onnx: Arc<Vec<u8>>, graph: Graph, done: oneshot::Sender<Result<&'static str, String>> },
    Unload { key: Key },
    Run { key: Key, batch: RecordBatch, done: oneshot::Sender<Scored> },
}

/// A loaded model version; dropping it unloads the version's sessions.
pub struct Loaded {
    key: Key,
    workers: Vec<SyncSender<Job>>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Loaded({} v{})", self.key.0, self.key.1)
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        for w in std::mem::take(&mut self.workers) {
            let job = Job::Unload { key: self.key.clone() };
            if let Err(std::sync::mpsc::TrySendError::Full(job)) = w.try_send(job) {
                // Never block whoever dropped it (an async thread): a helper waits for room.
                std::thread::spawn(move || {
                    let _ = w.send(job);
                });
            }
        }
    }
}

/// The pool.
pub struct Pool {
    workers: Vec<SyncSender<Job>>,
    next: AtomicUsize,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    /// Starts `workers` threads running sessions on `provider` with `intra_threads` each.
    pub fn start(runtime: Runtime, workers: usize, provider: Provider, intra_threads: usize) -> Pool {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for w in 0..workers.max(1) {
            let (tx, rx) = sync_channel::<Job>(64);
            senders.push(tx);
            let runtime = runtime.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("vigil-infer-{w}"))
                .spawn(move || worker(runtime, rx, provider, intra_threads));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => tracing::error!(error = %e, "cannot start an inference worker"),
            }
        }
        Pool { workers: senders, next: AtomicUsize::new(0), handles }
    }

    /// Loads a model version (called as `graph` says) into every worker; returns the provider it
    /// runs on.
    pub async fn load(&self, key: &Key, onnx: Arc<Vec<u8>>, graph: &Graph) -> Result<&'static str, String> {
        let mut waits = Vec::new();
        for w in &self.workers {
            let (done, rx) = oneshot::channel();
            w.send(Job::Load { key: key.clone(), onnx: onnx.clone(), graph: graph.clone(), done })
                .map_err(|_| "the inference pool stopped".to_string())?;
            waits.push(rx);
        }
        let mut provider = "cpu";
        for rx in waits {
            provider = rx.await.map_err(|_| "an inference worker stopped".to_string())??;
        }
        Ok(provider)
    }

    /// The handle whose last drop unloads `key` from every worker.
    pub fn loaded(&self, key: &Key) -> Loaded {
        Loaded { key: key.clone(), workers: self.workers.clone() }
    }

    /// Queues a batch for a loaded model version and returns where its scores will arrive. Waits for
    /// room in the worker's queue (back-pressure) without blocking the async threads.
    pub async fn submit(&self, key: &Key, batch: RecordBatch) -> Result<oneshot::Receiver<Scored>, String> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        let (done, rx) = oneshot::channel();
        let sender = self.workers[i].clone();
        let job = Job::Run { key: key.clone(), batch, done };
        match sender.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(job)) => {
                let sent =
                    tokio::task::spawn_blocking(move || sender.send(job).is_ok()).await.map_err(|e| e.to_string())?;
                if !sent {
                    return Err("the inference pool stopped".into());
                }
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err("the inference pool stopped".into()),
        }
        Ok(rx)
    }

    /// Stops the workers after the jobs already queued.
    pub fn stop(self) {
        drop(self.workers);
        for h in self.handles {
            let _ = h.join();
        }
    }
}

fn worker(runtime: Runtime, jobs: Receiver<Job>, provider: Provider, intra_threads: usize) {
    let mut sessions: HashMap<Key, (vigil_models::Session, Graph)> = HashMap::new();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Load { key, onnx, graph, done } => {
                let r = runtime
                    .session(&onnx, provider, intra_threads)
                    .map(|s| {
                        let p = s.provider();
                        sessions.insert(key, (s, graph));
                        p
                    })
                    .map_err(|e| vigil_runtime::error_chain(&e));
                let _ = done.send(r);
            }
            Job::Unload { key } => {
                sessions.remove(&key);
            }
            Job::Run { key, batch, done } => {
                let r = match sessions.get_mut(&key) {
                    None => Err(format!("{} v{} is not loaded", key.0, key.1)),
                    Some((s, graph)) => run(s, graph, &batch),
                };
                let _ = done.send(r);
            }
        }
    }
}

fn run(session: &mut vigil_models::Session, graph: &Graph, batch: &RecordBatch) -> Scored {
    let scored = if let Some((values, rows, width)) = dense_view(batch) {
        session.dense(graph, values, rows, width)
    } else if let Some((indices, values, rows, len)) = text_view(batch) {
        session.text(graph, indices, values, rows, len)
    } else {
        return Err("the batch has neither a features column nor indices / values".into());
    };
    scored.map_err(|e| vigil_runtime::error_chain(&e))
}
