//! The drift benchmark (`vigil-bench drift`, part of `make bench`): Vigil's detectors beside River's on
//! the same streams in one run, and the drift service's throughput on the fraud stream beside the
//! forwarder's on the same preloaded topic.
//!
//! - **Detectors**: `load-tests/baselines/river_drift.py` builds the streams (those of
//!   `../shared/baselines/river_baseline.py` and seeded ones of Vigil's own), runs River's ADWIN,
//!   Page-Hinkley, KSWIN and DDM over them, and hands over the values, River's detection indices and its
//!   update-loop times. Vigil's detectors then run over the same values `rounds` times. A detector's
//!   rate is the number of values over the total time of its update loops (median over rounds).
//! - **Detection delay**: on a stream with a change at index c, the first detection at or after c,
//!   minus c (a stream with none counts as missed). **False alarms**: detections before c, and every
//!   detection on a stationary stream, per 100k such events.
//! - **Service**: the drift service (`start-from = "earliest"`) drains a topic preloaded with fraud
//!   transactions; its rate is the records it counted (its metrics) over the time from its first
//!   counted record to the last. The forwarder drains the same topic (alternating order).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use vigil_kafka::now_ms;
use vigil_stats::detectors::{Adwin, Ddm, Detector, Kswin, PageHinkley};

use super::{self as bench, BenchError, Env, System, Workload};

/// Vigil's detector with the parameters River ran with.
fn detector(name: &str, p: &Json) -> Result<Box<dyn Detector>, BenchError> {
    let f = |k: &str| p[k].as_f64().ok_or_else(|| format!("{name}: no parameter {k}"));
    let u = |k: &str| p[k].as_u64().ok_or_else(|| format!("{name}: no parameter {k}"));
    Ok(match name {
        "adwin" => Box::new(Adwin::new(f("delta")?)),
        "page_hinkley" => Box::new(PageHinkley::new(u("min_instances")?, f("delta")?, f("threshold")?, f("alpha")?)),
        "kswin" => Box::new(Kswin::new(f("alpha")?, u("window_size")? as usize, u("stat_size")? as usize, u("seed")?)),
        "ddm" => Box::new(Ddm::new(u("warm_start")?, f("warning_threshold")?, f("drift_threshold")?)),
        other => return Err(format!("no Vigil detector for River's {other}").into()),
    })
}

/// One stream of the baseline's document.
struct Stream {
    name: String,
    change_at: Option<usize>,
    values: Vec<f64>,
    /// River's detections and update-loop seconds, per detector that ran on this stream.
    river: Vec<(String, Vec<usize>, f64)>,
}

fn streams(doc: &Json) -> Result<Vec<Stream>, BenchError> {
    let list = doc["streams"].as_array().ok_or("the River script printed no streams")?;
    list.iter()
        .map(|s| {
            let hits =
                |v: &Json| v.as_array().map(|a| a.iter().filter_map(|i| i.as_u64()).map(|i| i as usize).collect());
            let river = s["river"]
                .as_object()
                .ok_or("a stream without River runs")?
                .iter()
                .map(|(d, r)| {
                    (d.clone(), hits(&r["detections"]).unwrap_or_default(), r["seconds"].as_f64().unwrap_or(0.0))
                })
                .collect();
            Ok(Stream {
                name: s["name"].as_str().unwrap_or_default().to_string(),
                change_at: s["change_at"].as_u64().map(|c| c as usize),
                values: s["values"]
                    .as_array()
                    .ok_or("a stream without values")?
                    .iter()
                    .filter_map(|v| v.as_f64())
                    .collect(),
                river,
            })
        })
        .collect()
}

/// Delays, misses and false alarms of one detector's detections over the streams.
#[derive(Default)]
struct Quality {
    delays: Vec<f64>,
    missed: usize,
    false_alarms: usize,
    stationary_events: usize,
}

impl Quality {
    fn add(&mut self, hits: &[usize], change_at: Option<usize>, n: usize) {
        let c = change_at.unwrap_or(n).min(n);
        self.false_alarms += hits.iter().filter(|&&i| i < c).count();
        self.stationary_events += c;
        if change_at.is_some() {
            match hits.iter().find(|&&i| i >= c) {
                Some(i) => self.delays.push((i - c) as f64),
                None => self.missed += 1,
            }
        }
    }

    fn json(&self) -> Json {
        json!({
            "mean_delay": if self.delays.is_empty() { Json::Null } else { json!(self.delays.iter().sum::<f64>() / self.delays.len() as f64) },
            "median_delay": if self.delays.is_empty() { Json::Null } else { json!(bench::median(&self.delays)) },
            "delays": self.delays,
            "missed": self.missed,
            "false_alarms": self.false_alarms,
            "false_alarms_per_100k": self.false_alarms as f64 * 1e5 / self.stationary_events.max(1) as f64,
            "stationary_events": self.stationary_events,
        })
    }
}

/// The detectors' part of the report.
fn detectors(env: &Env, doc: &Json, streams: &[Stream]) -> Result<Json, BenchError> {
    let mut out = serde_json::Map::new();
    let names = doc["detectors"].as_object().ok_or("the River script printed no detectors")?;
    for (name, spec) in names {
        let params = &spec["params"];
        let runs: Vec<&Stream> = streams.iter().filter(|s| s.river.iter().any(|(d, _, _)| d == name)).collect();
        let events: usize = runs.iter().map(|s| s.values.len()).sum();
        let river_secs: f64 = runs.iter().flat_map(|s| s.river.iter().filter(|(d, _, _)| d == name)).map(|r| r.2).sum();
        let mut rates = Vec::new();
        let mut vigil_hits: Vec<Vec<usize>> = Vec::new();
        for _ in 0..env.rounds {
            let mut secs = 0.0;
            vigil_hits.clear();
            for s in &runs {
                let mut det = detector(name, params)?;
                let mut hits = Vec::new();
                let started = Instant::now();
                for (i, &x) in s.values.iter().enumerate() {
                    if det.update(x) {
                        hits.push(i);
                    }
                }
                secs += started.elapsed().as_secs_f64();
                vigil_hits.push(hits);
            }
            rates.push(events as f64 / secs.max(1e-12));
        }
        let (mut vigil_q, mut river_q) = (Quality::default(), Quality::default());
        let mut disagreements = Vec::new();
        for (s, mine) in runs.iter().zip(&vigil_hits) {
            let theirs = &s.river.iter().find(|(d, _, _)| d == name).map(|r| r.1.clone()).unwrap_or_default();
            vigil_q.add(mine, s.change_at, s.values.len());
            river_q.add(theirs, s.change_at, s.values.len());
            if mine != theirs {
                disagreements.push(json!({"stream": s.name, "vigil": mine, "river": theirs}));
            }
        }
        let river_rate = events as f64 / river_secs.max(1e-12);
        let rate = bench::median(&rates);
        eprintln!(
            "  {name:<13} Vigil {rate:>12.0}/s  River {river_rate:>10.0}/s  ratio {:>7.1}  delay {:>7.1}  false alarms/100k {:>6.1}  same detections: {}",
            rate / river_rate,
            vigil_q.delays.iter().sum::<f64>() / vigil_q.delays.len().max(1) as f64,
            vigil_q.false_alarms as f64 * 1e5 / vigil_q.stationary_events.max(1) as f64,
            disagreements.is_empty()
        );
        out.insert(
            name.clone(),
            json!({
                "params": params,
                "streams": runs.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                "events": events,
                "vigil_updates_per_s": rate,
                "vigil_updates_per_s_runs": rates,
                "river_updates_per_s": river_rate,
                "ratio": rate / river_rate,
                "vigil": vigil_q.json(),
                "river": river_q.json(),
                "identical_detections": disagreements.is_empty(),
                "disagreements": disagreements,
            }),
        );
    }
    Ok(Json::Object(out))
}

fn drift_system(models_topic: &str, port: u16) -> System {
    let config = format!(
        r#"
[topics]
scores = "{{output}}"
models = "{models_topic}"
alerts = "{{output}}"
drift = "{{output}}"
dlq = "{{output}}"

[[inputs]]
topic = "{{input}}"
schema = "dev.vigil.demo.Transaction"
model = "fraud"
labels = ""

[drift]
group-id = "{{group}}"
http-listen = "127.0.0.1:{port}"
start-from = "earliest"
"#
    );
    System {
        name: "drift".into(),
        program: "vigil-drift".into(),
        args: Vec::new(),
        env: Vec::new(),
        config: Some(config),
    }
}

/// The drift service's rate over a preloaded topic of `n` transactions: records per second.
async fn service_rate(env: &Env, models_topic: &str, input: &str, n: u64) -> Result<(f64, f64), BenchError> {
    let port = bench::free_port()?;
    let system = drift_system(models_topic, port);
    let output = format!("bench-drift-out-{}-{}", std::process::id(), now_ms());
    bench::topics(env, &[&output]).await?;
    let mut child = system.spawn(env, input, &output, &format!("bench-drift-{}", now_ms()))?;
    let series = r#"vigil_drift_records_total{model="fraud",stream="events"}"#;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<(Instant, f64)> = None;
    let result = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("the drift service exited early ({status})").into());
        }
        let seen = bench::scrape_metrics(port).map(|m| bench::metric_value(&m, series)).unwrap_or(0.0);
        if seen > 0.0 && first.is_none() {
            first = Some((Instant::now(), seen));
        }
        if seen >= n as f64 {
            let (t0, c0) = first.unwrap_or((Instant::now(), 0.0));
            break Ok((seen - c0) / t0.elapsed().as_secs_f64().max(1e-3));
        }
        if Instant::now() > deadline {
            break Err(format!("the drift service counted {seen} of {n} records within 600 s").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rss = bench::stop(&mut child);
    bench::drop_topics(env, &[&output]).await;
    result.map(|r| (r, rss))
}

/// The service's part of the report.
async fn service(env: &Env) -> Result<Json, BenchError> {
    let models_topic = bench::models_topic(env, "drift-models").await?;
    let forwarder = System::forwarder();
    let (mut d_rate, mut f_rate, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..env.rounds {
        let input = format!("bench-drift-in-{}-{}", std::process::id(), now_ms());
        bench::topics(env, &[&input]).await?;
        bench::preload(env, Workload::Fraud, &input, env.events, 500 + round as u64).await?;
        let drift_first = round % 2 == 0;
        for turn in 0..2 {
            if (turn == 0) == drift_first {
                let (r, m) = service_rate(env, &models_topic, &input, env.events).await?;
                d_rate.push(r);
                rss.push(m);
            } else {
                f_rate.push(bench::throughput(env, &forwarder, &input, env.events).await?.events_per_s);
            }
        }
        eprintln!("drift service round {}: {:.0}/s, forwarder {:.0}/s", round + 1, d_rate[round], f_rate[round]);
        bench::drop_topics(env, &[&input]).await;
    }
    bench::drop_topics(env, &[&models_topic]).await;
    let ratios: Vec<f64> = d_rate.iter().zip(&f_rate).map(|(d, f)| d / f).collect();
    Ok(json!({
        "events": env.events,
        "drift_events_per_s": bench::median(&d_rate),
        "drift_events_per_s_runs": d_rate,
        "forwarder_events_per_s": bench::median(&f_rate),
        "forwarder_events_per_s_runs": f_rate,
        "ratio_to_forwarder": bench::median(&ratios),
        "drift_rss_mb": rss.iter().cloned().fold(0.0, f64::max),
        "settings": "window 1000, warm-up 1000, evaluate every 250 events (defaults); features of the fraud spec; no scores or labels",
    }))
}

/// The drift benchmark; writes `drift.json`.
pub async fn drift(env: &Env) -> Result<Json, BenchError> {
    let root = bench::repo_root(&env.bin_dir);
    let python = bench::python_bin(&root);
    let script = root.join("load-tests/baselines/river_drift.py");
    eprintln!("running River's detectors ({})", script.display());
    let out = Command::new(&python).arg(&script).output()?;
    if !out.status.success() {
        return Err(format!("River's drift baseline failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let doc: Json = serde_json::from_slice(&out.stdout)?;
    let streams = streams(&doc)?;
    let detectors = detectors(env, &doc, &streams)?;
    let service = service(env).await?;
    let report = json!({
        "benchmark": "drift",
        "machine": bench::machine(env),
        "river_version": doc["river_version"],
        "python": doc["python"],
        "detectors": detectors,
        "service": service,
        "notes": "Detector rates are one core each, update loops only (River's timed in Python around det.update and det.drift_detected). Delays in events after the change; false alarms per 100k events before a change or on a stationary stream.",
    });
    let path = bench::write_report(env, "drift", &report)?;
    eprintln!("\ndrift benchmark -> {}", path.display());
    eprintln!(
        "  drift service {:.0}/s, forwarder {:.0}/s on the same topic",
        report["service"]["drift_events_per_s"].as_f64().unwrap_or(f64::NAN),
        report["service"]["forwarder_events_per_s"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(report)
}
