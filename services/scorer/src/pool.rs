//! The inference pool: worker threads off the async runtime, each holding one ONNX Runtime session
//! per loaded model version, fed by bounded channels. A batch goes to one worker (round robin); a
//! model version is loaded into every worker before it may serve, and unloaded when the last holder
//! of its [`Loaded`] handle lets go — the model book and every batch in flight hold one, so a swap
//! never unloads a version a batch still needs. An encoder model's versions share one encoder
//! session per worker (by the encoder's digest), kept while a version that uses it is loaded: a
//! batch of token rows is embedded by it, then scored by the version's head.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::RecordBatch;
use tokio::sync::oneshot;
use vigil_features::batch::{dense_view, text_view};
use vigil_features::spec::Graph;
use vigil_models::{Embedder, EncoderArtifact, Probabilities, Provider, Runtime};

/// A model version, as the pool knows it.
pub type Key = (String, i64);

/// A batch's probabilities, or why the model failed on it.
pub type Scored = Result<Probabilities, String>;

/// A version to load: its graph, how it is called, and the encoder in front of it.
struct NewVersion {
    key: Key,
    onnx: Arc<Vec<u8>>,
    graph: Graph,
    encoder: Option<EncoderArtifact>,
}

enum Job {
    Load { version: NewVersion, done: oneshot::Sender<Result<&'static str, String>> },
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

    /// Loads a model version (called as `graph` says, behind `encoder` if it has one) into every
    /// worker; returns the provider it runs on.
    pub async fn load(
        &self,
        key: &Key,
        onnx: Arc<Vec<u8>>,
        graph: &Graph,
        encoder: Option<EncoderArtifact>,
    ) -> Result<&'static str, String> {
        let mut waits = Vec::new();
        for w in &self.workers {
            let (done, rx) = oneshot::channel();
            let (onnx, graph, encoder) = (onnx.clone(), graph.clone(), encoder.clone());
            w.send(Job::Load { version: NewVersion { key: key.clone(), onnx, graph, encoder }, done })
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

/// A loaded version: its session, how it is called, and the encoder in front of it.
struct Version {
    session: vigil_models::Session,
    graph: Graph,
    encoder: Option<String>,
}

/// One worker's sessions: versions by key, encoders by digest with the versions using each.
struct Sessions {
    versions: HashMap<Key, Version>,
    encoders: HashMap<String, (Embedder, usize)>,
}

fn worker(runtime: Runtime, jobs: Receiver<Job>, provider: Provider, intra_threads: usize) {
    let mut s = Sessions { versions: HashMap::new(), encoders: HashMap::new() };
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Load { version, done } => {
                let _ = done.send(s.load(&runtime, provider, intra_threads, version));
            }
            Job::Unload { key } => s.unload(&key),
            Job::Run { key, batch, done } => {
                let _ = done.send(s.run(&key, &batch));
            }
        }
    }
}

impl Sessions {
    fn load(
        &mut self,
        runtime: &Runtime,
        provider: Provider,
        threads: usize,
        new: NewVersion,
    ) -> Result<&'static str, String> {
        let NewVersion { key, onnx, graph, encoder } = new;
        let session = runtime.session(&onnx, provider, threads).map_err(|e| vigil_runtime::error_chain(&e))?;
        let p = session.provider();
        self.unload(&key);
        let digest = match encoder {
            Some(e) => {
                if !self.encoders.contains_key(&e.digest) {
                    let embedder =
                        e.embedder(runtime, provider, threads).map_err(|e| vigil_runtime::error_chain(&e))?;
                    self.encoders.insert(e.digest.clone(), (embedder, 0));
                }
                if let Some((_, users)) = self.encoders.get_mut(&e.digest) {
                    *users += 1;
                }
                Some(e.digest)
            }
            None => None,
        };
        self.versions.insert(key, Version { session, graph, encoder: digest });
        Ok(p)
    }

    fn unload(&mut self, key: &Key) {
        let Some(Version { encoder: Some(digest), .. }) = self.versions.remove(key) else { return };
        if let Some((_, users)) = self.encoders.get_mut(&digest) {
            *users -= 1;
            if *users == 0 {
                self.encoders.remove(&digest);
            }
        }
    }

    fn run(&mut self, key: &Key, batch: &RecordBatch) -> Scored {
        let Some(v) = self.versions.get_mut(key) else { return Err(format!("{} v{} is not loaded", key.0, key.1)) };
        let scored = match (&v.encoder, dense_view(batch), text_view(batch)) {
            (Some(digest), _, Some((ids, mask, rows, len))) => {
                let (embedder, _) = self.encoders.get_mut(digest).ok_or("the version's encoder is not loaded")?;
                let embedding = embedder.embed(ids, mask, rows, len).map_err(|e| vigil_runtime::error_chain(&e))?;
                v.session.dense(&v.graph, &embedding, rows, embedder.dim())
            }
            (None, Some((values, rows, width)), _) => v.session.dense(&v.graph, values, rows, width),
            (None, None, Some((indices, values, rows, len))) => v.session.text(&v.graph, indices, values, rows, len),
            _ => return Err("the batch does not fit the model: neither features nor indices / values".into()),
        };
        scored.map_err(|e| vigil_runtime::error_chain(&e))
    }
}
