//! The model registry: the state of the compacted `vigil.models` topic, folded record by record
//! in topic order (the latest record per `<model>/<version>` key wins; a tombstone deletes the key;
//! a record older — by its signed `updated_at` — than the one a key holds is a replay and is
//! ignored, and so is one dated over an hour ahead of this clock). A model's **champion** is the
//! PROMOTED version whose record came last on the topic (topic order, not a writer's clock); its
//! **challenger** is its newest CANDIDATE above the champion. Rolling back marks the champion ROLLED_BACK, so the previous promoted version is
//! champion again.
//!
//! A service's registry is [`ModelRegistry::slim`]: it keeps the heavy parts (graph, learner state,
//! references) of the versions that may serve or resume — the three newest promoted, the newest
//! candidate (the challenger, or the one a rollback makes challenger again), the newest with a
//! learner state — and only the metadata of the others, so that its memory does not grow with the
//! topic's history. Pure: the Kafka side reads the topic and feeds
//! records here.

use std::collections::BTreeMap;

use vigil_events::{CheckpointStatus, ModelCheckpoint};

use crate::models::ModelRecord;

/// Promoted versions a slim registry keeps whole: the champion and two to fall back to.
pub const KEEP_PROMOTED: usize = 3;

/// Heavy records a slim registry takes before it slims their model again (bounded memory,
/// linear replay).
const SLIM_AFTER: usize = 4;

/// How far ahead of this machine's clock a record's `updated_at` may be; a record dated later is
/// ignored (it would outrank every later change of its version).
pub const MAX_CLOCK_SKEW_MS: i64 = 3_600_000;

/// Every known version of every model.
#[derive(Debug, Clone, Default)]
pub struct ModelRegistry {
    versions: BTreeMap<(String, i64), ModelCheckpoint>,
    /// Topic order of each key's record.
    order: BTreeMap<(String, i64), u64>,
    applied: u64,
    slim: bool,
    /// Per model, heavy records applied since it was last slimmed.
    heavy: BTreeMap<String, usize>,
}

impl ModelRegistry {
    /// An empty registry that keeps every record whole (the CLI's).
    pub fn new() -> ModelRegistry {
        ModelRegistry::default()
    }

    /// An empty registry that keeps whole only the versions that may serve or resume.
    pub fn slim() -> ModelRegistry {
        ModelRegistry { slim: true, ..ModelRegistry::default() }
    }

    /// Applies one record of the models topic (undecodable ones are logged and skipped).
    pub fn apply_record(&mut self, record: ModelRecord) {
        match record {
            ModelRecord::Checkpoint(cp) => self.apply(*cp),
            ModelRecord::Tombstone { model, version } => self.remove(&model, version),
            ModelRecord::Undecodable { offset, error } => {
                tracing::warn!(offset, error, "skipping an undecodable record on the models topic")
            }
        }
    }

    /// Applies one checkpoint or transition, next in topic order (the newer record for a key
    /// replaces the older; an older one is a replay and is ignored).
    pub fn apply(&mut self, cp: ModelCheckpoint) {
        let key = (cp.model.clone(), cp.version);
        if cp.updated_at > crate::now_ms().saturating_add(MAX_CLOCK_SKEW_MS) {
            tracing::warn!(model = %cp.model, version = cp.version, "ignoring a record dated in the future (a pinned clock)");
            return;
        }
        if let Some(held) = self.versions.get(&key)
            && held.updated_at >= cp.updated_at
            && held != &cp
        {
            tracing::warn!(model = %cp.model, version = cp.version, "ignoring a record older than the one the registry holds (a replay)");
            return;
        }
        self.applied += 1;
        self.order.insert(key.clone(), self.applied);
        let model = cp.model.clone();
        let heavy = cp.onnx.is_some() || cp.learner_state.is_some() || !cp.reference.is_empty();
        self.versions.insert(key, cp);
        if self.slim && heavy {
            // Slimming scans the model's versions: done once a few heavy records gathered, so
            // that replaying a long history stays linear.
            let n = self.heavy.entry(model.clone()).or_default();
            *n += 1;
            if *n > SLIM_AFTER {
                self.slim_model(&model);
            }
        }
    }

    /// Applies a tombstone (a deleted key).
    pub fn remove(&mut self, model: &str, version: i64) {
        let key = (model.to_string(), version);
        self.versions.remove(&key);
        self.order.remove(&key);
    }

    /// Drops the heavy parts of the versions of `model` that will neither serve nor resume.
    fn slim_model(&mut self, model: &str) {
        self.heavy.insert(model.to_string(), 0);
        let mut serve: Vec<i64> = self.promoted(model).iter().take(KEEP_PROMOTED).map(|cp| cp.version).collect();
        // The newest candidate, even below the champion: a rollback makes it the challenger again.
        let newest = self
            .versions(model)
            .into_iter()
            .filter(|cp| cp.status == CheckpointStatus::Candidate)
            .map(|cp| cp.version)
            .max();
        serve.extend(newest);
        let state = self.versions(model).into_iter().filter(|cp| cp.learner_state.is_some()).map(|cp| cp.version).max();
        for ((_, v), cp) in self.versions.iter_mut().filter(|((m, _), _)| m == model) {
            if !serve.contains(v) {
                cp.onnx = None;
                cp.reference = Vec::new();
            }
            if state != Some(*v) {
                cp.learner_state = None;
            }
        }
    }

    /// Versions held, over all models.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Whether no version is held.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Model names.
    pub fn models(&self) -> Vec<String> {
        let mut m: Vec<String> = self.versions.keys().map(|(m, _)| m.clone()).collect();
        m.dedup();
        m
    }

    /// A model's versions, oldest first.
    pub fn versions(&self, model: &str) -> Vec<&ModelCheckpoint> {
        self.versions.iter().filter(|((m, _), _)| m == model).map(|(_, cp)| cp).collect()
    }

    /// One version.
    pub fn get(&self, model: &str, version: i64) -> Option<&ModelCheckpoint> {
        self.versions.get(&(model.to_string(), version))
    }

    /// The promoted versions, the champion first, then the ones a rollback (or a champion that
    /// cannot be served) falls back to, in order.
    pub fn promoted(&self, model: &str) -> Vec<&ModelCheckpoint> {
        let mut p: Vec<(&ModelCheckpoint, u64)> = self
            .versions
            .iter()
            .filter(|((m, _), cp)| m == model && cp.status == CheckpointStatus::Promoted)
            .map(|(k, cp)| (cp, self.order.get(k).copied().unwrap_or(0)))
            .collect();
        p.sort_by_key(|(_, order)| std::cmp::Reverse(*order));
        p.into_iter().map(|(cp, _)| cp).collect()
    }

    /// The version serving all traffic.
    pub fn champion(&self, model: &str) -> Option<&ModelCheckpoint> {
        self.promoted(model).into_iter().next()
    }

    /// The version scoring a share of traffic in shadow.
    pub fn challenger(&self, model: &str) -> Option<&ModelCheckpoint> {
        let floor = self.champion(model).map(|c| c.version).unwrap_or(i64::MIN);
        self.versions(model)
            .into_iter()
            .filter(|cp| cp.status == CheckpointStatus::Candidate && cp.version > floor)
            .max_by_key(|cp| cp.version)
    }

    /// The version a new checkpoint of `model` gets.
    pub fn next_version(&self, model: &str) -> i64 {
        self.versions(model).iter().map(|cp| cp.version).max().unwrap_or(0) + 1
    }

    /// Versions of `model` to delete (oldest first) so that at most `keep` remain; never the
    /// champion, the versions it falls back to, the challenger, the newest version or the newest
    /// learner state.
    pub fn prunable(&self, model: &str, keep: usize) -> Vec<i64> {
        let mut kept: Vec<i64> = self.promoted(model).iter().take(KEEP_PROMOTED).map(|cp| cp.version).collect();
        kept.extend(self.challenger(model).map(|cp| cp.version));
        kept.push(self.next_version(model) - 1);
        kept.extend(self.versions(model).iter().filter(|cp| cp.learner_state.is_some()).map(|cp| cp.version).max());
        let all: Vec<i64> = self.versions(model).iter().map(|cp| cp.version).collect();
        let excess = all.len().saturating_sub(keep);
        all.into_iter().filter(|v| !kept.contains(v)).take(excess).collect()
    }

    /// The promoted version that becomes champion if the current one is rolled back.
    pub fn previous_champion(&self, model: &str) -> Option<&ModelCheckpoint> {
        self.promoted(model).into_iter().nth(1)
    }
}

/// A copy of `cp` with a new status (what a registry transition publishes).
pub fn transition(cp: &ModelCheckpoint, status: CheckpointStatus, reason: &str, now_ms: i64) -> ModelCheckpoint {
    ModelCheckpoint {
        status,
        status_reason: reason.to_string(),
        updated_at: now_ms.max(cp.updated_at + 1),
        // The record changed: the writer signs it anew.
        signature: None,
        signer: None,
        ..cp.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(version: i64, status: CheckpointStatus, updated_at: i64) -> ModelCheckpoint {
        ModelCheckpoint {
            model: "fraud".into(),
            version,
            parent_version: None,
            created_at: 0,
            updated_at,
            status,
            status_reason: String::new(),
            onnx: None,
            onnx_uri: None,
            sha256: String::new(),
            size_bytes: 0,
            feature_spec: String::new(),
            metrics: None,
            offsets: Vec::new(),
            reference: Vec::new(),
            learner_state: None,
            signature: None,
            signer: None,
        }
    }

    #[test]
    fn champion_challenger_promotion_and_rollback() {
        use CheckpointStatus::*;
        let mut r = ModelRegistry::new();
        assert!(r.champion("fraud").is_none());
        assert_eq!(r.next_version("fraud"), 1);
        r.apply(cp(1, Promoted, 10));
        r.apply(cp(2, Candidate, 20));
        assert_eq!(r.champion("fraud").unwrap().version, 1);
        assert_eq!(r.challenger("fraud").unwrap().version, 2);
        // Promote 2: the newer promotion wins, and 1 is what a rollback returns to.
        r.apply(transition(r.get("fraud", 2).unwrap(), Promoted, "better", 30));
        assert_eq!(r.champion("fraud").unwrap().version, 2);
        assert!(r.challenger("fraud").is_none());
        assert_eq!(r.previous_champion("fraud").unwrap().version, 1);
        r.apply(transition(r.get("fraud", 2).unwrap(), RolledBack, "worse", 40));
        assert_eq!(r.champion("fraud").unwrap().version, 1);
        // A rejected or older candidate never challenges.
        r.apply(cp(3, Rejected, 50));
        r.apply(cp(0, Candidate, 60));
        assert!(r.challenger("fraud").is_none());
        assert_eq!(r.next_version("fraud"), 4);
        assert_eq!(r.models(), vec!["fraud".to_string()]);
        r.remove("fraud", 1);
        assert!(r.champion("fraud").is_none());
    }

    /// Topic order decides the champion, not a writer's clock; a replayed older record of a
    /// version is ignored.
    #[test]
    fn topic_order_beats_clocks_and_replays_are_ignored() {
        use CheckpointStatus::*;
        let mut r = ModelRegistry::new();
        r.apply(cp(1, Promoted, 10));
        let promoted_2 = cp(2, Promoted, 20);
        r.apply(promoted_2.clone());
        r.apply(cp(3, Promoted, 5)); // an old clock, later on the topic
        r.apply(cp(5, Promoted, i64::MAX)); // a pinned clock: ignored
        assert!(r.get("fraud", 5).is_none());
        r.apply(cp(4, Promoted, 30)); // later on the topic: champion
        assert_eq!(r.champion("fraud").unwrap().version, 4);
        r.apply(transition(r.get("fraud", 2).unwrap(), RolledBack, "bad", 40));
        r.apply(promoted_2.clone()); // replayed: older than what v2 holds
        assert_eq!(r.get("fraud", 2).unwrap().status, RolledBack);
        assert_eq!(r.promoted("fraud").iter().map(|c| c.version).collect::<Vec<_>>(), vec![4, 3, 1]);
    }

    /// Pruning keeps the newest versions and never what serves, falls back or resumes.
    #[test]
    fn pruning_spares_what_serves_and_resumes() {
        use CheckpointStatus::*;
        let mut r = ModelRegistry::new();
        for v in 1..=10 {
            r.apply(cp(v, if v <= 4 { Promoted } else { Candidate }, v * 10));
        }
        r.apply(transition(r.get("fraud", 4).unwrap(), Promoted, "again", 200)); // champion v4
        assert_eq!(r.prunable("fraud", 3), vec![1, 5, 6, 7, 8, 9], "v2 and v3 are the fallbacks, v10 the challenger");
        assert_eq!(r.prunable("fraud", 8), vec![1, 5]);
        assert_eq!(r.prunable("fraud", 100), Vec::<i64>::new());
        for v in r.prunable("fraud", 3) {
            r.remove("fraud", v);
        }
        assert_eq!(r.champion("fraud").unwrap().version, 4);
        assert_eq!(r.next_version("fraud"), 11);
    }

    /// A slim registry keeps the graphs and states of what may serve or resume only.
    #[test]
    fn a_slim_registry_keeps_only_what_may_serve_whole() {
        use CheckpointStatus::*;
        let mut r = ModelRegistry::slim();
        let heavy =
            |v, s, t| ModelCheckpoint { onnx: Some(vec![1; 1000]), learner_state: Some(vec![2; 1000]), ..cp(v, s, t) };
        for v in 1..=10 {
            r.apply(heavy(v, if v % 3 == 0 { Promoted } else { Candidate }, v * 10));
        }
        let whole: Vec<i64> = r.versions("fraud").iter().filter(|c| c.onnx.is_some()).map(|c| c.version).collect();
        assert_eq!(whole, vec![3, 6, 9, 10], "champion, two fallbacks, challenger (which holds the newest state)");
        assert_eq!(r.versions("fraud").iter().filter(|c| c.learner_state.is_some()).count(), 1);
        assert_eq!(r.next_version("fraud"), 11, "metadata of every version stays");
    }
}
