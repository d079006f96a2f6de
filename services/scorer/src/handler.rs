//! The scorer's handler in the consume loop: decode → featurise with the spec of the version in use
//! → micro-batch (an Arrow record batch per model and variant) → inference on the pool → `Score`
//! records keyed by event id. Records that cannot be decoded or featurised become dead letters;
//! every other record gets exactly one champion score, and, for the configured share, one challenger
//! score.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use apache_avro::Schema;
use vigil_events::json::from_json;
use vigil_events::{AvroValue, Codec, CodecError, ScoreRef, Variant};
use vigil_features::Field;
use vigil_features::batch::BatchBuilder;
use vigil_features::text::hash_str;
use vigil_kafka::dlq::Reason;
use vigil_kafka::{Handler, HandlerError, Input, Outcome, Output, now_ms};
use vigil_runtime::config::InputFormat;

use crate::book::{Book, Served, Slot};
use crate::events::Metrics;
use crate::pool::Pool;

/// How one input topic is scored.
#[derive(Debug, Clone)]
pub struct Route {
    /// The model.
    pub model: String,
    /// Reader schema name.
    pub schema_name: String,
    /// Reader schema.
    pub schema: &'static Schema,
    /// Encoding.
    pub format: InputFormat,
}

/// The handler.
pub struct Scorer {
    /// Input topic → route.
    pub routes: HashMap<String, Route>,
    /// Codec.
    pub codec: Arc<Codec>,
    /// Served models.
    pub book: Arc<Book>,
    /// Inference workers.
    pub pool: Arc<Pool>,
    /// Where scores go.
    pub scores_topic: String,
    /// Share of events the challenger scores.
    pub challenger_share: f64,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Field layouts per model, with the (champion, challenger) versions they were made for.
    pub layouts: Layouts,
}

/// One model version's rows in this batch.
struct Rows {
    served: Arc<Served>,
    builder: BatchBuilder,
    inputs: Vec<usize>,
}

/// Field layouts per model, with the (champion, challenger) versions they were made for.
pub type Layouts = HashMap<String, ((i64, Option<i64>), Arc<Layout>)>;

/// The fields a slot's featurisers read, as one list for the fast decoder.
pub struct Layout {
    names: Vec<String>,
    key: u64,
    event_id: usize,
    champion: Vec<usize>,
    challenger: Vec<usize>,
}

impl Layout {
    fn new(slot: &Slot) -> Layout {
        let mut names: Vec<String> = vec!["event_id".to_string()];
        let mut map = |fields: &[String]| -> Vec<usize> {
            fields
                .iter()
                .map(|f| match names.iter().position(|n| n == f) {
                    Some(i) => i,
                    None => {
                        names.push(f.clone());
                        names.len() - 1
                    }
                })
                .collect()
        };
        let champion = map(slot.champion.featurizer.fields());
        let challenger = slot.challenger.as_ref().map(|c| map(c.featurizer.fields())).unwrap_or_default();
        let key = hash_str(&names.join("\u{1}"), 11);
        Layout { names, key, event_id: 0, champion, challenger }
    }
}

impl Rows {
    fn new(served: Arc<Served>, capacity: usize) -> Rows {
        let builder = if served.featurizer.spec().is_text() {
            BatchBuilder::text(served.featurizer.text_len(), capacity)
        } else {
            BatchBuilder::dense(served.featurizer.width(), capacity)
        };
        Rows { served, builder, inputs: Vec::new() }
    }

    /// Adds a row from fast-decoded fields (`map` picks this featuriser's fields out of them).
    fn push_fields(
        &mut self,
        input: usize,
        id: &str,
        fields: &[Field<'_>],
        map: &[usize],
    ) -> Result<(), vigil_features::FeatureError> {
        let mine: Vec<Field<'_>> = map.iter().map(|i| fields[*i]).collect();
        let f = &self.served.featurizer;
        if f.spec().is_text() {
            self.builder.push_text(id, |i, v| f.text_from(&mine, i, v))?;
        } else {
            self.builder.push_dense(id, |row| f.dense_from(&mine, row))?;
        }
        self.inputs.push(input);
        Ok(())
    }

    fn push(&mut self, input: usize, id: &str, record: &AvroValue) -> Result<(), vigil_features::FeatureError> {
        let f = &self.served.featurizer;
        if f.spec().is_text() {
            self.builder.push_text(id, |i, v| f.text(record, i, v))?;
        } else {
            self.builder.push_dense(id, |row| f.dense(record, row))?;
        }
        self.inputs.push(input);
        Ok(())
    }
}

/// Whether `event_id` falls in the challenger's share (stable per event).
pub fn in_share(event_id: &str, share: f64) -> bool {
    share > 0.0 && (hash_str(event_id, 7) % 1_000_000) < (share * 1_000_000.0) as u64
}

fn decode(codec: &Codec, route: &Route, payload: &[u8]) -> Result<AvroValue, Reason> {
    let dead = |e: CodecError| Reason { stage: "decode", kind: e.kind(), error: e.to_string() };
    match route.format {
        InputFormat::Avro => codec.decode(payload, &route.schema_name).map_err(dead),
        InputFormat::Json => {
            let json: serde_json::Value = serde_json::from_slice(payload).map_err(|e| Reason {
                stage: "decode",
                kind: "json",
                error: format!("not a JSON object: {e}"),
            })?;
            from_json(&json, route.schema).map_err(dead)
        }
    }
}

fn event_id(record: &AvroValue, input: &Input) -> String {
    if let AvroValue::Record(fields) = record {
        for (k, v) in fields {
            if k == "event_id" {
                match v {
                    AvroValue::String(s) => return s.clone(),
                    AvroValue::Union(_, inner) => {
                        if let AvroValue::String(s) = inner.as_ref() {
                            return s.clone();
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    format!("{}/{}/{}", input.topic, input.partition, input.offset)
}

impl Handler for Scorer {
    async fn handle(&mut self, batch: &[Input]) -> Result<Vec<Outcome>, HandlerError> {
        self.metrics.batch(batch.len());
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut ids: Vec<String> = vec![String::new(); batch.len()];
        let mut groups: HashMap<(String, i64), Rows> = HashMap::new();
        let mut slots: HashMap<String, Arc<Slot>> = HashMap::new();
        for (i, input) in batch.iter().enumerate() {
            let Some(route) = self.routes.get(&input.topic) else {
                outcomes[i] = Some(self.dead(Reason {
                    stage: "route",
                    kind: "unrouted-topic",
                    error: format!("no input configured for {}", input.topic),
                }));
                continue;
            };
            self.metrics.consumed(&input.topic, 1);
            let Some(payload) = input.payload.as_deref() else {
                outcomes[i] = Some(self.dead(Reason {
                    stage: "decode",
                    kind: "tombstone",
                    error: "the record has no value".into(),
                }));
                continue;
            };
            let slot = match slots.get(&route.model) {
                Some(s) => s.clone(),
                None => match self.book.get(&route.model) {
                    Some(s) => {
                        slots.insert(route.model.clone(), s.clone());
                        s
                    }
                    None => {
                        return Err(HandlerError(format!(
                            "no champion for model {} (it was served before)",
                            route.model
                        )));
                    }
                },
            };
            let shadow = slot.challenger.clone().filter(|_| self.challenger_share > 0.0);
            // The fast path: read only the wanted fields straight from the Avro body.
            if route.format == InputFormat::Avro {
                let layout = layout(&mut self.layouts, &route.model, &slot);
                let names: Vec<&str> = layout.names.iter().map(String::as_str).collect();
                match self.codec.plan(payload, &route.schema_name, &names, layout.key) {
                    Err(e) => {
                        outcomes[i] = Some(self.dead(Reason { stage: "decode", kind: e.kind(), error: e.to_string() }));
                        continue;
                    }
                    Ok(Some((plan, body))) => {
                        let mut fields = Vec::with_capacity(names.len());
                        if let Err(e) = plan.read(body, &mut fields) {
                            outcomes[i] =
                                Some(self.dead(Reason { stage: "decode", kind: e.kind(), error: e.to_string() }));
                            continue;
                        }
                        let id = match fields[layout.event_id] {
                            Field::Str(s) => s.to_string(),
                            _ => format!("{}/{}/{}", input.topic, input.partition, input.offset),
                        };
                        let champion = groups
                            .entry(slot.champion.key.clone())
                            .or_insert_with(|| Rows::new(slot.champion.clone(), batch.len()));
                        if let Err(e) = champion.push_fields(i, &id, &fields, &layout.champion) {
                            outcomes[i] =
                                Some(self.dead(Reason { stage: "featurise", kind: e.kind(), error: e.to_string() }));
                            continue;
                        }
                        if let Some(ch) = shadow.as_ref().filter(|_| in_share(&id, self.challenger_share)) {
                            let rows =
                                groups.entry(ch.key.clone()).or_insert_with(|| Rows::new(ch.clone(), batch.len()));
                            // A record the challenger's spec cannot featurise only misses its shadow score.
                            let _ = rows.push_fields(i, &id, &fields, &layout.challenger);
                        }
                        ids[i] = id;
                        continue;
                    }
                    Ok(None) => {}
                }
            }
            let record = match decode(&self.codec, route, payload) {
                Ok(r) => r,
                Err(reason) => {
                    outcomes[i] = Some(self.dead(reason));
                    continue;
                }
            };
            let id = event_id(&record, input);
            let champion = groups
                .entry(slot.champion.key.clone())
                .or_insert_with(|| Rows::new(slot.champion.clone(), batch.len()));
            if let Err(e) = champion.push(i, &id, &record) {
                outcomes[i] = Some(self.dead(Reason { stage: "featurise", kind: e.kind(), error: e.to_string() }));
                continue;
            }
            if let Some(ch) = shadow.as_ref().filter(|_| in_share(&id, self.challenger_share)) {
                let rows = groups.entry(ch.key.clone()).or_insert_with(|| Rows::new(ch.clone(), batch.len()));
                let _ = rows.push(i, &id, &record);
            }
            ids[i] = id;
        }

        // Inference: every model version's batch is queued on the pool first, so they run at once.
        let mut pending = Vec::new();
        for (key, rows) in groups {
            let variant = slots
                .get(&key.0)
                .map(|s| if s.champion.key == key { Variant::Champion } else { Variant::Challenger })
                .unwrap_or(Variant::Champion);
            let started = Instant::now();
            let Rows { served, builder, inputs } = rows;
            let record_batch = builder.finish().map_err(|e| HandlerError(format!("building a batch: {e}")))?;
            let rx = self
                .pool
                .submit(&key, record_batch)
                .await
                .map_err(|e| HandlerError(format!("{} v{}: {e}", key.0, key.1)))?;
            pending.push((served, variant, inputs, rx, started));
        }
        let mut results = Vec::with_capacity(pending.len());
        for (served, variant, inputs, rx, started) in pending {
            let scores = rx
                .await
                .map_err(|_| HandlerError("an inference worker stopped".into()))?
                .map_err(|e| HandlerError(format!("{} v{}: {e}", served.key.0, served.key.1)))?;
            results.push(Ok::<_, HandlerError>((served, variant, inputs, scores, started.elapsed().as_secs_f64())));
        }
        let now = now_ms();
        let mut produced: Vec<Vec<Output>> = vec![Vec::new(); batch.len()];
        for r in results {
            let (served, variant, inputs, scores, seconds) = r?;
            if scores.len() != inputs.len() {
                return Err(HandlerError(format!("{} rows gave {} scores", inputs.len(), scores.len())));
            }
            self.metrics.inference(&served.key.0, seconds);
            let variant_name = if variant == Variant::Champion { "champion" } else { "challenger" };
            self.metrics.scored(&served.key.0, variant_name, inputs.len() as u64);
            for (i, p) in inputs.into_iter().zip(scores) {
                let input = &batch[i];
                let p = f64::from(p);
                let event_time = input.timestamp.unwrap_or(now);
                let score = ScoreRef {
                    event_id: &ids[i],
                    model: &served.key.0,
                    model_version: served.key.1,
                    variant,
                    score: p,
                    scores: &[],
                    predicted_label: if p >= served.threshold { 1.0 } else { 0.0 },
                    event_time,
                    scored_at: now,
                    source_topic: &input.topic,
                    source_partition: input.partition,
                    source_offset: input.offset,
                };
                if variant == Variant::Champion {
                    self.metrics.latency((now - event_time).max(0) as f64 / 1000.0);
                }
                // Written field by field, from borrowed parts (the generic serializer was an eighth of
                // the scorer's CPU).
                let mut payload = Vec::with_capacity(48 + ids[i].len() + served.key.0.len() + input.topic.len());
                self.codec
                    .encode_score_into(&score, &mut payload)
                    .map_err(|e| HandlerError(format!("encoding a score: {e}")))?;
                let output = Output {
                    topic: self.scores_topic.clone(),
                    key: Some(ids[i].as_bytes().to_vec()),
                    payload,
                    headers: Vec::new(),
                    timestamp: None,
                };
                // Champion first, then challenger, whatever order the batches finished in.
                if variant == Variant::Champion {
                    produced[i].insert(0, output);
                } else {
                    produced[i].push(output);
                }
            }
        }
        Ok(outcomes.into_iter().zip(produced).map(|(o, p)| o.unwrap_or(Outcome::Produce(p))).collect())
    }
}

/// The field layout of a model's current slot (cached until its versions change).
fn layout(layouts: &mut Layouts, model: &str, slot: &Slot) -> Arc<Layout> {
    let versions = (slot.champion.key.1, slot.challenger.as_ref().map(|c| c.key.1));
    if let Some((v, l)) = layouts.get(model)
        && *v == versions
    {
        return l.clone();
    }
    let l = Arc::new(Layout::new(slot));
    layouts.insert(model.to_string(), (versions, l.clone()));
    l
}

impl Scorer {
    fn dead(&self, reason: Reason) -> Outcome {
        self.metrics.dead_letter(reason.stage, reason.kind, &reason.error);
        Outcome::DeadLetter(reason)
    }
}
