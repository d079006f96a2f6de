//! The experiments topic: live A/B tests, one record per model (compacted, key = model), written by
//! `vigil ab` and by the drift service that judges them, read by the scorer (which splits the
//! traffic), the drift service and the learner (which promotes a winner when asked to). Folding the
//! records: the newest record of a model holds, except that a RUNNING record of an experiment that
//! a record has already ended (STOPPED or DONE) is ignored — so a judge's progress record written
//! just before an operator's stop cannot start the test again.

use std::collections::HashMap;

use rdkafka::producer::FutureProducer;
use vigil_events::{Codec, Experiment, ExperimentState};

use crate::{KafkaPlumbingError, client};

/// The experiments of every model, folded from the topic.
#[derive(Debug, Clone, Default)]
pub struct Experiments {
    by_model: HashMap<String, Experiment>,
    ended: std::collections::HashSet<String>,
}

impl Experiments {
    /// Applies one record; returns whether what holds for its model changed.
    pub fn apply(&mut self, e: Experiment) -> bool {
        if e.state == ExperimentState::Running && self.ended.contains(&e.experiment_id) {
            return false;
        }
        if e.state != ExperimentState::Running {
            self.ended.insert(e.experiment_id.clone());
        }
        let changed = self.by_model.get(&e.model) != Some(&e);
        self.by_model.insert(e.model.clone(), e);
        changed
    }

    /// Decodes and applies a record's value (`None`: a tombstone or a record that does not decode,
    /// ignored); returns whether anything changed.
    pub fn apply_bytes(&mut self, codec: &Codec, payload: Option<&[u8]>) -> Result<bool, String> {
        let Some(p) = payload else { return Ok(false) };
        let e = codec.decode_event::<Experiment>(p).map_err(|e| e.to_string())?;
        Ok(self.apply(e))
    }

    /// The latest experiment of `model`, running or not.
    pub fn latest(&self, model: &str) -> Option<&Experiment> {
        self.by_model.get(model)
    }

    /// The running experiment of `model`.
    pub fn running(&self, model: &str) -> Option<&Experiment> {
        self.latest(model).filter(|e| e.state == ExperimentState::Running)
    }

    /// Every model's latest experiment, by model name.
    pub fn all(&self) -> Vec<&Experiment> {
        let mut v: Vec<&Experiment> = self.by_model.values().collect();
        v.sort_by(|a, b| a.model.cmp(&b.model));
        v
    }
}

/// Publishes an experiment record (key = model) and waits for the acknowledgement.
pub async fn publish(
    producer: &FutureProducer<client::LogContext>,
    codec: &Codec,
    topic: &str,
    e: &Experiment,
) -> Result<(), KafkaPlumbingError> {
    crate::models::publish_event(producer, codec, topic, &e.model, e).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(id: &str, state: ExperimentState) -> Experiment {
        Experiment { state, ..Experiment::running(id, "fraud", (1, 2), 0.5, 1) }
    }

    #[test]
    fn an_ended_experiment_stays_ended() {
        let mut x = Experiments::default();
        assert!(x.apply(experiment("ab-1", ExperimentState::Running)));
        assert!(x.running("fraud").is_some());
        assert!(x.apply(experiment("ab-1", ExperimentState::Stopped)));
        assert!(x.running("fraud").is_none());
        // A progress record written before the stop was read: ignored.
        assert!(!x.apply(Experiment { labels_a: 10, ..experiment("ab-1", ExperimentState::Running) }));
        assert_eq!(x.latest("fraud").unwrap().state, ExperimentState::Stopped);
        // A new experiment runs.
        assert!(x.apply(experiment("ab-2", ExperimentState::Running)));
        assert_eq!(x.running("fraud").unwrap().experiment_id, "ab-2");
        assert!(!x.apply(experiment("ab-2", ExperimentState::Running)), "the same record again changes nothing");
        let codec = Codec::new();
        assert!(x.apply_bytes(&codec, Some(b"junk")).is_err());
        assert_eq!(x.apply_bytes(&codec, None), Ok(false));
        assert_eq!(x.all().len(), 1);
    }
}
