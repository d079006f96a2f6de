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

/// The broker the tests use: `VIGIL_TEST_BOOTSTRAP` (set by `make test`), else 127.0.0.1:19092.
pub fn bootstrap() -> String {
    std::env::var("VIGIL_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

/// Vigil's Kafka settings pointed at the test broker.
pub fn kafka_config() -> KafkaConfig {
    KafkaConfig { bootstrap_servers: bootstrap(), linger_ms: 1, ..KafkaConfig::default() }
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

fn consumer(topic: &str, isolation: &str) -> StreamConsumer {
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
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A throw-away Confluent-compatible registry (tests/support/registry.py), killed on drop.
pub struct TestRegistry {
    child: std::process::Child,
    /// Its base URL.
    pub url: String,
}

impl TestRegistry {
    /// Starts one on a free port.
    pub fn start() -> TestRegistry {
        use std::io::BufRead;
        let mut child = std::process::Command::new(python())
            .arg(root().join("tests/support/registry.py"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap();
        TestRegistry { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` to a fresh temporary file and returns its path.
pub fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("files"));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
