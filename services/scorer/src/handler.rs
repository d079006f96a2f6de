//! The scorer's handler in the consume loop: decode → featurise with the spec of the version in use
//! → micro-batch (an Arrow record batch per model and variant) → inference on the pool → `Score`
//! records keyed by event id (or by their input's key: `scores-key`). Records that cannot be
//! decoded or featurised become dead letters; every other record gets exactly one champion score,
//! and, for the configured share, one challenger score. While an A/B test runs for the model, the
//! event's arm (its key field's value, hashed with the experiment id) picks the version that scores
//! it, and that score — the one acted on — names the experiment and the arm; no shadow scores are
//! made meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use vigil_events::{Codec, CodecError, Encoding, Field, RecordReader, ScoreRef, Variant, Wanted};
use vigil_features::batch::BatchBuilder;
use vigil_features::text::hash_str;
use vigil_kafka::dlq::Reason;
use vigil_kafka::{Handler, HandlerError, Input, Outcome, Output, now_ms};
use vigil_models::Probabilities;

use crate::book::{Ab, Book, Served, Slot};
use crate::config::ScoresKey;
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
    /// What a score's Kafka key is.
    pub scores_key: ScoresKey,
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

/// Field layouts per input topic, with the versions (and the A/B key field) they were made for.
pub type Layouts = HashMap<String, (LayoutKey, Arc<Layout>)>;

/// What a layout was made for: the first and second version, and an A/B test's key field.
pub type LayoutKey = (i64, Option<i64>, Option<String>);

/// The fields a slot's featurisers read, as one reader: the event id first, then the first
/// version's fields (the champion, or arm A) and the second's (the challenger, or arm B), each once,
/// and an A/B test's key field.
pub struct Layout {
    reader: RecordReader,
    champion: Pick,
    challenger: Pick,
    key: Option<usize>,
}

impl Layout {
    fn new(codec: &Codec, route: &Route, slot: &Slot) -> Result<Layout, CodecError> {
        let (first, second, key) = match &slot.ab {
            Some(ab) => (&ab.a, Some(&ab.b), Some(ab.experiment.key_field.as_str()).filter(|k| !k.is_empty())),
            None => (&slot.champion, slot.challenger.as_ref(), None),
        };
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
        let champion = Pick::of(map(first.featurizer.fields()));
        let challenger = Pick::of(second.map(|c| map(c.featurizer.fields())).unwrap_or_default());
        let key = key.map(|k| map(&[k.to_string()])[0]);
        let reader = RecordReader::new(codec, &route.schema_name, route.encoding, Wanted::new(&names))?;
        Ok(Layout { reader, champion, challenger, key })
    }

    fn made_for(slot: &Slot) -> LayoutKey {
        match &slot.ab {
            Some(ab) => (ab.a.key.1, Some(ab.b.key.1), Some(ab.experiment.key_field.clone())),
            None => (slot.champion.key.1, slot.challenger.as_ref().map(|c| c.key.1), None),
        }
    }
}

/// Which of a layout's fields a featuriser reads, in its order.
enum Pick {
    /// A run of them, handed over as they are: the usual case (the first version's fields follow
    /// the event id).
    Run(std::ops::Range<usize>),
    /// Any positions, copied out per record.
    Positions(Vec<usize>),
}

impl Pick {
    fn of(positions: Vec<usize>) -> Pick {
        let first = positions.first().copied().unwrap_or(0);
        if positions.windows(2).all(|w| w[1] == w[0] + 1) {
            Pick::Run(first..first + positions.len())
        } else {
            Pick::Positions(positions)
        }
    }
}

/// The value of an A/B test's key field, as text (borrowed when it is text already).
fn key_text<'a>(field: &Field<'a>) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow;
    match *field {
        Field::Str(s) => Cow::Borrowed(s),
        Field::Int(i) => Cow::Owned(i.to_string()),
        Field::Float(f) => Cow::Owned(f.to_string()),
        Field::Bool(b) => Cow::Owned(b.to_string()),
        Field::Bytes(b) => String::from_utf8_lossy(b),
        Field::Null | Field::Other => Cow::Borrowed(""),
    }
}

impl Rows {
    fn new(served: Arc<Served>, capacity: usize) -> Rows {
        let builder = served.featurizer.batch(capacity);
        Rows { served, builder, inputs: Vec::new() }
    }

    /// Adds a row from the layout's fields (`pick` picks this featuriser's fields out of them).
    fn push(
        &mut self,
        input: usize,
        id: &str,
        fields: &[Field<'_>],
        pick: &Pick,
    ) -> Result<(), vigil_features::FeatureError> {
        let map = match pick {
            Pick::Run(run) => {
                self.served.featurizer.push(&mut self.builder, id, &fields[run.clone()])?;
                self.inputs.push(input);
                return Ok(());
            }
            Pick::Positions(map) => map,
        };
        vigil_events::fast::with_fields(map.len(), |mine| {
            for (m, i) in mine.iter_mut().zip(map) {
                *m = fields[*i];
            }
            self.served.featurizer.push(&mut self.builder, id, mine)
        })?;
        self.inputs.push(input);
        Ok(())
    }
}

/// The event ids of a batch's records, in one buffer (a `String` each cost an allocation per record).
#[derive(Default)]
struct Ids {
    text: String,
    /// Where each record's id ends in `text` (it starts where the previous one ends).
    ends: Vec<usize>,
}

impl Ids {
    /// Ends the id of the next record, begun at `start`; `keep` false drops what was written of it.
    fn close(&mut self, start: usize, keep: bool) {
        if !keep {
            self.text.truncate(start);
        }
        self.ends.push(self.text.len());
    }

    /// Record `i`'s id (empty for a dead letter).
    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

/// Whether `event_id` falls in the challenger's share (stable per event).
pub fn in_share(event_id: &str, share: f64) -> bool {
    share > 0.0 && (hash_str(event_id, 7) % 1_000_000) < (share * 1_000_000.0) as u64
}

/// The rows of one batch, grouped by model version, and the slots they were taken from.
#[derive(Default)]
struct Groups {
    /// One entry per model version (a handful: found by pointer, not hashed, for every record).
    rows: Vec<Rows>,
    slots: HashMap<String, Arc<Slot>>,
    /// Inputs served by an A/B test's arm: the test, and whether the arm is B.
    arms: HashMap<usize, (Arc<Ab>, bool)>,
}

impl Groups {
    fn rows(&mut self, served: &Arc<Served>, capacity: usize) -> &mut Rows {
        let i = match self.rows.iter().position(|r| Arc::ptr_eq(&r.served, served) || r.served.key == served.key) {
            Some(i) => i,
            None => {
                self.rows.push(Rows::new(served.clone(), capacity));
                self.rows.len() - 1
            }
        };
        &mut self.rows[i]
    }
}

/// What every record of one input topic in a batch shares: its model's slot and field layout, and
/// the topic's record counter (looked up once per run of records from the topic, not per record).
struct TopicContext {
    topic: String,
    slot: Arc<Slot>,
    layout: Arc<Layout>,
    events: prometheus_client::metrics::counter::Counter,
}

/// What every score of a batch is written with: the `Score` schema's header (looked up once per
/// batch) and the scoring time.
struct Stamp<'a> {
    header: &'a [u8],
    now: i64,
}

/// One model version's part of a batch after inference.
struct Ran {
    served: Arc<Served>,
    variant: Variant,
    inputs: Vec<usize>,
    result: Result<Probabilities, String>,
    seconds: f64,
}

impl Handler for Scorer {
    async fn handle(&mut self, batch: &[Input]) -> Result<Vec<Outcome>, HandlerError> {
        self.metrics.batch(batch.len());
        self.fetch_writer_schemas(batch).await;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut ids = Ids { text: String::with_capacity(batch.len() * 16), ends: Vec::with_capacity(batch.len()) };
        let mut groups = Groups::default();
        let mut context: Option<TopicContext> = None;
        for (i, input) in batch.iter().enumerate() {
            let start = ids.text.len();
            let c = match context.take() {
                Some(c) if c.topic == input.topic => c,
                _ => match self.topic_context(&input.topic, &mut groups)? {
                    Ok(c) => c,
                    Err(reason) => {
                        outcomes[i] = Some(self.dead(reason));
                        ids.close(start, false);
                        continue;
                    }
                },
            };
            let featurised = self.featurise(i, input, &c, batch.len(), &mut groups, &mut ids.text);
            ids.close(start, featurised.is_ok());
            if let Err(reason) = featurised {
                outcomes[i] = Some(self.dead(reason));
            }
            context = Some(c);
        }
        let arms = std::mem::take(&mut groups.arms);
        let ran = self.infer(groups).await;
        let header = self.codec.score_header().map_err(|e| HandlerError(format!("encoding a score: {e}")))?;
        let stamp = Stamp { header: &header, now: now_ms() };
        let mut produced: Vec<Vec<Output>> = vec![Vec::new(); batch.len()];
        let mut latencies = self.metrics.latencies();
        for r in ran {
            let probabilities = match self.check(&r) {
                Ok(p) => p,
                Err(reason) => {
                    // A failing champion costs its rows (dead letters at stage `score`); a failing
                    // challenger only its shadow scores.
                    if r.variant == Variant::Champion {
                        for i in &r.inputs {
                            outcomes[*i] = Some(self.dead(reason.clone()));
                        }
                    } else {
                        self.metrics.shadow_lost(&r.served.key.0, r.inputs.len() as u64, &reason.error);
                    }
                    continue;
                }
            };
            let model = self.model_metrics(&r.served.key.0);
            model.inference(r.seconds);
            model.scored(r.variant, r.inputs.len() as u64);
            for (row, i) in r.inputs.iter().enumerate() {
                let ab = arms.get(i).map(|(t, b)| (t.experiment.experiment_id.as_str(), if *b { "B" } else { "A" }));
                // Room for one more output, not the four a first push makes room for (an output is
                // a hundred bytes; a record has one unless a challenger scores it too).
                produced[*i].reserve_exact(1);
                match self.score(&r, &probabilities, row, &batch[*i], (ids.get(*i), ab), &stamp) {
                    Some(output) if r.variant == Variant::Champion => {
                        let event_time = batch[*i].timestamp.unwrap_or(stamp.now);
                        latencies.observe((stamp.now - event_time).max(0) as f64 / 1000.0);
                        produced[*i].insert(0, output)
                    }
                    Some(output) => produced[*i].push(output),
                    None if r.variant == Variant::Champion => {
                        let reason = Reason {
                            stage: "score",
                            kind: "not-a-probability",
                            error: format!(
                                "{} v{} gave {} for this record",
                                r.served.key.0,
                                r.served.key.1,
                                probabilities.positive(row)
                            ),
                        };
                        outcomes[*i] = Some(self.dead(reason));
                    }
                    None => {}
                }
            }
        }
        self.metrics.latency(&latencies);
        Ok(outcomes.into_iter().zip(produced).map(|(o, p)| o.unwrap_or(Outcome::Produce(p))).collect())
    }
}

impl Scorer {
    /// Runs every model version's rows (all queued on the pool first, so that they run at once).
    async fn infer(&mut self, groups: Groups) -> Vec<Ran> {
        let Groups { rows: groups, slots, .. } = groups;
        let mut pending = Vec::new();
        for rows in groups {
            let key = rows.served.key.clone();
            let variant = slots
                .get(&key.0)
                .map(|s| {
                    let arm = s.ab.as_ref().is_some_and(|ab| ab.a.key == key || ab.b.key == key);
                    if arm || s.champion.key == key { Variant::Champion } else { Variant::Challenger }
                })
                .unwrap_or(Variant::Champion);
            let started = Instant::now();
            let Rows { served, builder, inputs } = rows;
            let submitted = match builder.finish() {
                Ok(record_batch) => self.pool.submit(&key, record_batch).await,
                Err(e) => Err(format!("building a batch: {e}")),
            };
            pending.push((served, variant, inputs, submitted, started));
        }
        let mut ran = Vec::with_capacity(pending.len());
        for (served, variant, inputs, submitted, started) in pending {
            let result = match submitted {
                Ok(pending) => pending.scored().await,
                Err(e) => Err(e),
            };
            ran.push(Ran { served, variant, inputs, result, seconds: started.elapsed().as_secs_f64() });
        }
        ran
    }

    /// The probabilities of a model version's rows, or why they cannot be used; reports the
    /// outcome to the book (a version that keeps failing is taken out of service).
    fn check(&self, r: &Ran) -> Result<Probabilities, Reason> {
        let result = match &r.result {
            Ok(p) if p.rows() == r.inputs.len() => Ok(p.clone()),
            Ok(p) => Err(format!("{} rows gave {} rows of probabilities", r.inputs.len(), p.rows())),
            Err(e) => Err(e.clone()),
        };
        self.book.report(&r.served, r.variant, result.as_ref().map(|_| ()).map_err(String::as_str));
        result.map_err(|e| Reason {
            stage: "score",
            kind: "inference",
            error: format!("{} v{} failed on the batch: {e}", r.served.key.0, r.served.key.1),
        })
    }

    /// The score record of one row (`id`: its event id, and the A/B test and arm that served it);
    /// `None` when the model gave no probability for it (NaN, out of [0, 1]).
    fn score(
        &self,
        r: &Ran,
        probabilities: &Probabilities,
        row: usize,
        input: &Input,
        (id, ab): (&str, Option<(&str, &str)>),
        &Stamp { header, now }: &Stamp<'_>,
    ) -> Option<Output> {
        let p = f64::from(probabilities.positive(row));
        if !(0.0..=1.0).contains(&p) {
            return None;
        }
        // Every class's probability goes out when there are more than two.
        let classes: Vec<f64> = if probabilities.classes > 2 {
            probabilities.row(row).iter().map(|v| f64::from(*v)).collect()
        } else {
            Vec::new()
        };
        let event_time = input.timestamp.unwrap_or(now);
        let served = &r.served;
        let score = ScoreRef {
            event_id: id,
            model: &served.key.0,
            model_version: served.key.1,
            variant: r.variant,
            score: p,
            scores: &classes,
            predicted_label: if p >= served.threshold { 1.0 } else { 0.0 },
            event_time,
            scored_at: now,
            source_topic: &input.topic,
            source_partition: input.partition,
            source_offset: input.offset,
            ab,
        };
        // Written field by field, from borrowed parts (the generic serializer was an eighth of the
        // scorer's CPU).
        let mut payload = Vec::with_capacity(48 + header.len() + id.len() + served.key.0.len() + input.topic.len());
        Codec::encode_score_with(header, &score, &mut payload);
        Some(Output {
            topic: self.scores_topic.clone(),
            key: match (self.scores_key, &input.key) {
                (ScoresKey::Input, Some(key)) => Some(key.clone()),
                _ => Some(id.as_bytes().to_vec()),
            },
            payload,
            headers: Vec::new(),
            timestamp: None,
        })
    }
    /// Fetches the writer schemas of the batch's Confluent-framed records whose ids the codec does
    /// not know (a record whose schema cannot be fetched is then dead-lettered with its unknown id).
    async fn fetch_writer_schemas(&mut self, batch: &[Input]) {
        let Some(registry) = &self.registry else { return };
        for payload in batch.iter().filter_map(|i| i.payload.as_deref()) {
            registry.resolve(&self.codec, payload).await;
        }
    }

    /// The slot, layout and counter of an input topic's records, or why they are dead letters. An
    /// `Err` (no champion for a model that had one) stops the loop.
    fn topic_context(
        &mut self,
        topic: &str,
        groups: &mut Groups,
    ) -> Result<Result<TopicContext, Reason>, HandlerError> {
        let Some(route) = self.routes.get_mut(topic) else {
            return Ok(Err(Reason {
                stage: "route",
                kind: "unrouted-topic",
                error: format!("no input configured for {topic}"),
            }));
        };
        let events = route.events.get_or_insert_with(|| self.metrics.topic(topic)).clone();
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
        Ok(match self.layout(topic, &slot) {
            Ok(layout) => Ok(TopicContext { topic: topic.to_string(), slot, layout, events }),
            Err(e) => Err(Reason { stage: "decode", kind: e.kind(), error: e.to_string() }),
        })
    }

    /// Decodes one input and adds its rows to the batch's groups; appends its event id to `ids`, or
    /// says why it is a dead letter.
    fn featurise(
        &self,
        i: usize,
        input: &Input,
        context: &TopicContext,
        capacity: usize,
        groups: &mut Groups,
        ids: &mut String,
    ) -> Result<(), Reason> {
        context.events.inc();
        let Some(payload) = input.payload.as_deref() else {
            return Err(Reason { stage: "decode", kind: "tombstone", error: "the record has no value".into() });
        };
        let TopicContext { slot, layout, .. } = context;
        let share = self.challenger_share;
        let read = layout.reader.read(&self.codec, payload, |fields| {
            use std::fmt::Write;
            let start = ids.len();
            // Writing to a `String` cannot fail.
            let _ = match fields[0] {
                Field::Str(s) => ids.write_str(s),
                Field::Int(i) => write!(ids, "{i}"),
                _ => write!(ids, "{}/{}/{}", input.topic, input.partition, input.offset),
            };
            let id = &ids[start..];
            if let Some(ab) = &slot.ab {
                let b = match layout.key {
                    Some(k) => ab.experiment.in_b(&key_text(&fields[k])),
                    None => ab.experiment.in_b(id),
                };
                let (served, map) = if b { (&ab.b, &layout.challenger) } else { (&ab.a, &layout.champion) };
                if let Err(e) = groups.rows(served, capacity).push(i, id, fields, map) {
                    return Err(Reason { stage: "featurise", kind: e.kind(), error: e.to_string() });
                }
                groups.arms.insert(i, (ab.clone(), b));
                return Ok(());
            }
            let champion = groups.rows(&slot.champion, capacity);
            if let Err(e) = champion.push(i, id, fields, &layout.champion) {
                return Err(Reason { stage: "featurise", kind: e.kind(), error: e.to_string() });
            }
            if let Some(ch) = slot.challenger.as_ref().filter(|_| in_share(id, share)) {
                // A record the challenger's spec cannot featurise only misses its shadow score.
                let _ = groups.rows(ch, capacity).push(i, id, fields, &layout.challenger);
            }
            Ok(())
        });
        match read {
            Ok(r) => r,
            Err(e) => Err(Reason { stage: "decode", kind: e.kind(), error: e.to_string() }),
        }
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
        let versions = Layout::made_for(slot);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of consecutive positions is handed over as a slice; anything else is copied out.
    #[test]
    fn consecutive_fields_are_picked_as_a_run() {
        let run = |p: Vec<usize>| match Pick::of(p) {
            Pick::Run(r) => Some(r),
            Pick::Positions(_) => None,
        };
        assert_eq!(run(vec![1, 2, 3]), Some(1..4));
        assert_eq!(run(vec![]), Some(0..0));
        assert_eq!(run(vec![4]), Some(4..5));
        assert_eq!(run(vec![3, 2, 1]), None, "out of order");
        assert_eq!(run(vec![0, 2, 3]), None, "a gap");
        assert_eq!(run(vec![1, 1, 3]), None, "a field read twice");
        assert_eq!(run(vec![5, 0]), None, "the event id again, after another field");
    }
}
