//! The model book: which version of each served model is champion and which is challenger, kept in
//! step with the models topic. A new champion or challenger is validated and loaded into every
//! inference worker before it replaces the old one in a single pointer swap, so scoring never pauses
//! and never sees half a model. A checkpoint that fails validation is refused with an alert, and the
//! serving version stays.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::Config;
use apache_avro::Schema;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vigil_events::{Alert, AlertKind, AlertState, Codec, ModelCheckpoint, Severity, Variant};
use vigil_features::Featurizer;
use vigil_kafka::ModelRegistry;
use vigil_kafka::models;
use vigil_kafka::{client, now_ms};
use vigil_models::Runtime;
use vigil_models::checkpoint::{self, Policy};

use crate::pool::{Key, Pool};
use crate::telemetry::Metrics;

/// A model version ready to score.
#[derive(Debug)]
pub struct Served {
    /// Model and version.
    pub key: Key,
    /// Featuriser of its spec, bound to the input schema.
    pub featurizer: Featurizer,
    /// Decision threshold.
    pub threshold: f64,
}

/// What scores a model's events now.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Scores every event.
    pub champion: Arc<Served>,
    /// Scores a share of events in shadow.
    pub challenger: Option<Arc<Served>>,
}

/// The served models.
#[derive(Debug, Default)]
pub struct Book {
    slots: RwLock<HashMap<String, Arc<Slot>>>,
}

impl Book {
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
}

impl Follower {
    /// Follows the models topic until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), String> {
        let topic = self.config.topics.models.clone();
        let consumer = models::follower(&self.config.kafka, &topic, "scorer-models")
            .map_err(|e| vigil_runtime::error_chain(&e))?;
        let alerts: FutureProducer<client::LogContext> = client::producer_config(&self.config.kafka, "scorer-alerts")
            .create_with_context(client::LogContext)
            .map_err(|e| e.to_string())?;
        let mut registry = ModelRegistry::new();
        let mut refused: HashSet<(String, i64, String)> = HashSet::new();
        let mut end = models::end_offset(&consumer, &topic).map_err(|e| vigil_runtime::error_chain(&e))?;
        let mut caught_up = end == 0;
        if caught_up {
            tracing::info!(topic, "the models topic is empty; waiting for a checkpoint");
        }
        let mut served: Vec<String> = self.schemas.keys().cloned().collect();
        served.sort();
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = models::next_with_offset(&consumer, &self.codec) => r,
            };
            let (offset, record) = match next {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %vigil_runtime::error_chain(&e), "reading the models topic");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            registry.apply_record(record);
            if !caught_up && offset + 1 >= end {
                // Re-check: more may have arrived while reading.
                end = models::end_offset(&consumer, &topic).unwrap_or(end);
                caught_up = offset + 1 >= end;
            }
            if caught_up {
                for model in &served {
                    self.reconcile(model, &registry, &mut refused, &alerts).await;
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

    /// Brings the model's slot in line with the registry.
    async fn reconcile(
        &self,
        model: &str,
        registry: &ModelRegistry,
        refused: &mut HashSet<(String, i64, String)>,
        alerts: &FutureProducer<client::LogContext>,
    ) {
        let current = self.book.get(model);
        let want_champion = registry.champion(model);
        let want_challenger = registry.challenger(model);
        let mut champion = current.as_ref().map(|s| s.champion.clone());
        let mut challenger = current.as_ref().and_then(|s| s.challenger.clone());
        let mut changed = false;

        if let Some(cp) = want_champion
            && champion.as_ref().map(|c| c.key.1) != Some(cp.version)
        {
            // A version already loaded as challenger is promoted without reloading.
            if let Some(c) = challenger.as_ref().filter(|c| c.key.1 == cp.version) {
                champion = Some(c.clone());
                changed = true;
            } else if let Some(served) = self.admit(cp, refused, alerts).await {
                champion = Some(served);
                changed = true;
            }
        }
        match want_challenger {
            Some(cp) if challenger.as_ref().map(|c| c.key.1) != Some(cp.version) => {
                if let Some(served) = self.admit(cp, refused, alerts).await {
                    challenger = Some(served);
                    changed = true;
                }
            }
            None if challenger.is_some() => {
                challenger = None;
                changed = true;
            }
            _ => {}
        }
        if challenger.as_ref().zip(champion.as_ref()).is_some_and(|(a, b)| a.key == b.key) {
            challenger = None;
        }
        if !changed {
            return;
        }
        let Some(champion) = champion else { return };
        let old: Vec<Key> = current
            .iter()
            .flat_map(|s| std::iter::once(s.champion.key.clone()).chain(s.challenger.iter().map(|c| c.key.clone())))
            .collect();
        self.metrics.serving(model, Variant::Champion, champion.key.1, "");
        match &challenger {
            Some(c) => self.metrics.serving(model, Variant::Challenger, c.key.1, ""),
            None => self.metrics.not_serving(model, Variant::Challenger),
        }
        let keep: Vec<Key> =
            std::iter::once(champion.key.clone()).chain(challenger.iter().map(|c| c.key.clone())).collect();
        self.book.set(model, Slot { champion, challenger });
        for key in old.into_iter().filter(|k| !keep.contains(k)) {
            self.pool.unload(&key);
        }
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
        let validated = tokio::task::spawn_blocking(move || checkpoint::validate(&owned, schema, &policy, &runtime))
            .await
            .map_err(|e| checkpoint::Rejection {
                model: cp.model.clone(),
                version: cp.version,
                check: "load",
                reason: e.to_string(),
            })
            .and_then(|r| r);
        let key: Key = (cp.model.clone(), cp.version);
        let result = match validated {
            Ok(v) => match self.pool.load(&key, v.onnx.clone(), &v.spec.graph).await {
                Ok(provider) => {
                    tracing::info!(model = %cp.model, version = cp.version, provider, "checkpoint validated and loaded");
                    let threshold = cp.metrics.as_ref().map(|m| m.threshold).unwrap_or(self.config.scorer.threshold);
                    Ok(Arc::new(Served { key, featurizer: v.featurizer, threshold }))
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
                self.alert(alerts, &r).await;
                None
            }
        }
    }

    async fn alert(&self, producer: &FutureProducer<client::LogContext>, r: &checkpoint::Rejection) {
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
        let Ok(payload) = self.codec.encode_event(&alert) else { return };
        let record = FutureRecord::to(&self.config.topics.alerts).key(alert.dedup_key.as_bytes()).payload(&payload[..]);
        if let Err((e, _)) = producer.send(record, Duration::from_secs(30)).await {
            tracing::warn!(error = %e, "cannot publish the model-rejected alert");
        }
    }
}
