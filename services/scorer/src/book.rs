//! The model book: which version of each served model is champion, which is challenger and which
//! is the fallback (the promoted version before the champion), kept in step with the models topic.
//! A new version is validated and loaded into every inference worker before it replaces the old
//! one in a single pointer swap, so scoring never pauses and never sees half a model. A checkpoint
//! that fails validation is refused with an alert and the serving version stays; when the newest
//! champion is refused, the previous promoted version serves. A version that keeps failing at run
//! time is taken out of service here (the champion's fallback takes over, a challenger stops) with
//! an alert; the registry is the operator's to change.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use vigil_events::{Alert, AlertKind, AlertState, Codec, Experiment, ModelCheckpoint, Severity, Variant};
use vigil_features::Featurizer;
use vigil_kafka::ModelRegistry;
use vigil_kafka::experiments::Experiments;
use vigil_kafka::models;
use vigil_kafka::{client, now_ms};
use vigil_models::Runtime;
use vigil_models::checkpoint::{self, Policy};

use crate::config::Config;
use crate::pool::{Key, Loaded, Pool};
use crate::telemetry::Metrics;

/// A model version ready to score.
#[derive(Debug)]
pub struct Served {
    /// Model and version.
    pub key: Key,
    /// Its graph's SHA-256 (a version is the same version only with the same graph).
    pub sha256: String,
    /// Featuriser of its spec, bound to the input schema.
    pub featurizer: Featurizer,
    /// Decision threshold.
    pub threshold: f64,
    /// Its sessions stay loaded while anything holds this.
    pub loaded: Loaded,
}

/// What scores a model's events now.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Scores every event.
    pub champion: Arc<Served>,
    /// Scores a share of events in shadow.
    pub challenger: Option<Arc<Served>>,
    /// Takes over when the champion keeps failing at run time.
    pub fallback: Option<Arc<Served>>,
    /// A live A/B test: while one runs, its arms decide every event (no shadow scores).
    pub ab: Option<Arc<Ab>>,
}

/// A running A/B test with both arms loaded.
#[derive(Debug)]
pub struct Ab {
    /// The experiment (its id, share and key field).
    pub experiment: Experiment,
    /// Arm A's version.
    pub a: Arc<Served>,
    /// Arm B's version.
    pub b: Arc<Served>,
}

/// Consecutive failed batches after which a version is taken out of service.
pub const RUNTIME_FAILURES: u32 = 3;

/// A version taken out of service because it failed at run time.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The version.
    pub key: Key,
    /// As which variant it failed.
    pub variant: Variant,
    /// The last error.
    pub reason: String,
    /// The version that serves instead (a champion's fallback).
    pub replaced_by: Option<i64>,
}

/// The served models.
#[derive(Debug)]
pub struct Book {
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    failures: Mutex<HashMap<Key, u32>>,
    broken: Mutex<HashSet<(Key, String)>>,
    events: mpsc::UnboundedSender<Failure>,
}

impl Book {
    /// An empty book; what it takes out of service is reported on the returned channel.
    pub fn new() -> (Book, mpsc::UnboundedReceiver<Failure>) {
        let (events, rx) = mpsc::unbounded_channel();
        let book = Book { slots: Default::default(), failures: Default::default(), broken: Default::default(), events };
        (book, rx)
    }

    /// The current slot of `model`.
    pub fn get(&self, model: &str) -> Option<Arc<Slot>> {
        self.slots.read().ok()?.get(model).cloned()
    }

    fn set(&self, model: &str, slot: Slot) {
        if let Ok(mut s) = self.slots.write() {
            s.insert(model.to_string(), Arc::new(slot));
        }
    }

    /// Those of `models` that have a champion, in their order.
    pub fn serving(&self, models: &[String]) -> Vec<String> {
        models.iter().filter(|m| self.get(m).is_some()).cloned().collect()
    }

    /// Whether a version (with this graph) was taken out of service.
    pub fn is_broken(&self, key: &Key, sha256: &str) -> bool {
        self.broken.lock().map(|b| b.contains(&(key.clone(), sha256.to_string()))).unwrap_or(false)
    }

    /// How a batch went for `served`; after [`RUNTIME_FAILURES`] failures in a row the version is
    /// taken out of service: a champion gives way to its fallback, a challenger stops.
    pub fn report(&self, served: &Served, variant: Variant, result: Result<(), &str>) {
        let Ok(mut failures) = self.failures.lock() else { return };
        let Err(reason) = result else {
            failures.remove(&served.key);
            return;
        };
        let n = failures.entry(served.key.clone()).or_default();
        *n += 1;
        if *n < RUNTIME_FAILURES {
            return;
        }
        failures.remove(&served.key);
        drop(failures);
        if let Ok(mut b) = self.broken.lock() {
            b.insert((served.key.clone(), served.sha256.clone()));
        }
        let model = &served.key.0;
        let Some(slot) = self.get(model) else { return };
        let mut next = (*slot).clone();
        let mut replaced_by = None;
        match variant {
            Variant::Champion if slot.champion.key == served.key => match next.fallback.take() {
                Some(f) => {
                    replaced_by = Some(f.key.1);
                    next.champion = f;
                }
                // Nothing to fall back to: it keeps serving, its failing batches are dead letters.
                None => return,
            },
            Variant::Challenger if next.challenger.as_ref().is_some_and(|c| c.key == served.key) => {
                next.challenger = None;
            }
            _ => return,
        }
        self.set(model, next);
        let _ = self.events.send(Failure { key: served.key.clone(), variant, reason: reason.to_string(), replaced_by });
    }
}

/// Everything the follower needs.
pub struct Follower {
    /// Configuration.
    pub config: Config,
    /// Served model → reader schema of its input.
    pub schemas: HashMap<String, &'static Schema>,
    /// Codec.
    pub codec: Arc<Codec>,
    /// ONNX Runtime.
    pub runtime: Runtime,
    /// Validation rules.
    pub policy: Policy,
    /// Workers.
    pub pool: Arc<Pool>,
    /// The book it keeps.
    pub book: Arc<Book>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Tells the service which of its models have a champion.
    pub ready: watch::Sender<Vec<String>>,
    /// Stops the follower (and a validation in progress).
    pub shutdown: CancellationToken,
}

/// The models topic's end, read on a blocking thread and tried again while the cluster does not
/// answer (a scorer started during an outage waits for it, not ready); `None` at shutdown.
async fn end_when_reachable(
    consumer: &Arc<StreamConsumer<client::LogContext>>,
    topic: &str,
    shutdown: &CancellationToken,
) -> Result<Option<i64>, String> {
    let (consumer, topic, shutdown) = (consumer.clone(), topic.to_string(), shutdown.clone());
    let end = tokio::task::spawn_blocking(move || {
        vigil_kafka::cluster::when_reachable(&shutdown, || models::end_offset(&consumer, &topic))
    })
    .await
    .map_err(|e| format!("reading the models topic's end: {e}"))?;
    end.map_err(|e| vigil_runtime::error_chain(&e))
}

/// The models topic's end read again on a blocking thread (up to 30 s while the cluster does not
/// answer, which must not hold a runtime worker); the last `end` known if it cannot be read.
async fn end_again(consumer: &Arc<StreamConsumer<client::LogContext>>, topic: &str, end: i64) -> i64 {
    let (consumer, topic) = (consumer.clone(), topic.to_string());
    let read = tokio::task::spawn_blocking(move || models::end_offset(&consumer, &topic)).await;
    read.ok().and_then(Result::ok).unwrap_or(end)
}

impl Follower {
    /// Follows the models topic until `shutdown`; publishes an alert for every version the book
    /// takes out of service (`failures`).
    pub async fn run(self, mut failures: mpsc::UnboundedReceiver<Failure>) -> Result<(), String> {
        let shutdown = self.shutdown.clone();
        let topic = self.config.topics.models.clone();
        let consumer = models::follower(&self.config.kafka, &topic, "scorer-models")
            .map_err(|e| vigil_runtime::error_chain(&e))?;
        let alerts: FutureProducer<client::LogContext> = client::producer_config(&self.config.kafka, "scorer-alerts")
            .create_with_context(client::LogContext)
            .map_err(|e| e.to_string())?;
        let tests = models::follower(&self.config.kafka, &self.config.topics.experiments, "scorer-experiments")
            .map_err(|e| vigil_runtime::error_chain(&e))?;
        let mut experiments = Experiments::default();
        let mut registry = ModelRegistry::slim();
        let mut refused: HashSet<(String, i64, String)> = HashSet::new();
        let consumer = Arc::new(consumer);
        let Some(mut end) = end_when_reachable(&consumer, &topic, &shutdown).await? else {
            return Ok(());
        };
        let mut caught_up = end == 0;
        if caught_up {
            tracing::info!(topic, "the models topic is empty; waiting for a checkpoint");
        }
        let mut served: Vec<String> = self.schemas.keys().cloned().collect();
        served.sort();
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(f) = failures.recv() => {
                    self.failed(&alerts, &f);
                    continue;
                }
                r = models::next_with_offset(&consumer, &self.codec) => Some(r),
                m = tests.recv() => {
                    match m {
                        Ok(m) => if let Err(e) = experiments.apply_bytes(&self.codec, rdkafka::Message::payload(&m)) {
                            tracing::warn!(error = e, "an experiment record does not decode; ignored");
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "reading the experiments topic");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                    None
                }
                // The topic may end in transaction markers, which are never delivered: the
                // consumer's position says when it has read to the end.
                _ = tokio::time::sleep(Duration::from_millis(200)), if !caught_up => None,
            };
            match next {
                Some(Ok((_, record))) => registry.apply_record(record),
                Some(Err(e)) => {
                    tracing::warn!(error = %vigil_runtime::error_chain(&e), "reading the models topic");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                None => {}
            }
            if !caught_up && models::position(&*consumer, &topic).is_some_and(|p| p >= end) {
                // Re-check: more may have arrived while reading.
                end = tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    e = end_again(&consumer, &topic, end) => e,
                };
                caught_up = models::position(&*consumer, &topic).is_some_and(|p| p >= end);
            }
            if caught_up {
                for model in &served {
                    self.reconcile(model, &registry, experiments.running(model), &mut refused, &alerts).await;
                }
                self.ready.send_if_modified(|current| {
                    let now = self.book.serving(&served);
                    let changed = *current != now;
                    *current = now;
                    changed
                });
            }
        }
    }

    /// Brings the model's slot in line with the registry: the newest promoted version that can be
    /// served is champion, the one after it the fallback, the newest candidate above the champion
    /// the challenger.
    async fn reconcile(
        &self,
        model: &str,
        registry: &ModelRegistry,
        experiment: Option<&Experiment>,
        refused: &mut HashSet<(String, i64, String)>,
        alerts: &FutureProducer<client::LogContext>,
    ) {
        let current = self.book.get(model);
        let mut loaded: Vec<Arc<Served>> = current
            .iter()
            .flat_map(|s| {
                let ab = s.ab.iter().flat_map(|ab| [ab.a.clone(), ab.b.clone()]);
                std::iter::once(s.champion.clone()).chain(s.challenger.clone()).chain(s.fallback.clone()).chain(ab)
            })
            .collect();
        let mut promoted = Vec::new();
        for cp in registry.promoted(model) {
            if promoted.len() == 2 {
                break;
            }
            if let Some(served) = self.serve(cp, &mut loaded, refused, alerts).await {
                promoted.push(served);
            }
        }
        let mut promoted = promoted.into_iter();
        let Some(champion) = promoted.next() else { return };
        let fallback = promoted.next();
        let challenger = match registry.challenger(model) {
            Some(cp) if cp.version != champion.key.1 => self.serve(cp, &mut loaded, refused, alerts).await,
            _ => None,
        };
        let ab = match experiment {
            Some(e) => self.arms(e, registry, &mut loaded, refused, alerts).await,
            None => None,
        };
        let same = |a: &Option<Arc<Served>>, b: &Option<Arc<Served>>| match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        // What routes traffic; a judge's progress records (new figures every few seconds) change
        // nothing here.
        let routes = |e: &Experiment| (e.experiment_id.clone(), e.share_b.to_bits(), e.key_field.clone());
        let same_ab = |a: &Option<Arc<Ab>>, b: &Option<Ab>| match (a, b) {
            (Some(a), Some(b)) => {
                routes(&a.experiment) == routes(&b.experiment) && Arc::ptr_eq(&a.a, &b.a) && Arc::ptr_eq(&a.b, &b.b)
            }
            (None, None) => true,
            _ => false,
        };
        if let Some(c) = &current
            && Arc::ptr_eq(&c.champion, &champion)
            && same(&c.challenger, &challenger)
            && same(&c.fallback, &fallback)
            && same_ab(&c.ab, &ab)
        {
            return;
        }
        if let Some(t) = &ab {
            let e = &t.experiment;
            tracing::info!(model, experiment = %e.experiment_id, a = e.version_a, b = e.version_b, share_b = e.share_b, "A/B test serving");
        }
        if let Some(newest) = registry.champion(model).filter(|cp| cp.version != champion.key.1) {
            tracing::warn!(
                model,
                serving = champion.key.1,
                refused = newest.version,
                "the newest champion cannot be served; the previous promoted version serves"
            );
        }
        self.metrics.serving(model, Variant::Champion, champion.key.1, &champion.sha256);
        match &challenger {
            Some(c) => self.metrics.serving(model, Variant::Challenger, c.key.1, &c.sha256),
            None => self.metrics.not_serving(model, Variant::Challenger),
        }
        // Versions no longer in the slot unload when the last batch holding them lets go.
        self.book.set(model, Slot { champion, challenger, fallback, ab: ab.map(Arc::new) });
    }

    /// Both arms of a running experiment, ready to serve; `None` (the test waits, traffic is served
    /// as usual) while either version is missing, refused or out of service.
    async fn arms(
        &self,
        e: &Experiment,
        registry: &ModelRegistry,
        loaded: &mut Vec<Arc<Served>>,
        refused: &mut HashSet<(String, i64, String)>,
        alerts: &FutureProducer<client::LogContext>,
    ) -> Option<Ab> {
        let mut arms = Vec::with_capacity(2);
        for v in [e.version_a, e.version_b] {
            // A version the slim registry keeps no graph of (not among those that may serve)
            // cannot be an arm; `vigil ab start` refuses such versions.
            let Some(cp) = registry.get(&e.model, v).filter(|cp| cp.onnx.is_some() || cp.onnx_uri.is_some()) else {
                tracing::warn!(model = %e.model, version = v, experiment = %e.experiment_id, "an A/B arm's version cannot be served here; the test waits");
                return None;
            };
            arms.push(self.serve(cp, loaded, refused, alerts).await?);
        }
        let b = arms.pop()?;
        let a = arms.pop()?;
        Some(Ab { experiment: e.clone(), a, b })
    }

    /// `cp` ready to serve: the loaded version when it is one, else validated and loaded (and added
    /// to `loaded`, so that one reconciliation never loads a version twice: the first handle to go
    /// would unload it under the other); `None` when it was refused or taken out of service.
    async fn serve(
        &self,
        cp: &ModelCheckpoint,
        loaded: &mut Vec<Arc<Served>>,
        refused: &mut HashSet<(String, i64, String)>,
        alerts: &FutureProducer<client::LogContext>,
    ) -> Option<Arc<Served>> {
        let key: Key = (cp.model.clone(), cp.version);
        if self.book.is_broken(&key, &cp.sha256) {
            return None;
        }
        if let Some(s) = loaded.iter().find(|s| s.key == key && s.sha256 == cp.sha256) {
            return Some(s.clone());
        }
        let admitted = self.admit(cp, refused, alerts).await?;
        loaded.push(admitted.clone());
        Some(admitted)
    }

    /// Validates a checkpoint and loads it into every worker; `None` (with an alert) if refused.
    async fn admit(
        &self,
        cp: &ModelCheckpoint,
        refused: &mut HashSet<(String, i64, String)>,
        alerts: &FutureProducer<client::LogContext>,
    ) -> Option<Arc<Served>> {
        let id = (cp.model.clone(), cp.version, cp.sha256.clone());
        if refused.contains(&id) {
            return None;
        }
        let schema = *self.schemas.get(&cp.model)?;
        let (runtime, policy, owned) = (self.runtime.clone(), self.policy.clone(), cp.clone());
        let reject = |check, reason: String| checkpoint::Rejection {
            model: cp.model.clone(),
            version: cp.version,
            check,
            reason,
        };
        let limit = self.config.scorer.validation_timeout;
        let task = tokio::task::spawn_blocking(move || checkpoint::validate(&owned, schema, &policy, &runtime));
        // The blocking validation cannot be stopped; past the limit (or at shutdown) it is left to
        // finish on its own and its result is dropped.
        let validated = tokio::select! {
            _ = self.shutdown.cancelled() => return None,
            r = tokio::time::timeout(limit, task) => match r {
                Err(_) => Err(reject("time", format!("validation took longer than {} ms", limit.as_millis()))),
                Ok(Err(e)) => Err(reject("load", e.to_string())),
                Ok(Ok(r)) => r,
            },
        };
        let key: Key = (cp.model.clone(), cp.version);
        let result = match validated {
            Ok(v) => match self.pool.load(&key, v.onnx.clone(), &v.spec.graph, v.encoder.clone()).await {
                Ok(provider) => {
                    tracing::info!(model = %cp.model, version = cp.version, provider, "checkpoint validated and loaded");
                    let threshold = cp.metrics.as_ref().map(|m| m.threshold).unwrap_or(self.config.scorer.threshold);
                    let loaded = self.pool.loaded(&key);
                    Ok(Arc::new(Served { key, sha256: cp.sha256.clone(), featurizer: v.featurizer, threshold, loaded }))
                }
                Err(reason) => {
                    Err(checkpoint::Rejection { model: cp.model.clone(), version: cp.version, check: "load", reason })
                }
            },
            Err(r) => Err(r),
        };
        match result {
            Ok(s) => Some(s),
            Err(r) => {
                self.metrics.rejected(&r.model, r.version, r.check, &r.reason);
                refused.insert(id);
                self.alert(alerts, &r);
                None
            }
        }
    }

    /// The alert for a version taken out of service at run time.
    fn failed(&self, producer: &FutureProducer<client::LogContext>, f: &Failure) {
        let (model, version) = (&f.key.0, f.key.1);
        self.metrics.rejected(model, version, "run-time", &f.reason);
        let (kind, what) = match (f.variant, f.replaced_by) {
            (Variant::Champion, Some(v)) => (AlertKind::ModelRolledBack, format!("v{v} serves instead")),
            _ => (AlertKind::ModelRejected, "its shadow scores stop".to_string()),
        };
        let alert = Alert {
            alert_id: format!("model-failed-{model}-{version}-{}", now_ms()),
            time: now_ms(),
            kind,
            state: AlertState::Firing,
            severity: Severity::Critical,
            model: Some(model.clone()),
            model_version: Some(version),
            feature: None,
            detector: Some("scorer".into()),
            statistic: Some("run-time".into()),
            value: None,
            threshold: None,
            p_value: None,
            window_start: None,
            window_end: None,
            message: format!(
                "scorer: {model} v{version} failed {} batches in a row ({}); {what}",
                RUNTIME_FAILURES, f.reason
            ),
            dedup_key: format!("model-failed/{model}/{version}"),
        };
        self.send_alert(producer, &alert);
    }

    fn alert(&self, producer: &FutureProducer<client::LogContext>, r: &checkpoint::Rejection) {
        let alert = Alert {
            alert_id: format!("model-rejected-{}-{}-{}", r.model, r.version, now_ms()),
            time: now_ms(),
            kind: AlertKind::ModelRejected,
            state: AlertState::Firing,
            severity: Severity::Warning,
            model: Some(r.model.clone()),
            model_version: Some(r.version),
            feature: None,
            detector: Some("validation".into()),
            statistic: Some(r.check.to_string()),
            value: None,
            threshold: None,
            p_value: None,
            window_start: None,
            window_end: None,
            message: format!(
                "scorer refused {} v{}: {} check failed: {}; the serving version stays",
                r.model, r.version, r.check, r.reason
            ),
            dedup_key: format!("model-rejected/{}/{}", r.model, r.version),
        };
        self.send_alert(producer, &alert);
    }

    /// Publishes an alert, at least once: a failed delivery is tried again (after the producer's
    /// own retries) until it is acknowledged or the scorer shuts down — in a task of its own, so
    /// that a broker refusing alerts never stops the follower.
    fn send_alert(&self, producer: &FutureProducer<client::LogContext>, alert: &Alert) {
        let Ok(payload) = self.codec.encode_event(alert) else { return };
        let (producer, topic, key) = (producer.clone(), self.config.topics.alerts.clone(), alert.dedup_key.clone());
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(500);
            loop {
                let record = FutureRecord::to(&topic).key(key.as_bytes()).payload(&payload[..]);
                let Err((e, _)) = producer.send(record, Duration::from_secs(30)).await else { return };
                tracing::warn!(error = %e, key, "cannot publish an alert yet; trying again");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        });
    }
}
