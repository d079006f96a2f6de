//! The consume → handle → produce → commit loop every Vigil service and the forwarder baseline run.
//!
//! Records are consumed in micro-batches (bounded by size and by wait time), handed to a
//! [`Handler`] that turns each input into outputs, a dead letter, or nothing, and the outputs are
//! produced. At-least-once, a task of its own fills the next batch while the loop handles and
//! produces the last one; exactly-once, the loop gathers its batches itself (see `Source`). An
//! input's offset is committed only after all of its outputs are acknowledged, in offset order per
//! partition ([`Tracker`]). On revocation the loop drains what is in flight for the revoked
//! partitions and commits it before letting them go; on shutdown it stops consuming, flushes,
//! commits and returns within a deadline.
//!
//! With a transactional id (exactly-once), outputs and consumed offsets commit together in Kafka
//! transactions every `commit_interval`, following librdkafka's `examples/transactions.c`: an
//! abortable error aborts the transaction and rewinds the consumer to the transaction's start; a
//! fatal one stops the loop (the service rebuilds producer and consumer); revocation commits the open
//! transaction first.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use vigil_runtime::config::KafkaConfig;

use crate::dlq::{self, Reason};
use crate::input::Input;
use crate::sink::{Output, Sink, SinkContext};
use crate::tracker::{Ticket, Tracker};
use crate::{KafkaPlumbingError, client, now_ms};

/// What to do with one input.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Produce these records (possibly none).
    Produce(Vec<Output>),
    /// Send the input to the dead-letter topic.
    DeadLetter(Reason),
}

/// Turns batches of inputs into outcomes, one per input, in order.
pub trait Handler: Send {
    /// Handles a batch. An `Err` stops the loop (nothing of the batch is committed).
    fn handle(&mut self, batch: &[Input]) -> impl Future<Output = Result<Vec<Outcome>, HandlerError>> + Send;
}

/// A handler failure that must stop the service (not a bad record: those are dead letters).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// Settings of one loop.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Service name, for dead-letter headers and client ids.
    pub service: String,
    /// Consumer group.
    pub group: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Dead-letter topic.
    pub dlq_topic: String,
    /// Largest batch handed to the handler.
    pub max_batch: usize,
    /// Longest wait for a batch to fill once its first record arrived.
    pub max_wait: Duration,
    /// How often done offsets are committed.
    pub commit_interval: Duration,
    /// Deadline for draining on revocation and shutdown.
    pub drain_timeout: Duration,
    /// Exactly-once: the producer's transactional id (stable per instance); `None`: at-least-once.
    pub transactional_id: Option<String>,
}

impl PipelineConfig {
    /// Defaults for a service consuming `topics` in `group`.
    pub fn new(service: &str, group: &str, topics: Vec<String>, dlq_topic: &str) -> PipelineConfig {
        PipelineConfig {
            service: service.to_string(),
            group: group.to_string(),
            topics,
            dlq_topic: dlq_topic.to_string(),
            max_batch: 512,
            max_wait: Duration::from_millis(2),
            commit_interval: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(10),
            transactional_id: None,
        }
    }
}

/// Counters of a running loop (shared with the service's metrics).
#[derive(Debug, Default)]
pub struct Counters {
    /// Records consumed.
    pub consumed: AtomicU64,
    /// Records handed to the producer (outputs).
    pub produced: AtomicU64,
    /// Records dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Batches handled.
    pub batches: AtomicU64,
    /// Offset commits issued (or transactions committed).
    pub commits: AtomicU64,
    /// Transactions aborted.
    pub aborts: AtomicU64,
    /// Revocations seen (the batch being filled belongs to the generation it started in).
    pub revocations: AtomicU64,
    /// Records behind the ends of the assigned partitions (from librdkafka's statistics every 5 s;
    /// -1 until known).
    pub lag: std::sync::atomic::AtomicI64,
    /// Where the loop's thread spent its time, ns: waiting for a batch, in the handler, and
    /// enqueueing outputs on the producer (logged when the loop stops; `vigil-bench` shows them
    /// with `VIGIL_BENCH_LOG_LEVEL=info`).
    pub waiting_ns: AtomicU64,
    /// See `waiting_ns`.
    pub handling_ns: AtomicU64,
    /// See `waiting_ns`.
    pub enqueueing_ns: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds the time since `since` to `c` (ns).
    fn time(c: &AtomicU64, since: Instant) {
        Counters::add(c, since.elapsed().as_nanos() as u64);
    }

    /// A plain snapshot (consumed, produced, dead-lettered).
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.consumed.load(Ordering::Relaxed),
            self.produced.load(Ordering::Relaxed),
            self.dead_lettered.load(Ordering::Relaxed),
        )
    }
}

/// Exactly-once bookkeeping of the open transaction, shared with the rebalance callback.
#[derive(Debug, Default)]
pub struct Txn {
    open: bool,
    /// Per partition: the offset the open transaction started from (where an abort rewinds to).
    start: HashMap<(String, i32), i64>,
    /// Per partition: the next offset after what the open transaction consumed.
    next: HashMap<(String, i32), i64>,
}

type TxnHandle = (Arc<ThreadedProducer<SinkContext>>, Arc<Mutex<Txn>>);

/// Consumer context: on revocation, drain the revoked partitions and commit them synchronously
/// (at-least-once), or commit the open transaction (exactly-once).
pub struct DrainingContext {
    tracker: Arc<Mutex<Tracker>>,
    drain_timeout: Duration,
    txn: Option<TxnHandle>,
    counters: Arc<Counters>,
}

impl ClientContext for DrainingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        client::log_line(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.counters.lag.store(lag, Ordering::Relaxed);
    }
}

impl ConsumerContext for DrainingContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else { return };
        self.counters.revocations.fetch_add(1, Ordering::SeqCst);
        if let Some((producer, txn)) = &self.txn {
            // Eager assignment under exactly-once: everything is revoked, so commit (or abort) it all;
            // the next owner starts from the committed offsets.
            if let Ok(mut t) = txn.lock() {
                if let Err(e) = commit_txn(consumer, producer, &mut t, self.drain_timeout, Persist::Bounded) {
                    tracing::warn!(error = %e, "committing the transaction on revocation failed; aborting it");
                    let _ = producer.abort_transaction(self.drain_timeout);
                    t.open = false;
                    t.next.clear();
                }
                t.start.clear();
            }
            return;
        }
        let revoked: Vec<(String, i32)> =
            tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        // Wait (bounded) for the outputs of revoked partitions to be acknowledged.
        let deadline = Instant::now() + self.drain_timeout;
        while Instant::now() < deadline {
            let busy = self.tracker.lock().map(|t| t.in_flight() > 0).unwrap_or(false);
            if !busy {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut commit = TopicPartitionList::new();
        if let Ok(mut t) = self.tracker.lock() {
            for (topic, partition) in &revoked {
                if let Some(pos) = t.revoke(topic, *partition) {
                    let _ = commit.add_partition_offset(topic, *partition, Offset::Offset(pos));
                }
            }
        }
        if commit.count() > 0
            && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
        {
            tracing::warn!(error = %e, "commit on revocation failed; the next owner re-reads those records");
        }
        tracing::info!(partitions = revoked.len(), "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
    }
}

/// What a finished loop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Records consumed.
    pub consumed: u64,
    /// Outputs produced.
    pub produced: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Whether everything in flight was acknowledged and committed before returning.
    pub drained: bool,
}

/// Runs the loop until `shutdown` is cancelled or a fatal error occurs.
pub async fn run<H: Handler>(
    kafka: &KafkaConfig,
    cfg: &PipelineConfig,
    handler: &mut H,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) -> Result<Summary, KafkaPlumbingError> {
    let tracker = Arc::new(Mutex::new(Tracker::new()));
    let (sink, txn, consumer) = connect(kafka, cfg, &tracker, &counters)?;
    let consumer = Arc::new(consumer);
    let mut source = match txn {
        Some(_) => Source::Inline,
        None => Source::fetching(&consumer, cfg),
    };
    let mut last_commit = Instant::now();
    let mut batch: Vec<Input> = Vec::with_capacity(cfg.max_batch);
    let result = loop {
        batch.clear();
        let waiting = Instant::now();
        let stop = match &mut source {
            Source::Inline => gather(&consumer, cfg, &mut batch, &counters, &shutdown).await,
            Source::Fetched { batches, .. } => tokio::select! {
                biased;
                _ = shutdown.cancelled() => true,
                b = batches.recv() => match b {
                    Some(b) => {
                        batch = b;
                        false
                    }
                    None => break Err(KafkaPlumbingError::FetchStopped),
                },
                _ = tokio::time::sleep(cfg.commit_interval) => false,
            },
        };
        Counters::time(&counters.waiting_ns, waiting);
        if stop {
            break Ok(());
        }
        if !batch.is_empty() {
            Counters::add(&counters.consumed, batch.len() as u64);
            if let Some((producer, t)) = &txn
                && let Err(e) = open_txn(producer, t, &batch)
            {
                break Err(e);
            }
            let transactional = txn.is_some();
            let out = Out { sink: &sink, tracker: &tracker, transactional, shutdown: &shutdown };
            if let Err(e) = process(&batch, handler, out, cfg, &counters).await {
                break Err(e);
            }
            Counters::add(&counters.batches, 1);
        }
        match &txn {
            None => {
                if sink.failures().count() > 0 {
                    break Err(KafkaPlumbingError::Delivery(sink.failures().last().unwrap_or_default()));
                }
                if last_commit.elapsed() >= cfg.commit_interval {
                    commit(&consumer, &tracker, CommitMode::Async, &counters);
                    last_commit = Instant::now();
                }
            }
            Some((producer, t)) => {
                if last_commit.elapsed() >= cfg.commit_interval {
                    let persist = Persist::Until(&shutdown);
                    if let Err(e) = finish_txn(&consumer, producer, t, cfg.drain_timeout, &counters, persist) {
                        break Err(e);
                    }
                    last_commit = Instant::now();
                }
            }
        }
    };

    // Drain: stop fetching, deliver what is in flight, commit what is done, leave the group.
    source.stop().await;
    let drained = match &txn {
        None => {
            let flushed = sink.flush(cfg.drain_timeout);
            commit(&consumer, &tracker, CommitMode::Sync, &counters);
            let in_flight = tracker.lock().map(|t| t.in_flight()).unwrap_or(0);
            flushed.is_ok() && in_flight == 0 && sink.failures().count() == 0
        }
        Some((producer, t)) => {
            result.is_ok() && finish_txn(&consumer, producer, t, cfg.drain_timeout, &counters, Persist::Bounded).is_ok()
        }
    };
    consumer.unsubscribe();
    let (consumed, produced, dead_lettered) = counters.snapshot();
    let full_waits = sink.full_waits.load(Ordering::Relaxed);
    let ms = |c: &AtomicU64| c.load(Ordering::Relaxed) / 1_000_000;
    let (waiting_ms, handling_ms, enqueueing_ms) =
        (ms(&counters.waiting_ns), ms(&counters.handling_ns), ms(&counters.enqueueing_ns));
    tracing::info!(
        consumed,
        produced,
        dead_lettered,
        drained,
        full_waits,
        waiting_ms,
        handling_ms,
        enqueueing_ms,
        "consume loop stopped"
    );
    result.map(|()| Summary { consumed, produced, dead_lettered, drained })
}

/// Where the loop's batches come from.
enum Source {
    /// Gathered by the loop itself, between batches. Exactly-once: a revocation commits the open
    /// transaction, so every record consumed before it must have been handled (or dropped) by then.
    Inline,
    /// Gathered by a task of their own, which fills the next batch while the loop handles and
    /// produces the last one (at-least-once: a record consumed but not yet handled is simply not
    /// committed, and read again by the partition's next owner).
    Fetched {
        batches: tokio::sync::mpsc::Receiver<Vec<Input>>,
        /// Stops the task when dropped: a loop whose future is dropped mid-way (not shut down)
        /// leaves no task polling the consumer behind.
        stop: tokio_util::sync::DropGuard,
        task: tokio::task::JoinHandle<()>,
    },
}

impl Source {
    fn fetching(consumer: &Arc<StreamConsumer<DrainingContext>>, cfg: &PipelineConfig) -> Source {
        let (tx, batches) = tokio::sync::mpsc::channel(1);
        let stop = CancellationToken::new();
        let task = tokio::spawn(fetch(consumer.clone(), tx, (cfg.max_batch, cfg.max_wait), stop.clone()));
        Source::Fetched { batches, stop: stop.drop_guard(), task }
    }

    /// Stops the fetching task (the consumer is then the loop's alone again).
    async fn stop(self) {
        if let Source::Fetched { batches, stop, task } = self {
            drop(stop);
            drop(batches);
            let _ = task.await;
        }
    }
}

/// The fetching task: a batch is filled for at most `max_wait` once its first record came, then
/// handed over as soon as the loop has room for it, taking more records (up to `max_batch`) while
/// it waits.
async fn fetch(
    consumer: Arc<StreamConsumer<DrainingContext>>,
    batches: tokio::sync::mpsc::Sender<Vec<Input>>,
    (max_batch, max_wait): (usize, Duration),
    stop: CancellationToken,
) {
    loop {
        let mut batch = Vec::with_capacity(max_batch);
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            received = receive(&consumer, &mut batch) => if !received { continue },
        }
        fill(&consumer, &mut batch, max_batch, tokio::time::Instant::now() + max_wait, |_| {}).await;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                room = batches.reserve() => match room {
                    Ok(room) => {
                        room.send(batch);
                        break;
                    }
                    Err(_) => return,
                },
                _ = receive(&consumer, &mut batch), if batch.len() < max_batch => {}
            }
        }
    }
}

/// The loop's own gathering (exactly-once): waits for a first record (or shutdown, or a commit
/// tick), then fills the batch for at most `max_wait`. Returns whether to stop.
async fn gather(
    consumer: &StreamConsumer<DrainingContext>,
    cfg: &PipelineConfig,
    batch: &mut Vec<Input>,
    counters: &Counters,
    shutdown: &CancellationToken,
) -> bool {
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => return true,
        received = receive(consumer, batch) => if !received { return false },
        _ = tokio::time::sleep(cfg.commit_interval) => return false,
    }
    // Every partition is revoked at a rebalance and the next owner starts from the committed
    // offsets: records taken before a revocation are read again, so they leave the batch (kept,
    // they would be scored twice).
    let mut generation = counters.revocations.load(Ordering::SeqCst);
    let mut stale = |batch: &mut Vec<Input>| {
        let now = counters.revocations.load(Ordering::SeqCst);
        if now != generation {
            tracing::info!(
                records = batch.len(),
                "a rebalance came while the batch filled; its records are read again"
            );
            batch.clear();
        }
        generation = now;
    };
    fill(consumer, batch, cfg.max_batch, tokio::time::Instant::now() + cfg.max_wait, &mut stale).await;
    stale(batch);
    false
}

/// Waits for one record and adds it to `batch`; `false` after a consume error (logged).
async fn receive(consumer: &StreamConsumer<DrainingContext>, batch: &mut Vec<Input>) -> bool {
    match consumer.recv().await {
        Ok(m) => {
            batch.push(Input::from_message(&m));
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "consume error");
            false
        }
    }
}

/// Adds records to `batch` until it holds `max` or `deadline` passes; what the consumer holds
/// already is taken without arming a timer, only an empty queue waits. `before` sees the batch
/// before each record is added.
async fn fill(
    consumer: &StreamConsumer<DrainingContext>,
    batch: &mut Vec<Input>,
    max: usize,
    deadline: tokio::time::Instant,
    mut before: impl FnMut(&mut Vec<Input>),
) {
    while batch.len() < max {
        let next = match consumer.recv().now_or_never() {
            Some(r) => Ok(r),
            None => tokio::time::timeout_at(deadline, consumer.recv()).await,
        };
        match next {
            Ok(Ok(m)) => {
                before(batch);
                batch.push(Input::from_message(&m));
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "consume error"),
            Err(_) => break,
        }
    }
}

/// The loop's clients: the producer (with its transaction state under exactly-once) and the
/// consumer subscribed to the topics, its context draining on revocation.
fn connect(
    kafka: &KafkaConfig,
    cfg: &PipelineConfig,
    tracker: &Arc<Mutex<Tracker>>,
    counters: &Arc<Counters>,
) -> Result<(Sink, Option<TxnHandle>, StreamConsumer<DrainingContext>), KafkaPlumbingError> {
    let producer_config = match &cfg.transactional_id {
        Some(id) => client::transactional_config(kafka, &cfg.service, id),
        None => client::service_producer_config(kafka, &cfg.service),
    };
    let sink = Sink::new(&producer_config, tracker.clone())?;
    let txn = match &cfg.transactional_id {
        Some(_) => {
            let p = sink.shared();
            let timeout = cfg.drain_timeout.max(Duration::from_secs(30));
            tokio::task::block_in_place(|| p.init_transactions(timeout))
                .map_err(|source| KafkaPlumbingError::Client { what: "initialising transactions", source })?;
            Some((p, Arc::new(Mutex::new(Txn::default()))))
        }
        None => None,
    };
    counters.lag.store(-1, Ordering::Relaxed);
    let context = DrainingContext {
        tracker: tracker.clone(),
        drain_timeout: cfg.drain_timeout,
        txn: txn.clone(),
        counters: counters.clone(),
    };
    let mut consumer_config = client::consumer_config(kafka, &cfg.service, &cfg.group);
    consumer_config.set("statistics.interval.ms", "5000");
    if txn.is_some() {
        consumer_config.set("partition.assignment.strategy", "range,roundrobin");
    }
    let consumer: StreamConsumer<DrainingContext> = consumer_config
        .create_with_context(context)
        .map_err(|source| KafkaPlumbingError::Client { what: "creating a consumer", source })?;
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|source| KafkaPlumbingError::Client { what: "subscribing", source })?;
    tracing::info!(service = %cfg.service, group = %cfg.group, topics = ?cfg.topics,
        exactly_once = txn.is_some(), "consuming");
    Ok((sink, txn, consumer))
}

/// Where a batch's outputs go: the producer, the tracker of their inputs (at-least-once), and the
/// shutdown that stops a wait for room in the producer's queue.
struct Out<'a> {
    sink: &'a Sink,
    tracker: &'a Arc<Mutex<Tracker>>,
    transactional: bool,
    shutdown: &'a CancellationToken,
}

async fn process<H: Handler>(
    batch: &[Input],
    handler: &mut H,
    out: Out<'_>,
    cfg: &PipelineConfig,
    counters: &Counters,
) -> Result<(), KafkaPlumbingError> {
    let Out { sink, tracker, transactional, shutdown } = out;
    let handling = Instant::now();
    let outcomes = handler.handle(batch).await.map_err(KafkaPlumbingError::Handler)?;
    Counters::time(&counters.handling_ns, handling);
    let enqueueing = Instant::now();
    if outcomes.len() != batch.len() {
        return Err(KafkaPlumbingError::Handler(HandlerError(format!(
            "handler returned {} outcomes for {} inputs",
            outcomes.len(),
            batch.len()
        ))));
    }
    let outputs: Vec<Vec<Output>> = batch
        .iter()
        .zip(outcomes)
        .map(|(input, outcome)| match outcome {
            Outcome::Produce(outputs) => outputs,
            Outcome::DeadLetter(reason) => {
                tracing::debug!(topic = %input.topic, partition = input.partition, offset = input.offset,
                    stage = reason.stage, kind = reason.kind, error = %reason.error, "dead-lettering a record");
                Counters::add(&counters.dead_lettered, 1);
                vec![dlq::dead_letter(&cfg.dlq_topic, &cfg.service, input, &reason, now_ms())]
            }
        })
        .collect();
    // Under transactions the commit covers the outputs; otherwise the tracker waits for their acks.
    // The whole batch is tracked under one lock (the delivery thread takes it for every ack).
    let tickets: Vec<Option<Ticket>> = if transactional {
        vec![None; batch.len()]
    } else {
        let mut t = tracker.lock().map_err(|_| KafkaPlumbingError::Poisoned)?;
        batch
            .iter()
            .zip(&outputs)
            .map(|(i, o)| Some(t.track(&i.topic, i.partition, i.offset, o.len() as u32)))
            .collect()
    };
    for (outputs, ticket) in outputs.iter().zip(tickets) {
        for output in outputs {
            sink.send_until(output, ticket, shutdown).await?;
        }
        Counters::add(&counters.produced, outputs.len() as u64);
    }
    Counters::time(&counters.enqueueing_ns, enqueueing);
    Ok(())
}

fn commit<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    tracker: &Arc<Mutex<Tracker>>,
    mode: CommitMode,
    counters: &Counters,
) {
    // A synchronous commit (shutdown) commits every position; an asynchronous one only those that
    // moved since the last commit.
    let positions = match tracker.lock() {
        Ok(t) if matches!(mode, CommitMode::Sync) => t.positions(),
        Ok(mut t) => t.take_committable(),
        Err(_) => return,
    };
    if positions.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, pos) in &positions {
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*pos));
    }
    let r: KafkaResult<()> = consumer.commit(&tpl, mode);
    match r {
        Ok(()) => Counters::add(&counters.commits, 1),
        Err(e) => tracing::warn!(error = %e, "offset commit failed; it is retried with the next one"),
    }
}

/// Begins a transaction if none is open and records the batch's offsets in it.
fn open_txn(
    producer: &ThreadedProducer<SinkContext>,
    txn: &Mutex<Txn>,
    batch: &[Input],
) -> Result<(), KafkaPlumbingError> {
    let mut t = txn.lock().map_err(|_| KafkaPlumbingError::Poisoned)?;
    if !t.open {
        producer
            .begin_transaction()
            .map_err(|source| KafkaPlumbingError::Client { what: "beginning a transaction", source })?;
        t.open = true;
    }
    for input in batch {
        let key = (input.topic.clone(), input.partition);
        t.start.entry(key.clone()).or_insert(input.offset);
        t.next.insert(key, input.offset + 1);
    }
    Ok(())
}

/// How long a transactional call is retried while its errors are retriable (a broker away).
#[derive(Clone, Copy)]
enum Persist<'a> {
    /// Until the loop is told to stop: an outage of any length is waited out.
    Until(&'a CancellationToken),
    /// A few attempts (draining at shutdown, or inside a rebalance).
    Bounded,
}

impl Persist<'_> {
    /// Runs `op` again while it fails with a retriable transactional error and persistence lasts.
    fn retry<T>(self, what: &str, mut op: impl FnMut() -> KafkaResult<T>) -> KafkaResult<T> {
        let mut attempts = 0;
        loop {
            match op() {
                Err(KafkaError::Transaction(e)) if e.is_retriable() && self.goes_on(attempts) => {
                    attempts += 1;
                    tracing::warn!(error = %e, attempts, "{what}: trying again (is the broker away?)");
                    // A call that fails at once (not after its timeout) must not spin.
                    std::thread::sleep(Duration::from_millis(50 << attempts.min(4)));
                }
                r => return r,
            }
        }
    }

    fn goes_on(self, attempts: u32) -> bool {
        match self {
            Persist::Until(stop) => !stop.is_cancelled() || attempts < 5,
            Persist::Bounded => attempts < 5,
        }
    }
}

/// Sends the transaction's offsets and commits it; an abortable failure aborts and rewinds the
/// consumer to where the transaction started; a fatal one is returned.
fn finish_txn<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    producer: &ThreadedProducer<SinkContext>,
    txn: &Mutex<Txn>,
    timeout: Duration,
    counters: &Counters,
    persist: Persist<'_>,
) -> Result<(), KafkaPlumbingError> {
    let mut t = txn.lock().map_err(|_| KafkaPlumbingError::Poisoned)?;
    if !t.open {
        return Ok(());
    }
    let result = tokio::task::block_in_place(|| commit_txn(consumer, producer, &mut t, timeout, persist));
    match result {
        Ok(()) => {
            Counters::add(&counters.commits, 1);
            Ok(())
        }
        Err(KafkaError::Transaction(e)) if e.txn_requires_abort() && !e.is_fatal() => {
            tracing::warn!(error = %e, "transaction failed; aborting it and rewinding");
            tokio::task::block_in_place(|| {
                persist.retry("aborting a transaction", || producer.abort_transaction(timeout))
            })
            .map_err(|source| KafkaPlumbingError::Client { what: "aborting a transaction", source })?;
            Counters::add(&counters.aborts, 1);
            for ((topic, partition), start) in t.start.iter().filter(|(k, _)| t.next.contains_key(*k)) {
                if let Err(e) = consumer.seek(topic, *partition, Offset::Offset(*start), timeout) {
                    return Err(KafkaPlumbingError::Client { what: "rewinding after an abort", source: e });
                }
            }
            t.open = false;
            t.next.clear();
            Ok(())
        }
        Err(source) => Err(KafkaPlumbingError::Client { what: "committing a transaction (fatal)", source }),
    }
}

/// `send_offsets_to_transaction` then `commit_transaction`, retrying retriable errors as long as
/// `persist` says.
fn commit_txn<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    producer: &ThreadedProducer<SinkContext>,
    t: &mut Txn,
    timeout: Duration,
    persist: Persist<'_>,
) -> Result<(), KafkaError> {
    if !t.open {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in &t.next {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    let metadata = consumer.group_metadata().ok_or(KafkaError::Global(rdkafka::types::RDKafkaErrorCode::State))?;
    // A retry resumes the step that timed out: calling `send_offsets_to_transaction` again while a
    // commit is in progress is refused as a conflicting call, for ever (seen: 76 million attempts).
    let mut offsets_sent = tpl.count() == 0;
    persist.retry("committing a transaction", || {
        if !offsets_sent {
            producer.send_offsets_to_transaction(&tpl, &metadata, timeout)?;
            offsets_sent = true;
        }
        producer.commit_transaction(timeout)
    })?;
    t.open = false;
    let next: Vec<_> = t.next.drain().collect();
    for (k, v) in next {
        t.start.insert(k, v);
    }
    Ok(())
}
