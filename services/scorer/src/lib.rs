//! Vigil's scorer service: every event on the configured input topics becomes a `Score` on
//! `vigil.scores` (or a dead letter), scored by the champion version of its model and, for a share of
//! events, by the newest candidate in shadow. The model book ([`book`]) follows `vigil.models` and
//! hot-swaps validated versions; inference runs on a worker pool ([`pool`]); the handler ([`handler`])
//! plugs into Vigil's commit-after-acknowledgement (or transactional) consume loop.

pub mod book;
pub mod config;
pub mod handler;
pub mod pool;
pub mod telemetry;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vigil_events::Codec;
use vigil_kafka::inputs::load_schemas;
use vigil_kafka::pipeline::{self, PipelineConfig};
use vigil_kafka::schema_registry::Registry as SchemaRegistry;
use vigil_models::Runtime;
use vigil_models::checkpoint::{Policy, verifying_key_from_hex};
use vigil_runtime::Health;
use vigil_runtime::config::Delivery;

pub use crate::config::{Config, ScorerConfig};

use crate::book::{Book, Follower};
use crate::handler::{Route, Scorer};
use crate::pool::Pool;
use crate::telemetry::Metrics;

/// Why the scorer stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    /// It could not start.
    #[error("cannot start the scorer: {0}")]
    Start(String),
    /// The consume loop failed.
    #[error("the consume loop failed")]
    Pipeline(#[source] vigil_kafka::KafkaPlumbingError),
}

/// What a running scorer exposes to its caller (tests use the address and metrics).
pub struct Running {
    /// Telemetry endpoint.
    pub http: std::net::SocketAddr,
}

/// Runs the scorer until `shutdown`; `started` receives the telemetry address once it listens.
pub async fn run(
    mut config: Config,
    shutdown: CancellationToken,
    started: Option<tokio::sync::oneshot::Sender<Running>>,
) -> Result<(), ScorerError> {
    vigil_kafka::client::check_features(&config.kafka).map_err(start)?;
    let codec = Arc::new(Codec::new());
    load_schemas(&codec, &mut config.inputs, &config.schema_registry).await.map_err(|p| start(p.join("; ")))?;
    let sc = &config.scorer;
    let served = if sc.models.is_empty() { config.input_models(false) } else { sc.models.clone() };
    let (routes, schemas) = routes(&config, &served, &codec)?;
    let schema_registry = register_schemas(&config, &codec).await?;
    let library = (!sc.onnxruntime.is_empty()).then(|| PathBuf::from(&sc.onnxruntime));
    let runtime = Runtime::global(library.as_deref()).map_err(|e| start(vigil_runtime::error_chain(&e)))?;
    let inline_below = Duration::from_micros(sc.inline_below_us);
    let pool = Arc::new(Pool::start(runtime.clone(), sc.workers, sc.provider, sc.intra_threads, inline_below));

    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let health = Health::new();
    health.set_not_ready(format!("waiting for a champion of {}", served.join(", ")));
    let http =
        vigil_runtime::metrics::serve(&sc.http_listen, Arc::new(registry), health.clone(), shutdown.child_token())
            .await
            .map_err(|e| start(vigil_runtime::error_chain(&e)))?;
    if let Some(tx) = started {
        let _ = tx.send(Running { http: http.addr });
    }
    vigil_kafka::cluster::watch(&config.kafka, &config.topics.models, health.clone(), shutdown.child_token());

    let (book, failures) = Book::new();
    let book = Arc::new(book);
    let (ready_tx, ready_rx) = watch::channel(Vec::new());
    let follow_stop = shutdown.child_token();
    let follower = Follower {
        config: config.clone(),
        schemas,
        codec: codec.clone(),
        runtime,
        policy: policy(sc)?,
        pool: pool.clone(),
        book: book.clone(),
        metrics: metrics.clone(),
        ready: ready_tx,
        shutdown: follow_stop.clone(),
    };
    let follow_task = tokio::spawn(follower.run(failures));

    let handler = Scorer {
        routes,
        codec,
        book,
        pool: pool.clone(),
        scores_topic: config.topics.scores.clone(),
        challenger_share: sc.challenger_share,
        scores_key: sc.scores_key,
        metrics: metrics.clone(),
        layouts: HashMap::new(),
        models: HashMap::new(),
        registry: schema_registry,
    };
    let result = serve(&config, handler, ready_rx, &health, &metrics, &shutdown).await;
    health.set_not_ready("stopping");
    follow_stop.cancel();
    let followed = follow_task.await;
    if let Ok(pool) = Arc::try_unwrap(pool) {
        pool.stop();
    }
    match followed {
        // Why the follower stopped is the scorer's reason too (it cannot follow its models).
        Ok(Err(e)) => Err(start(format!("the models follower failed: {e}"))),
        Err(e) if e.is_panic() => Err(start("the models follower panicked".into())),
        _ => result,
    }
}

fn start(e: String) -> ScorerError {
    ScorerError::Start(e)
}

/// Input topic → how it is scored.
type Routes = HashMap<String, Route>;
/// Served model → the reader schema of its input.
type Schemas = HashMap<String, &'static apache_avro::Schema>;

/// The route of every input topic of a served model, and the reader schema of each model.
fn routes(config: &Config, served: &[String], codec: &Codec) -> Result<(Routes, Schemas), ScorerError> {
    let mut routes = HashMap::new();
    let mut schemas = HashMap::new();
    for input in config.inputs.iter().filter(|i| served.contains(&i.model)) {
        let schema = codec.schema(&input.schema).map_err(|e| start(format!("input {}: {e}", input.topic)))?;
        routes.insert(
            input.topic.clone(),
            Route {
                model: input.model.clone(),
                schema_name: input.schema.clone(),
                encoding: input.format,
                id_field: input.id_field.clone(),
                events: None,
            },
        );
        schemas.insert(input.model.clone(), schema);
    }
    if routes.is_empty() {
        return Err(start("no input topic is configured for the served models".into()));
    }
    Ok((routes, schemas))
}

/// With a schema registry, registers the scores' and alerts' schemas (records get Confluent
/// framing) and returns the client (the handler fetches writer schemas of inputs with it).
async fn register_schemas(config: &Config, codec: &Codec) -> Result<Option<Arc<SchemaRegistry>>, ScorerError> {
    let Some(registry) = SchemaRegistry::from_config(&config.schema_registry).map_err(|e| start(e.to_string()))? else {
        return Ok(None);
    };
    for (topic, name) in [
        (&config.topics.scores, vigil_events::schemas::names::SCORE),
        (&config.topics.alerts, vigil_events::schemas::names::ALERT),
    ] {
        registry.register(codec, topic, name).await.map_err(|e| start(vigil_runtime::error_chain(&e)))?;
    }
    Ok(Some(Arc::new(registry)))
}

/// `scorer.instance-id`, or the host's name when it is empty.
fn instance_id(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    host.unwrap_or_else(|| "0".into())
}

/// The checkpoint validation rules of the configuration. Signatures are required by default, so a
/// scorer with no trusted key does not start (the rest of the document is valid without one: the
/// CLI and the other services load it too).
fn policy(sc: &ScorerConfig) -> Result<Policy, ScorerError> {
    if sc.require_signature && sc.trusted_keys.is_empty() {
        return Err(start(
            "scorer.require-signature is on (the default) and scorer.trusted-keys is empty: make a key pair with \
             `vigil models keygen --out key.hex`, sign with it (learner.sign-key, vigil models … --sign-key) and \
             list its public key in scorer.trusted-keys, or set scorer.require-signature = false to serve \
             unsigned checkpoints"
                .into(),
        ));
    }
    let trusted_keys =
        sc.trusted_keys.iter().map(|k| verifying_key_from_hex(k).map_err(start)).collect::<Result<_, _>>()?;
    let model_dirs = sc.model_dirs.iter().map(std::path::PathBuf::from).collect();
    let policy = Policy {
        max_bytes: sc.max_model_bytes as usize,
        require_signature: sc.require_signature,
        trusted_keys,
        ..Policy::default()
    };
    Ok(policy.with_model_dirs(model_dirs))
}

/// Consumes the input topics of the models that have a champion (the others' records wait in Kafka,
/// not in memory) until shutdown; when another model gets its first champion, the loop stops (it
/// commits what it did) and starts again with that model's topics too.
async fn serve(
    config: &Config,
    mut handler: Scorer,
    mut serving: watch::Receiver<Vec<String>>,
    health: &Health,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> Result<(), ScorerError> {
    loop {
        let models = serving.borrow_and_update().clone();
        let waiting: Vec<&String> = handler.routes.values().map(|r| &r.model).filter(|m| !models.contains(m)).collect();
        if models.is_empty() {
            health.set_not_ready("waiting for a champion of every served model");
        } else {
            health.set_ready();
            tracing::info!(serving = ?models, waiting = ?waiting, "scoring the models that have a champion");
        }
        let round = shutdown.child_token();
        let watch = {
            let (round, mut serving) = (round.clone(), serving.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = round.cancelled() => {}
                    // A change, or the follower gone (the loop below says so and stops).
                    _ = serving.changed() => round.cancel(),
                }
            })
        };
        let result = if models.is_empty() {
            round.cancelled().await;
            Ok(())
        } else {
            consume(config, &mut handler, &models, metrics, &round).await
        };
        round.cancel();
        let _ = watch.await;
        if result.is_err() || shutdown.is_cancelled() {
            return result;
        }
        if serving.has_changed().is_err() {
            return Err(start("the models follower stopped".into()));
        }
    }
}

/// Runs the consume loop on the topics of `models` until `shutdown`; a fatal transactional error
/// rebuilds producer and consumer (they resume from the committed offsets), at most five times in
/// a row (a loop that ran for a minute before failing starts the count again).
async fn consume(
    config: &Config,
    handler: &mut Scorer,
    models: &[String],
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> Result<(), ScorerError> {
    let sc = &config.scorer;
    let topics = handler.routes.iter().filter(|(_, r)| models.contains(&r.model)).map(|(t, _)| t.clone()).collect();
    let mut cfg = PipelineConfig::new("scorer", &sc.group_id, topics, &config.topics.dlq);
    cfg.max_batch = sc.max_batch;
    cfg.max_wait = sc.max_wait;
    cfg.commit_interval = sc.commit_interval;
    cfg.drain_timeout = sc.drain_timeout;
    if config.kafka.delivery == Delivery::ExactlyOnce {
        cfg.transactional_id = Some(format!("scorer-{}-{}", sc.group_id, instance_id(&sc.instance_id)));
    }
    let lag_task = follow_lag(metrics.clone(), shutdown.child_token());
    let mut rebuilds = 0;
    let result = loop {
        let started = std::time::Instant::now();
        let outcome =
            pipeline::run(&config.kafka, &cfg, handler, metrics.pipeline.clone(), shutdown.child_token()).await;
        if started.elapsed() > Duration::from_secs(60) {
            rebuilds = 0;
        }
        match outcome {
            Ok(summary) => {
                tracing::info!(
                    consumed = summary.consumed,
                    produced = summary.produced,
                    dead_letters = summary.dead_lettered,
                    drained = summary.drained,
                    "scorer stopped"
                );
                break Ok(());
            }
            Err(e) if cfg.transactional_id.is_some() && rebuilds < 5 && !shutdown.is_cancelled() => {
                rebuilds += 1;
                tracing::error!(error = %vigil_runtime::error_chain(&e), rebuilds, "transactional loop failed; rebuilding producer and consumer");
                tokio::time::sleep(Duration::from_millis(500 * rebuilds)).await;
            }
            Err(e) => break Err(ScorerError::Pipeline(e)),
        }
    };
    lag_task.abort();
    result
}

/// Keeps the lag gauge in step with the loop's statistics.
fn follow_lag(metrics: Arc<Metrics>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    metrics.lag.set(metrics.pipeline.lag.load(std::sync::atomic::Ordering::Relaxed));
                }
            }
        }
    })
}
