//! The scorer's handler in the consume loop: decode → featurise with the spec of the version in use
//! → micro-batch (an Arrow record batch per model and variant) → inference on the pool → `Score`
//! records keyed by event id. Records that cannot be decoded or featurised become dead letters;
//! every other record gets exactly one champion score, and, for the configured share, one challenger
//! score.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use vigil_events::{Codec, CodecError, Encoding, Field, RecordReader, ScoreRef, Variant, Wanted};
use vigil_features::batch::BatchBuilder;
use vigil_features::text::hash_str;
use vigil_kafka::dlq::Reason;
use vigil_kafka::{Handler, HandlerError, Input, Outcome, Output, now_ms};

use crate::book::{Book, Served, Slot};
use crate::pool::Pool;
use crate::telemetry::{Metrics, ModelMetrics};

/// How one input topic is scored.
#[derive(Debug, Clone)]
pub struct Route {
    /// The model.
    pub model: String,
    /// Reader schema name.
    pub schema_name: String,
    /// Encoding.
    pub encoding: Encoding,
    /// The record field holding the event id.
    pub id_field: String,
    /// Records consumed from the topic (taken from the metrics on first use).
    pub events: Option<prometheus_client::metrics::counter::Counter>,
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
    /// Field layouts per input topic, with the (champion, challenger) versions they were made for.
    pub layouts: Layouts,
    /// Each model's counters, taken once.
    pub models: HashMap<String, ModelMetrics>,
    /// The schema registry, when one is configured: writer schemas of records framed with ids the
    /// codec does not know yet are fetched from it (once each; a failure is retried after 10 s).
    pub registry: Option<Arc<vigil_kafka::schema_registry::Registry>>,
}

/// One model version's rows in this batch.
struct Rows {
    served: Arc<Served>,
    builder: BatchBuilder,
    inputs: Vec<usize>,
}

/// Field layouts per input topic, with the (champion, challenger) versions they were made for.
pub type Layouts = HashMap<String, ((i64, Option<i64>), Arc<Layout>)>;

/// The fields a slot's featurisers read, as one reader: the event id first, then the champion's
/// and the challenger's fields, each once.
pub struct Layout {
    reader: RecordReader,
    champion: Vec<usize>,
    challenger: Vec<usize>,
}

impl Layout {
    fn new(codec: &Codec, route: &Route, slot: &Slot) -> Result<Layout, CodecError> {
        let mut names: Vec<String> = vec![route.id_field.clone()];
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
        let reader = RecordReader::new(codec, &route.schema_name, route.encoding, Wanted::new(&names))?;
        Ok(Layout { reader, champion, challenger })
    }
}

impl Rows {
    fn new(served: Arc<Served>, capacity: usize) -> Rows {
        let builder = served.featurizer.batch(capacity);
        Rows { served, builder, inputs: Vec::new() }
    }

    /// Adds a row from the layout's fields (`map` picks this featuriser's fields out of them).
    fn push(
        &mut self,
        input: usize,
        id: &str,
        fields: &[Field<'_>],
        map: &[usize],
    ) -> Result<(), vigil_features::FeatureError> {
        let mine: Vec<Field<'_>> = map.iter().map(|i| fields[*i]).collect();
        self.served.featurizer.push(&mut self.builder, id, &mine)?;
        self.inputs.push(input);
        Ok(())
    }
}

/// Whether `event_id` falls in the challenger's share (stable per event).
pub fn in_share(event_id: &str, share: f64) -> bool {
    share > 0.0 && (hash_str(event_id, 7) % 1_000_000) < (share * 1_000_000.0) as u64
}

/// The rows of one batch, grouped by model version, and the slots they were taken from.
#[derive(Default)]
struct Groups {
    rows: HashMap<(String, i64), Rows>,
    slots: HashMap<String, Arc<Slot>>,
}

impl Groups {
    fn rows(&mut self, served: &Arc<Served>, capacity: usize) -> &mut Rows {
        self.rows.entry(served.key.clone()).or_insert_with(|| Rows::new(served.clone(), capacity))
    }
}

impl Handler for Scorer {
    async fn handle(&mut self, batch: &[Input]) -> Result<Vec<Outcome>, HandlerError> {
        self.metrics.batch(batch.len());
        self.fetch_writer_schemas(batch).await;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut ids: Vec<String> = vec![String::new(); batch.len()];
        let mut groups = Groups::default();
        for (i, input) in batch.iter().enumerate() {
            match self.featurise(i, input, batch.len(), &mut groups)? {
                Ok(id) => ids[i] = id,
                Err(reason) => outcomes[i] = Some(self.dead(reason)),
            }
        }
        let Groups { rows: groups, slots } = groups;

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
            let (served, variant, inputs, probabilities, seconds) = r?;
            if probabilities.rows() != inputs.len() {
                return Err(HandlerError(format!("{} rows gave {} scores", inputs.len(), probabilities.rows())));
            }
            let model = self.model_metrics(&served.key.0);
            model.inference(seconds);
            model.scored(variant, inputs.len() as u64);
            // Every class's probability goes out when there are more than two.
            let mut classes: Vec<f64> = Vec::new();
            for (r, i) in inputs.into_iter().enumerate() {
                let input = &batch[i];
                let p = f64::from(probabilities.positive(r));
                if probabilities.classes > 2 {
                    classes.clear();
                    classes.extend(probabilities.row(r).iter().map(|v| f64::from(*v)));
                }
                let event_time = input.timestamp.unwrap_or(now);
                let score = ScoreRef {
                    event_id: &ids[i],
                    model: &served.key.0,
                    model_version: served.key.1,
                    variant,
                    score: p,
                    scores: &classes,
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

impl Scorer {
    /// Fetches the writer schemas of the batch's Confluent-framed records whose ids the codec does
    /// not know (a record whose schema cannot be fetched is then dead-lettered with its unknown id).
    async fn fetch_writer_schemas(&mut self, batch: &[Input]) {
        let Some(registry) = &self.registry else { return };
        for payload in batch.iter().filter_map(|i| i.payload.as_deref()) {
            registry.resolve(&self.codec, payload).await;
        }
    }

    /// Decodes one input and adds its rows to the batch's groups; returns its event id, or why it is
    /// a dead letter. An `Err` (no champion for a model that had one) stops the loop.
    fn featurise(
        &mut self,
        i: usize,
        input: &Input,
        capacity: usize,
        groups: &mut Groups,
    ) -> Result<Result<String, Reason>, HandlerError> {
        let Some(route) = self.routes.get_mut(&input.topic) else {
            return Ok(Err(Reason {
                stage: "route",
                kind: "unrouted-topic",
                error: format!("no input configured for {}", input.topic),
            }));
        };
        route.events.get_or_insert_with(|| self.metrics.topic(&input.topic)).inc();
        let Some(payload) = input.payload.as_deref() else {
            return Ok(Err(Reason { stage: "decode", kind: "tombstone", error: "the record has no value".into() }));
        };
        let slot = match groups.slots.get(&route.model) {
            Some(s) => s.clone(),
            None => {
                let s = self.book.get(&route.model).ok_or_else(|| {
                    HandlerError(format!("no champion for model {} (it was served before)", route.model))
                })?;
                groups.slots.insert(route.model.clone(), s.clone());
                s
            }
        };
        let layout = match self.layout(&input.topic, &slot) {
            Ok(l) => l,
            Err(e) => return Ok(Err(Reason { stage: "decode", kind: e.kind(), error: e.to_string() })),
        };
        let share = self.challenger_share;
        let read = layout.reader.read(&self.codec, payload, |fields| {
            let id = match fields[0] {
                Field::Str(s) => s.to_string(),
                Field::Int(i) => i.to_string(),
                _ => format!("{}/{}/{}", input.topic, input.partition, input.offset),
            };
            let champion = groups.rows(&slot.champion, capacity);
            if let Err(e) = champion.push(i, &id, fields, &layout.champion) {
                return Err(Reason { stage: "featurise", kind: e.kind(), error: e.to_string() });
            }
            if let Some(ch) = slot.challenger.as_ref().filter(|_| in_share(&id, share)) {
                // A record the challenger's spec cannot featurise only misses its shadow score.
                let _ = groups.rows(ch, capacity).push(i, &id, fields, &layout.challenger);
            }
            Ok(id)
        });
        Ok(match read {
            Ok(r) => r,
            Err(e) => Err(Reason { stage: "decode", kind: e.kind(), error: e.to_string() }),
        })
    }

    /// The counters of `model`, taken once.
    fn model_metrics(&mut self, model: &str) -> &ModelMetrics {
        if !self.models.contains_key(model) {
            self.models.insert(model.to_string(), self.metrics.model(model));
        }
        &self.models[model]
    }

    /// The field layout of an input topic's current slot (cached until its versions change).
    fn layout(&mut self, topic: &str, slot: &Slot) -> Result<Arc<Layout>, CodecError> {
        let versions = (slot.champion.key.1, slot.challenger.as_ref().map(|c| c.key.1));
        if let Some((v, l)) = self.layouts.get(topic)
            && *v == versions
        {
            return Ok(l.clone());
        }
        let route = self.routes.get(topic).ok_or_else(|| CodecError::UnknownSchema(topic.to_string()))?;
        let l = Arc::new(Layout::new(&self.codec, route, slot)?);
        self.layouts.insert(topic.to_string(), (versions, l.clone()));
        Ok(l)
    }

    fn dead(&self, reason: Reason) -> Outcome {
        self.metrics.dead_letter(reason.stage, reason.kind, &reason.error);
        Outcome::DeadLetter(reason)
    }
}
