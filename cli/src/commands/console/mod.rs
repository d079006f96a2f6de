//! `vigil console`: a live page served locally (127.0.0.1 unless `--listen` says otherwise) that
//! shows, per model, events/s and latency, the champion's and challenger's score distributions,
//! windowed accuracy / AUC, the version timeline and per-feature drift against its threshold, and
//! the open and resolved alerts. A follower thread reads the scores, models, alerts and drift topics
//! into a [`state::Board`]; the page gets the board's HTML over server-sent events once a second
//! (`/events`), and `/api/state` gives the same figures as JSON. Everything is kept in the console's
//! memory and rebuilt from the topics when it starts, so a browser reload loses nothing, and the
//! Kafka client reconnects by itself when a broker comes back.

pub mod state;
pub mod view;

use std::collections::HashSet;
use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use vigil_events::Codec;
use vigil_kafka::{client, now_ms};

use crate::Config;
use state::{Board, Source};

/// How often the page is updated, and the brokers asked whether they are there.
const TICK: Duration = Duration::from_secs(1);
const PROBE_EVERY: Duration = Duration::from_secs(3);
/// Records of each drift partition read back at start-up (scores: [`state::SCORES_KEPT`]).
const REPORTS_BACK: i64 = state::REPORTS_KEPT as i64;

#[derive(Clone)]
struct Shared {
    board: Arc<Mutex<Board>>,
    stop: CancellationToken,
}

/// Serves the console on `listen` until SIGINT or SIGTERM.
pub async fn run(config: &Config, listen: &str) -> anyhow::Result<ExitCode> {
    let board = Arc::new(Mutex::new(Board::new(config.drift.significance)));
    let stop = vigil_runtime::shutdown::on_signals();
    let halt = Arc::new(AtomicBool::new(false));
    let follower = {
        let (config, board, halt) = (config.clone(), board.clone(), halt.clone());
        std::thread::Builder::new().name("console-follower".into()).spawn(move || follow(&config, &board, &halt))?
    };
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding the console to {listen}"))?;
    let addr = listener.local_addr()?;
    println!("vigil console: http://{addr}/");
    let app = Router::new()
        .route("/", get(page))
        .route("/live", get(live))
        .route("/events", get(events))
        .route("/api/state", get(api_state))
        .with_state(Shared { board, stop: stop.clone() });
    let served = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    halt.store(true, Ordering::Relaxed);
    let _ = follower.join();
    served.context("serving the console")?;
    Ok(ExitCode::SUCCESS)
}

fn lock(board: &Mutex<Board>) -> MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn page(State(s): State<Shared>) -> Html<String> {
    Html(view::page(&lock(&s.board), now_ms()))
}

async fn live(State(s): State<Shared>) -> Html<String> {
    Html(view::live(&lock(&s.board), now_ms()))
}

async fn api_state(State(s): State<Shared>) -> impl IntoResponse {
    let body = view::json(&lock(&s.board), now_ms()).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// The live part once a second until the console stops (the stream then ends, so that shutdown
/// does not wait on open pages), or `?updates=N` of them.
async fn events(
    State(s): State<Shared>,
    RawQuery(query): RawQuery,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let max = query.as_deref().and_then(|q| q.strip_prefix("updates=")?.parse::<u64>().ok()).unwrap_or(u64::MAX);
    let stream = futures_util::stream::unfold((s, 0u64), move |(s, sent)| async move {
        if sent >= max {
            return None;
        }
        if sent > 0 {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = s.stop.cancelled() => return None,
            }
        }
        let html = view::live(&lock(&s.board), now_ms());
        Some((Ok(Event::default().data(html)), (s, sent + 1)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The follower: assigns every partition of the four topics (new ones as they appear), reading
/// models and alerts from the beginning and the last records of scores and drift reports, and
/// folds each record into the board until `halt`.
fn follow(config: &Config, board: &Mutex<Board>, halt: &AtomicBool) {
    let codec = Codec::new();
    let t = &config.topics;
    let topics = [
        (t.scores.clone(), Source::Scores, Some(state::SCORES_KEPT as i64)),
        (t.models.clone(), Source::Models, None),
        (t.alerts.clone(), Source::Alerts, None),
        (t.drift.clone(), Source::Drift, Some(REPORTS_BACK)),
    ];
    let group = format!("vigil-console-{}-{}", std::process::id(), now_ms());
    let consumer: BaseConsumer<client::LogContext> =
        match client::large_message_consumer_config(&config.kafka, "console", &group)
            .create_with_context(client::LogContext)
        {
            Ok(c) => c,
            Err(e) => {
                lock(board).broker = state::Broker { connected: false, since_ms: now_ms(), error: Some(e.to_string()) };
                return;
            }
        };
    let mut assigned = HashSet::new();
    let mut probed: Option<Instant> = None;
    while !halt.load(Ordering::Relaxed) {
        if probed.is_none_or(|at| at.elapsed() >= PROBE_EVERY) {
            probed = Some(Instant::now());
            let reached = assign_new(&consumer, &topics, &mut assigned);
            let mut b = lock(board);
            let connected = reached.is_ok();
            if connected != b.broker.connected || b.broker.since_ms == 0 {
                b.broker.since_ms = now_ms();
            }
            b.broker.connected = connected;
            b.broker.error = reached.err().map(|e| e.to_string());
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200))
            && let Some((_, source, _)) = topics.iter().find(|(name, _, _)| name == m.topic())
        {
            lock(board).apply(&codec, *source, m.key(), m.payload(), m.offset());
        }
    }
}

/// Adds the partitions not yet assigned (a topic created after the console started, or grown).
fn assign_new(
    consumer: &BaseConsumer<client::LogContext>,
    topics: &[(String, Source, Option<i64>)],
    assigned: &mut HashSet<(String, i32)>,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(2);
    let md = consumer.fetch_metadata(None, timeout)?;
    let (mut tpl, mut added) = (TopicPartitionList::new(), Vec::new());
    for (name, _, back) in topics {
        let Some(topic) = md.topics().iter().find(|t| t.name() == name) else { continue };
        for p in topic.partitions().iter().map(|p| p.id()) {
            if assigned.contains(&(name.clone(), p)) {
                continue;
            }
            let from = match back {
                Some(n) => {
                    let (low, high) = client::watermarks(consumer, name, p, timeout)?;
                    Offset::Offset((high - n).max(low))
                }
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(name, p, from)?;
            added.push((name.clone(), p));
        }
    }
    if tpl.count() > 0 {
        consumer.incremental_assign(&tpl)?;
        assigned.extend(added);
    }
    Ok(())
}
