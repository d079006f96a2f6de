//! One model being learnt: its input events join their labels ([`Join`]), joined examples train the
//! candidates ([`Trainer`]) and are scored by the champion on the side, and checkpoints go to the
//! models topic — promoted, with an alert, when they beat the champion.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::Config;
use vigil_events::{
    Alert, AlertKind, AlertState, CheckpointStatus, Codec, Experiment, Label, ModelCheckpoint, RecordReader, Severity,
    TopicOffset, Wanted,
};
use vigil_features::{Field, Row as FeatureRow};
use vigil_kafka::dlq::{self, Reason};
use vigil_kafka::owned::{Outbox, Progress, Record};
use vigil_kafka::{HandlerError, Input, ModelRegistry, model_registry, now_ms};
use vigil_models::Runtime;

use crate::champion::Champion;
use crate::guard::{Guard, Judgement, Watch};
use crate::join::{Join, Joined, Origin};
use crate::telemetry::Metrics;
use crate::trainer::{Row, Trainer};

/// An event in the join buffer: its raw row, its row for the champion, and for a guarded
/// champion's predecessor.
#[derive(Debug, Clone)]
pub struct Event {
    raw: Row,
    champion: Option<FeatureRow>,
    predecessor: Option<FeatureRow>,
}

/// What every model shares: the codec, ONNX Runtime, the signing key, topics, settings, metrics.
pub struct Shared {
    /// Codec.
    pub codec: Codec,
    /// ONNX Runtime (the champion's sessions).
    pub runtime: Runtime,
    /// Signs checkpoints, when configured.
    pub key: Option<ed25519_dalek::SigningKey>,
    /// Configuration.
    pub config: Config,
    /// Metrics.
    pub metrics: std::sync::Arc<Metrics>,
    /// Artifacts named by digest (encoders, tokenizers), from `learner.model-dirs`.
    pub artifacts: std::sync::Arc<vigil_models::artifacts::Artifacts>,
}

/// One model being learnt.
pub struct Model {
    /// Its name.
    pub name: String,
    /// Input topic.
    pub input: String,
    /// Label topic.
    pub labels: String,
    reader: RecordReader,
    trainer: Trainer,
    join: Join<Event>,
    champion: Option<Champion>,
    /// The version the champion replaced, scoring beside it for a while (the rollback guard).
    guard: Option<Guard>,
    /// An A/B test's winner to promote (the experiment asked for it).
    winner: Option<Experiment>,
    last_checkpoint: Instant,
    last_label: Instant,
    next_version: i64,
    /// Per label partition: the offset after the last label settled (where a restart resumes).
    applied: HashMap<i32, i64>,
    /// Examples learnt (the metric).
    trained: prometheus_client::metrics::counter::Counter,
    /// Versions given a tombstone.
    pruned: std::collections::HashSet<i64>,
    /// Tombstones to send.
    prunes: Vec<i64>,
    /// Checkpoints written this round (version, promoted, why): logged and counted when the round
    /// is delivered, which is when scorers can read them (its transaction committed).
    written: Vec<(i64, bool, String)>,
}

/// The label stream is quiet for this long: checkpoint what was learnt.
const IDLE_CHECKPOINT: Duration = Duration::from_secs(2);

impl Model {
    /// A model learning from `input` (with `trainer`), whose labels resume after `applied`.
    pub fn new(
        name: &str,
        input: &vigil_runtime::config::InputConfig,
        trainer: Trainer,
        applied: HashMap<i32, i64>,
        registry: &ModelRegistry,
        shared: &Shared,
    ) -> Result<Model, HandlerError> {
        let id = input.id_field.as_str();
        let names: Vec<&str> = std::iter::once(id).chain(trainer.fields().iter().map(String::as_str)).collect();
        let reader = RecordReader::new(&shared.codec, &input.schema, input.format, Wanted::new(&names))
            .map_err(|e| HandlerError(format!("{name}: {e}")))?;
        let mut model = Model {
            name: name.to_string(),
            input: input.topic.clone(),
            labels: input.labels.clone(),
            reader,
            trainer,
            join: Join::new(
                shared.config.learner.join_window,
                i64::try_from(shared.config.learner.join_max_age.as_millis()).unwrap_or(i64::MAX),
            ),
            champion: None,
            guard: None,
            winner: None,
            last_checkpoint: Instant::now(),
            last_label: Instant::now(),
            next_version: registry.next_version(name),
            applied,
            trained: shared.metrics.trained_counter(name),
            pruned: Default::default(),
            prunes: Vec::new(),
            written: Vec::new(),
        };
        model.follow(registry, shared);
        model.plan_prunes(registry, shared);
        Ok(model)
    }

    /// Follows the registry: the next free version, and the champion to evaluate.
    pub fn follow(&mut self, registry: &ModelRegistry, shared: &Shared) {
        self.next_version = self.next_version.max(registry.next_version(&self.name));
        let want = registry.champion(&self.name);
        if want.map(|c| c.version) == self.champion.as_ref().map(|c| c.version) {
            return;
        }
        self.trainer.set_champion(want.map(|c| c.version));
        let replaced = self.champion.take();
        self.champion = want.and_then(|cp| self.load_champion(cp, shared));
        self.guard_after(replaced, shared);
    }

    /// After the champion changed: a forward move is guarded by the version it replaced (when the
    /// guard is on); any other change ends a guard.
    fn guard_after(&mut self, replaced: Option<Champion>, shared: &Shared) {
        self.guard = None;
        let (Some(old), Some(new)) = (replaced, self.champion.as_ref()) else { return };
        if shared.config.learner.rollback_window == 0 || new.version <= old.version {
            return;
        }
        tracing::info!(model = %self.name, champion = new.version, predecessor = old.version, "guarding the new champion");
        let watch = Watch::new(old.version, new.version);
        self.guard = Some(Guard { predecessor: old, watch });
    }

    fn load_champion(&self, cp: &ModelCheckpoint, shared: &Shared) -> Option<Champion> {
        let with = crate::champion::Load {
            runtime: &shared.runtime,
            codec: &shared.codec,
            schema: self.reader.schema_name(),
            encoding: self.reader.encoding(),
            artifacts: &shared.artifacts,
            trainer_spec: self.trainer.spec(),
        };
        match Champion::load(&with, cp) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(model = %self.name, version = cp.version, error = e, "cannot evaluate the champion");
                None
            }
        }
    }

    /// An input event: featurised for the candidates and the champion, it waits for its label.
    pub fn event(&mut self, r: &Record<'_>, shared: &Shared) {
        let payload = r.payload.unwrap_or(&[]);
        let read = self.reader.read(&shared.codec, payload, |fields| {
            let id = match fields.first() {
                Some(Field::Str(id)) => id.to_string(),
                Some(Field::Int(id)) => id.to_string(),
                _ => return None,
            };
            self.trainer.featurise(&fields[1..]).ok().map(|raw| (id, raw))
        });
        let Ok(Some((id, raw))) = read else {
            self.trainer.state.counts.bad_events += 1;
            shared.metrics.bad_event(&self.name);
            return;
        };
        let champion = self.champion.as_mut().and_then(|c| c.row(&shared.codec, payload, &raw));
        let predecessor = self.guard.as_mut().and_then(|g| g.predecessor.row(&shared.codec, payload, &raw));
        let at = r.timestamp.unwrap_or_else(now_ms);
        let event = Event { raw, champion, predecessor };
        self.join.event(id, event, Origin { partition: r.partition, offset: r.offset }, at);
    }

    /// A label: it waits in label order for its event; a malformed one is a dead letter.
    pub fn label(&mut self, r: &Record<'_>, shared: &Shared, out: &mut Outbox) {
        self.last_label = Instant::now();
        match shared.codec.decode_event::<Label>(r.payload.unwrap_or(&[])) {
            Ok(l) if l.label.is_finite() && (0.0..=1.0).contains(&l.label) => {
                let origin = Origin { partition: r.partition, offset: r.offset };
                if let Err(id) = self.join.label(l.event_id, l.label, origin) {
                    let error = format!("{id}: as many labels as the join window holds wait for their events");
                    self.malformed(&r.to_input(), "label-overflow", error, shared, out);
                }
            }
            Ok(l) => {
                self.malformed(&r.to_input(), "label-value", format!("label {} is not in [0, 1]", l.label), shared, out)
            }
            Err(e) => self.malformed(&r.to_input(), e.kind(), e.to_string(), shared, out),
        }
        // A label that never waits is settled as soon as nothing waits before it.
        if self.join.waiting() == 0 {
            self.applied.insert(r.partition, r.offset + 1);
        }
    }

    fn malformed(&mut self, input: &Input, kind: &'static str, error: String, shared: &Shared, out: &mut Outbox) {
        self.trainer.state.counts.malformed += 1;
        self.trainer.state.counts.labels += 1;
        shared.metrics.label_problem(&self.name, kind);
        let reason = Reason { stage: "label", kind, error };
        out.send(dlq::dead_letter(&shared.config.topics.dlq, "learner", input, &reason, now_ms()));
    }

    /// Applies the labels whose events have arrived (or never will), then checkpoints when due.
    pub fn settle(
        &mut self,
        progress: &mut Progress<'_>,
        shared: &Shared,
        out: &mut Outbox,
    ) -> Result<(), HandlerError> {
        self.send_prunes(shared, out);
        if self.join.waiting() > 0 {
            let caught_up = progress.caught_up(&self.input);
            for (joined, origin) in self.join.drain(caught_up) {
                self.apply(joined, origin, shared, out);
                self.applied.insert(origin.partition, origin.offset + 1);
                // Every N applied labels exactly, so that checkpoints fall at the same examples
                // whatever the batching of the reads.
                let lc = &shared.config.learner;
                let t = &self.trainer.state;
                if t.since_checkpoint >= lc.checkpoint_every && t.counts.trained >= lc.min_examples {
                    self.checkpoint(progress, shared, out)?;
                }
            }
        }
        if self.checkpoint_due(progress.polled, shared) {
            self.checkpoint(progress, shared, out)?;
        }
        self.judge_guard(progress.registry, shared, out)?;
        self.promote_winner(progress.registry, shared, out)?;
        let t = &self.trainer.state;
        shared.metrics.observe(
            &self.name,
            self.join.waiting(),
            self.join.buffered(),
            self.join.evictions,
            t.learner.pool.candidates.len(),
            &t.served,
        );
        Ok(())
    }

    fn apply(&mut self, joined: Joined<Event>, origin: Origin, shared: &Shared, out: &mut Outbox) {
        self.trainer.state.counts.labels += 1;
        let (id, kind, error) = match joined {
            Joined::Ready(e, y) => {
                let champion = match (&mut self.champion, &e.champion) {
                    (Some(c), Some(row)) => c.score(row),
                    _ => None,
                };
                if let (Some(g), Some(row), Some(now)) = (&mut self.guard, &e.predecessor, champion)
                    && let Some(before) = g.predecessor.score(row)
                {
                    g.watch.push(before, now, y >= 0.5);
                }
                self.trainer.learn(&e.raw, y, champion);
                self.trained.inc();
                return;
            }
            Joined::Late(id) => {
                self.trainer.state.counts.late += 1;
                (id, "late-label", "the event left the join window before its label came")
            }
            Joined::Unknown(id) => {
                self.trainer.state.counts.unknown += 1;
                (id, "unknown-event", "no event with this id was seen")
            }
            Joined::Duplicate(id) => {
                self.trainer.state.counts.duplicates += 1;
                (id, "duplicate-label", "its event was labelled already; the first label was learnt")
            }
        };
        shared.metrics.label_problem(&self.name, kind);
        let input = Input {
            topic: self.labels.clone(),
            partition: origin.partition,
            offset: origin.offset,
            key: Some(id.as_bytes().to_vec()),
            payload: Some(id.into_bytes()),
            headers: Vec::new(),
            timestamp: None,
        };
        let reason = Reason { stage: "join", kind, error: error.to_string() };
        out.send(dlq::dead_letter(&shared.config.topics.dlq, "learner", &input, &reason, now_ms()));
    }

    /// Every `checkpoint-interval-ms`, and when the label stream went quiet, with something new.
    fn checkpoint_due(&self, polled: usize, shared: &Shared) -> bool {
        let lc = &shared.config.learner;
        let t = &self.trainer.state;
        let timer = self.last_checkpoint.elapsed() >= lc.checkpoint_interval;
        let idle = polled == 0 && self.join.waiting() == 0 && self.last_label.elapsed() >= IDLE_CHECKPOINT;
        t.since_checkpoint > 0 && (timer || idle) && t.counts.trained >= lc.min_examples
    }

    /// Resume points: the input from its oldest event still waiting for a label, the labels from
    /// where they were settled to.
    fn offsets(&self, progress: &Progress<'_>) -> Vec<TopicOffset> {
        let waiting = self.join.oldest_waiting();
        let mut offsets = Vec::new();
        for p in progress.partitions(&self.input) {
            let o = waiting.get(p).copied().or_else(|| progress.next(&self.input, *p)).unwrap_or(0);
            offsets.push(TopicOffset { topic: self.input.clone(), partition: *p, offset: o });
        }
        for (p, o) in &self.applied {
            offsets.push(TopicOffset { topic: self.labels.clone(), partition: *p, offset: *o });
        }
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        offsets
    }

    /// Publishes a checkpoint of the best candidates; promotes it when it beats the champion.
    fn checkpoint(&mut self, progress: &Progress<'_>, shared: &Shared, out: &mut Outbox) -> Result<(), HandlerError> {
        let version = self.next_version;
        let parent = self.champion.as_ref().map(|c| c.version);
        self.trainer.state.since_checkpoint = 0;
        let mut cp =
            self.trainer.checkpoint(version, parent, now_ms(), self.offsets(progress)).map_err(HandlerError)?;
        if let Some(k) = &shared.key {
            vigil_models::checkpoint::sign(&mut cp, k);
        }
        let models = &shared.config.topics.models;
        out.event(&shared.codec, models, &cp.key(), &cp)?;
        self.next_version = version + 1;
        self.last_checkpoint = Instant::now();
        let (promote, why) = self.trainer.should_promote(&shared.config.learner, now_ms());
        if promote {
            self.promote(&cp, &why, shared, out)?;
        }
        self.written.push((version, promote, why));
        Ok(())
    }

    /// The round that wrote this round's checkpoints is delivered: they are published.
    pub fn delivered(&mut self, shared: &Shared) {
        for (version, promoted, why) in self.written.drain(..) {
            shared.metrics.checkpoint(&self.name, version, promoted, &why);
        }
    }

    fn promote(
        &mut self,
        cp: &ModelCheckpoint,
        why: &str,
        shared: &Shared,
        out: &mut Outbox,
    ) -> Result<(), HandlerError> {
        let (version, topics) = (cp.version, &shared.config.topics);
        let mut promoted =
            model_registry::transition(cp, CheckpointStatus::Promoted, &format!("learner: {why}"), now_ms());
        if let Some(k) = &shared.key {
            vigil_models::checkpoint::sign(&mut promoted, k);
        }
        out.event(&shared.codec, &topics.models, &promoted.key(), &promoted)?;
        let value = crate::trainer::score(&self.trainer.state.served, shared.config.learner.metric);
        let message = format!("{} v{version} promoted: {why}", self.name);
        let alert = self.registry_alert(AlertKind::ModelPromoted, Severity::Info, version, message, shared);
        let alert = Alert { value: Some(value), ..alert };
        out.event(&shared.codec, &topics.alerts, &alert.dedup_key, &alert)?;
        self.trainer.set_champion(Some(version));
        self.trainer.state.last_promoted_ms = Some(now_ms());
        let replaced = self.champion.take();
        self.champion = self.load_champion(&promoted, shared);
        self.guard_after(replaced, shared);
        self.trainer.state.learner.anchor_to_best();
        Ok(())
    }

    /// The alert of a registry change the learner made.
    fn registry_alert(
        &self,
        kind: AlertKind,
        severity: Severity,
        version: i64,
        message: String,
        shared: &Shared,
    ) -> Alert {
        let what = match kind {
            AlertKind::ModelPromoted => "model-promoted",
            AlertKind::ModelRolledBack => "model-rolled-back",
            _ => "model-changed",
        };
        Alert {
            alert_id: format!("{what}-{}-{version}-{}", self.name, now_ms()),
            time: now_ms(),
            kind,
            state: AlertState::Firing,
            severity,
            model: Some(self.name.clone()),
            model_version: Some(version),
            feature: None,
            detector: Some("learner".into()),
            statistic: Some(shared.config.learner.metric.name().to_string()),
            value: None,
            threshold: None,
            p_value: None,
            window_start: None,
            window_end: None,
            message,
            dedup_key: format!("{what}/{}/{version}", self.name),
        }
    }

    /// Asks the rollback guard; rolls the champion back when its predecessor beat it.
    fn judge_guard(&mut self, registry: &ModelRegistry, shared: &Shared, out: &mut Outbox) -> Result<(), HandlerError> {
        let Some(g) = &mut self.guard else { return Ok(()) };
        let why = match g.watch.judge(&shared.config.learner) {
            Judgement::Wait => return Ok(()),
            Judgement::Holds(why) => {
                tracing::info!(model = %self.name, why, "the new champion holds");
                self.guard = None;
                return Ok(());
            }
            Judgement::RollBack(why) => why,
        };
        let (old, new) = (g.watch.old, g.watch.new);
        let current = registry.champion(&self.name).filter(|c| c.version == new);
        let Some(cp) = current else {
            // The champion moved meanwhile: the registry's change rules.
            self.guard = None;
            return Ok(());
        };
        let mut rolled =
            model_registry::transition(cp, CheckpointStatus::RolledBack, &format!("learner: {why}"), now_ms());
        if let Some(k) = &shared.key {
            vigil_models::checkpoint::sign(&mut rolled, k);
        }
        let topics = &shared.config.topics;
        out.event(&shared.codec, &topics.models, &rolled.key(), &rolled)?;
        let message = format!("{} v{new} rolled back: {why}", self.name);
        let alert = self.registry_alert(AlertKind::ModelRolledBack, Severity::Warning, new, message, shared);
        out.event(&shared.codec, &topics.alerts, &alert.dedup_key, &alert)?;
        tracing::warn!(model = %self.name, version = new, why, "rolled back");
        shared.metrics.rolled_back(&self.name);
        let g = self.guard.take().expect("guarded");
        self.champion = Some(g.predecessor);
        self.trainer.set_champion(Some(old));
        self.trainer.state.last_promoted_ms = Some(now_ms());
        Ok(())
    }

    /// An A/B test that ended with B winning and asked for it: B is promoted, when the champion is
    /// still A and B is neither promoted since nor rolled back.
    pub fn ab_verdict(&mut self, e: Experiment) {
        let won = e.verdict == Some(vigil_events::Verdict::B) && e.auto_promote;
        if won && e.state == vigil_events::ExperimentState::Done && e.model == self.name {
            self.winner = Some(e);
        }
    }

    fn promote_winner(
        &mut self,
        registry: &ModelRegistry,
        shared: &Shared,
        out: &mut Outbox,
    ) -> Result<(), HandlerError> {
        let Some(e) = self.winner.take() else { return Ok(()) };
        let champion = registry.champion(&self.name).map(|c| c.version);
        let b = registry.get(&self.name, e.version_b);
        match b {
            Some(cp)
                if champion == Some(e.version_a)
                    && cp.status != CheckpointStatus::RolledBack
                    && cp.status != CheckpointStatus::Rejected =>
            {
                let cp = cp.clone();
                tracing::info!(model = %self.name, version = cp.version, experiment = %e.experiment_id, "promoting the A/B winner");
                self.promote(&cp, &format!("won A/B test {}: {}", e.experiment_id, e.message), shared, out)
            }
            _ => {
                tracing::info!(model = %self.name, experiment = %e.experiment_id, ?champion, "the A/B winner is not promoted: the champion changed since, or B cannot be promoted");
                Ok(())
            }
        }
    }

    /// A concept-drift alert for this model: fresh challengers learn from post-drift events (the
    /// pool stays within `learner.max-candidates`).
    pub fn concept_drift(&mut self, why: &str, shared: &Shared) {
        let added = self.trainer.state.learner.add_fresh_challengers(shared.config.learner.max_candidates);
        shared.metrics.challengers_added(&self.name, added, why);
    }

    /// Plans tombstones for the versions beyond `learner.keep-versions` (each version once); they
    /// go out with the next round ([`Model::send_prunes`]).
    pub fn plan_prunes(&mut self, registry: &ModelRegistry, shared: &Shared) {
        let keep = shared.config.learner.keep_versions;
        if keep == 0 {
            return;
        }
        for v in registry.prunable(&self.name, keep) {
            if self.pruned.insert(v) {
                self.prunes.push(v);
            }
        }
    }

    /// Sends the planned tombstones.
    pub fn send_prunes(&mut self, shared: &Shared, out: &mut Outbox) {
        for v in self.prunes.drain(..) {
            out.tombstone(&shared.config.topics.models, &format!("{}/{v}", self.name));
        }
    }
}
