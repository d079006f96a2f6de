//! The benchmark harness behind `make bench`. Every figure is measured side by side with its baseline
//! in the same run, alternating (A B A B …) over several rounds, because the machine is shared and
//! noisy; reports give medians and spreads.
//!
//! - **Throughput** (maximum sustainable rate): the input topic is preloaded with `events` records;
//!   the system under test starts with a fresh consumer group and drains it; the rate is the number of
//!   outputs over the span of their broker timestamps (first to last output).
//! - **Latency** at half the measured maximum: the system runs on fresh topics, the generator produces
//!   open loop at that rate, and the probe matches outputs to inputs by event id.
//! - **Memory**: the system's peak resident set (`VmHWM`), read from `/proc`.
//! - **Where the time goes**: the system's CPU time (user + system, `/proc/<pid>/stat`) per event over
//!   a throughput run, and for the scorer the ONNX Runtime share from its own metrics.
//! - **Raw rate** (B1): a fixed, real record produced as fast as possible, and consumed as fast as
//!   possible, by librdkafka through the same client settings.

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
    /// Records preloaded for a throughput run.
    pub events: u64,
    /// Seconds of open-loop load for a latency run.
    pub latency_secs: f64,
    /// Partitions of the benchmark topics.
    pub partitions: i32,
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
            let path = std::env::temp_dir().join(format!("{group}.toml"));
            std::fs::write(&path, sub(template))?;
            args.push("--config".into());
            args.push(path.display().to_string());
        }
        let mut cmd = Command::new(env.bin_dir.join(&self.program));
        cmd.args(&args)
            .env("VIGIL_KAFKA__BOOTSTRAP_SERVERS", &env.kafka.bootstrap_servers)
            .env("VIGIL_LOG__LEVEL", "warn")
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

/// B1: one real record produced `n` times as fast as possible by a bare librdkafka producer with
/// Vigil's producer settings (no per-record work at all); records per second until all are acknowledged.
pub async fn raw_produce(env: &Env, topic: &str, n: u64) -> Result<f64, BenchError> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let codec = Codec::new();
    let payload = codec.encode_event(&FraudSim::new(FraudConfig::default()).transaction().tx)?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        client::producer_config(&env.kafka, "bench-raw").create()?;
    // One acknowledged record first: the idempotent producer's id handshake is start-up, not rate.
    producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&payload[..])).map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(30))?;
    let started = Instant::now();
    for _ in 0..n {
        let mut record = BaseRecord::<(), [u8]>::to(topic).payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// B1: consumes `n` records of `topic` from the beginning as fast as possible; records per second.
pub async fn raw_consume(env: &Env, topic: &str, n: u64) -> Result<f64, BenchError> {
    let consumer: StreamConsumer<client::LogContext> =
        client::consumer_config(&env.kafka, "bench", &unique("raw")).create_with_context(client::LogContext)?;
    consumer.subscribe(&[topic])?;
    let mut seen = 0u64;
    let mut first: Option<Instant> = None;
    while seen < n {
        match tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await {
            Ok(Ok(_)) => {
                first.get_or_insert_with(Instant::now);
                seen += 1;
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(format!("raw consume: {seen} of {n} records within 60 s").into()),
        }
    }
    let secs = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(0.0);
    Ok(n as f64 / secs.max(1e-9))
}

/// Sum of high watermarks and (min, max) record timestamps of `topic`.
fn output_span(env: &Env, topic: &str) -> Result<(i64, Option<(i64, i64)>), BenchError> {
    let c: BaseConsumer<client::LogContext> =
        client::consumer_config(&env.kafka, "bench", &unique("span")).create_with_context(client::LogContext)?;
    let mut total = 0;
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for p in 0..env.partitions {
        let (low, high) = c.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        total += high - low;
        if high > low {
            for offset in [low, high - 1] {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(topic, p, Offset::Offset(offset))?;
                c.assign(&tpl)?;
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    match c.poll(Duration::from_millis(200)) {
                        Some(Ok(m)) if m.offset() == offset => {
                            let ts = m.timestamp().to_millis().unwrap_or(0);
                            lo = lo.min(ts);
                            hi = hi.max(ts);
                            break;
                        }
                        _ if Instant::now() > deadline => {
                            return Err(format!("cannot read {topic}/{p}@{offset}").into());
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok((total, (lo <= hi).then_some((lo, hi))))
}

/// Peak and current resident set of a process, MiB.
pub fn rss_mb(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
    };
    Some((field("VmHWM:")? / 1024.0, field("VmRSS:")? / 1024.0))
}

/// Stops a child with SIGTERM (then SIGKILL after 20 s) and returns its peak RSS (MiB).
pub fn stop(child: &mut Child) -> f64 {
    let peak = rss_mb(child.id()).map(|r| r.0).unwrap_or(0.0);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return peak;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    peak
}

/// CPU time (user + system) a process has used so far, seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ, 100 on Linux
}

/// GETs a local service's Prometheus metrics.
pub fn scrape_metrics(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or(body))
}

/// The value of `series` (name and labels exactly as exported) in Prometheus text, or 0.
pub fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

/// A free local port.
pub fn free_port() -> Result<u16, BenchError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Maximum sustainable rate of `system` over a preloaded `input` of `n` records.
pub async fn throughput(env: &Env, system: &System, input: &str, n: u64) -> Result<Throughput, BenchError> {
    let output = unique(&format!("{}-out", system.name));
    topics(env, &[&output]).await?;
    let port = free_port()?;
    let mut child = system.spawn_on(env, input, &output, &unique(&system.name), port)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let result = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("{} exited early ({status})", system.name).into());
        }
        match output_span(env, &output) {
            Ok((count, Some((lo, hi)))) if count as u64 >= n => {
                break Ok(n as f64 / ((hi - lo).max(1) as f64 / 1000.0));
            }
            Ok(_) => {}
            Err(e) => break Err(e),
        }
        if Instant::now() > deadline {
            break Err(format!("{} did not produce {n} outputs within 600 s", system.name).into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let cpu_s = cpu_seconds(child.id()).unwrap_or(f64::NAN);
    let uses_port = system.config.as_deref().unwrap_or_default().contains("{port}")
        || system.args.iter().chain(system.env.iter().map(|(_, v)| v)).any(|a| a.contains("{port}"));
    let metrics = if uses_port { scrape_metrics(port) } else { None };
    let rss_mb = stop(&mut child);
    drop_topics(env, &[&output]).await;
    result.map(|events_per_s| Throughput { events_per_s, rss_mb, cpu_s, metrics })
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
    loop {
        if output_span(env, &output)?.0 >= 10 {
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

/// Median of a sample.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// (min, max) of a sample.
pub fn spread(xs: &[f64]) -> (f64, f64) {
    xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(*x), hi.max(*x)))
}

/// The current commit, for reports.
pub fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Facts about the machine and run, for every report.
pub fn machine(env: &Env) -> Json {
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "commit": commit(),
        "date_ms": now_ms(),
        "rounds": env.rounds,
        "events": env.events,
        "latency_secs": env.latency_secs,
        "partitions": env.partitions,
        "linger_ms": env.kafka.linger_ms,
        "compression": env.kafka.compression,
    })
}

/// Writes a report.
pub fn write_report(env: &Env, name: &str, report: &Json) -> Result<PathBuf, BenchError> {
    std::fs::create_dir_all(&env.out_dir)?;
    let path = env.out_dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(report)? + "\n")?;
    Ok(path)
}

/// The forwarder benchmark: B0 against the raw librdkafka rate (B1), alternating.
pub async fn forwarder(env: &Env) -> Result<Json, BenchError> {
    let system = System::forwarder();
    let started = Instant::now();
    let (mut fwd, mut raw_p, mut raw_c, mut rss) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..env.rounds {
        let input = unique("fwd-in");
        let raw = unique("raw");
        topics(env, &[&input, &raw]).await?;
        // B: raw producer and consumer rates; A: the forwarder over a preloaded topic.
        raw_p.push(raw_produce(env, &raw, env.events).await?);
        raw_c.push(raw_consume(env, &raw, env.events).await?);
        preload(env, Workload::Fraud, &input, env.events, round as u64).await?;
        let t = throughput(env, &system, &input, env.events).await?;
        fwd.push(t.events_per_s);
        rss.push(t.rss_mb);
        eprintln!(
            "round {}: forwarder {:.0}/s, raw produce {:.0}/s, raw consume {:.0}/s",
            round + 1,
            t.events_per_s,
            raw_p[round],
            raw_c[round]
        );
        drop_topics(env, &[&input, &raw]).await;
    }
    let max_rate = median(&fwd);
    // The live maximum: the generator producing as fast as it can while the system runs, all on this
    // machine's cores; latency is measured at half of it.
    let mut live = Vec::new();
    for round in 0..env.rounds {
        let l = latency(env, &system, Workload::Fraud, None, env.events, 50 + round as u64).await?;
        eprintln!("live round {}: {:.0}/s end to end", round + 1, l.achieved);
        rss.push(l.rss_mb);
        live.push(l.achieved);
    }
    let live_max = median(&live);
    let half = (live_max / 2.0).max(100.0);
    let mut lats = Vec::new();
    for round in 0..env.rounds {
        let n = (half * env.latency_secs) as u64;
        let l = latency(env, &system, Workload::Fraud, Some(half), n, 100 + round as u64).await?;
        eprintln!(
            "latency round {} at {half:.0}/s: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms",
            round + 1,
            l.percentiles.p50_ms,
            l.percentiles.p99_ms,
            l.percentiles.p999_ms
        );
        rss.push(l.rss_mb);
        lats.push(l);
    }
    let pick = |f: fn(&Latency) -> f64| lats.iter().map(f).collect::<Vec<_>>();
    let (p50, p99, p999) =
        (pick(|l| l.percentiles.p50_ms), pick(|l| l.percentiles.p99_ms), pick(|l| l.percentiles.p999_ms));
    let report = json!({
        "benchmark": "forwarder",
        "machine": machine(env),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "commit": commit(),
        "events_per_s": max_rate,
        "events_per_s_runs": fwd.clone(),
        "events_per_s_spread": spread(&fwd),
        "raw_produce_events_per_s": median(&raw_p),
        "raw_produce_runs": raw_p.clone(),
        "raw_consume_events_per_s": median(&raw_c),
        "raw_consume_runs": raw_c.clone(),
        "forwarder_to_raw_produce": max_rate / median(&raw_p),
        "live_events_per_s": live_max,
        "live_events_per_s_runs": live.clone(),
        "latency_rate_per_s": half,
        "p50_ms": median(&p50),
        "p99_ms": median(&p99),
        "p999_ms": median(&p999),
        "p99_ms_runs": p99.clone(),
        "latency_runs": lats,
        "rss_mb": rss.iter().cloned().fold(0.0, f64::max),
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    let path = write_report(env, "forwarder", &report)?;
    eprintln!(
        "\nforwarder benchmark ({} rounds, {} events, median [min, max]) -> {}",
        env.rounds,
        env.events,
        path.display()
    );
    table(&[
        ("forwarder events/s (drain)", &fwd),
        ("forwarder events/s (live)", &live),
        ("raw produce events/s", &raw_p),
        ("raw consume events/s", &raw_c),
        ("p50 ms @ half max", &p50),
        ("p99 ms @ half max", &p99),
        ("p99.9 ms @ half max", &p999),
    ]);
    Ok(report)
}

/// Prints `name  median  [min, max]` rows.
pub fn table(rows: &[(&str, &Vec<f64>)]) {
    for (name, xs) in rows {
        let (lo, hi) = spread(xs);
        eprintln!("  {name:<28} {:>12.2}   [{lo:.2}, {hi:.2}]", median(xs));
    }
}

/// The repository root when running from `target/<profile>/`.
pub fn repo_root(bin_dir: &Path) -> PathBuf {
    bin_dir.ancestors().nth(2).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Registers the benchmark's models on `topic`: a fraud MLP (spec width → 64 → 1) and a hashed-text
/// sentiment model, both promoted.
async fn register_models(env: &Env, topic: &str) -> Result<(), BenchError> {
    use vigil_events::CheckpointStatus;
    use vigil_models::checkpoint::{self, NewCheckpoint};
    use vigil_models::families::{Dense, Model};
    let w = |n: usize, seed: u32| -> Vec<f32> {
        (0..n).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 5000.0 - 0.1).collect()
    };
    let d = vigil_features::FeatureSpec::parse(vigil_features::FRAUD_SPEC)?.width();
    let fraud = Model::Mlp {
        layers: vec![
            Dense { inputs: d, outputs: 64, w: w(d * 64, 1), b: vec![0.0; 64] },
            Dense { inputs: 64, outputs: 1, w: w(64, 2), b: vec![-2.0] },
        ],
    };
    let text = Model::HashedText { table: w(65536, 3), b: 0.0 };
    let producer = vigil_kafka::models::producer(&env.kafka)?;
    let codec = Codec::new();
    for (name, model, spec) in
        [("fraud", fraud, vigil_features::FRAUD_SPEC), ("sentiment", text, vigil_features::SENTIMENT_SPEC)]
    {
        let cp = checkpoint::build(
            NewCheckpoint {
                model: name,
                version: 1,
                parent: None,
                onnx: model.to_onnx(name, 1).to_bytes(),
                spec,
                status: CheckpointStatus::Promoted,
                reason: "benchmark".into(),
                now_ms: now_ms(),
            },
            None,
        );
        vigil_kafka::models::publish(&producer, &codec, topic, &cp).await?;
    }
    Ok(())
}

fn scorer_system(workload: Workload, models_topic: &str) -> System {
    let (model, schema) = match workload {
        Workload::Fraud => ("fraud", "dev.vigil.demo.Transaction"),
        Workload::Text => ("sentiment", "dev.vigil.demo.TextEvent"),
    };
    let config = format!(
        r#"
[topics]
scores = "{{output}}"
models = "{models_topic}"
dlq = "{{output}}"
alerts = "{{output}}"

[[inputs]]
topic = "{{input}}"
schema = "{schema}"
model = "{model}"
labels = ""

[scorer]
group-id = "{{group}}"
http-listen = "127.0.0.1:{{port}}"
challenger-share = 0.0
"#
    );
    System {
        name: format!("scorer-{model}"),
        program: "vigil-scorer".into(),
        args: Vec::new(),
        env: Vec::new(),
        config: Some(config),
    }
}

/// Scorer against forwarder for one workload; returns the report's section.
async fn scorer_workload(env: &Env, workload: Workload, models_topic: &str, events: u64) -> Result<Json, BenchError> {
    let scorer = scorer_system(workload, models_topic);
    let forwarder = System::forwarder();
    let (mut s_rate, mut f_rate, mut s_rss) = (Vec::new(), Vec::new(), Vec::new());
    // Where the time goes: CPU µs per event of each system, and the scorer's ONNX Runtime share.
    let (mut s_cpu, mut f_cpu, mut s_infer, mut s_batch) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let model = match workload {
        Workload::Fraud => "fraud",
        Workload::Text => "sentiment",
    };
    for round in 0..env.rounds {
        let input = unique(&format!("{}-in", scorer.name));
        topics(env, &[&input]).await?;
        preload(env, workload, &input, events, round as u64).await?;
        // Alternate which goes first.
        let order: [&System; 2] = if round % 2 == 0 { [&scorer, &forwarder] } else { [&forwarder, &scorer] };
        for system in order {
            let t = throughput(env, system, &input, events).await?;
            let per_event = |secs: f64| secs * 1e6 / events as f64;
            if system.name == scorer.name {
                s_rate.push(t.events_per_s);
                s_rss.push(t.rss_mb);
                s_cpu.push(per_event(t.cpu_s));
                if let Some(m) = &t.metrics {
                    let series = format!("vigil_scorer_inference_seconds_sum{{model=\"{model}\"}}");
                    s_infer.push(per_event(metric_value(m, &series)));
                    let batches = metric_value(m, "vigil_scorer_batch_size_records_count");
                    s_batch.push(metric_value(m, "vigil_scorer_batch_size_records_sum") / batches.max(1.0));
                }
            } else {
                f_rate.push(t.events_per_s);
                f_cpu.push(per_event(t.cpu_s));
            }
        }
        eprintln!(
            "{} round {}: scorer {:.0}/s, forwarder {:.0}/s",
            scorer.name,
            round + 1,
            s_rate[round],
            f_rate[round]
        );
        drop_topics(env, &[&input]).await;
    }
    // The scorer's live maximum (generator and system on this machine together); latency at half of it.
    let live = latency(env, &scorer, workload, None, events, 77).await?;
    let half = (live.achieved / 2.0).max(100.0);
    let (mut s_p99, mut f_p99, mut s_p50, mut f_p50) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..env.rounds {
        let n = (half * env.latency_secs) as u64;
        let order: [&System; 2] = if round % 2 == 0 { [&scorer, &forwarder] } else { [&forwarder, &scorer] };
        for system in order {
            let l = latency(env, system, workload, Some(half), n, 200 + round as u64).await?;
            if system.name == scorer.name {
                s_p99.push(l.percentiles.p99_ms);
                s_p50.push(l.percentiles.p50_ms);
                s_rss.push(l.rss_mb);
            } else {
                f_p99.push(l.percentiles.p99_ms);
                f_p50.push(l.percentiles.p50_ms);
            }
        }
        eprintln!(
            "{} latency round {} at {half:.0}/s: p99 scorer {:.2} ms, forwarder {:.2} ms",
            scorer.name,
            round + 1,
            s_p99[round],
            f_p99[round]
        );
    }
    let ratios: Vec<f64> = s_rate.iter().zip(&f_rate).map(|(s, f)| s / f).collect();
    table(&[
        ("scorer events/s", &s_rate),
        ("forwarder events/s", &f_rate),
        ("throughput ratio", &ratios),
        ("scorer CPU us/event", &s_cpu),
        ("forwarder CPU us/event", &f_cpu),
        ("scorer inference us/event", &s_infer),
        ("scorer p99 ms", &s_p99),
        ("forwarder p99 ms", &f_p99),
    ]);
    Ok(json!({
        "scorer_events_per_s": median(&s_rate),
        "forwarder_events_per_s": median(&f_rate),
        "throughput_ratio": median(&ratios),
        "throughput_ratio_runs": ratios,
        "scorer_events_per_s_runs": s_rate,
        "forwarder_events_per_s_runs": f_rate,
        "scorer_live_events_per_s": live.achieved,
        "latency_rate_per_s": half,
        "scorer_p50_ms": median(&s_p50),
        "forwarder_p50_ms": median(&f_p50),
        "scorer_p99_ms": median(&s_p99),
        "forwarder_p99_ms": median(&f_p99),
        "p99_difference_ms": median(&s_p99) - median(&f_p99),
        "scorer_p99_ms_runs": s_p99,
        "forwarder_p99_ms_runs": f_p99,
        "scorer_rss_mb": s_rss.iter().cloned().fold(0.0, f64::max),
        "scorer_cpu_us_per_event": median(&s_cpu),
        "forwarder_cpu_us_per_event": median(&f_cpu),
        "scorer_inference_us_per_event": median(&s_infer),
        "scorer_mean_batch": median(&s_batch),
        "events": events,
    }))
}

/// The scorer benchmark: fraud (MLP) and sentiment (hashed text) against the forwarder, and the
/// scorer's memory under a backlog ten times what it scores in a latency run.
pub async fn scorer(env: &Env) -> Result<Json, BenchError> {
    let started = Instant::now();
    let models_topic = unique("models");
    let admin: AdminClient<DefaultClientContext> = client::base_config(&env.kafka, "bench").create()?;
    let t = NewTopic::new(&models_topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    for r in admin.create_topics([&t], &AdminOptions::new()).await? {
        r.map_err(|(n, c)| format!("creating {n}: {c}"))?;
    }
    register_models(env, &models_topic).await?;
    let fraud = scorer_workload(env, Workload::Fraud, &models_topic, env.events).await?;
    let text = scorer_workload(env, Workload::Text, &models_topic, (env.events / 4).max(1000)).await?;
    // Overload: a backlog of ten times the latency run's events, drained as fast as possible; the
    // consumer's prefetch and the producer's queue are bounded, so memory must stay near the
    // normal run's.
    let backlog = (10.0 * fraud["latency_rate_per_s"].as_f64().unwrap_or(1000.0) * env.latency_secs) as u64;
    let input = unique("overload-in");
    topics(env, &[&input]).await?;
    preload(env, Workload::Fraud, &input, backlog, 999).await?;
    let over = throughput(env, &scorer_system(Workload::Fraud, &models_topic), &input, backlog).await?;
    drop_topics(env, &[&input, &models_topic]).await;
    eprintln!(
        "overload: backlog {backlog} events drained at {:.0}/s, peak RSS {:.1} MiB",
        over.events_per_s, over.rss_mb
    );
    let report = json!({
        "benchmark": "scorer",
        "machine": machine(env),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "commit": commit(),
        "scorer_events_per_s": fraud["scorer_events_per_s"],
        "forwarder_events_per_s": fraud["forwarder_events_per_s"],
        "throughput_ratio": fraud["throughput_ratio"],
        "scorer_p99_ms": fraud["scorer_p99_ms"],
        "forwarder_p99_ms": fraud["forwarder_p99_ms"],
        "scorer_rss_mb": fraud["scorer_rss_mb"],
        "fraud_mlp": fraud,
        "sentiment": text,
        "overload": {"backlog_events": backlog, "events_per_s": over.events_per_s, "rss_mb": over.rss_mb,
            "rss_vs_normal": over.rss_mb / fraud["scorer_rss_mb"].as_f64().unwrap_or(1.0)},
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    let path = write_report(env, "scorer", &report)?;
    eprintln!("scorer benchmark -> {}", path.display());
    Ok(report)
}

/// One prequential pass of a learner over rows; returns (metrics of the served predictions,
/// examples per second, served candidates).
fn prequential(
    rows: &[(Vec<f64>, f64)],
    setup: vigil_learn::Setup,
) -> (vigil_learn::metrics::Prequential, f64, Vec<String>) {
    let mut learner = vigil_learn::Learner::new(setup);
    let mut m = vigil_learn::metrics::Prequential::new(1000, 0.5);
    let started = Instant::now();
    for (x, y) in rows {
        let p = learner.learn(vigil_learn::Example::Dense(x), *y);
        m.update(p, *y > 0.5);
    }
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    (m, rate, learner.served())
}

fn csv_rows(
    path: &Path,
    label: &str,
    positive: Option<&str>,
    drop: &[&str],
) -> Result<Vec<(Vec<f64>, f64)>, BenchError> {
    use crate::sim::replay::{Mapping, load};
    let m = Mapping {
        label_column: label.into(),
        positive: positive.map(str::to_string),
        id_column: None,
        drop: drop.iter().map(|s| s.to_string()).collect(),
        id_prefix: "b".into(),
    };
    let rows = load(path, &m)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let x = r
                .record
                .as_object()
                .map(|o| o.iter().filter(|(k, _)| *k != "event_id").filter_map(|(_, v)| v.as_f64()).collect())
                .unwrap_or_default();
            (x, r.label)
        })
        .collect())
}

/// The learner benchmark: prequential runs over ELEC2 (accuracy) and credit default (ROC AUC, as
/// River's `metrics.ROCAUC` computes it) in file order, beside River 0.26.1 run in the same session.
pub async fn learner(env: &Env) -> Result<Json, BenchError> {
    use vigil_learn::learner::{river_logistic, tabular_candidates};
    use vigil_learn::select::{Metric, Policy};
    let root = repo_root(&env.bin_dir);
    let data = std::env::var("VIGIL_DATA").map(PathBuf::from).unwrap_or_else(|_| root.join("../shared/data"));
    if !data.join("elec2.csv").exists() {
        let report = json!({"benchmark": "learner", "skipped": format!("{} has no elec2.csv (the shared datasets are not here)", data.display())});
        write_report(env, "learner", &report)?;
        eprintln!("learner benchmark skipped: {}", report["skipped"]);
        return Ok(report);
    }
    let elec = csv_rows(&data.join("elec2.csv"), "class", Some("UP"), &["Date"])?;
    let credit = csv_rows(&data.join("credit-default.csv"), "default.payment.next.month", None, &["ID"])?;
    let setup = |d: usize, candidates, metric, top: usize, clip: Option<f64>| vigil_learn::Setup {
        width: d,
        numeric: d,
        clip: vec![clip; d],
        candidates,
        policy: Policy { metric, round: 2000, min_keep: 2, min_age: 1000, window: 1000, threshold: 0.5 },
        rehearsal: 0,
        replay_ratio: 0.0,
        serve_top: top,
        seed: 1,
    };
    // River in the same run (the quick mode skips the slow forest; its figures come from the reference).
    let script = root.join("../shared/baselines/river_baseline.py");
    let python = std::env::var("VIGIL_PYTHON").map(PathBuf::from).unwrap_or_else(|_| root.join(".venv/bin/python"));
    eprintln!("running River ({})", script.display());
    let out = Command::new(&python).arg(&script).args(["--quick", "--data"]).arg(&data).output()?;
    if !out.status.success() {
        return Err(format!("River baseline failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let river: Json = serde_json::from_slice(&out.stdout)?;
    let reference: Json = std::fs::read(root.join("../shared/baselines/river-reference.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Json::Null);
    let river_lr = |ds: &str, k: &str| river["learning"][ds]["logistic_regression"][k].as_f64().unwrap_or(f64::NAN);
    let arf = |ds: &str| reference["learning"][ds]["adaptive_random_forest_10"]["value"].as_f64().unwrap_or(f64::NAN);

    let (mut rates_elec, mut rates_credit) = (Vec::new(), Vec::new());
    let mut lr = (0.0, 0.0);
    for round in 0..env.rounds {
        let (m, r, _) = prequential(&elec, setup(elec[0].0.len(), vec![river_logistic(1)], Metric::Accuracy, 1, None));
        rates_elec.push(r);
        let (c, rc, _) = prequential(&credit, setup(credit[0].0.len(), vec![river_logistic(1)], Metric::Auc, 1, None));
        rates_credit.push(rc);
        lr = (m.accuracy(), c.river_auc());
        eprintln!("round {}: logistic regression {r:.0} updates/s (elec2), {rc:.0}/s (credit)", round + 1);
    }
    let (best_elec, _, elec_served) =
        prequential(&elec, setup(elec[0].0.len(), tabular_candidates(1, false), Metric::Accuracy, 2, Some(3.0)));
    let (best_credit, _, credit_served) =
        prequential(&credit, setup(credit[0].0.len(), tabular_candidates(1, false), Metric::Auc, 2, Some(3.0)));
    let updates = median(&rates_elec);
    let river_updates = river_lr("elec2", "events_per_s");
    let report = json!({
        "benchmark": "learner",
        "machine": machine(env),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "commit": commit(),
        "river_version": river["river_version"],
        "lr_elec2_accuracy": lr.0,
        "river_lr_elec2_accuracy": river_lr("elec2", "value"),
        "lr_credit_default_auc": lr.1,
        "river_lr_credit_default_auc": river_lr("credit_default", "value"),
        "best_elec2_accuracy": best_elec.accuracy(),
        "best_elec2_selected": elec_served,
        "river_best_elec2_accuracy": arf("elec2"),
        "best_credit_default_auc": best_credit.river_auc(),
        "best_credit_default_exact_auc": best_credit.auc(),
        "best_credit_default_selected": credit_served,
        "river_best_credit_default_auc": arf("credit_default"),
        "updates_per_s": updates,
        "updates_per_s_runs": rates_elec,
        "river_updates_per_s": river_updates,
        "update_ratio": updates / river_updates,
        "credit_updates_per_s": median(&rates_credit),
        "river_credit_updates_per_s": river_lr("credit_default", "events_per_s"),
        "credit_update_ratio": median(&rates_credit) / river_lr("credit_default", "events_per_s"),
        "notes": "AUC as River's metrics.ROCAUC computes it (10 thresholds, trapezoid); River's best is its Adaptive Random Forest (10 trees) from shared/baselines/river-reference.json. updates/s are prequential (predict, then learn) events per second of the logistic regression, one core each.",
    });
    let path = write_report(env, "learner", &report)?;
    eprintln!("\nlearner benchmark -> {}", path.display());
    for k in [
        "lr_elec2_accuracy",
        "river_lr_elec2_accuracy",
        "lr_credit_default_auc",
        "river_lr_credit_default_auc",
        "best_elec2_accuracy",
        "river_best_elec2_accuracy",
        "best_credit_default_auc",
        "river_best_credit_default_auc",
        "updates_per_s",
        "river_updates_per_s",
        "update_ratio",
    ] {
        eprintln!("  {k:<32} {:>14.4}", report[k].as_f64().unwrap_or(f64::NAN));
    }
    Ok(report)
}
