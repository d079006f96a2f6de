//! The inference pool: worker threads off the async runtime, each holding one ONNX Runtime session
//! per loaded model version, fed by bounded channels. A batch goes to one worker (round robin); a
//! model version is loaded into every worker before it may serve, and unloaded when the last holder
//! of its [`Loaded`] handle lets go — the model book and every batch in flight hold one, so a swap
//! never unloads a version a batch still needs. An encoder model's versions share one encoder
//! session per worker (by the encoder's digest), kept while a version that uses it is loaded: a
//! batch of token rows is embedded by it, then scored by the version's head.
//!
//! A batch its version is expected to score in less than the inline budget (from that version's
//! recent cost per row) runs on the submitting thread instead, on a worker's sessions that are not
//! busy: for a small MLP the hand-off (waking a worker, then being woken by it) cost more than the
//! inference itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

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
    /// Each worker's sessions, also used by [`Pool::submit`] for batches run inline.
    sessions: Vec<Arc<Mutex<Sessions>>>,
    next: AtomicUsize,
    handles: Vec<std::thread::JoinHandle<()>>,
    /// Batches expected to take less than this run on the submitting thread; zero: never.
    inline_below: Duration,
}

/// A submitted batch: already scored (run inline), or queued on a worker.
pub enum Pending {
    /// Run on the submitting thread.
    Ready(Scored),
    /// Where a worker will send the scores.
    Queued(oneshot::Receiver<Scored>),
}

impl Pending {
    /// The batch's scores.
    pub async fn scored(self) -> Scored {
        match self {
            Pending::Ready(scored) => scored,
            Pending::Queued(rx) => rx.await.unwrap_or_else(|_| Err("an inference worker stopped".into())),
        }
    }
}

impl Pool {
    /// Starts `workers` threads running sessions on `provider` with `intra_threads` each; batches
    /// expected to take less than `inline_below` run on the submitting thread.
    pub fn start(
        runtime: Runtime,
        workers: usize,
        provider: Provider,
        intra_threads: usize,
        inline_below: Duration,
    ) -> Pool {
        let mut senders = Vec::new();
        let mut sessions = Vec::new();
        let mut handles = Vec::new();
        for w in 0..workers.max(1) {
            let (tx, rx) = sync_channel::<Job>(64);
            senders.push(tx);
            let mine = Arc::new(Mutex::new(Sessions::default()));
            sessions.push(mine.clone());
            let runtime = runtime.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("vigil-infer-{w}"))
                .spawn(move || worker(runtime, rx, mine, provider, intra_threads));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => tracing::error!(error = %e, "cannot start an inference worker"),
            }
        }
        Pool { workers: senders, sessions, next: AtomicUsize::new(0), handles, inline_below }
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

    /// Scores a batch for a loaded model version here when its version is expected to take less
    /// than the inline budget and a worker's sessions are free, or else queues it on a worker.
    /// Waits for room in the worker's queue (back-pressure) without blocking the async threads.
    pub async fn submit(&self, key: &Key, batch: RecordBatch) -> Result<Pending, String> {
        if let Some(scored) = self.run_inline(key, &batch) {
            return Ok(Pending::Ready(scored));
        }
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
        Ok(Pending::Queued(rx))
    }

    /// Runs the batch on this thread, on the first worker's sessions that are free, when the
    /// version's recent cost per row says it takes less than the inline budget; `None` otherwise
    /// (a version not run yet has no cost: its first batches go to a worker).
    fn run_inline(&self, key: &Key, batch: &RecordBatch) -> Option<Scored> {
        if self.inline_below.is_zero() {
            return None;
        }
        for sessions in &self.sessions {
            let mut s = match sessions.try_lock() {
                Ok(s) => s,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            let per_row = s.versions.get(key)?.per_row;
            return runs_inline(per_row, batch.num_rows(), self.inline_below).then(|| s.run(key, batch));
        }
        None
    }

    /// Stops the workers after the jobs already queued.
    pub fn stop(self) {
        drop(self.workers);
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// Whether a batch of `rows` runs inline: its version has run before (`per_row`: its recent seconds
/// per row) and the batch is expected to take less than `budget`.
fn runs_inline(per_row: Option<f64>, rows: usize, budget: Duration) -> bool {
    per_row.is_some_and(|c| c * (rows as f64) < budget.as_secs_f64())
}

/// A loaded version: its session, how it is called, the encoder in front of it, and its recent
/// cost per row (seconds; an exponentially weighted mean over its batches, `None` before the first).
struct Version {
    session: vigil_models::Session,
    graph: Graph,
    encoder: Option<String>,
    per_row: Option<f64>,
}

/// One worker's sessions: versions by key, encoders by digest with the versions using each.
#[derive(Default)]
struct Sessions {
    versions: HashMap<Key, Version>,
    encoders: HashMap<String, (Embedder, usize)>,
}

fn lock(sessions: &Mutex<Sessions>) -> MutexGuard<'_, Sessions> {
    sessions.lock().unwrap_or_else(|e| e.into_inner())
}

fn worker(
    runtime: Runtime,
    jobs: Receiver<Job>,
    sessions: Arc<Mutex<Sessions>>,
    provider: Provider,
    intra_threads: usize,
) {
    while let Ok(job) = jobs.recv() {
        let mut s = lock(&sessions);
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
        self.versions.insert(key, Version { session, graph, encoder: digest, per_row: None });
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

    /// Scores a batch, and folds its cost into the version's cost per row.
    fn run(&mut self, key: &Key, batch: &RecordBatch) -> Scored {
        let started = Instant::now();
        let scored = self.score(key, batch);
        let rows = batch.num_rows();
        if let Some(v) = self.versions.get_mut(key)
            && rows > 0
        {
            let cost = started.elapsed().as_secs_f64() / rows as f64;
            v.per_row = Some(v.per_row.map_or(cost, |c| 0.8 * c + 0.2 * cost));
        }
        scored
    }

    fn score(&mut self, key: &Key, batch: &RecordBatch) -> Scored {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap batches of a version seen before run inline; an unseen version, a costly batch (an
    /// encoder's) and a zero budget do not.
    #[test]
    fn only_batches_known_to_be_cheap_run_inline() {
        let budget = Duration::from_micros(500);
        assert!(runs_inline(Some(0.1e-6), 512, budget), "a fraud MLP's 512 rows: ~50 µs");
        assert!(!runs_inline(None, 1, budget), "a version's first batch goes to a worker");
        assert!(!runs_inline(Some(1.5e-3), 64, budget), "an encoder's 64 texts: ~100 ms");
        assert!(!runs_inline(Some(2e-6), 512, budget), "1 ms expected: over the budget");
        assert!(!runs_inline(Some(0.1e-6), 512, Duration::ZERO));
    }
}
