//! The benchmark harness behind `make bench`. Every figure is measured side by side with its baseline
//! in the same run, alternating (A B A B …) over several rounds, because the machine is shared and
//! noisy; reports give medians and spreads.
//!
//! - **Throughput** (maximum sustainable rate): the input topic is preloaded with `events` records;
//!   the system under test starts with a fresh consumer group and drains it; the rate is the number of
//!   outputs over the span of their broker timestamps, from the first output after each partition's
//!   first twentieth to the last (a system's first batch, made while it starts, is left out whatever
//!   its size).
//! - **Latency** at half the measured maximum: the system runs on fresh topics, the generator produces
//!   open loop at that rate, and the probe matches outputs to inputs by event id.
//! - **Memory**: the system's peak resident set (`VmHWM`), read from `/proc`.
//! - **Where the time goes**: the system's CPU time (user + system, `/proc/<pid>/stat`) per event over
//!   a throughput run, and for the scorer the ONNX Runtime share from its own metrics.
//! - **Raw rate** (B1): a fixed, real record produced as fast as possible, and consumed as fast as
//!   possible, by librdkafka through the same client settings.
//!
//! The harness (this module) runs systems and measures them; [`process`] reads a running process's
//! figures (CPU, memory, its metrics endpoint); [`report`] turns samples into medians and writes the
//! reports; one module per benchmark: [`forwarder`], [`scorer`], [`learner`], [`drift`], [`byo`],
//! [`scale`], [`sentiment`], [`ab`], [`python`].

pub mod ab;
pub mod byo;
pub mod drift;
pub mod forwarder;
pub mod hot_path;
pub mod learner;
pub mod process;
pub mod python;
pub mod report;
pub mod scale;
pub mod scorer;
pub mod sentiment;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;
use serde_json::{Value as Json, json};
use vigil_events::Codec;
use vigil_kafka::{client, now_ms};
use vigil_runtime::config::KafkaConfig;

use crate::generate::{self, FraudSource, Progress, RunConfig, TextSource};
use crate::probe::{self, Percentiles, ProbeConfig};
use crate::sim::fraud::{FraudConfig, FraudSim};
use crate::sim::labels::LabelDelays;
use crate::sim::text::TextSim;

pub use self::ab::ab;
pub use self::byo::byo;
pub use self::drift::drift;
pub use self::forwarder::{forwarder, warm_up};
pub use self::learner::learner;
pub use self::process::{cpu_seconds, free_port, machine_busy_seconds, metric_value, rss_mb, scrape_metrics, stop};
pub use self::python::python;
pub use self::report::{commit, machine, median, python_bin, repo_root, spread, table, write_report};
pub use self::scale::scale;
pub use self::scorer::scorer;
pub use self::sentiment::sentiment;

/// Errors of a benchmark run.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// Where and how benchmarks run.
#[derive(Debug, Clone)]
pub struct Env {
    /// Kafka settings (the broker under `make bench`).
    pub kafka: KafkaConfig,
    /// Folder holding the workspace's binaries (the systems under test).
    pub bin_dir: PathBuf,
    /// Folder for reports (`target/bench`).
    pub out_dir: PathBuf,
    /// Rounds of A B alternation.
    pub rounds: usize,
    /// Rounds of the scorer benchmark's drains against the forwarder (cheap, and their ratio
    /// swings by ±15 % from round to round on a shared machine, so more of them than `rounds`).
    pub drain_rounds: usize,
    /// Records preloaded for a throughput run.
    pub events: u64,
    /// Seconds of open-loop load for a latency run.
    pub latency_secs: f64,
    /// Partitions of the benchmark topics.
    pub partitions: i32,
    /// Log level of the systems under test (`VIGIL_LOG__LEVEL`).
    pub log_level: String,
}

/// A system under test, run as its own process.
#[derive(Debug, Clone)]
pub struct System {
    /// Name in reports.
    pub name: String,
    /// Program (in `bin_dir`) and arguments; `{input}`, `{output}`, `{group}` are substituted.
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Extra environment (values substituted like the arguments).
    pub env: Vec<(String, String)>,
    /// A configuration file template (substituted like the arguments), passed with `--config`.
    pub config: Option<String>,
}

impl System {
    /// The forwarder baseline (B0).
    pub fn forwarder() -> System {
        System {
            name: "forwarder".into(),
            program: "vigil-forwarder".into(),
            args: ["--input", "{input}", "--output", "{output}", "--group", "{group}"].map(String::from).to_vec(),
            env: Vec::new(),
            config: None,
        }
    }

    /// Starts the system on `input` → `output` with consumer group `group`.
    pub fn spawn(&self, env: &Env, input: &str, output: &str, group: &str) -> Result<Child, BenchError> {
        self.spawn_on(env, input, output, group, 0)
    }

    /// Like [`System::spawn`], with `{port}` standing for `port` (its metrics endpoint).
    pub fn spawn_on(&self, env: &Env, input: &str, output: &str, group: &str, port: u16) -> Result<Child, BenchError> {
        let sub = |a: &str| {
            a.replace("{input}", input)
                .replace("{output}", output)
                .replace("{group}", group)
                .replace("{port}", &port.to_string())
        };
        let mut args: Vec<String> = self.args.iter().map(|a| sub(a)).collect();
        if let Some(template) = &self.config {
            // One file per instance: instances of one group differ by their port.
            let path = std::env::temp_dir().join(format!("{group}-{port}.toml"));
            std::fs::write(&path, sub(template))?;
            args.push("--config".into());
            args.push(path.display().to_string());
        }
        let mut cmd = Command::new(env.bin_dir.join(&self.program));
        cmd.args(&args)
            .env("VIGIL_KAFKA__BOOTSTRAP_SERVERS", &env.kafka.bootstrap_servers)
            .env("VIGIL_LOG__LEVEL", &env.log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, sub(v));
        }
        Ok(cmd.spawn().map_err(|e| format!("starting {}: {e}", self.program))?)
    }
}

/// What the records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Card transactions.
    Fraud,
    /// Texts for sentiment.
    Text,
}

fn source(workload: Workload, seed: u64, prefix: &str) -> Box<dyn generate::Source> {
    let codec = Arc::new(Codec::new());
    match workload {
        Workload::Fraud => Box::new(FraudSource {
            sim: FraudSim::new(FraudConfig { seed, id_prefix: prefix.to_string(), ..FraudConfig::default() }),
            codec,
        }),
        Workload::Text => Box::new(TextSource {
            sim: TextSim::new(seed, Vec::new(), None),
            codec,
            id_prefix: prefix.to_string(),
            start_time_ms: 1_767_571_200_000,
            i: 0,
        }),
    }
}

/// One throughput measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Outputs per second.
    pub events_per_s: f64,
    /// Peak resident set of the system, MiB.
    pub rss_mb: f64,
    /// CPU time (user + system) the system used for the whole run, seconds.
    pub cpu_s: f64,
    /// CPU µs per output while draining: from the first outputs seen to the last, so that start-up
    /// (loading libraries and models, joining the group) is left out (the whole run's when every
    /// output was there at the first look).
    pub drain_cpu_us_per_event: f64,
    /// The machine's busy CPU µs per output over the same window: the system's, the broker's and
    /// anything else's (on a machine whose cores the drain fills, throughput follows its inverse).
    pub machine_drain_cpu_us_per_event: f64,
    /// The system's Prometheus metrics at the end of the run (when its template has `{port}`).
    pub metrics: Option<String>,
}

/// One latency measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Offered rate (`None`: as fast as the generator could).
    pub offered: Option<f64>,
    /// Rate achieved end to end (matched outputs per second).
    pub achieved: f64,
    /// Percentiles.
    pub percentiles: Percentiles,
    /// Events produced.
    pub produced: u64,
    /// Peak resident set of the system, MiB.
    pub rss_mb: f64,
}

/// Creates fresh topics with the benchmark's partitions.
pub async fn topics(env: &Env, names: &[&str]) -> Result<(), BenchError> {
    let admin: AdminClient<DefaultClientContext> = client::base_config(&env.kafka, "bench").create()?;
    let new: Vec<NewTopic<'_>> =
        names.iter().map(|n| NewTopic::new(n, env.partitions, TopicReplication::Fixed(1))).collect();
    for r in admin.create_topics(&new, &AdminOptions::new()).await? {
        r.map_err(|(n, c)| format!("creating {n}: {c}"))?;
    }
    Ok(())
}

/// Creates a fresh models topic as Vigil wants it (one partition, compacted) named after `name`.
pub async fn models_topic(env: &Env, name: &str) -> Result<String, BenchError> {
    let topic = unique(name);
    let admin: AdminClient<DefaultClientContext> = client::base_config(&env.kafka, "bench").create()?;
    let t = NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    for r in admin.create_topics([&t], &AdminOptions::new()).await? {
        r.map_err(|(n, c)| format!("creating {n}: {c}"))?;
    }
    Ok(topic)
}

/// Deletes topics (best effort).
pub async fn drop_topics(env: &Env, names: &[&str]) {
    if let Ok(admin) = client::base_config(&env.kafka, "bench").create::<AdminClient<DefaultClientContext>>() {
        let _ = admin.delete_topics(names, &AdminOptions::new()).await;
    }
}

fn unique(prefix: &str) -> String {
    format!("bench-{prefix}-{}-{}", std::process::id(), now_ms())
}

/// Preloads `topic` with `n` simulated records as fast as possible; returns records per second.
pub async fn preload(env: &Env, workload: Workload, topic: &str, n: u64, seed: u64) -> Result<f64, BenchError> {
    let codec = Codec::new();
    let mut src = source(workload, seed, &format!("pre{seed}"));
    let cfg = run_config(topic, None, Some(n), None);
    let s = generate::run(&env.kafka, src.as_mut(), &cfg, &codec, Arc::new(Progress::default())).await?;
    Ok(s.events_per_s)
}

fn run_config(topic: &str, rate: Option<f64>, events: Option<u64>, duration: Option<f64>) -> RunConfig {
    RunConfig {
        topic: topic.to_string(),
        labels_topic: None,
        rate,
        max_events: events,
        duration: duration.map(Duration::from_secs_f64),
        delays: LabelDelays::default(),
        seed: 1,
        label_grace: Duration::ZERO,
    }
}

/// The outputs a drain rate is measured over: from the first record after each partition's first
/// twentieth (a system's first batch, made while it started, is left out whatever its size) to the
/// last record.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    /// Earliest timestamp of the records measured from (epoch ms).
    lo: i64,
    /// Latest timestamp (epoch ms).
    hi: i64,
    /// Records written after the ones measured from.
    records: i64,
}

impl Span {
    /// Records per second.
    fn rate(&self) -> f64 {
        self.records as f64 / ((self.hi - self.lo).max(1) as f64 / 1000.0)
    }
}

/// A benchmark's output topic: the offsets of each partition, read through one consumer that a
/// wait for outputs keeps (not one per poll beside the system under test).
struct Outputs {
    c: BaseConsumer<client::LogContext>,
    topic: String,
    partitions: i32,
    /// (partition, low, high) of each partition, as last read.
    ends: Vec<(i32, i64, i64)>,
}

impl Outputs {
    /// A reader of `topic` (its offsets are read by [`Outputs::read`]).
    fn open(env: &Env, topic: &str) -> Result<Outputs, BenchError> {
        let c: BaseConsumer<client::LogContext> =
            client::consumer_config(&env.kafka, "bench", &unique("span")).create_with_context(client::LogContext)?;
        Ok(Outputs { c, topic: topic.to_string(), partitions: env.partitions, ends: Vec::new() })
    }

    /// Reads the offsets of every partition now.
    fn read(&mut self) -> Result<&Self, BenchError> {
        self.ends.clear();
        for p in 0..self.partitions {
            // A topic created a moment ago may have no leader yet: retried while it gets one.
            let (low, high) = client::watermarks(&self.c, &self.topic, p, Duration::from_secs(30))
                .map_err(|e| format!("reading the offsets of {}/{p}: {e}", self.topic))?;
            self.ends.push((p, low, high));
        }
        Ok(self)
    }

    /// Records in the topic.
    fn count(&self) -> i64 {
        self.ends.iter().map(|(_, low, high)| high - low).sum()
    }

    /// The span its records were written over (two records read per partition).
    fn span(&self) -> Result<Option<Span>, BenchError> {
        let (mut lo, mut hi, mut records) = (i64::MAX, i64::MIN, 0);
        for &(p, low, high) in self.ends.iter().filter(|(_, low, high)| high > low) {
            let from = low + (high - low) / 20;
            records += high - 1 - from;
            lo = lo.min(timestamp_at(&self.c, &self.topic, p, from)?);
            hi = hi.max(timestamp_at(&self.c, &self.topic, p, high - 1)?);
        }
        Ok((lo <= hi).then_some(Span { lo, hi, records }))
    }
}

/// The timestamp of the record at `offset` of `topic`/`partition`.
fn timestamp_at(c: &BaseConsumer<client::LogContext>, topic: &str, p: i32, offset: i64) -> Result<i64, BenchError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Offset(offset))?;
    c.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.offset() == offset => return Ok(m.timestamp().to_millis().unwrap_or(0)),
            _ if Instant::now() > deadline => return Err(format!("cannot read {topic}/{p}@{offset}").into()),
            _ => {}
        }
    }
}

/// Maximum sustainable rate of `system` over a preloaded `input` of `n` records.
pub async fn throughput(env: &Env, system: &System, input: &str, n: u64) -> Result<Throughput, BenchError> {
    throughput_of(env, system, input, n, 1).await
}

/// Maximum sustainable rate of `instances` copies of `system` in one consumer group over a
/// preloaded `input` of `n` records (memory and CPU summed over the copies; metrics of the first).
pub async fn throughput_of(
    env: &Env,
    system: &System,
    input: &str,
    n: u64,
    instances: usize,
) -> Result<Throughput, BenchError> {
    let output = unique(&format!("{}-out", system.name));
    topics(env, &[&output]).await?;
    let group = unique(&system.name);
    let mut children = Vec::new();
    let mut ports = Vec::new();
    // The machine's busy time from the spawn: the drain's window when the first look finds every
    // output there already (the system's own CPU counts from its start then too).
    let busy_at_spawn = machine_busy_seconds().unwrap_or(f64::NAN);
    for _ in 0..instances.max(1) {
        let port = free_port()?;
        children.push(system.spawn_on(env, input, &output, &group, port)?);
        ports.push(port);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut outputs = Outputs::open(env, &output)?;
    let cpu_now = |children: &[std::process::Child]| -> f64 {
        children.iter().map(|c| cpu_seconds(c.id()).unwrap_or(f64::NAN)).sum()
    };
    // The CPU used and the outputs there at the first look that found some.
    let mut first: Option<(f64, f64, u64)> = None;
    let result = loop {
        if let Some(status) = children.iter_mut().find_map(|c| c.try_wait().ok().flatten()) {
            break Err(format!("{} exited early ({status})", system.name).into());
        }
        // The timestamps are read once, when every output is there.
        match outputs.read().and_then(|o| {
            let count = o.count().max(0) as u64;
            if first.is_none() && count > 0 && count < n {
                first = Some((cpu_now(&children), machine_busy_seconds().unwrap_or(f64::NAN), count));
            }
            if count >= n { o.span() } else { Ok(None) }
        }) {
            Ok(Some(span)) => break Ok(span.rate()),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if Instant::now() > deadline {
            break Err(format!("{} did not produce {n} outputs within 600 s", system.name).into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (cpu_s, busy) = (cpu_now(&children), machine_busy_seconds().unwrap_or(f64::NAN));
    let (cpu_before, busy_before, outputs_before) = first.unwrap_or((0.0, busy_at_spawn, 0));
    let drained = n.saturating_sub(outputs_before).max(1) as f64;
    let drain_cpu_us_per_event = (cpu_s - cpu_before) * 1e6 / drained;
    let machine_drain_cpu_us_per_event = (busy - busy_before) * 1e6 / drained;
    let uses_port = system.config.as_deref().unwrap_or_default().contains("{port}")
        || system.args.iter().chain(system.env.iter().map(|(_, v)| v)).any(|a| a.contains("{port}"));
    let metrics = if uses_port { scrape_metrics(ports[0]) } else { None };
    let rss_mb = children.iter_mut().map(stop).sum();
    drop_topics(env, &[&output]).await;
    result.map(|events_per_s| Throughput {
        events_per_s,
        rss_mb,
        cpu_s,
        drain_cpu_us_per_event,
        machine_drain_cpu_us_per_event,
        metrics,
    })
}

/// End-to-end latency of `system` with `n` records offered at `rate` records per second, open loop
/// (`None`: as fast as the generator can, which measures the live maximum rate).
pub async fn latency(
    env: &Env,
    system: &System,
    workload: Workload,
    rate: Option<f64>,
    n: u64,
    seed: u64,
) -> Result<Latency, BenchError> {
    let (input, output) = (unique(&format!("{}-lin", system.name)), unique(&format!("{}-lout", system.name)));
    topics(env, &[&input, &output]).await?;
    let mut child = system.spawn(env, &input, &output, &unique(&system.name))?;
    // Warm up: a few records through, so that the group has joined before measuring.
    preload(env, workload, &input, 10, seed + 1000).await?;
    let warm = Instant::now();
    let mut outputs = Outputs::open(env, &output)?;
    loop {
        if outputs.read()?.count() >= 10 {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{} exited during warm-up ({status})", system.name).into());
        }
        if warm.elapsed() > Duration::from_secs(120) {
            stop(&mut child);
            return Err(format!("{} produced nothing within 120 s", system.name).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(outputs); // not kept beside the system while its latency is measured
    let probe_cfg = ProbeConfig {
        input: input.clone(),
        output: output.clone(),
        expect: Some(n),
        idle: Duration::from_secs(15),
        max_time: Duration::from_secs(600),
        id_prefix: Some(format!("lat{seed}-")),
    };
    let kafka = env.kafka.clone();
    let probe = tokio::spawn(async move { probe::run(&kafka, &probe_cfg).await });
    let codec = Codec::new();
    let mut src = source(workload, seed, &format!("lat{seed}"));
    let cfg = run_config(&input, rate, Some(n), None);
    let started_us = now_ms() * 1000;
    let produced = generate::run(&env.kafka, src.as_mut(), &cfg, &codec, Arc::new(Progress::default())).await?;
    let lat = probe.await??;
    let rss_mb = stop(&mut child);
    drop_topics(env, &[&input, &output]).await;
    if lat.matched() < n {
        return Err(format!("{}: only {} of {n} events came out", system.name, lat.matched()).into());
    }
    let achieved = lat.last_output_us().map(|l| n as f64 / ((l - started_us).max(1) as f64 / 1e6)).unwrap_or(0.0);
    Ok(Latency { offered: rate, achieved, percentiles: lat.percentiles(), produced: produced.events, rss_mb })
}
