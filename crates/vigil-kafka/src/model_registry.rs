//! The model registry: the state of the compacted `vigil.models` topic, folded record by record
//! (the latest record per `<model>/<version>` key wins; a tombstone deletes the key). A model's **champion** is its PROMOTED version with the latest
//! `updated_at` (ties: the higher version); its **challenger** is its newest CANDIDATE above the
//! champion. Rolling back marks the champion ROLLED_BACK, so the previous promoted version is
//! champion again. Pure: the Kafka side reads the topic and feeds records here.

use std::collections::BTreeMap;

use vigil_events::{CheckpointStatus, ModelCheckpoint};

use crate::models::ModelRecord;

/// Every known version of every model.
#[derive(Debug, Clone, Default)]
pub struct ModelRegistry {
    versions: BTreeMap<(String, i64), ModelCheckpoint>,
}

impl ModelRegistry {
    /// An empty registry.
    pub fn new() -> ModelRegistry {
        ModelRegistry::default()
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

    /// Applies one checkpoint or transition (the newer record for a key replaces the older).
    pub fn apply(&mut self, cp: ModelCheckpoint) {
        self.versions.insert((cp.model.clone(), cp.version), cp);
    }

    /// Applies a tombstone (a deleted key).
    pub fn remove(&mut self, model: &str, version: i64) {
        self.versions.remove(&(model.to_string(), version));
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

    /// The version serving all traffic.
    pub fn champion(&self, model: &str) -> Option<&ModelCheckpoint> {
        self.versions(model)
            .into_iter()
            .filter(|cp| cp.status == CheckpointStatus::Promoted)
            .max_by_key(|cp| (cp.updated_at, cp.version))
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

    /// The promoted version that becomes champion if the current one is rolled back.
    pub fn previous_champion(&self, model: &str) -> Option<&ModelCheckpoint> {
        let current = self.champion(model)?;
        self.versions(model)
            .into_iter()
            .filter(|cp| cp.status == CheckpointStatus::Promoted && cp.version != current.version)
            .max_by_key(|cp| (cp.updated_at, cp.version))
    }
}

/// A copy of `cp` with a new status (what a registry transition publishes).
pub fn transition(cp: &ModelCheckpoint, status: CheckpointStatus, reason: &str, now_ms: i64) -> ModelCheckpoint {
    ModelCheckpoint {
        status,
        status_reason: reason.to_string(),
        updated_at: now_ms.max(cp.updated_at + 1),
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
}
