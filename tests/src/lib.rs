//! Helpers for the end-to-end tests: the test broker's address, unique topic names, topic set-up and
//! clean-up, waiting for a condition with a deadline, and the paths of the `vigil` binary and the
//! project's Python.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test support: a failed set-up is a failed test

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use vigil_kafka::Input;
use vigil_runtime::config::KafkaConfig;

pub mod fault;
pub mod pages;

thread_local! {
    static BROKER: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The broker the tests use: the one [`use_broker`] chose on this thread, else
/// `VIGIL_TEST_BOOTSTRAP` (set by `make test`), else 127.0.0.1:19092.
pub fn bootstrap() -> String {
    if let Some(b) = BROKER.with(|b| b.borrow().clone()) {
        return b;
    }
    std::env::var("VIGIL_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

/// Points this thread's helpers (stacks, consumers, producers, admin) at another broker (the fault
/// broker's proxy); each test runs on a thread of its own.
pub fn use_broker(bootstrap: &str) {
    BROKER.with(|b| *b.borrow_mut() = Some(bootstrap.to_string()));
}

/// Vigil's Kafka settings pointed at the test broker.
pub fn kafka_config() -> KafkaConfig {
    KafkaConfig { bootstrap_servers: bootstrap(), linger_ms: 1, ..KafkaConfig::default() }
}

/// Held by the tests that drive sustained load through the broker (a scorer under thousands of
/// events a second, ten thousand checkpoints replayed): they run one at a time. On two cores a
/// broker that has just started (its Java code not yet compiled) and two of them side by side left
/// the broker answering nothing for 3–9 s (a metadata request timed, every 200 ms), which a test
/// bounding the scorer's pauses would blame on the scorer.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// Times a metadata request to the test broker every 200 ms on a thread of its own, until
/// [`BrokerProbe::finish`]: the longest answer is the broker's own longest pause in that time,
/// which tells a pause of the broker from one of a service.
pub struct BrokerProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Duration>,
}

impl BrokerProbe {
    /// Starts probing.
    pub fn start() -> BrokerProbe {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let consumer: rdkafka::consumer::BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", bootstrap()).create().unwrap();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut longest = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                let start = Instant::now();
                let _ = consumer.fetch_metadata(None, Duration::from_secs(30));
                longest = longest.max(start.elapsed());
                std::thread::sleep(Duration::from_millis(200));
            }
            longest
        });
        BrokerProbe { stop, thread }
    }

    /// Stops probing; the longest a metadata request took.
    pub fn finish(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("it-{prefix}-{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `vigil` binary built by `cargo build` (`make test` builds it first).
pub fn vigil_bin() -> PathBuf {
    bin("vigil")
}

/// A binary of the workspace in the same target directory as this test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/it-xxxx → target/debug/<name>
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins` (make test does)", path.display());
    path
}

/// The project's Python (with fastavro, confluent-kafka, onnxruntime, …).
pub fn python() -> PathBuf {
    let p = std::env::var("VIGIL_PYTHON").map(PathBuf::from).unwrap_or_else(|_| root().join(".venv/bin/python"));
    assert!(p.exists(), "{} is missing: run scripts/setup.sh (make test does)", p.display());
    p
}

/// An admin client for the test broker.
pub fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", bootstrap()).create().unwrap()
}

/// Creates topics with `partitions` partitions each.
pub async fn create_topics(names: &[&str], partitions: i32) {
    let admin = admin();
    let new: Vec<NewTopic<'_>> =
        names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1))).collect();
    let results = admin.create_topics(&new, &AdminOptions::new()).await.unwrap();
    for r in results {
        r.unwrap_or_else(|(name, code)| panic!("creating {name}: {code}"));
    }
}

/// Deletes topics (best effort).
pub async fn delete_topics(names: &[&str]) {
    let _ = admin().delete_topics(names, &AdminOptions::new()).await;
}

/// Waits until `check` returns `Some`, polling every 50 ms, at most `deadline`.
pub async fn wait_for<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A producer for test input.
pub fn producer() -> FutureProducer {
    ClientConfig::new().set("bootstrap.servers", bootstrap()).set("linger.ms", "1").create().unwrap()
}

/// Produces one record and waits for its acknowledgement.
pub async fn produce(p: &FutureProducer, topic: &str, key: Option<&[u8]>, payload: &[u8]) {
    let mut r = FutureRecord::<[u8], [u8]>::to(topic).payload(payload);
    if let Some(k) = key {
        r = r.key(k);
    }
    p.send(r, Duration::from_secs(30)).await.map_err(|(e, _)| e).unwrap();
}

/// Reads exactly `n` records of `topic` from the beginning (failing after `deadline`), then checks
/// that no further record arrives within `quiet`.
pub async fn consume_exactly(topic: &str, n: usize, deadline: Duration, quiet: Duration) -> Vec<Input> {
    let c = consumer(topic, "read_uncommitted");
    let out = read_n(&c, topic, n, deadline).await;
    if let Ok(Ok(m)) = tokio::time::timeout(quiet, c.recv()).await {
        panic!("{topic}: a record beyond the {n} expected (partition {}, offset {})", m.partition(), m.offset());
    }
    out
}

/// Reads `n` records of `topic` from the beginning with the given isolation level.
pub async fn consume(topic: &str, n: usize, deadline: Duration, isolation: &str) -> Vec<Input> {
    read_n(&consumer(topic, isolation), topic, n, deadline).await
}

async fn read_n(c: &StreamConsumer, topic: &str, n: usize, deadline: Duration) -> Vec<Input> {
    let mut out = Vec::with_capacity(n);
    let until = Instant::now() + deadline;
    while out.len() < n {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, c.recv()).await {
            Ok(Ok(m)) => out.push(Input::from_message(&m)),
            Ok(Err(e)) => panic!("consume error on {topic}: {e}"),
            Err(_) => panic!("{topic}: only {} of {n} records within {deadline:?}", out.len()),
        }
    }
    out
}

/// A consumer of `topic` from the beginning, in its own group.
pub fn consumer(topic: &str, isolation: &str) -> StreamConsumer {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

/// The payload of a record as text, for messages.
pub fn text(m: &impl Message) -> String {
    String::from_utf8_lossy(m.payload().unwrap_or(&[])).to_string()
}

/// Runs the `vigil` CLI against the test broker with extra environment and optional standard input;
/// returns (exit code, stdout, stderr).
pub fn vigil(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> (i32, String, String) {
    run_with_input(std::process::Command::new(vigil_bin()).args(args), env, stdin)
}

/// Runs the project's Python on `tests/support/<script>` with arguments and optional standard input.
pub fn python_support(script: &str, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let path = root().join("tests/support").join(script);
    run_with_input(std::process::Command::new(python()).arg(path).args(args), &[], stdin)
}

fn run_with_input(cmd: &mut std::process::Command, env: &[(&str, &str)], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    cmd.env("VIGIL_KAFKA__BOOTSTRAP_SERVERS", bootstrap())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // Written from a thread of its own: a child that answers as it reads would otherwise fill its
    // output pipe while this side still writes, and both would wait for ever.
    let writer = stdin.map(|input| {
        let (mut pipe, input) = (child.stdin.take().unwrap(), input.to_string());
        std::thread::spawn(move || pipe.write_all(input.as_bytes()))
    });
    let out = child.wait_with_output().unwrap();
    // A child that stops reading early (it failed) breaks the pipe: its status and errors say why.
    if let Some(w) = writer {
        let _ = w.join();
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The schema registry the tests use: Apicurio Registry's Confluent-compatible API, which `make test`
/// starts (`scripts/registry.sh`) and names in `VIGIL_TEST_REGISTRY`. Tests share it: each uses its
/// own topics, hence its own subjects.
pub fn registry_url() -> String {
    std::env::var("VIGIL_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!("VIGIL_TEST_REGISTRY is not set: run the tests with `make test`, or `scripts/registry.sh start` and set it to what `scripts/registry.sh status` prints")
    })
}

/// Writes `text` to a fresh temporary file and returns its path.
pub fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("files"));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A free local port for a service's endpoint ([`vigil_runtime::metrics::free_local_port`]).
pub fn free_port() -> u16 {
    vigil_runtime::metrics::free_local_port().unwrap()
}

/// GETs `path` from a local HTTP server; returns (status, body), or `None` when it does not answer.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()))
}

/// One test's own set of Vigil topics, a configuration file naming them, and helpers to run Vigil's
/// programs against them.
pub struct Stack {
    /// Prefix of every name.
    pub prefix: String,
    /// The configuration file.
    pub config: PathBuf,
    /// Topics: transactions, transaction labels, texts, text labels, scores, models, alerts, drift, dlq.
    pub tx: String,
    /// Transaction labels.
    pub tx_labels: String,
    /// Texts.
    pub texts: String,
    /// Text labels.
    pub text_labels: String,
    /// Scores.
    pub scores: String,
    /// Models.
    pub models: String,
    /// Alerts.
    pub alerts: String,
    /// Drift reports.
    pub drift: String,
    /// Dead letters.
    pub dlq: String,
    /// A/B tests.
    pub experiments: String,
}

impl Stack {
    /// `vigil-load fraud` on a thread: `events` transactions at `rate` per second into this stack's
    /// input, each labelled about 200 ms later, ids prefixed by `prefix`; joins to its JSON summary.
    pub fn labelled_fraud_load(
        &self,
        prefix: &str,
        events: u64,
        rate: u64,
    ) -> std::thread::JoinHandle<serde_json::Value> {
        let (cfg, tx, labels, prefix) =
            (self.config.clone(), self.tx.clone(), self.tx_labels.clone(), prefix.to_string());
        let (events, rate) = (events.to_string(), rate.to_string());
        std::thread::spawn(move || {
            let out = std::process::Command::new(bin("vigil-load"))
                .args(["fraud", "--topic", &tx, "--labels-topic", &labels, "--events", &events, "--rate", &rate])
                .args(["--id-prefix", &prefix, "--label-fast-share", "1", "--label-slow-share", "0"])
                .args(["--label-fast-mean-ms", "200", "--label-grace", "10"])
                .env("VIGIL_CONFIG", cfg)
                .env("VIGIL_LOG__LEVEL", "warn")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).unwrap()
        })
    }

    /// Creates the topics (with `partitions` each) and the configuration file; `extra` holds more
    /// keys of the `[scorer]` section.
    pub async fn new(name: &str, partitions: i32, extra: &str) -> Stack {
        Stack::with_learner(name, partitions, extra, "").await
    }

    /// Like [`Stack::new`], with more keys of the `[learner]` section.
    pub async fn with_learner(name: &str, partitions: i32, extra: &str, learner: &str) -> Stack {
        Stack::with_sections(name, partitions, extra, learner, "").await
    }

    /// Like [`Stack::with_learner`], with more keys of the `[drift]` section.
    pub async fn with_sections(name: &str, partitions: i32, extra: &str, learner: &str, drift_keys: &str) -> Stack {
        let prefix = unique(name);
        let t = |s: &str| format!("{prefix}-{s}");
        let stack = Stack {
            tx: t("tx"),
            tx_labels: t("tx-labels"),
            texts: t("texts"),
            text_labels: t("text-labels"),
            scores: t("scores"),
            models: t("models"),
            alerts: t("alerts"),
            drift: t("drift"),
            dlq: t("dlq"),
            experiments: t("experiments"),
            config: PathBuf::new(),
            prefix: prefix.clone(),
        };
        let text = format!(
            r#"
[kafka]
bootstrap-servers = "{bootstrap}"
linger-ms = 1

[topics]
scores = "{scores}"
models = "{models}"
alerts = "{alerts}"
drift = "{drift}"
dlq = "{dlq}"
experiments = "{experiments}"
partitions = {partitions}

[[inputs]]
topic = "{tx}"
schema = "dev.vigil.demo.Transaction"
model = "fraud"
labels = "{tx_labels}"

[[inputs]]
topic = "{texts}"
schema = "dev.vigil.demo.TextEvent"
model = "sentiment"
labels = "{text_labels}"
group-field = "source"

[scorer]
http-listen = "127.0.0.1:0"
group-id = "{prefix}-scorer"
{signatures}{extra}

[learner]
http-listen = "127.0.0.1:0"
group-id = "{prefix}-learner"
{learner}

[drift]
http-listen = "127.0.0.1:0"
group-id = "{prefix}-drift"
{drift_keys}
"#,
            bootstrap = bootstrap(),
            scores = stack.scores,
            models = stack.models,
            alerts = stack.alerts,
            drift = stack.drift,
            dlq = stack.dlq,
            experiments = stack.experiments,
            tx = stack.tx,
            tx_labels = stack.tx_labels,
            texts = stack.texts,
            text_labels = stack.text_labels,
            // Most tests publish unsigned checkpoints; the ones about signatures set the keys.
            signatures = if extra.contains("trusted-keys") { "" } else { "require-signature = false\n" },
        );
        let config = temp_file("vigil.toml", &text);
        let stack = Stack { config, ..stack };
        let (code, out, err) = stack.vigil(&["topics", "create"], None);
        assert_eq!(code, 0, "topics create: {out}{err}");
        stack
    }

    /// Runs the `vigil` CLI with this stack's configuration.
    pub fn vigil(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        vigil(&all, &[], stdin)
    }

    /// Starts a workspace binary (a service) with this stack's configuration and extra environment.
    pub fn spawn(&self, program: &str, env: &[(&str, &str)]) -> std::process::Child {
        let mut cmd = std::process::Command::new(bin(program));
        cmd.env("VIGIL_CONFIG", &self.config).env("VIGIL_LOG__LEVEL", "warn").stdin(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    /// Like [`Stack::spawn`], with the service's output (at `info`) in `log` and its HTTP endpoint
    /// on `port`.
    pub fn spawn_logged(&self, program: &str, port: u16, log: &std::path::Path) -> std::process::Child {
        self.spawn_logged_with(program, port, log, &[])
    }

    /// [`Stack::spawn_logged`] with extra environment.
    pub fn spawn_logged_with(
        &self,
        program: &str,
        port: u16,
        log: &std::path::Path,
        env: &[(&str, &str)],
    ) -> std::process::Child {
        let file = std::fs::File::create(log).unwrap();
        let listen = format!("127.0.0.1:{port}");
        let section = program.trim_start_matches("vigil-").to_uppercase();
        let mut cmd = std::process::Command::new(bin(program));
        cmd.env("VIGIL_CONFIG", &self.config)
            .env("VIGIL_LOG__LEVEL", "info")
            .env(format!("VIGIL_{section}__HTTP_LISTEN"), listen)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    /// Runs `vigil-load` with this stack's Kafka settings; returns its JSON summary.
    pub fn load(&self, args: &[&str]) -> serde_json::Value {
        let out = std::process::Command::new(bin("vigil-load"))
            .args(args)
            .env("VIGIL_CONFIG", &self.config)
            .env("VIGIL_LOG__LEVEL", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "vigil-load {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every topic name.
    pub fn topics(&self) -> Vec<&str> {
        vec![
            &self.tx,
            &self.tx_labels,
            &self.texts,
            &self.text_labels,
            &self.scores,
            &self.models,
            &self.alerts,
            &self.drift,
            &self.dlq,
            &self.experiments,
        ]
    }

    /// Deletes the topics.
    pub async fn delete(&self) {
        delete_topics(&self.topics()).await;
    }
}

/// Resident memory of a process, MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

/// Waits until a service's `/readyz` on `port` answers 200; returns how long that took.
pub fn wait_ready(port: u16, deadline: Duration, what: &str) -> Duration {
    let start = Instant::now();
    while http_get(port, "/readyz").is_none_or(|(status, _)| status != 200) {
        assert!(start.elapsed() < deadline, "{what} not ready within {deadline:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// Stops a child process: SIGTERM, waiting at most `deadline`, then SIGKILL. Returns whether it
/// exited on the SIGTERM and its exit status.
pub fn terminate(child: &mut std::process::Child, deadline: Duration) -> (bool, Option<std::process::ExitStatus>) {
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if let Ok(Some(status)) = child.try_wait() {
            return (true, Some(status));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    (false, child.wait().ok())
}

/// Kills a child process at once (SIGKILL).
pub fn kill(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `body`, a test's work with services logging into `logs`, as a task. If it panics, prints
/// the last lines of every `.log` file there and panics again with the same message, so that the
/// message ends the test's output after what the services said: CI keeps the end of a long output.
pub async fn showing_logs_on_failure(logs: PathBuf, body: impl std::future::Future<Output = ()> + Send + 'static) {
    let Err(failure) = tokio::spawn(body).await else { return };
    let Ok(payload) = failure.try_into_panic() else { panic!("the test's task was cancelled") };
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&logs)
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.extension().is_some_and(|e| e == "log")).collect())
        .unwrap_or_default();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- the last lines of {}:\n{}", file.display(), lines[lines.len().saturating_sub(12)..].join("\n"));
    }
    panic!("{message}\n(the failure reported above, where it names its place in the test)");
}

/// Reads `topic` from the beginning until `done(records so far)` holds (failing after `deadline`).
pub async fn collect_until(
    topic: &str,
    isolation: &str,
    deadline: Duration,
    what: &str,
    mut done: impl FnMut(&[Input]) -> bool,
) -> Vec<Input> {
    let c = consumer(topic, isolation);
    let mut out = Vec::new();
    let until = Instant::now() + deadline;
    while !done(&out) {
        let left = until.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out after {deadline:?} waiting for {what} on {topic} ({} records read)",
            out.len()
        );
        match tokio::time::timeout(left.min(Duration::from_millis(500)), c.recv()).await {
            Ok(Ok(m)) => out.push(Input::from_message(&m)),
            Ok(Err(e)) => panic!("consume error on {topic}: {e}"),
            Err(_) => {}
        }
    }
    out
}

/// Reads `topic` from the beginning until no record arrives within `quiet` (use after the writers
/// stopped, to get everything they wrote).
pub async fn read_all(topic: &str, isolation: &str, quiet: Duration) -> Vec<Input> {
    let c = consumer(topic, isolation);
    let mut out = Vec::new();
    // The first record may take a group join; give it longer than the quiet period.
    let mut wait = quiet.max(Duration::from_secs(10));
    while let Ok(m) = tokio::time::timeout(wait, c.recv()).await {
        out.push(Input::from_message(&m.unwrap_or_else(|e| panic!("consume error on {topic}: {e}"))));
        wait = quiet;
    }
    out
}

/// A child process that is killed when dropped (so that a failing test leaves no service behind).
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        kill(&mut self.0);
    }
}
