//! The learner as a [`ModelService`] of `vigil-kafka`'s owned-models loop: it reads every partition
//! of its models' input and label topics (from the offsets in their latest checkpoints), the
//! alerts topic (from now on, for concept drift) and the experiments topic (from now on, for A/B
//! winners to promote), and hands each record to the [`Model`] it belongs
//! to. Resuming — the newest learner checkpoint of each model, or a fresh start — happens once, when
//! the loop has replayed the models topic.

use std::collections::HashMap;

use crate::config::Config;
use vigil_events::{Alert, AlertKind, AlertState, Codec, Experiment, ModelCheckpoint};
use vigil_kafka::owned::{ModelService, Outbox, Progress, Record, Source, Start};
use vigil_kafka::schema_registry::Resolver;
use vigil_kafka::{HandlerError, ModelRegistry};
use vigil_models::Runtime;

use crate::model::{Model, Shared};
use crate::telemetry::Metrics;
use crate::trainer::{Encoder, State, Trainer};

/// The learner: every model it trains, and what they share.
pub struct Learner {
    shared: Shared,
    resolver: Resolver,
    models: Vec<Model>,
    /// Where each model's topics start (from its checkpoint).
    starts: HashMap<String, HashMap<i32, i64>>,
    /// When the consumer lag was last measured.
    lag_at: std::time::Instant,
}

/// How often the consumer lag is measured.
const LAG_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Learner {
    /// Builds the learner of `names` from the replayed registry: each model resumes from its newest
    /// checkpoint that carries a learner state, or starts fresh from its champion's spec.
    pub fn build(
        config: Config,
        codec: Codec,
        resolver: Resolver,
        names: &[String],
        metrics: std::sync::Arc<Metrics>,
        registry: &ModelRegistry,
    ) -> Result<Learner, HandlerError> {
        let runtime = Runtime::global(None).map_err(|e| HandlerError(vigil_runtime::error_chain(&e)))?;
        let key = signing_key(&config.learner.sign_key)?;
        let dirs = config.learner.model_dirs.iter().map(std::path::PathBuf::from).collect();
        let artifacts = std::sync::Arc::new(vigil_models::artifacts::Artifacts::new(dirs));
        let shared = Shared { config, codec, runtime, key, metrics, artifacts };
        let mut learner = Learner {
            shared,
            resolver,
            models: Vec::new(),
            starts: HashMap::new(),
            lag_at: std::time::Instant::now() - LAG_EVERY,
        };
        for name in names {
            let model = learner.model(name, registry)?;
            learner.models.push(model);
        }
        tracing::info!(models = ?names, registry_versions = registry.len(), "learner started");
        Ok(learner)
    }

    fn model(&mut self, name: &str, registry: &ModelRegistry) -> Result<Model, HandlerError> {
        let input = self
            .shared
            .config
            .inputs
            .iter()
            .find(|i| i.model == name && !i.labels.is_empty())
            .ok_or_else(|| HandlerError(format!("no input with labels for {name}")))?
            .clone();
        let schema = self.shared.codec.schema(&input.schema).map_err(|e| HandlerError(format!("{name}: {e}")))?;
        let latest =
            registry.versions(name).into_iter().filter(|cp| cp.learner_state.is_some()).max_by_key(|cp| cp.version);
        let lc = &self.shared.config.learner;
        let trusted = self.trusted_keys()?;
        let resumed = latest.and_then(|cp| match resume_state(cp, trusted.as_deref()) {
            Ok(state) => Some((cp, state)),
            Err(e) => {
                tracing::warn!(model = name, version = cp.version, error = %e, "cannot resume from this state: starting fresh");
                None
            }
        });
        let trainer = match resumed {
            Some((cp, state)) => {
                for o in &cp.offsets {
                    self.starts.entry(o.topic.clone()).or_default().insert(o.partition, o.offset);
                }
                tracing::info!(
                    model = name,
                    version = cp.version,
                    trained = state.counts.trained,
                    "resuming from checkpoint"
                );
                let encoder = self.encoder(name, &Trainer::spec_of(&state).map_err(HandlerError)?)?;
                Trainer::resume(name, state, schema, lc, encoder).map_err(HandlerError)?
            }
            None => {
                tracing::info!(model = name, "starting fresh");
                let spec = vigil_kafka::inputs::starting_spec(name, registry, &input).map_err(HandlerError)?;
                let encoder = self.encoder(name, &spec)?;
                Trainer::new(name, spec, schema, lc, encoder).map_err(HandlerError)?
            }
        };
        let applied = self.starts.get(&input.labels).cloned().unwrap_or_default();
        Model::new(name, &input, trainer, applied, registry, &self.shared)
    }

    /// The encoder `spec` names, if any: a model whose encoder cannot be loaded cannot learn.
    fn encoder(&self, name: &str, spec: &vigil_features::FeatureSpec) -> Result<Option<Encoder>, HandlerError> {
        Encoder::for_spec(spec, &self.shared.artifacts, &self.shared.runtime)
            .map_err(|e| HandlerError(format!("{name}: {e}")))
    }

    /// The keys whose states may be resumed: the learner's own and `learner.trusted-keys`; `None`
    /// (any state) when the learner signs nothing.
    fn trusted_keys(&self) -> Result<Option<Vec<ed25519_dalek::VerifyingKey>>, HandlerError> {
        let Some(own) = &self.shared.key else { return Ok(None) };
        let mut keys = vec![own.verifying_key()];
        for k in &self.shared.config.learner.trusted_keys {
            keys.push(vigil_models::checkpoint::verifying_key_from_hex(k).map_err(HandlerError)?);
        }
        Ok(Some(keys))
    }

    fn alert(&mut self, r: &Record<'_>) {
        let Ok(a) = self.shared.codec.decode_event::<Alert>(r.payload.unwrap_or(&[])) else { return };
        if a.kind != AlertKind::ConceptDrift || a.state != AlertState::Firing {
            return;
        }
        if let Some(m) = self.models.iter_mut().find(|m| a.model.as_deref() == Some(m.name.as_str())) {
            m.concept_drift(&a.message, &self.shared);
        }
    }
}

/// The state a checkpoint carries; with `trusted` keys, only from a checkpoint one of them signed
/// (an unsigned or foreign state is never resumed and then signed as the learner's own).
fn resume_state(cp: &ModelCheckpoint, trusted: Option<&[ed25519_dalek::VerifyingKey]>) -> Result<State, HandlerError> {
    if let Some(keys) = trusted {
        vigil_models::checkpoint::verify(cp, keys)
            .map_err(|e| HandlerError(format!("{} v{}: {e}", cp.model, cp.version)))?;
    }
    serde_json::from_slice(cp.learner_state.as_deref().unwrap_or_default())
        .map_err(|e| HandlerError(format!("{} v{}: learner state: {e}", cp.model, cp.version)))
}

fn signing_key(path: &str) -> Result<Option<ed25519_dalek::SigningKey>, HandlerError> {
    if path.is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| HandlerError(format!("learner.sign-key {path}: {e}")))?;
    vigil_models::checkpoint::signing_key_from_hex(&text).map(Some).map_err(HandlerError)
}

impl ModelService for Learner {
    fn sources(&self) -> Vec<Source> {
        let mut sources = Vec::new();
        for m in &self.models {
            for topic in [&m.input, &m.labels] {
                let start = Start::Offsets(self.starts.get(topic).cloned().unwrap_or_default());
                sources.push(Source { topic: topic.clone(), start });
            }
        }
        sources.push(Source { topic: self.shared.config.topics.alerts.clone(), start: Start::End });
        // A/B verdicts from now on (a winner is promoted once, when it is decided).
        sources.push(Source { topic: self.shared.config.topics.experiments.clone(), start: Start::End });
        sources
    }

    fn on_models(&mut self, registry: &ModelRegistry, out: &mut Outbox) -> Result<(), HandlerError> {
        for m in &mut self.models {
            m.follow(registry, &self.shared);
            m.plan_prunes(registry, &self.shared);
            m.send_prunes(&self.shared, out);
        }
        Ok(())
    }

    fn on_record(&mut self, r: &Record<'_>, out: &mut Outbox) -> Result<(), HandlerError> {
        self.resolver.prepare(&self.shared.codec, r.payload.unwrap_or(&[]));
        if r.topic == self.shared.config.topics.alerts {
            self.alert(r);
        } else if r.topic == self.shared.config.topics.experiments {
            let Ok(e) = self.shared.codec.decode_event::<Experiment>(r.payload.unwrap_or(&[])) else { return Ok(()) };
            if let Some(m) = self.models.iter_mut().find(|m| m.name == e.model) {
                m.ab_verdict(e);
            }
        } else if let Some(m) = self.models.iter_mut().find(|m| m.input == r.topic) {
            m.event(r, &self.shared);
        } else if let Some(m) = self.models.iter_mut().find(|m| m.labels == r.topic) {
            m.label(r, &self.shared, out);
        }
        Ok(())
    }

    fn on_round(&mut self, progress: &mut Progress<'_>, out: &mut Outbox) -> Result<(), HandlerError> {
        self.models.iter_mut().try_for_each(|m| m.settle(progress, &self.shared, out))?;
        if self.lag_at.elapsed() >= LAG_EVERY {
            self.shared.metrics.set_lag(progress.lag());
            self.lag_at = std::time::Instant::now();
        }
        Ok(())
    }

    fn on_delivered(&mut self) {
        self.models.iter_mut().for_each(|m| m.delivered(&self.shared));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn with_state(state: &[u8]) -> ModelCheckpoint {
        use vigil_models::checkpoint::{NewCheckpoint, build};
        let new = NewCheckpoint {
            model: "fraud",
            version: 3,
            parent: None,
            onnx: vec![1, 2, 3],
            spec: "",
            status: vigil_events::CheckpointStatus::Candidate,
            reason: String::new(),
            now_ms: 1,
        };
        ModelCheckpoint { learner_state: Some(state.to_vec()), ..build(new, None) }
    }

    /// A state is resumed (and later signed as the learner's own) only from a checkpoint one of its
    /// trusted keys signed; with no key of its own the learner takes any state.
    #[test]
    fn only_a_state_signed_by_a_trusted_key_is_resumed() {
        let (own, stranger) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        let trusted = [own.verifying_key()];
        let unsigned = with_state(b"not json");
        let err = |r: Result<State, HandlerError>| r.err().map(|e| e.0).unwrap_or_default();
        assert!(err(resume_state(&unsigned, Some(&trusted))).contains("not signed"));
        let mut foreign = unsigned.clone();
        vigil_models::checkpoint::sign(&mut foreign, &stranger);
        assert!(err(resume_state(&foreign, Some(&trusted))).contains("does not verify"));
        let mut mine = unsigned.clone();
        vigil_models::checkpoint::sign(&mut mine, &own);
        assert!(err(resume_state(&mine, Some(&trusted))).contains("learner state"), "past the signature");
        let mut tampered = mine.clone();
        tampered.learner_state = Some(b"{}".to_vec());
        assert!(err(resume_state(&tampered, Some(&trusted))).contains("does not verify"));
        assert!(err(resume_state(&unsigned, None)).contains("learner state"), "no key: any state is read");
    }
}
