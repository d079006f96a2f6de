//! The learner's Kafka side, on one blocking thread: it assigns itself every partition of the served
//! models' input and label topics (one learner per model; its position lives in its checkpoints, not
//! in a consumer group), follows the models topic (for the champion) and the alerts topic (for
//! concept drift), joins, trains, checkpoints and promotes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use vigil_events::{
    Alert, AlertKind, AlertState, CheckpointStatus, Codec, Label, ModelCheckpoint, Severity, TopicOffset,
};
use vigil_features::{FeatureSpec, Featurizer, Field};
use vigil_kafka::dlq::{self, Reason};
use vigil_kafka::models::{self, ModelRecord};
use vigil_kafka::{Input, client, now_ms};
use vigil_models::{RegistryState, Runtime, Session};
use vigil_runtime::Config;

use crate::events::Metrics;
use crate::join::{Join, Joined, Origin};
use crate::trainer::{Row, State, Trainer};

/// An event in the join buffer: its raw row, and its row for the champion.
#[derive(Debug, Clone)]
struct Event {
    raw: Row,
    champion: Option<Row>,
}

/// The champion as the learner evaluates it.
struct Champion {
    version: i64,
    featurizer: Featurizer,
    session: Session,
}

impl Champion {
    fn score(&mut self, row: &Row) -> Option<f64> {
        match row {
            Row::Dense(x) => {
                let x: Vec<f32> = x.iter().map(|v| *v as f32).collect();
                self.session.run_f32(&x, 1, x.len()).ok().and_then(|(_, v)| v.first().map(|p| f64::from(*p)))
            }
            Row::Text(i, v) => {
                self.session.run_text(i, v, 1, i.len()).ok().and_then(|v| v.first().map(|p| f64::from(*p)))
            }
        }
    }
}

/// One served model.
struct Served {
    model: String,
    input: String,
    labels: String,
    schema_name: String,
    trainer: Trainer,
    join: Join<Event>,
    champion: Option<Champion>,
    last_checkpoint: Instant,
    last_label: Instant,
    next_version: i64,
    /// Per label partition: the offset after the last label applied (where a restart resumes).
    applied: HashMap<i32, i64>,
}

/// Everything the loop needs.
pub struct Context {
    /// Configuration.
    pub config: Config,
    /// Models to train.
    pub models: Vec<String>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Marks the service ready once it resumed and assigned its partitions.
    pub health: Arc<vigil_runtime::Health>,
}

fn builtin_spec(model: &str) -> Option<&'static str> {
    match model {
        "fraud" => Some(vigil_features::FRAUD_SPEC),
        "sentiment" => Some(vigil_features::SENTIMENT_SPEC),
        _ => None,
    }
}

fn load_champion(
    runtime: &Runtime,
    codec: &Codec,
    cp: &ModelCheckpoint,
    schema_name: &str,
) -> Result<Champion, String> {
    let spec = FeatureSpec::parse(&cp.feature_spec).map_err(|e| e.to_string())?;
    let featurizer =
        Featurizer::new(&spec, codec.schema(schema_name).map_err(|e| e.to_string())?).map_err(|p| p.join("; "))?;
    let onnx = cp.onnx.as_ref().ok_or("the champion carries no ONNX bytes")?;
    let session = runtime.session(onnx, vigil_models::Provider::Cpu, 1).map_err(|e| vigil_runtime::error_chain(&e))?;
    Ok(Champion { version: cp.version, featurizer, session })
}

/// Runs the loop until `shutdown` (call from a blocking thread).
pub fn run(ctx: Context, shutdown: CancellationToken, handle: tokio::runtime::Handle) -> Result<(), String> {
    let cfg = &ctx.config;
    let lc = &cfg.learner;
    let codec = Codec::new();
    let runtime = Runtime::global(None).map_err(|e| vigil_runtime::error_chain(&e))?;
    let mut registry = RegistryState::new();
    let records =
        models::read_all(&cfg.kafka, &cfg.topics.models, &codec).map_err(|e| vigil_runtime::error_chain(&e))?;
    let models_seen = records.len() as i64;
    for r in records {
        apply(&mut registry, r);
    }
    let producer: FutureProducer<client::LogContext> = client::producer_config(&cfg.kafka, "learner")
        .create_with_context(client::LogContext)
        .map_err(|e| e.to_string())?;
    let sign_key = if lc.sign_key.is_empty() {
        None
    } else {
        let text =
            std::fs::read_to_string(&lc.sign_key).map_err(|e| format!("learner.sign-key {}: {e}", lc.sign_key))?;
        Some(vigil_models::checkpoint::signing_key_from_hex(&text)?)
    };

    // Each model: resume from its newest learner checkpoint, or start fresh.
    let mut served: Vec<Served> = Vec::new();
    let mut start: HashMap<(String, i32), i64> = HashMap::new();
    for model in &ctx.models {
        let input = cfg
            .inputs
            .iter()
            .find(|i| &i.model == model && !i.labels.is_empty())
            .ok_or(format!("no input with labels for {model}"))?;
        let schema = codec.schema(&input.schema).map_err(|e| e.to_string())?;
        let latest = registry
            .versions(model)
            .into_iter()
            .filter(|cp| cp.learner_state.is_some())
            .max_by_key(|cp| cp.version)
            .cloned();
        let trainer = match &latest {
            Some(cp) => {
                let state: State = serde_json::from_slice(cp.learner_state.as_deref().unwrap_or_default())
                    .map_err(|e| format!("{model} v{}: learner state: {e}", cp.version))?;
                for o in &cp.offsets {
                    start.insert((o.topic.clone(), o.partition), o.offset);
                }
                tracing::info!(model, version = cp.version, trained = state.counts.trained, "resuming from checkpoint");
                Trainer::resume(model, state, schema, lc)?
            }
            None => {
                let spec_text = registry
                    .champion(model)
                    .map(|c| c.feature_spec.clone())
                    .or_else(|| builtin_spec(model).map(str::to_string))
                    .ok_or(format!("{model}: no champion and no built-in spec to start from"))?;
                let spec = FeatureSpec::parse(&spec_text).map_err(|e| e.to_string())?;
                tracing::info!(model, "starting fresh");
                Trainer::new(model, spec, schema, lc)?
            }
        };
        let mut s = Served {
            model: model.clone(),
            input: input.topic.clone(),
            labels: input.labels.clone(),
            schema_name: input.schema.clone(),
            trainer,
            join: Join::new(lc.join_window),
            champion: None,
            last_checkpoint: Instant::now(),
            last_label: Instant::now(),
            next_version: registry.next_version(model),
            applied: start.iter().filter(|((t, _), _)| t == &input.labels).map(|((_, p), o)| (*p, *o)).collect(),
        };
        refresh_champion(&mut s, &registry, &runtime, &codec);
        served.push(s);
    }
    tracing::info!(models = ?ctx.models, registry_records = models_seen, "learner started");

    // Consumers: inputs and labels (assigned, from the checkpoints' offsets), models (from the
    // beginning, to follow promotions), alerts (from now, for concept drift).
    let consumer: BaseConsumer<client::LogContext> =
        client::consumer_config(&cfg.kafka, "learner", &format!("{}-{}", lc.group_id, now_ms()))
            .create_with_context(client::LogContext)
            .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    let mut input_partitions: HashMap<String, Vec<i32>> = HashMap::new();
    for s in &served {
        for topic in [&s.input, &s.labels] {
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(|e| e.to_string())?;
            for t in md.topics() {
                if t.error().is_some() {
                    return Err(format!("topic {topic} is not available: {:?}", t.error()));
                }
                for p in t.partitions() {
                    let offset =
                        start.get(&(topic.clone(), p.id())).map(|o| Offset::Offset(*o)).unwrap_or(Offset::Beginning);
                    tpl.add_partition_offset(topic, p.id(), offset).map_err(|e| e.to_string())?;
                    if topic == &s.input {
                        input_partitions.entry(topic.clone()).or_default().push(p.id());
                    }
                }
            }
        }
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let follower = models::follower_from(&cfg.kafka, &cfg.topics.models, "learner-models", models_seen)
        .map_err(|e| e.to_string())?;
    let alerts: BaseConsumer<client::LogContext> =
        client::consumer_config(&cfg.kafka, "learner-alerts", &format!("{}-alerts-{}", lc.group_id, now_ms()))
            .create_with_context(client::LogContext)
            .map_err(|e| e.to_string())?;
    let mut atpl = TopicPartitionList::new();
    if let Ok(md) = alerts.fetch_metadata(Some(&cfg.topics.alerts), Duration::from_secs(10)) {
        for t in md.topics() {
            for p in t.partitions() {
                let _ = atpl.add_partition_offset(&cfg.topics.alerts, p.id(), Offset::End);
            }
        }
    }
    let _ = alerts.assign(&atpl);
    ctx.health.set_ready();

    let mut next: HashMap<(String, i32), i64> = start.clone();
    let mut high: HashMap<(String, i32), (i64, Instant)> = HashMap::new();
    let idle_checkpoint = Duration::from_secs(2);
    while !shutdown.is_cancelled() {
        // Models topic: keep the registry (and champions) current.
        while let Some(Ok(m)) = follower.poll(Duration::ZERO) {
            let rec = models::parse(&codec, m.key(), m.payload(), m.offset());
            apply(&mut registry, rec);
            for s in &mut served {
                s.next_version = s.next_version.max(registry.next_version(&s.model));
                refresh_champion(s, &registry, &runtime, &codec);
            }
        }
        // Alerts: concept drift for a served model brings fresh challengers.
        while let Some(Ok(m)) = alerts.poll(Duration::ZERO) {
            let Ok(a) = codec.decode_event::<Alert>(m.payload().unwrap_or(&[])) else { continue };
            if a.kind == AlertKind::ConceptDrift
                && a.state == AlertState::Firing
                && let Some(s) = served.iter_mut().find(|s| a.model.as_deref() == Some(s.model.as_str()))
            {
                s.trainer.state.learner.add_fresh_challengers();
                ctx.metrics.challengers_added(&s.model, &a.message);
            }
        }

        let mut got = 0;
        while got < 2000 {
            let Some(msg) = consumer.poll(if got == 0 { Duration::from_millis(100) } else { Duration::ZERO }) else {
                break;
            };
            let m = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "consume error");
                    break;
                }
            };
            got += 1;
            next.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
            let Some(s) = served.iter_mut().find(|s| s.input == m.topic() || s.labels == m.topic()) else { continue };
            if m.topic() == s.input {
                let payload = m.payload().unwrap_or(&[]);
                let names: Vec<&str> =
                    std::iter::once("event_id").chain(s.trainer.fields().iter().map(String::as_str)).collect();
                let plan = codec.plan(payload, &s.schema_name, &names, 0x1ea7);
                let (plan, body) = match plan {
                    Ok(Some(pb)) => pb,
                    _ => {
                        s.trainer.state.counts.bad_events += 1;
                        ctx.metrics.bad_event(&s.model);
                        continue;
                    }
                };
                let mut fields_buf = Vec::with_capacity(names.len());
                if plan.read(body, &mut fields_buf).is_err() {
                    s.trainer.state.counts.bad_events += 1;
                    ctx.metrics.bad_event(&s.model);
                    continue;
                }
                let Field::Str(id) = fields_buf[0] else { continue };
                let raw = match s.trainer.featurise(&fields_buf[1..]) {
                    Ok(r) => r,
                    Err(_) => {
                        s.trainer.state.counts.bad_events += 1;
                        ctx.metrics.bad_event(&s.model);
                        continue;
                    }
                };
                let champion = s.champion.as_ref().and_then(|c| champion_row(c, &codec, &s.schema_name, payload));
                s.join.event(
                    id.to_string(),
                    Event { raw, champion },
                    Origin { partition: m.partition(), offset: m.offset() },
                );
            } else {
                s.last_label = Instant::now();
                match codec.decode_event::<Label>(m.payload().unwrap_or(&[])) {
                    Ok(l) if l.label.is_finite() && (0.0..=1.0).contains(&l.label) => {
                        s.join.label(l.event_id, l.label, Origin { partition: m.partition(), offset: m.offset() });
                    }
                    Ok(l) => malformed(
                        &handle,
                        &producer,
                        cfg,
                        s,
                        &Input::from_message(&m),
                        "label-value",
                        &format!("label {} is not in [0, 1]", l.label),
                        &ctx.metrics,
                    ),
                    Err(e) => malformed(
                        &handle,
                        &producer,
                        cfg,
                        s,
                        &Input::from_message(&m),
                        e.kind(),
                        &e.to_string(),
                        &ctx.metrics,
                    ),
                }
                // A label that never waits is settled as soon as nothing waits before it.
                if s.join.waiting() == 0 {
                    s.applied.insert(m.partition(), m.offset() + 1);
                }
            }
        }

        for s in &mut served {
            if s.join.waiting() > 0 {
                let caught_up = caught_up(
                    &consumer,
                    &s.input,
                    input_partitions.get(&s.input).map(Vec::as_slice).unwrap_or(&[]),
                    &next,
                    &mut high,
                );
                for (j, origin) in s.join.drain(caught_up) {
                    s.trainer.state.counts.labels += 1;
                    match j {
                        Joined::Ready(e, y) => {
                            let cp = match (&mut s.champion, &e.champion) {
                                (Some(c), Some(row)) => c.score(row),
                                _ => None,
                            };
                            s.trainer.learn(&e.raw, y, cp);
                            ctx.metrics.trained(&s.model);
                        }
                        Joined::Late(id) => {
                            s.trainer.state.counts.late += 1;
                            label_dead(
                                &handle,
                                &producer,
                                cfg,
                                &id,
                                "late-label",
                                "the event left the join window before its label came",
                                &ctx.metrics,
                                &s.model,
                            );
                        }
                        Joined::Unknown(id) => {
                            s.trainer.state.counts.unknown += 1;
                            label_dead(
                                &handle,
                                &producer,
                                cfg,
                                &id,
                                "unknown-event",
                                "no event with this id was seen",
                                &ctx.metrics,
                                &s.model,
                            );
                        }
                    }
                    s.applied.insert(origin.partition, origin.offset + 1);
                    // Every N applied labels exactly, so that checkpoints fall at the same examples
                    // whatever the batching of the reads.
                    if s.trainer.state.since_checkpoint >= lc.checkpoint_every
                        && s.trainer.state.counts.trained >= lc.min_examples
                    {
                        checkpoint(
                            &handle,
                            &producer,
                            cfg,
                            s,
                            &next,
                            &input_partitions,
                            &codec,
                            sign_key.as_ref(),
                            &runtime,
                            &ctx.metrics,
                        )?;
                    }
                }
            }
            // And every T ms, and when the label stream went quiet.
            let t = &s.trainer.state;
            let due = (t.since_checkpoint > 0
                && s.last_checkpoint.elapsed() >= Duration::from_millis(lc.checkpoint_interval_ms))
                || (t.since_checkpoint > 0
                    && got == 0
                    && s.join.waiting() == 0
                    && s.last_label.elapsed() >= idle_checkpoint);
            if due && t.counts.trained >= lc.min_examples {
                checkpoint(
                    &handle,
                    &producer,
                    cfg,
                    s,
                    &next,
                    &input_partitions,
                    &codec,
                    sign_key.as_ref(),
                    &runtime,
                    &ctx.metrics,
                )?;
            }
            ctx.metrics.observe(
                &s.model,
                s.join.waiting(),
                s.join.buffered(),
                s.join.evictions,
                s.trainer.state.learner.pool.candidates.len(),
                &s.trainer.state.served,
            );
        }
    }
    Ok(())
}

fn apply(registry: &mut RegistryState, r: ModelRecord) {
    match r {
        ModelRecord::Checkpoint(cp) => registry.apply(*cp),
        ModelRecord::Tombstone { model, version } => registry.remove(&model, version),
        ModelRecord::Undecodable { offset, error } => tracing::warn!(offset, error, "skipping a models-topic record"),
    }
}

fn refresh_champion(s: &mut Served, registry: &RegistryState, runtime: &Runtime, codec: &Codec) {
    let want = registry.champion(&s.model);
    if want.map(|c| c.version) == s.champion.as_ref().map(|c| c.version) {
        return;
    }
    s.trainer.set_champion(want.map(|c| c.version));
    s.champion = want.and_then(|cp| match load_champion(runtime, codec, cp, &s.schema_name) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(model = %s.model, version = cp.version, error = e, "cannot evaluate the champion");
            None
        }
    });
}

fn champion_row(c: &Champion, codec: &Codec, schema_name: &str, payload: &[u8]) -> Option<Row> {
    let names: Vec<&str> = c.featurizer.fields().iter().map(String::as_str).collect();
    let (plan, body) = codec.plan(payload, schema_name, &names, 0xc4a3 ^ c.version as u64).ok()??;
    let mut f = Vec::new();
    plan.read(body, &mut f).ok()?;
    if c.featurizer.spec().is_text() {
        let n = c.featurizer.text_len();
        let (mut i, mut v) = (vec![0i64; n], vec![0f32; n]);
        c.featurizer.text_from(&f, &mut i, &mut v).ok()?;
        Some(Row::Text(i, v))
    } else {
        let mut x = vec![0f32; c.featurizer.width()];
        c.featurizer.dense_from(&f, &mut x).ok()?;
        Some(Row::Dense(x.into_iter().map(f64::from).collect()))
    }
}

/// Whether every partition of the input topic has been read to its end (high watermarks cached for
/// 250 ms).
fn caught_up(
    consumer: &BaseConsumer<client::LogContext>,
    topic: &str,
    partitions: &[i32],
    next: &HashMap<(String, i32), i64>,
    high: &mut HashMap<(String, i32), (i64, Instant)>,
) -> bool {
    partitions.iter().all(|p| {
        let key = (topic.to_string(), *p);
        let h = match high.get(&key) {
            Some((h, at)) if at.elapsed() < Duration::from_millis(250) => *h,
            _ => match consumer.fetch_watermarks(topic, *p, Duration::from_secs(5)) {
                Ok((_, h)) => {
                    high.insert(key.clone(), (h, Instant::now()));
                    h
                }
                Err(_) => return false,
            },
        };
        next.get(&key).copied().unwrap_or(0) >= h
    })
}

#[allow(clippy::too_many_arguments)]
fn malformed(
    handle: &tokio::runtime::Handle,
    producer: &FutureProducer<client::LogContext>,
    cfg: &Config,
    s: &mut Served,
    input: &Input,
    kind: &'static str,
    error: &str,
    metrics: &Metrics,
) {
    s.trainer.state.counts.malformed += 1;
    s.trainer.state.counts.labels += 1;
    metrics.label_problem(&s.model, kind);
    let out = dlq::dead_letter(
        &cfg.topics.dlq,
        "learner",
        input,
        &Reason { stage: "label", kind, error: error.to_string() },
        now_ms(),
    );
    send(handle, producer, &out);
}

#[allow(clippy::too_many_arguments)]
fn label_dead(
    handle: &tokio::runtime::Handle,
    producer: &FutureProducer<client::LogContext>,
    cfg: &Config,
    id: &str,
    kind: &'static str,
    error: &str,
    metrics: &Metrics,
    model: &str,
) {
    metrics.label_problem(model, kind);
    let input = Input {
        topic: String::new(),
        partition: -1,
        offset: -1,
        key: Some(id.as_bytes().to_vec()),
        payload: Some(id.as_bytes().to_vec()),
        headers: Vec::new(),
        timestamp: None,
    };
    let out = dlq::dead_letter(
        &cfg.topics.dlq,
        "learner",
        &input,
        &Reason { stage: "join", kind, error: error.to_string() },
        now_ms(),
    );
    send(handle, producer, &out);
}

fn send(handle: &tokio::runtime::Handle, producer: &FutureProducer<client::LogContext>, out: &vigil_kafka::Output) {
    let mut headers = rdkafka::message::OwnedHeaders::new();
    for (k, v) in &out.headers {
        headers = headers.insert(rdkafka::message::Header { key: k, value: Some(&v[..]) });
    }
    let mut record = FutureRecord::<[u8], [u8]>::to(&out.topic).payload(&out.payload[..]).headers(headers);
    if let Some(k) = &out.key {
        record = record.key(&k[..]);
    }
    if let Err((e, _)) = handle.block_on(producer.send(record, Duration::from_secs(30))) {
        tracing::warn!(error = %e, "cannot dead-letter a label");
    }
}

#[allow(clippy::too_many_arguments)]
fn checkpoint(
    handle: &tokio::runtime::Handle,
    producer: &FutureProducer<client::LogContext>,
    cfg: &Config,
    s: &mut Served,
    next: &HashMap<(String, i32), i64>,
    input_partitions: &HashMap<String, Vec<i32>>,
    codec: &Codec,
    key: Option<&ed25519_dalek::SigningKey>,
    runtime: &Runtime,
    metrics: &Metrics,
) -> Result<(), String> {
    // Resume points: the input from its oldest event still waiting for a label, the labels from
    // where they were read to.
    let waiting = s.join.oldest_waiting();
    let mut offsets = Vec::new();
    for p in input_partitions.get(&s.input).cloned().unwrap_or_default() {
        let o = waiting.get(&p).copied().or_else(|| next.get(&(s.input.clone(), p)).copied()).unwrap_or(0);
        offsets.push(TopicOffset { topic: s.input.clone(), partition: p, offset: o });
    }
    for (p, o) in &s.applied {
        offsets.push(TopicOffset { topic: s.labels.clone(), partition: *p, offset: *o });
    }
    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let version = s.next_version;
    let parent = s.champion.as_ref().map(|c| c.version);
    s.trainer.state.since_checkpoint = 0;
    let mut cp = s.trainer.checkpoint(version, parent, now_ms(), offsets)?;
    if let Some(k) = key {
        vigil_models::checkpoint::sign(&mut cp, k);
    }
    let producer_models = producer;
    handle
        .block_on(models::publish(producer_models, codec, &cfg.topics.models, &cp))
        .map_err(|e| vigil_runtime::error_chain(&e))?;
    s.next_version = version + 1;
    s.last_checkpoint = Instant::now();
    let (promote, why) = s.trainer.should_promote(&cfg.learner);
    metrics.checkpoint(&s.model, version, promote, &why);
    if promote {
        let promoted =
            vigil_models::registry::transition(&cp, CheckpointStatus::Promoted, &format!("learner: {why}"), now_ms());
        handle
            .block_on(models::publish(producer_models, codec, &cfg.topics.models, &promoted))
            .map_err(|e| vigil_runtime::error_chain(&e))?;
        let alert = Alert {
            alert_id: format!("model-promoted-{}-{version}-{}", s.model, now_ms()),
            time: now_ms(),
            kind: AlertKind::ModelPromoted,
            state: AlertState::Firing,
            severity: Severity::Info,
            model: Some(s.model.clone()),
            model_version: Some(version),
            feature: None,
            detector: Some("learner".into()),
            statistic: Some(cfg.learner.metric.clone()),
            value: Some(crate::trainer::score(&s.trainer.state.served, &cfg.learner.metric)),
            threshold: None,
            p_value: None,
            window_start: None,
            window_end: None,
            message: format!("{} v{version} promoted: {why}", s.model),
            dedup_key: format!("model-promoted/{}/{version}", s.model),
        };
        if let Ok(payload) = codec.encode_event(&alert) {
            let record = FutureRecord::to(&cfg.topics.alerts).key(alert.dedup_key.as_bytes()).payload(&payload[..]);
            let _ = handle.block_on(producer_models.send(record, Duration::from_secs(30)));
        }
        s.trainer.set_champion(Some(version));
        s.champion = load_champion(runtime, codec, &promoted, &s.schema_name).ok();
        s.trainer.state.learner.anchor_to_best();
    }
    Ok(())
}
