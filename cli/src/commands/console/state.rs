//! The console's picture of the system, folded record by record from the scores, models, alerts
//! and drift topics. Bounded: the last scores of each variant, the last drift reports, a few
//! minutes of per-second counts, the latest record of each alert and the last timeline marks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use vigil_events::{Alert, AlertKind, CheckpointStatus, Codec, DriftReport, Score, Variant};
use vigil_kafka::model_registry::ModelRegistry;
use vigil_kafka::models::{self, ModelRecord};

/// Scores kept per model and variant for the score distribution.
pub const SCORES_KEPT: usize = 5_000;
/// Drift reports kept per model.
pub const REPORTS_KEPT: usize = 720;
/// Seconds of per-second score counts kept per model.
const RATE_SECONDS: i64 = 900;
/// Version timeline marks kept.
const MARKS_KEPT: usize = 300;
/// Alerts kept (the latest record of each condition; the oldest resolved ones go first).
const ALERTS_KEPT: usize = 1_000;

/// Which topic a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Scores (`topics.scores`).
    Scores,
    /// Checkpoints and transitions (`topics.models`).
    Models,
    /// Alerts (`topics.alerts`).
    Alerts,
    /// Drift reports (`topics.drift`).
    Drift,
}

/// One model's live figures.
#[derive(Debug, Default)]
pub struct ModelBoard {
    /// Scores per second of `scored_at` (every variant).
    pub per_second: BTreeMap<i64, u64>,
    /// The champion's last scores.
    pub champion: VecDeque<f64>,
    /// The challenger's last scores.
    pub challenger: VecDeque<f64>,
    /// The version that produced the latest score of each variant.
    pub serving: BTreeMap<&'static str, i64>,
    /// The last drift reports, oldest first.
    pub reports: VecDeque<DriftReport>,
}

impl ModelBoard {
    /// Scores per second over the `seconds` before `now_ms`.
    pub fn rate(&self, now_ms: i64, seconds: i64) -> f64 {
        let now = now_ms / 1000;
        self.per_second.range(now - seconds..now).map(|(_, n)| *n).sum::<u64>() as f64 / seconds as f64
    }

    /// The latest report's figure that has one (a report without labels has no accuracy).
    pub fn latest(&self, figure: impl Fn(&DriftReport) -> Option<f64>) -> Option<f64> {
        self.reports.iter().rev().find_map(figure)
    }

    /// The features the latest report found drifted.
    pub fn drifted_now(&self) -> Vec<String> {
        let latest = self.reports.back().map(|r| r.features.as_slice()).unwrap_or_default();
        latest.iter().filter(|f| f.drifted).map(|f| f.feature.clone()).collect()
    }
}

/// A moment in a model's version history.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// When (UTC ms).
    pub time: i64,
    /// The model.
    pub model: String,
    /// The version concerned.
    pub version: Option<i64>,
    /// What happened: published, promoted, rolled back, rejected, refused by a scorer.
    pub what: String,
    /// Why, as the record says.
    pub why: String,
}

/// Whether the console reaches the brokers.
#[derive(Debug, Clone, Default)]
pub struct Broker {
    /// The last metadata request succeeded.
    pub connected: bool,
    /// Since when (UTC ms) it has been so.
    pub since_ms: i64,
    /// The last error, while unreachable.
    pub error: Option<String>,
}

/// Everything the console shows.
#[derive(Debug)]
pub struct Board {
    /// Per model (every model named by a score, a checkpoint or a report).
    pub models: BTreeMap<String, ModelBoard>,
    /// The registry as the models topic holds it.
    pub registry: ModelRegistry,
    /// The latest record of each alert condition, by dedup key.
    pub alerts: BTreeMap<String, Alert>,
    /// The version timeline, oldest first.
    pub marks: VecDeque<Mark>,
    /// Checkpoint states already marked: (model, version, status).
    marked: BTreeSet<(String, i64, String)>,
    /// Broker reachability.
    pub broker: Broker,
    /// Records read.
    pub records: u64,
    /// Records that did not decode (skipped).
    pub undecodable: u64,
    /// Drift significance (the per-feature threshold on adjusted p-values).
    pub significance: f64,
}

impl Board {
    /// An empty board; `significance` is the drift service's per-feature threshold.
    pub fn new(significance: f64) -> Board {
        Board {
            models: BTreeMap::new(),
            registry: ModelRegistry::slim(),
            alerts: BTreeMap::new(),
            marks: VecDeque::new(),
            marked: BTreeSet::new(),
            broker: Broker::default(),
            records: 0,
            undecodable: 0,
            significance,
        }
    }

    /// Folds one record in.
    pub fn apply(&mut self, codec: &Codec, source: Source, key: Option<&[u8]>, payload: Option<&[u8]>, offset: i64) {
        self.records += 1;
        let decoded = match (source, payload) {
            (Source::Models, _) => {
                self.checkpoint(models::parse(codec, key, payload, offset));
                true
            }
            (Source::Scores, Some(p)) => codec.decode_event::<Score>(p).map(|s| self.score(s)).is_ok(),
            (Source::Alerts, Some(p)) => codec.decode_event::<Alert>(p).map(|a| self.alert(a)).is_ok(),
            (Source::Drift, Some(p)) => codec.decode_event::<DriftReport>(p).map(|r| self.report(r)).is_ok(),
            (_, None) => false,
        };
        if !decoded {
            self.undecodable += 1;
        }
    }

    fn score(&mut self, s: Score) {
        let m = self.models.entry(s.model).or_default();
        *m.per_second.entry(s.scored_at / 1000).or_default() += 1;
        while m.per_second.len() as i64 > RATE_SECONDS {
            m.per_second.pop_first();
        }
        let (kept, name) = match s.variant {
            Variant::Champion => (&mut m.champion, "champion"),
            Variant::Challenger => (&mut m.challenger, "challenger"),
        };
        push_bounded(kept, s.score, SCORES_KEPT);
        m.serving.insert(name, s.model_version);
    }

    fn report(&mut self, r: DriftReport) {
        let m = self.models.entry(r.model.clone()).or_default();
        push_bounded(&mut m.reports, r, REPORTS_KEPT);
    }

    fn checkpoint(&mut self, record: ModelRecord) {
        if let ModelRecord::Checkpoint(cp) = &record {
            self.models.entry(cp.model.clone()).or_default();
            let status = status_name(cp.status);
            if self.marked.insert((cp.model.clone(), cp.version, status.to_string())) {
                let time = if cp.status == CheckpointStatus::Candidate { cp.created_at } else { cp.updated_at };
                let why = cp.status_reason.clone();
                self.mark(Mark { time, model: cp.model.clone(), version: Some(cp.version), what: status.into(), why });
            }
        }
        if matches!(record, ModelRecord::Undecodable { .. }) {
            self.undecodable += 1;
        }
        self.registry.apply_record(record);
    }

    fn alert(&mut self, a: Alert) {
        if a.kind == AlertKind::ModelRejected
            && let Some(model) = &a.model
        {
            let mark = Mark {
                time: a.time,
                model: model.clone(),
                version: a.model_version,
                what: "refused".into(),
                why: a.message.clone(),
            };
            self.mark(mark);
        }
        self.alerts.insert(a.dedup_key.clone(), a);
        if self.alerts.len() > ALERTS_KEPT {
            let oldest = self
                .alerts
                .iter()
                .filter(|(_, a)| a.state != vigil_events::AlertState::Firing)
                .min_by_key(|(_, a)| a.time);
            if let Some(k) = oldest.map(|(k, _)| k.clone()) {
                self.alerts.remove(&k);
            }
        }
    }

    fn mark(&mut self, mark: Mark) {
        let at = self.marks.partition_point(|m| m.time <= mark.time);
        self.marks.insert(at, mark);
        if self.marks.len() > MARKS_KEPT {
            self.marks.pop_front();
        }
    }

    /// Every model the board knows, in name order.
    pub fn model_names(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    /// The champion's and the challenger's versions in the registry.
    pub fn roles(&self, model: &str) -> (Option<i64>, Option<i64>) {
        (self.registry.champion(model).map(|c| c.version), self.registry.challenger(model).map(|c| c.version))
    }

    /// The alerts whose latest record is firing (notices of promotions left out), newest first.
    pub fn open_alerts(&self) -> Vec<&Alert> {
        let mut open: Vec<&Alert> = self
            .alerts
            .values()
            .filter(|a| a.state == vigil_events::AlertState::Firing && a.kind != AlertKind::ModelPromoted)
            .collect();
        open.sort_by_key(|a| std::cmp::Reverse(a.time));
        open
    }

    /// The alerts whose latest record resolved them, newest first.
    pub fn resolved_alerts(&self) -> Vec<&Alert> {
        let mut done: Vec<&Alert> =
            self.alerts.values().filter(|a| a.state == vigil_events::AlertState::Resolved).collect();
        done.sort_by_key(|a| std::cmp::Reverse(a.time));
        done
    }
}

/// A checkpoint status as the timeline names it.
pub fn status_name(s: CheckpointStatus) -> &'static str {
    match s {
        CheckpointStatus::Candidate => "published",
        CheckpointStatus::Promoted => "promoted",
        CheckpointStatus::RolledBack => "rolled back",
        CheckpointStatus::Rejected => "rejected",
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, v: T, cap: usize) {
    q.push_back(v);
    if q.len() > cap {
        q.pop_front();
    }
}
