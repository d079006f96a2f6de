//! The drift service as a [`ModelService`] of `vigil-kafka`'s owned-models loop. It reads every
//! partition of the watched models' input topics, of their label topics and of the scores topic,
//! starting `window` records back from the end of each (so that a restarted service has full windows
//! again at once; `start-from = "earliest"` backfills from the start instead), follows the models
//! topic for champions and their reference statistics, feeds each model's [`Monitor`], and at the
//! end of each round sends the alerts the [`AlertBook`] lets through and a `DriftReport` per model
//! at an interval.

use std::sync::Arc;
use std::time::Instant;

use crate::config::{Config, StartFrom};
use vigil_events::schemas::names;
use vigil_events::{Alert, Codec, DriftReport, Encoding, Field, Label, RecordReader, Wanted};
use vigil_kafka::owned::{ModelService, Outbox, Progress, Record, Source, Start};
use vigil_kafka::schema_registry::Resolver;
use vigil_kafka::{HandlerError, ModelRegistry, now_ms};

use crate::ab::{Judge, Outgoing};
use crate::alerts::AlertBook;
use crate::monitor::{Evaluation, Monitor};
use crate::telemetry::Metrics;
use crate::watched::Watched;

/// The drift service: every watched model, the alert book, and evaluations waiting to be sent.
pub struct Drift {
    config: Config,
    codec: Codec,
    resolver: Resolver,
    metrics: Arc<Metrics>,
    watched: Vec<Watched>,
    book: AlertBook,
    scores: RecordReader,
    evaluations: Vec<(usize, Evaluation)>,
    /// Evaluations whose alerts are out, counted once they are acknowledged (so that a count seen
    /// outside means the alerts are on their topic).
    sent: Vec<(usize, Evaluation)>,
    /// When the consumer lag was last measured.
    lag_at: std::time::Instant,
    /// The judge of live A/B tests.
    judge: Judge,
}

/// Alerts read back per partition of the alerts topic at start (to restore the open conditions).
const ALERT_HISTORY: i64 = 5000;

/// The fields of a score the service reads.
const SCORE_FIELDS: [&str; 9] =
    ["event_id", "model", "variant", "score", "predicted_label", "event_time", "scored_at", "experiment_id", "arm"];

impl Drift {
    /// Watches `models` from the replayed registry.
    pub fn build(
        config: Config,
        codec: Codec,
        resolver: Resolver,
        models: &[String],
        metrics: Arc<Metrics>,
        registry: &ModelRegistry,
    ) -> Result<Drift, HandlerError> {
        let mut watched = Vec::new();
        for model in models {
            let input = config
                .inputs
                .iter()
                .find(|i| &i.model == model)
                .ok_or_else(|| HandlerError(format!("no input is scored by {model}")))?;
            watched.push(Watched::new(model, input, registry, &codec, &config.drift, metrics.streams(model))?);
        }
        let scores = RecordReader::new(&codec, names::SCORE, Encoding::Avro, Wanted::new(&SCORE_FIELDS))
            .map_err(|e| HandlerError(e.to_string()))?;
        let book = AlertBook::new(config.drift.cooldown, config.drift.resolve_after);
        tracing::info!(models = ?models, "drift service started");
        let (evaluations, sent, lag_at) = (Vec::new(), Vec::new(), std::time::Instant::now());
        let age = i64::try_from(config.drift.join_max_age.as_millis()).unwrap_or(i64::MAX);
        let judge = Judge::new(config.drift.join_window, age);
        Ok(Drift { config, codec, resolver, metrics, watched, book, scores, evaluations, sent, lag_at, judge })
    }

    fn score(&mut self, r: &Record<'_>) {
        let Some(s) = read_score(&self.codec, &self.scores, r.payload.unwrap_or(&[])) else { return };
        let Some(i) = self.watched.iter().position(|w| w.monitor.model == s.model) else { return };
        if let Some((experiment, b)) = &s.ab {
            let now = r.timestamp.unwrap_or_else(now_ms);
            self.judge.score(&s.model, experiment, &s.event_id, (*b, s.score, s.decision), now);
        }
        self.watched[i].streams.scores.inc();
        if let Some(ts) = r.timestamp {
            self.watched[i].monitor.observe_time(ts);
        }
        if let Some(e) = self.watched[i].monitor.score(&s.event_id, s.score, s.decision, s.latency_ms) {
            self.evaluations.push((i, e));
        }
        let ts = r.timestamp.unwrap_or_else(now_ms);
        if let Some(g) = &mut self.watched[i].groups
            && let Some(e) = g.surge.score(&s.event_id, !s.decision, ts)
        {
            self.evaluations.push((i, e));
        }
    }

    fn label(&mut self, i: usize, r: &Record<'_>) {
        let w = &mut self.watched[i];
        if let Some(ts) = r.timestamp {
            w.monitor.observe_time(ts);
        }
        match self.codec.decode_event::<Label>(r.payload.unwrap_or(&[])) {
            Ok(l) if l.label.is_finite() => {
                w.streams.labels.inc();
                self.judge.label(&w.monitor.model, &l.event_id, l.label, r.timestamp.unwrap_or_else(now_ms));
                if let Some(e) = w.monitor.label(&l.event_id, l.label) {
                    self.evaluations.push((i, e));
                }
            }
            Ok(_) => self.metrics.undecodable(&w.monitor.model, "labels", "label is not a number"),
            Err(e) => self.metrics.undecodable(&w.monitor.model, "labels", &e.to_string()),
        }
    }

    /// An alert read back: the book takes the ones about watched models' drift conditions.
    fn restore(&mut self, r: &Record<'_>) {
        let Ok(a) = self.codec.decode_event::<Alert>(r.payload.unwrap_or(&[])) else { return };
        let mut parts = a.dedup_key.split('/');
        let (kind, model) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let drift = ["data-drift", "prediction-drift", "concept-drift", "performance", "latency", "sentiment-surge"]
            .contains(&kind);
        if drift && self.watched.iter().any(|w| w.monitor.model == model) {
            self.book.restore(&a);
        }
    }

    /// Alerts for what the evaluations found (through the alert book).
    fn alerts(&mut self, out: &mut Outbox) -> Result<(), HandlerError> {
        for (i, e) in std::mem::take(&mut self.evaluations) {
            let m = &self.watched[i].monitor;
            self.metrics.quality(&m.model, &m.quality());
            for f in &e.findings {
                let (outcome, alert) = self.book.observe(&m.model, m.champion, f, now_ms(), e.window);
                let kind = f.key(&m.model);
                let kind = kind.split('/').next().unwrap_or("other");
                self.metrics.outcome(&m.model, outcome, alert.as_ref(), kind);
                if let Some(a) = alert {
                    out.event(&self.codec, &self.config.topics.alerts, &a.dedup_key, &a)?;
                }
            }
            if !e.features.is_empty() {
                self.sent.push((i, e));
            }
        }
        Ok(())
    }

    /// A `DriftReport` per model every `report-interval-ms`.
    fn reports(&mut self, out: &mut Outbox) -> Result<(), HandlerError> {
        let every = self.config.drift.report_interval;
        for w in &mut self.watched {
            if w.last_report.elapsed() < every {
                continue;
            }
            w.last_report = Instant::now();
            if let Some(r) = report(&w.monitor) {
                out.event(&self.codec, &self.config.topics.drift, &r.model, &r)?;
            }
        }
        Ok(())
    }
}

impl ModelService for Drift {
    fn sources(&self) -> Vec<Source> {
        let start = match self.config.drift.start_from {
            StartFrom::Earliest => Start::Earliest,
            StartFrom::Window => Start::Last(self.config.drift.window as i64),
        };
        let mut topics = vec![self.config.topics.scores.clone()];
        for w in &self.watched {
            for t in [&w.input, &w.labels] {
                if !t.is_empty() && !topics.contains(t) {
                    topics.push(t.clone());
                }
            }
        }
        let mut sources: Vec<Source> = topics.into_iter().map(|topic| Source { topic, start: start.clone() }).collect();
        // Recent alerts, to restore the open conditions (not fired again after a restart).
        sources.push(Source { topic: self.config.topics.alerts.clone(), start: Start::Last(ALERT_HISTORY) });
        // Every experiment, to judge the running ones.
        sources.push(Source { topic: self.config.topics.experiments.clone(), start: Start::Earliest });
        sources
    }

    fn on_models(&mut self, registry: &ModelRegistry, _out: &mut Outbox) -> Result<(), HandlerError> {
        for w in &mut self.watched {
            w.follow_champion(registry.champion(&w.monitor.model), &self.codec, &self.config.drift);
        }
        Ok(())
    }

    fn on_record(&mut self, r: &Record<'_>, _out: &mut Outbox) -> Result<(), HandlerError> {
        self.resolver.prepare(&self.codec, r.payload.unwrap_or(&[]));
        if r.topic == self.config.topics.scores {
            self.score(r);
            return Ok(());
        }
        if r.topic == self.config.topics.alerts {
            self.restore(r);
            return Ok(());
        }
        if r.topic == self.config.topics.experiments {
            if let Err(e) = self.judge.experiment(r.payload, &self.codec) {
                tracing::warn!(error = e, offset = r.offset, "an experiment record does not decode; ignored");
            }
            return Ok(());
        }
        for i in 0..self.watched.len() {
            if r.topic == self.watched[i].input {
                let w = &mut self.watched[i];
                w.streams.events.inc();
                match w.event(r, &self.codec) {
                    Ok(Some(e)) => self.evaluations.push((i, e)),
                    Ok(None) => {}
                    Err(why) => self.metrics.undecodable(&w.monitor.model, "events", &why),
                }
                if let Some(e) = w.surge.take() {
                    self.evaluations.push((i, e));
                }
            } else if r.topic == self.watched[i].labels {
                self.label(i, r);
            }
        }
        Ok(())
    }

    fn on_round(&mut self, progress: &mut Progress<'_>, out: &mut Outbox) -> Result<(), HandlerError> {
        if self.lag_at.elapsed() >= std::time::Duration::from_secs(1) {
            self.metrics.set_lag(progress.lag());
            self.lag_at = std::time::Instant::now();
        }
        self.alerts(out)?;
        self.reports(out)?;
        self.judge.progress();
        for o in std::mem::take(&mut self.judge.out) {
            match o {
                Outgoing::Experiment(e) => out.event(&self.codec, &self.config.topics.experiments, &e.model, &e)?,
                Outgoing::Alert(a) => out.event(&self.codec, &self.config.topics.alerts, &a.dedup_key, &a)?,
            }
        }
        if out.is_empty() {
            self.on_delivered();
        }
        Ok(())
    }

    fn on_delivered(&mut self) {
        for (i, e) in std::mem::take(&mut self.sent) {
            let m = &self.watched[i].monitor;
            self.metrics.evaluated(&m.model, &e, m.reference().version);
            self.metrics.join_waiting(&m.model, m.join_waiting());
        }
    }
}

/// A champion score's fields.
struct ScoreFields {
    model: String,
    event_id: String,
    score: f64,
    decision: bool,
    latency_ms: f64,
    /// The A/B test that served it, and whether in arm B.
    ab: Option<(String, bool)>,
}

/// A champion score (challenger scores and anything else: `None`).
fn read_score(codec: &Codec, reader: &RecordReader, payload: &[u8]) -> Option<ScoreFields> {
    let read = reader.read(codec, payload, |f| match *f {
        [
            Field::Str(id),
            Field::Str(model),
            Field::Str("CHAMPION"),
            Field::Float(score),
            Field::Float(pl),
            Field::Int(t),
            Field::Int(at),
            experiment,
            arm,
        ] => Some(ScoreFields {
            model: model.to_string(),
            event_id: id.to_string(),
            score,
            decision: pl >= 0.5,
            latency_ms: (at - t).max(0) as f64,
            ab: match (experiment, arm) {
                (Field::Str(e), Field::Str(a)) => Some((e.to_string(), a == "B")),
                _ => None,
            },
        }),
        _ => None,
    });
    read.ok().flatten()
}

fn report(m: &Monitor) -> Option<DriftReport> {
    let last = m.last()?;
    let q = m.quality();
    Some(DriftReport {
        report_id: uuid::Uuid::new_v4().to_string(),
        time: now_ms(),
        model: m.model.clone(),
        model_version: m.reference().version,
        window_start: last.window.0,
        window_end: last.window.1,
        events: last.events as i64,
        features: last.features.clone(),
        labelled: q.labelled as i64,
        error_rate: q.error_rate,
        accuracy: q.accuracy,
        auc: q.auc,
        p99_latency_ms: q.p99_latency_ms,
    })
}
