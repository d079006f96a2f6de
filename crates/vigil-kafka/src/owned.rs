//! The loop of services that own whole models — the learner and the drift service — next to the
//! consumer-group loop of [`crate::pipeline`] that the scorer and the forwarder run.
//!
//! Such a service needs *every* partition of its models' topics (a label join, a window over the
//! whole stream), so it assigns them itself, each from where the service says ([`Start`]). The loop
//! replays the models topic into a [`ModelRegistry`] before the service is built (so it can resume
//! from its checkpoints), then, on one blocking thread, repeats a round:
//!
//! 1. new records of the models topic → [`ModelService::on_models`];
//! 2. up to `max_round` records of the assigned topics → [`ModelService::on_record`] each;
//! 3. [`ModelService::on_round`] with the positions read so far ([`Progress`]): timers,
//!    checkpoints, evaluations.
//!
//! What a service writes goes to its [`Outbox`]; at the end of the round the loop enqueues all of
//! it on an idempotent producer (back-pressure when the queue is full), waits once for the
//! acknowledgements (bounded by the drain deadline) and then tells the service
//! ([`ModelService::on_delivered`]), so that a figure the service publishes after that describes
//! records that are on their topics. A delivery that fails after the producer's retries stops the
//! loop; shutdown flushes what is in flight within the deadline. A consumer that hands over nothing
//! while its partitions are behind their ends is replaced ([`crate::stall`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::Producer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use vigil_events::{Codec, Event};
use vigil_runtime::config::KafkaConfig;
use vigil_runtime::metrics::Health;

use crate::cluster;
use crate::lease::{Held, Lease, LeaseConfig};
use crate::model_registry::ModelRegistry;
use crate::sink::{Output, Sink, SinkContext};
use crate::stall::{Marks, STALL, StallWatch};
use crate::tracker::Tracker;
use crate::{HandlerError, Input, KafkaPlumbingError, client, models};

/// Where reading a topic starts, per partition.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// From the oldest record retained.
    Earliest,
    /// From the end: only what is written from now on.
    End,
    /// The last `n` records of each partition (a restarted service fills its windows at once).
    Last(i64),
    /// From these offsets by partition; partitions not listed from the oldest record.
    Offsets(HashMap<i32, i64>),
}

/// A topic a service reads in full.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The topic.
    pub topic: String,
    /// Where to start.
    pub start: Start,
}

/// One consumed record, borrowed from the consumer.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes (`None` for a tombstone).
    pub payload: Option<&'a [u8]>,
    /// Record timestamp (epoch ms), when the broker has one.
    pub timestamp: Option<i64>,
    message: Option<&'a BorrowedMessage<'a>>,
}

impl<'a> Record<'a> {
    fn of(m: &'a BorrowedMessage<'a>) -> Record<'a> {
        Record {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            payload: m.payload(),
            timestamp: m.timestamp().to_millis(),
            message: Some(m),
        }
    }

    /// A record that did not come from a consumer (tests, replays).
    pub fn detached(topic: &'a str, partition: i32, offset: i64, payload: Option<&'a [u8]>) -> Record<'a> {
        Record { topic, partition, offset, key: None, payload, timestamp: None, message: None }
    }

    /// An owned copy (with headers), e.g. for a dead letter.
    pub fn to_input(&self) -> Input {
        match self.message {
            Some(m) => Input::from_message(m),
            None => Input {
                topic: self.topic.to_string(),
                partition: self.partition,
                offset: self.offset,
                key: self.key.map(<[u8]>::to_vec),
                payload: self.payload.map(<[u8]>::to_vec),
                headers: Vec::new(),
                timestamp: self.timestamp,
            },
        }
    }
}

/// What a service writes during one call; the loop produces it.
#[derive(Debug, Default)]
pub struct Outbox {
    outputs: Vec<Output>,
}

impl Outbox {
    /// Queues a record.
    pub fn send(&mut self, output: Output) {
        self.outputs.push(output);
    }

    /// Queues one of Vigil's events, encoded by `codec`, keyed by `key`.
    pub fn event<T: Event>(&mut self, codec: &Codec, topic: &str, key: &str, event: &T) -> Result<(), HandlerError> {
        let payload = codec
            .encode_event(event)
            .map_err(|e| HandlerError(format!("encoding a {} for {topic}: {e}", T::SCHEMA)))?;
        self.send(Output {
            topic: topic.to_string(),
            key: Some(key.as_bytes().to_vec()),
            payload,
            headers: Vec::new(),
            timestamp: None,
        });
        Ok(())
    }

    /// Queues a tombstone: `key` is deleted from the compacted `topic`.
    pub fn tombstone(&mut self, topic: &str, key: &str) {
        let key = Some(key.as_bytes().to_vec());
        self.send(Output { topic: topic.to_string(), key, payload: Vec::new(), headers: Vec::new(), timestamp: None });
    }

    /// Records queued and not yet taken by the loop.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Takes what is queued (the loop, and tests).
    pub fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }
}

/// How far the service has read: the next offset of every assigned partition, and whether a topic
/// has been read to its end.
pub struct Progress<'c> {
    consumer: &'c BaseConsumer<client::LogContext>,
    partitions: &'c HashMap<String, Vec<i32>>,
    next: &'c HashMap<(String, i32), i64>,
    high: &'c mut HashMap<(String, i32), (i64, Instant)>,
    /// Records read in the round that just ended.
    pub polled: usize,
    /// The registry as the loop holds it now.
    pub registry: &'c ModelRegistry,
}

impl Progress<'_> {
    /// The partitions of `topic` the service reads.
    pub fn partitions(&self, topic: &str) -> &[i32] {
        self.partitions.get(topic).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The offset after the last record read from a partition, if any was read.
    pub fn next(&self, topic: &str, partition: i32) -> Option<i64> {
        self.next.get(&(topic.to_string(), partition)).copied()
    }

    /// Whether every partition of `topic` has been read to its end (high watermarks cached for
    /// 250 ms, so asking every round costs little).
    pub fn caught_up(&mut self, topic: &str) -> bool {
        let partitions = self.partitions(topic).to_vec();
        partitions.iter().all(|p| match self.high(topic, *p) {
            Some(high) => self.next(topic, *p).unwrap_or(0) >= high,
            None => false,
        })
    }

    /// Records between the service's positions and the ends of every partition it reads (the
    /// consumer lag of a service that commits nothing); a partition with no known position or end
    /// counts 0.
    pub fn lag(&mut self) -> i64 {
        let positions = self.consumer.position().ok();
        let wanted: Vec<(String, i32)> =
            self.partitions.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p))).collect();
        let mut lag = 0;
        for (topic, p) in wanted {
            let at = self
                .next(&topic, p)
                .or_else(|| positions.as_ref()?.find_partition(&topic, p)?.offset().to_raw().filter(|o| *o >= 0));
            if let (Some(at), Some(high)) = (at, self.high(&topic, p)) {
                lag += (high - at).max(0);
            }
        }
        lag
    }

    /// A partition's high watermark, cached for 250 ms.
    fn high(&mut self, topic: &str, partition: i32) -> Option<i64> {
        let key = (topic.to_string(), partition);
        if let Some((h, at)) = self.high.get(&key)
            && at.elapsed() < Duration::from_millis(250)
        {
            return Some(*h);
        }
        let (_, h) = self.consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)).ok()?;
        self.high.insert(key, (h, Instant::now()));
        Some(h)
    }
}

/// A service that owns whole models.
pub trait ModelService {
    /// The topics it reads in full, and where each starts.
    fn sources(&self) -> Vec<Source>;

    /// The models topic moved on (called after each new record, with the registry folded so far).
    fn on_models(&mut self, models: &ModelRegistry, out: &mut Outbox) -> Result<(), HandlerError>;

    /// One record of a source.
    fn on_record(&mut self, record: &Record<'_>, out: &mut Outbox) -> Result<(), HandlerError>;

    /// The end of a round of reading: timers, checkpoints, evaluations.
    fn on_round(&mut self, progress: &mut Progress<'_>, out: &mut Outbox) -> Result<(), HandlerError>;

    /// Everything written so far is acknowledged.
    fn on_delivered(&mut self) {}
}

/// Settings of one loop.
#[derive(Debug, Clone)]
pub struct OwnedConfig {
    /// Service name (client ids).
    pub service: String,
    /// Consumer group id of its clients (positions are the service's own: nothing is committed).
    pub group: String,
    /// The models topic.
    pub models_topic: String,
    /// Most records read in one round.
    pub max_round: usize,
    /// How long the first read of a round waits for a record.
    pub poll_wait: Duration,
    /// Deadline for delivering what is in flight at shutdown.
    pub drain_timeout: Duration,
    /// The lease that makes one instance of several the one that works (none: this one does).
    pub lease: Option<LeaseConfig>,
    /// Writes in Kafka transactions under this id (shared by the lease's holders, so that a new
    /// holder fences a former one whose writes are still in flight); none: an idempotent producer.
    pub transactional_id: Option<String>,
}

impl OwnedConfig {
    /// Defaults for `service` in `group`, following `models_topic`.
    pub fn new(service: &str, group: &str, models_topic: &str) -> OwnedConfig {
        OwnedConfig {
            service: service.to_string(),
            group: group.to_string(),
            models_topic: models_topic.to_string(),
            max_round: 2000,
            poll_wait: Duration::from_millis(100),
            drain_timeout: Duration::from_secs(10),
            lease: None,
            transactional_id: None,
        }
    }
}

/// Why the loop stopped early.
#[derive(Debug, thiserror::Error)]
pub enum OwnedError {
    /// Kafka failed (a client, or a delivery after retries).
    #[error(transparent)]
    Kafka(#[from] KafkaPlumbingError),
    /// The service could not be built or failed.
    #[error("{0}")]
    Service(#[from] HandlerError),
    /// Another instance holds the lease now (or fenced this one's writes): this one stops writing.
    #[error("another instance took over ({0}); this one stops (restarted, it stands by)")]
    Superseded(String),
}

/// Waits for the lease (if any; standing by, not ready, while another instance holds it), replays
/// the models topic, builds the service with `build`, marks `health` ready, then runs rounds until
/// `shutdown` (call from a blocking thread).
pub fn run<S: ModelService>(
    kafka: &KafkaConfig,
    cfg: &OwnedConfig,
    codec: &Codec,
    build: impl FnOnce(&ModelRegistry) -> Result<S, HandlerError>,
    health: &Health,
    shutdown: &CancellationToken,
) -> Result<(), OwnedError> {
    let lease = cfg.lease.as_ref().map(|l| Lease::join(kafka, &cfg.service, l)).transpose()?;
    if let Some(l) = &lease
        && !l.acquire(shutdown, || health.set_not_ready("standing by: another instance holds the lease"))
    {
        return Ok(());
    }
    // The producer first: initialising its transactional id aborts what a former holder left open,
    // which would otherwise hold back reading the models topic to its end.
    let mut sink = producer(kafka, cfg, shutdown)?;
    let mut registry = ModelRegistry::slim();
    let Some((records, models_end)) =
        cluster::when_reachable(shutdown, || models::read_to_end(kafka, &cfg.models_topic, codec))?
    else {
        return Ok(());
    };
    records.into_iter().for_each(|r| registry.apply_record(r));
    let mut service = build(&registry)?;
    let mut consumer = reader(kafka, cfg)?;
    let sources = service.sources();
    let Some((partitions, start)) = cluster::when_reachable(shutdown, || assign(&consumer, &sources))? else {
        return Ok(());
    };
    let follower = models::follower_from(kafka, &cfg.models_topic, &format!("{}-models", cfg.service), models_end)?;
    health.set_ready();
    tracing::info!(service = %cfg.service, topics = ?partitions.keys().collect::<Vec<_>>(), "reading");

    let mut rounds = Rounds { next: HashMap::new(), high: HashMap::new(), out: Outbox::default() };
    let mut watch = StallWatch::default();
    let result = loop {
        if shutdown.is_cancelled() {
            break Ok(());
        }
        if lease.as_ref().is_some_and(|l| l.poll() == Held::No) {
            break Err(OwnedError::Superseded("the lease moved".into()));
        }
        let step = rounds.round(&mut service, &mut registry, (&consumer, &follower, codec), &partitions, cfg);
        let polled = *step.as_ref().unwrap_or(&0);
        let delivered = match step {
            Ok(_) if cfg.transactional_id.is_some() => deliver_in_transaction(&sink, &mut rounds.out, cfg, shutdown),
            Ok(_) => deliver(&sink, &mut rounds.out, cfg.drain_timeout, shutdown),
            Err(e) => Err(e),
        };
        if watch.due(polled, Instant::now())
            && let Some(marks) = behind(&consumer, &partitions, &start, &rounds.next)
            && watch.worth_reading_again(&marks)
        {
            let records: i64 = marks.iter().map(|(_, _, at, end)| end - at).sum();
            tracing::warn!(
                service = %cfg.service,
                records,
                idle_s = STALL.as_secs(),
                "nothing handed over with records behind the ends (a stalled fetch, or records never \
                 handed over such as aborted transactions'): reading again with a new consumer"
            );
            consumer = reader(kafka, cfg)?;
            consumer
                .assign(&resume_from(&start, &rounds.next))
                .map_err(|source| KafkaPlumbingError::Client { what: "assigning partitions again", source })?;
            rounds.high.clear();
            watch.read_again(marks);
        }
        match delivered {
            Ok(true) => service.on_delivered(),
            Ok(false) => {}
            // An outage longer than the transaction timeout: the coordinator aborted the open
            // transaction and fenced this producer, yet no other instance took the lease (held
            // through a whole session: a zombie that was stopped learns here that it lost it).
            Err(OwnedError::Superseded(why)) if still_held(lease.as_ref(), cfg) => {
                tracing::warn!(
                    why,
                    "fenced while holding the lease (a transaction timed out): transactions start again"
                );
                sink = producer(kafka, cfg, shutdown)?;
            }
            Err(e) => break Err(e),
        }
    };
    let flushed = sink.flush(cfg.drain_timeout);
    tracing::info!(service = %cfg.service, flushed = flushed.is_ok(), "stopped reading");
    result.and(flushed.map_err(OwnedError::from))
}

/// Whether this instance still holds the lease, confirmed over one session timeout.
fn still_held(lease: Option<&Lease>, cfg: &OwnedConfig) -> bool {
    match (lease, &cfg.lease) {
        (Some(l), Some(c)) => l.confirm(c.session_timeout),
        _ => false,
    }
}

/// The service's producer: transactional (its id initialised, which fences a former holder's
/// open transaction) or idempotent.
fn producer(kafka: &KafkaConfig, cfg: &OwnedConfig, shutdown: &CancellationToken) -> Result<Sink, OwnedError> {
    let tracker = Arc::new(Mutex::new(Tracker::new()));
    let Some(id) = &cfg.transactional_id else {
        return Ok(Sink::new(&client::service_producer_config(kafka, &cfg.service), tracker)?);
    };
    let sink = Sink::new(&client::transactional_config(kafka, &cfg.service, id), tracker)?;
    let p = sink.shared();
    let started = Instant::now();
    // A broker that is away is waited for; anything else is fatal.
    loop {
        match p.init_transactions(Duration::from_secs(30)) {
            Ok(()) => {
                tracing::info!(id, took_s = started.elapsed().as_secs_f64(), "transactions initialised");
                return Ok(sink);
            }
            Err(KafkaError::Transaction(e)) if e.is_retriable() && !shutdown.is_cancelled() => {
                tracing::warn!(error = %e, "initialising transactions; trying again");
            }
            Err(source) => {
                return Err(KafkaPlumbingError::Client { what: "initialising transactions", source }.into());
            }
        }
    }
}

/// [`deliver`] in one transaction: committed when every record is written (a broker that is away
/// is waited for); an abortable failure aborts and writes them again; a fenced producer means
/// another instance took over.
fn deliver_in_transaction(
    sink: &Sink,
    out: &mut Outbox,
    cfg: &OwnedConfig,
    shutdown: &CancellationToken,
) -> Result<bool, OwnedError> {
    let outputs = out.take();
    if outputs.is_empty() {
        return Ok(false);
    }
    let written = write_in_transaction(sink, &outputs, cfg, shutdown);
    if written.is_err() {
        // Kept for a new producer (a transaction the coordinator timed out fences this one).
        out.outputs = outputs;
    }
    written
}

fn write_in_transaction(
    sink: &Sink,
    outputs: &[Output],
    cfg: &OwnedConfig,
    shutdown: &CancellationToken,
) -> Result<bool, OwnedError> {
    let p = sink.shared();
    let timeout = cfg.drain_timeout;
    loop {
        p.begin_transaction().map_err(txn_error)?;
        for output in outputs {
            sink.send_blocking(output, None, shutdown)?;
        }
        loop {
            match p.commit_transaction(timeout) {
                Ok(()) => return Ok(true),
                Err(KafkaError::Transaction(e)) if e.is_fatal() => return Err(txn_error(KafkaError::Transaction(e))),
                Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                    tracing::warn!(error = %e, "the transaction failed; aborting it and writing its records again");
                    abort(&*p, timeout, shutdown)?;
                    break;
                }
                Err(e) if !shutdown.is_cancelled() => {
                    fatal(&*p)?;
                    tracing::warn!(error = %e, "committing a transaction; trying again (is the broker away?)");
                }
                Err(e) => return Err(txn_error(e)),
            }
        }
    }
}

/// Aborts the open transaction, waiting out a broker that is away.
fn abort<P: Producer<SinkContext>>(p: &P, timeout: Duration, shutdown: &CancellationToken) -> Result<(), OwnedError> {
    loop {
        match p.abort_transaction(timeout) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Transaction(e)) if e.is_fatal() => return Err(txn_error(KafkaError::Transaction(e))),
            Err(e) => {
                fatal(p)?;
                if shutdown.is_cancelled() {
                    return Err(txn_error(e));
                }
                tracing::warn!(error = %e, "aborting a transaction; trying again");
            }
        }
    }
}

/// A fenced producer's commit or abort fails as a flush timeout (its queue was purged), not as a
/// fatal transaction error: the client says whether it is fatal, else retrying never ends.
fn fatal<P: Producer<SinkContext>>(p: &P) -> Result<(), OwnedError> {
    match p.client().fatal_error() {
        Some((_, reason)) => Err(OwnedError::Superseded(reason)),
        None => Ok(()),
    }
}

/// A fatal transaction error means this producer was fenced: another instance took over.
fn txn_error(e: KafkaError) -> OwnedError {
    match &e {
        KafkaError::Transaction(t) if t.is_fatal() => OwnedError::Superseded(t.to_string()),
        _ => KafkaPlumbingError::Client { what: "a transaction", source: e }.into(),
    }
}

/// The loop's own state between rounds.
struct Rounds {
    next: HashMap<(String, i32), i64>,
    high: HashMap<(String, i32), (i64, Instant)>,
    out: Outbox,
}

type Clients<'c> = (&'c BaseConsumer<client::LogContext>, &'c BaseConsumer<client::LogContext>, &'c Codec);

impl Rounds {
    fn round<S: ModelService>(
        &mut self,
        service: &mut S,
        registry: &mut ModelRegistry,
        (consumer, follower, codec): Clients<'_>,
        partitions: &HashMap<String, Vec<i32>>,
        cfg: &OwnedConfig,
    ) -> Result<usize, OwnedError> {
        while let Some(Ok(m)) = follower.poll(Duration::ZERO) {
            registry.apply_record(models::parse(codec, m.key(), m.payload(), m.offset()));
            service.on_models(registry, &mut self.out)?;
        }
        let mut polled = 0;
        while polled < cfg.max_round {
            let wait = if polled == 0 { cfg.poll_wait } else { Duration::ZERO };
            let Some(msg) = consumer.poll(wait) else { break };
            let m = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(service = %cfg.service, error = %e, "consume error");
                    break;
                }
            };
            polled += 1;
            self.next.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
            service.on_record(&Record::of(&m), &mut self.out)?;
        }
        let mut progress =
            Progress { consumer, partitions, next: &self.next, high: &mut self.high, polled, registry: &*registry };
        service.on_round(&mut progress, &mut self.out)?;
        Ok(polled)
    }
}

/// Enqueues what the service wrote and waits (at most `timeout`) for the acknowledgements; returns
/// whether everything written so far is acknowledged. A failed delivery is an error.
fn deliver(sink: &Sink, out: &mut Outbox, timeout: Duration, shutdown: &CancellationToken) -> Result<bool, OwnedError> {
    let outputs = out.take();
    if outputs.is_empty() {
        return Ok(false);
    }
    for output in &outputs {
        sink.send_blocking(output, None, shutdown)?;
    }
    let flushed = sink.flush(timeout);
    if sink.failures().count() > 0 {
        return Err(KafkaPlumbingError::Delivery(sink.failures().last().unwrap_or_default()).into());
    }
    if let Err(e) = &flushed {
        tracing::warn!(error = %e, records = outputs.len(), "not acknowledged yet; the producer keeps retrying");
    }
    Ok(flushed.is_ok())
}

/// The loop's consumer of its sources (assigned, not subscribed: nothing is committed).
fn reader(kafka: &KafkaConfig, cfg: &OwnedConfig) -> Result<BaseConsumer<client::LogContext>, KafkaPlumbingError> {
    client::consumer_config(kafka, &cfg.service, &cfg.group)
        .create_with_context(client::LogContext)
        .map_err(|source| KafkaPlumbingError::Client { what: "creating a consumer", source })
}

/// Where the loop has read (else where each partition started) and the end, of every partition
/// more than one record behind its end; `None` if none is, or when an end cannot be read (the
/// cluster is away: not a stall).
fn behind(
    consumer: &BaseConsumer<client::LogContext>,
    partitions: &HashMap<String, Vec<i32>>,
    start: &TopicPartitionList,
    next: &HashMap<(String, i32), i64>,
) -> Option<Marks> {
    let mut marks = Marks::new();
    for (topic, ps) in partitions {
        for p in ps {
            let (low, high) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(2)).ok()?;
            let at = next.get(&(topic.clone(), *p)).copied().unwrap_or_else(|| {
                match start.find_partition(topic, *p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    Some(Offset::Beginning) => low,
                    _ => high,
                }
            });
            // One offset short is where a transaction's commit marker ends a partition: caught up.
            if at + 1 < high {
                marks.push((topic.clone(), *p, at, high));
            }
        }
    }
    marks.sort();
    (!marks.is_empty()).then_some(marks)
}

/// The assignment that goes on from where the loop has read: `start`, with the offset after the
/// last record read of every partition read from.
fn resume_from(start: &TopicPartitionList, next: &HashMap<(String, i32), i64>) -> TopicPartitionList {
    let mut tpl = start.clone();
    for ((topic, p), offset) in next {
        // A partition read from is in `start` (the loop reads only what it assigned).
        let _ = tpl.set_partition_offset(topic, *p, Offset::Offset(*offset));
    }
    tpl
}

/// The partitions read, by topic, and the assignment they were read from.
type Assignment = (HashMap<String, Vec<i32>>, TopicPartitionList);

/// Assigns every partition of every source from its start; returns the partitions by topic and the
/// assignment.
fn assign(consumer: &BaseConsumer<client::LogContext>, sources: &[Source]) -> Result<Assignment, KafkaPlumbingError> {
    let client = |what: &'static str| move |source| KafkaPlumbingError::Client { what, source };
    let mut tpl = TopicPartitionList::new();
    let mut partitions: HashMap<String, Vec<i32>> = HashMap::new();
    for source in sources {
        let md = consumer
            .fetch_metadata(Some(&source.topic), Duration::from_secs(10))
            .map_err(client("reading metadata"))?;
        for t in md.topics() {
            if let Some(e) = t.error() {
                return Err(KafkaPlumbingError::Delivery(format!("topic {} is not available: {e:?}", source.topic)));
            }
            for p in t.partitions() {
                let offset = start_offset(consumer, &source.topic, p.id(), &source.start)?;
                tpl.add_partition_offset(&source.topic, p.id(), offset).map_err(client("assigning partitions"))?;
                partitions.entry(source.topic.clone()).or_default().push(p.id());
            }
        }
    }
    consumer.assign(&tpl).map_err(client("assigning partitions"))?;
    Ok((partitions, tpl))
}

fn start_offset(
    consumer: &BaseConsumer<client::LogContext>,
    topic: &str,
    partition: i32,
    start: &Start,
) -> Result<Offset, KafkaPlumbingError> {
    Ok(match start {
        Start::Earliest => Offset::Beginning,
        Start::End => Offset::End,
        Start::Offsets(by) => by.get(&partition).map(|o| Offset::Offset(*o)).unwrap_or(Offset::Beginning),
        Start::Last(n) => {
            let (low, high) = client::watermarks(consumer, topic, partition, Duration::from_secs(30))
                .map_err(|source| KafkaPlumbingError::Client { what: "reading watermarks", source })?;
            Offset::Offset((high - n).max(low))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A start while the cluster is away is no failure: the metadata read that fails (nothing
    /// listens on the address) is tried again, and only shutdown ends the wait, with no error.
    #[test]
    fn assigning_waits_for_a_cluster_that_does_not_answer() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let kafka = KafkaConfig { bootstrap_servers: format!("127.0.0.1:{port}"), ..KafkaConfig::default() };
        let consumer: BaseConsumer<client::LogContext> =
            client::consumer_config(&kafka, "test", "test").create_with_context(client::LogContext).unwrap();
        let sources = [Source { topic: "tx".into(), start: Start::Earliest }];
        assert!(
            matches!(assign(&consumer, &sources), Err(KafkaPlumbingError::Client { what: "reading metadata", .. })),
            "without a cluster the read fails"
        );
        // Cancelled beforehand: one more read fails, then the wait ends without an error.
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert!(matches!(cluster::when_reachable(&shutdown, || assign(&consumer, &sources)), Ok(None)));
    }

    #[test]
    fn reading_again_goes_on_after_the_last_record_read() {
        let mut start = TopicPartitionList::new();
        start.add_partition_offset("tx", 0, Offset::Beginning).unwrap();
        start.add_partition_offset("tx", 1, Offset::Offset(40)).unwrap();
        start.add_partition_offset("labels", 0, Offset::End).unwrap();
        let next = HashMap::from([(("tx".to_string(), 0), 17), (("labels".to_string(), 0), 5)]);
        let tpl = resume_from(&start, &next);
        let at = |t: &str, p: i32| tpl.find_partition(t, p).map(|e| e.offset());
        assert_eq!(at("tx", 0), Some(Offset::Offset(17)));
        assert_eq!(at("tx", 1), Some(Offset::Offset(40)), "never read: where it started");
        assert_eq!(at("labels", 0), Some(Offset::Offset(5)));
        assert_eq!(tpl.count(), 3);
        assert_eq!(start.find_partition("tx", 0).map(|e| e.offset()), Some(Offset::Beginning), "start kept");
    }
}
