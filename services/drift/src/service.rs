//! The drift service's Kafka side, on one blocking thread. It assigns itself every partition of the
//! watched models' input topics, of their label topics and of the scores topic, starting `window`
//! records back from the end of each (so that a restarted service has full windows again at once;
//! `start-from = "earliest"` backfills from the start instead),
//! follows the models topic for champions and their reference statistics, feeds each model's
//! [`Monitor`], sends the alerts the [`AlertBook`] lets through to the alerts topic and a
//! `DriftReport` per model to the drift topic at an interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use vigil_events::schemas::names;
use vigil_events::{Alert, Codec, DriftReport, Label, ModelCheckpoint, Score, Variant};
use vigil_features::{FeatureSpec, Featurizer, Field};
use vigil_kafka::models::{self, ModelRecord};
use vigil_kafka::{client, now_ms};
use vigil_models::RegistryState;
use vigil_runtime::Config;

use crate::alerts::AlertBook;
use crate::events::Metrics;
use crate::monitor::{Evaluation, Layout, Monitor, References};

/// Everything the loop needs.
pub struct Context {
    /// Configuration.
    pub config: Config,
    /// Models to watch.
    pub models: Vec<String>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Marks the service ready once its partitions are assigned.
    pub health: Arc<vigil_runtime::Health>,
}

/// One watched model.
struct Watched {
    monitor: Monitor,
    input: String,
    labels: String,
    schema_name: String,
    spec_text: String,
    featurizer: Option<Featurizer>,
    fields: Vec<String>,
    last_report: Instant,
}

const SCORE_FIELDS: [&str; 7] = ["event_id", "model", "variant", "score", "predicted_label", "event_time", "scored_at"];

fn builtin_spec(model: &str) -> Option<&'static str> {
    match model {
        "fraud" => Some(vigil_features::FRAUD_SPEC),
        "sentiment" => Some(vigil_features::SENTIMENT_SPEC),
        _ => None,
    }
}

/// The featurizer of `spec`'s raw rows over the input schema (none for text specs: their events
/// only count, their scores are compared).
fn raw_featurizer(spec: &FeatureSpec, codec: &Codec, schema_name: &str) -> Result<Option<Featurizer>, String> {
    if spec.is_text() {
        return Ok(None);
    }
    let schema = codec.schema(schema_name).map_err(|e| e.to_string())?;
    Featurizer::new(&spec.raw(), schema).map(Some).map_err(|p| p.join("; "))
}

impl Watched {
    fn new(model: &str, cfg: &Config, registry: &RegistryState, codec: &Codec) -> Result<Watched, String> {
        let input = cfg.inputs.iter().find(|i| i.model == model).ok_or(format!("no input is scored by {model}"))?;
        let spec_text = registry
            .champion(model)
            .map(|c| c.feature_spec.clone())
            .or_else(|| builtin_spec(model).map(str::to_string))
            .ok_or(format!("{model}: no champion and no built-in spec to watch"))?;
        let spec = FeatureSpec::parse(&spec_text).map_err(|e| format!("{model}: {e}"))?;
        let featurizer = raw_featurizer(&spec, codec, &input.schema)?;
        let fields = featurizer.as_ref().map(|f| f.fields().to_vec()).unwrap_or_default();
        let mut w = Watched {
            monitor: Monitor::new(model, Layout::of(&spec), &cfg.drift),
            input: input.topic.clone(),
            labels: input.labels.clone(),
            schema_name: input.schema.clone(),
            spec_text,
            featurizer,
            fields,
            last_report: Instant::now(),
        };
        w.follow_champion(registry.champion(model), codec, cfg);
        Ok(w)
    }

    /// Takes a new champion's version, and its reference when it carries one; a champion whose spec
    /// lays out features differently starts a new monitor.
    fn follow_champion(&mut self, champion: Option<&ModelCheckpoint>, codec: &Codec, cfg: &Config) {
        let Some(cp) = champion else { return };
        if self.monitor.champion == Some(cp.version) {
            return;
        }
        if cp.feature_spec != self.spec_text
            && let Ok(spec) = FeatureSpec::parse(&cp.feature_spec)
        {
            let layout = Layout::of(&spec);
            if &layout != self.monitor.layout() {
                match raw_featurizer(&spec, codec, &self.schema_name) {
                    Ok(f) => {
                        tracing::info!(model = %self.monitor.model, version = cp.version, "new feature layout: windows restart");
                        self.fields = f.as_ref().map(|f| f.fields().to_vec()).unwrap_or_default();
                        self.featurizer = f;
                        self.monitor = Monitor::new(&self.monitor.model, layout, &cfg.drift);
                    }
                    Err(e) => {
                        tracing::warn!(model = %self.monitor.model, version = cp.version, error = e, "cannot featurise with the new champion's spec");
                        return;
                    }
                }
            }
            self.spec_text = cp.feature_spec.clone();
        }
        let r = References::from_checkpoint(cp.version, &cp.reference, self.monitor.layout());
        match &r {
            Some(r) => {
                tracing::info!(model = %self.monitor.model, version = cp.version, features = r.by_feature.len(), "reference from the champion's checkpoint")
            }
            None => {
                tracing::info!(model = %self.monitor.model, version = cp.version, "the champion's checkpoint has no reference: its scores warm up")
            }
        }
        self.monitor.new_champion(cp.version, r);
    }
}

/// Runs the loop until `shutdown` (call from a blocking thread).
pub fn run(ctx: Context, shutdown: CancellationToken, handle: tokio::runtime::Handle) -> Result<(), String> {
    let cfg = &ctx.config;
    let dc = &cfg.drift;
    let codec = Codec::new();
    let mut registry = RegistryState::new();
    let records =
        models::read_all(&cfg.kafka, &cfg.topics.models, &codec).map_err(|e| vigil_runtime::error_chain(&e))?;
    let models_seen = records.len() as i64;
    for r in records {
        apply(&mut registry, r);
    }
    let mut watched: Vec<Watched> =
        ctx.models.iter().map(|m| Watched::new(m, cfg, &registry, &codec)).collect::<Result<_, _>>()?;
    let producer: FutureProducer<client::LogContext> = client::producer_config(&cfg.kafka, "drift")
        .create_with_context(client::LogContext)
        .map_err(|e| e.to_string())?;

    let consumer: BaseConsumer<client::LogContext> =
        client::consumer_config(&cfg.kafka, "drift", &format!("{}-{}", dc.group_id, now_ms()))
            .create_with_context(client::LogContext)
            .map_err(|e| e.to_string())?;
    let mut topics: Vec<String> = vec![cfg.topics.scores.clone()];
    for w in &watched {
        for t in [&w.input, &w.labels] {
            if !t.is_empty() && !topics.contains(t) {
                topics.push(t.clone());
            }
        }
    }
    let mut tpl = TopicPartitionList::new();
    for topic in &topics {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(|e| e.to_string())?;
        for t in md.topics() {
            if let Some(e) = t.error() {
                return Err(format!("topic {topic} is not available: {e:?}"));
            }
            for p in t.partitions() {
                let (low, high) =
                    client::watermarks(&consumer, topic, p.id(), Duration::from_secs(30)).map_err(|e| e.to_string())?;
                let start = if dc.start_from == "earliest" { low } else { (high - dc.window as i64).max(low) };
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(start)).map_err(|e| e.to_string())?;
            }
        }
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let follower = models::follower_from(&cfg.kafka, &cfg.topics.models, "drift-models", models_seen)
        .map_err(|e| e.to_string())?;
    let mut book = AlertBook::new(dc.cooldown_ms, dc.resolve_after);
    ctx.health.set_ready();
    tracing::info!(models = ?ctx.models, topics = ?topics, "drift service started");

    let mut row: Vec<f32> = Vec::new();
    while !shutdown.is_cancelled() {
        while let Some(Ok(m)) = follower.poll(Duration::ZERO) {
            apply(&mut registry, models::parse(&codec, m.key(), m.payload(), m.offset()));
            for w in &mut watched {
                w.follow_champion(registry.champion(&w.monitor.model), &codec, cfg);
            }
        }
        let mut evaluations: Vec<(usize, Evaluation)> = Vec::new();
        for _ in 0..5000 {
            let Some(msg) =
                consumer.poll(if evaluations.is_empty() { Duration::from_millis(100) } else { Duration::ZERO })
            else {
                break;
            };
            let m = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "consume error");
                    break;
                }
            };
            let topic = m.topic();
            let payload = m.payload().unwrap_or(&[]);
            if topic == cfg.topics.scores {
                let Some((model, s)) = read_score(&codec, payload) else { continue };
                let Some(i) = watched.iter().position(|w| w.monitor.model == model) else { continue };
                if let Some(e) = score(&mut watched[i], &ctx.metrics, &model, s) {
                    evaluations.push((i, e));
                }
                continue;
            }
            for (i, w) in watched.iter_mut().enumerate() {
                if topic == w.input {
                    ctx.metrics.record(&w.monitor.model, "events");
                    let time = m.timestamp().to_millis().unwrap_or_else(now_ms);
                    let Some(f) = &w.featurizer else {
                        if let Some(e) = w.monitor.event(&[], time) {
                            evaluations.push((i, e));
                        }
                        continue;
                    };
                    row.clear();
                    row.resize(f.width(), 0.0);
                    let names: Vec<&str> = w.fields.iter().map(String::as_str).collect();
                    let ok = match codec.plan(payload, &w.schema_name, &names, 0xd41f7) {
                        Ok(Some((plan, body))) => {
                            let mut fields = Vec::with_capacity(names.len());
                            plan.read(body, &mut fields).is_ok() && f.dense_from(&fields, &mut row).is_ok()
                        }
                        Ok(None) => false,
                        Err(_) => false,
                    };
                    if !ok {
                        ctx.metrics.undecodable(&w.monitor.model, "events", "not a featurisable record");
                        continue;
                    }
                    let values: Vec<f64> =
                        row.iter().map(|v| if v.is_infinite() { f64::NAN } else { f64::from(*v) }).collect();
                    if let Some(e) = w.monitor.event(&values, time) {
                        evaluations.push((i, e));
                    }
                } else if topic == w.labels {
                    match codec.decode_event::<Label>(payload) {
                        Ok(l) if l.label.is_finite() => {
                            ctx.metrics.record(&w.monitor.model, "labels");
                            if let Some(e) = w.monitor.label(&l.event_id, l.label) {
                                evaluations.push((i, e));
                            }
                        }
                        Ok(_) => ctx.metrics.undecodable(&w.monitor.model, "labels", "label is not a number"),
                        Err(e) => ctx.metrics.undecodable(&w.monitor.model, "labels", &e.to_string()),
                    }
                }
            }
        }
        for (i, e) in evaluations {
            let w = &watched[i];
            ctx.metrics.quality(&w.monitor.model, &w.monitor.quality());
            for f in &e.findings {
                let (outcome, alert) = book.observe(&w.monitor.model, w.monitor.champion, f, now_ms(), e.window);
                let kind = f.key(&w.monitor.model);
                let kind = kind.split('/').next().unwrap_or("other").to_string();
                ctx.metrics.outcome(&w.monitor.model, outcome, alert.as_ref(), &kind);
                if let Some(a) = alert {
                    send_alert(&handle, &producer, &codec, &cfg.topics.alerts, &a);
                }
            }
            // Counted once its alerts are acknowledged, so that a count seen outside means they are on
            // the topic.
            if !e.features.is_empty() {
                ctx.metrics.evaluated(&w.monitor.model, &e, w.monitor.reference().version);
            }
        }
        for w in &mut watched {
            if w.last_report.elapsed() >= Duration::from_millis(dc.report_interval_ms) {
                w.last_report = Instant::now();
                if let Some(report) = report(&w.monitor) {
                    send(&handle, &producer, &cfg.topics.drift, &w.monitor.model, codec.encode_event(&report).ok());
                }
            }
        }
    }
    Ok(())
}

/// A champion score's model and fields, read by the fast path when it applies.
struct ScoreFields {
    event_id: String,
    score: f64,
    decision: bool,
    latency_ms: f64,
}

fn read_score(codec: &Codec, payload: &[u8]) -> Option<(String, ScoreFields)> {
    if let Ok(Some((plan, body))) = codec.plan(payload, names::SCORE, &SCORE_FIELDS, 0x5c0e) {
        let mut buf = Vec::with_capacity(SCORE_FIELDS.len());
        plan.read(body, &mut buf).ok()?;
        let [
            Field::Str(id),
            Field::Str(model),
            Field::Str(variant),
            Field::Float(score),
            Field::Float(pl),
            Field::Int(t),
            Field::Int(at),
        ] = buf[..]
        else {
            return None;
        };
        if variant != "CHAMPION" {
            return None;
        }
        let fields =
            ScoreFields { event_id: id.to_string(), score, decision: pl >= 0.5, latency_ms: (at - t).max(0) as f64 };
        return Some((model.to_string(), fields));
    }
    let s: Score = codec.decode_event(payload).ok()?;
    if s.variant != Variant::Champion {
        return None;
    }
    let fields = ScoreFields {
        event_id: s.event_id,
        score: s.score,
        decision: s.predicted_label >= 0.5,
        latency_ms: (s.scored_at - s.event_time).max(0) as f64,
    };
    Some((s.model, fields))
}

fn score(w: &mut Watched, metrics: &Metrics, model: &str, s: ScoreFields) -> Option<Evaluation> {
    metrics.record(model, "scores");
    w.monitor.score(&s.event_id, s.score, s.decision, s.latency_ms)
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

fn apply(registry: &mut RegistryState, r: ModelRecord) {
    match r {
        ModelRecord::Checkpoint(cp) => registry.apply(*cp),
        ModelRecord::Tombstone { model, version } => registry.remove(&model, version),
        ModelRecord::Undecodable { offset, error } => tracing::warn!(offset, error, "skipping a models-topic record"),
    }
}

fn send_alert(
    handle: &tokio::runtime::Handle,
    producer: &FutureProducer<client::LogContext>,
    codec: &Codec,
    topic: &str,
    a: &Alert,
) {
    send(handle, producer, topic, &a.dedup_key, codec.encode_event(a).ok());
}

fn send(
    handle: &tokio::runtime::Handle,
    producer: &FutureProducer<client::LogContext>,
    topic: &str,
    key: &str,
    payload: Option<Vec<u8>>,
) {
    let Some(payload) = payload else {
        tracing::warn!(topic, key, "cannot encode a record");
        return;
    };
    let record = FutureRecord::to(topic).key(key.as_bytes()).payload(&payload[..]);
    if let Err((e, _)) = handle.block_on(producer.send(record, Duration::from_secs(30))) {
        tracing::warn!(topic, key, error = %e, "cannot send");
    }
}
