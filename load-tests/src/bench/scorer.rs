//! The scorer benchmark: fraud (MLP) and sentiment (hashed text) against the forwarder on the same
//! preloaded topics, latency at half the live maximum and at a fixed 10,000 events/s, and memory
//! under a backlog.

use super::*;

/// The benchmark's fraud model: an MLP (spec width → 64 → 1) with fixed pseudo-random weights.
pub(super) fn fraud_model() -> Result<vigil_models::families::Model, BenchError> {
    use vigil_models::families::{Dense, Model};
    let d = vigil_features::FeatureSpec::parse(vigil_features::FRAUD_SPEC)?.width();
    Ok(Model::Mlp {
        layers: vec![
            Dense { inputs: d, outputs: 64, w: weights(d * 64, 1), b: vec![0.0; 64] },
            Dense { inputs: 64, outputs: 1, w: weights(64, 2), b: vec![-2.0] },
        ],
    })
}

/// `n` fixed pseudo-random weights in [-0.1, 0.1).
fn weights(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 5000.0 - 0.1).collect()
}

/// Registers the benchmark's models on `topic`: the fraud MLP ([`fraud_model`]) and a hashed-text
/// sentiment model, both promoted.
pub(super) async fn register_models(env: &Env, topic: &str) -> Result<(), BenchError> {
    use vigil_events::CheckpointStatus;
    use vigil_models::checkpoint::{self, NewCheckpoint};
    use vigil_models::families::Model;
    let fraud = fraud_model()?;
    let text = Model::HashedText { table: weights(65536, 3), b: 0.0 };
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

pub(super) fn scorer_system(workload: Workload, models_topic: &str) -> System {
    scorer_system_with(workload, models_topic, "")
}

/// [`scorer_system`] with more `[scorer]` keys.
pub(super) fn scorer_system_with(workload: Workload, models_topic: &str, scorer_keys: &str) -> System {
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
require-signature = false
{scorer_keys}
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

/// The drain rounds of one workload: per system (scorer, forwarder) one value per round.
#[derive(Default)]
struct Drains {
    rate: [Vec<f64>; 2],
    /// CPU µs per event of the whole process, and while draining only (start-up left out).
    cpu: [Vec<f64>; 2],
    drain_cpu: [Vec<f64>; 2],
    /// The whole machine's busy CPU µs per event while draining (the broker's included).
    machine_cpu: [Vec<f64>; 2],
    /// The scorer's peak resident memory, its ONNX Runtime µs per event and its mean batch.
    rss: Vec<f64>,
    infer: Vec<f64>,
    batch: Vec<f64>,
}

/// Drains `env.drain_rounds` preloaded backlogs with the scorer and the forwarder in turn.
async fn drains(env: &Env, workload: Workload, systems: [&System; 2], events: u64) -> Result<Drains, BenchError> {
    let model = match workload {
        Workload::Fraud => "fraud",
        Workload::Text => "sentiment",
    };
    let mut d = Drains::default();
    let per_event = |secs: f64| secs * 1e6 / events as f64;
    for round in 0..env.drain_rounds {
        let input = unique(&format!("{}-in", systems[0].name));
        topics(env, &[&input]).await?;
        preload(env, workload, &input, events, round as u64).await?;
        // Alternate which goes first.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let t = throughput(env, systems[i], &input, events).await?;
            d.rate[i].push(t.events_per_s);
            d.cpu[i].push(per_event(t.cpu_s));
            d.drain_cpu[i].push(t.drain_cpu_us_per_event);
            d.machine_cpu[i].push(t.machine_drain_cpu_us_per_event);
            if i == 1 {
                continue; // the rest is the scorer's alone
            }
            d.rss.push(t.rss_mb);
            if let Some(m) = &t.metrics {
                let series = format!("vigil_scorer_inference_seconds_sum{{model=\"{model}\"}}");
                d.infer.push(per_event(metric_value(m, &series)));
                let batches = metric_value(m, "vigil_scorer_batch_size_records_count");
                d.batch.push(metric_value(m, "vigil_scorer_batch_size_records_sum") / batches.max(1.0));
            }
        }
        let (s, f) = (d.rate[0][round], d.rate[1][round]);
        eprintln!("{} round {}: scorer {s:.0}/s, forwarder {f:.0}/s", systems[0].name, round + 1);
        drop_topics(env, &[&input]).await;
    }
    Ok(d)
}

/// Scorer against forwarder for one workload; returns the report's section.
async fn scorer_workload(env: &Env, workload: Workload, models_topic: &str, events: u64) -> Result<Json, BenchError> {
    let scorer = scorer_system(workload, models_topic);
    let forwarder = System::forwarder();
    let Drains {
        rate: [s_rate, f_rate],
        cpu: [s_cpu, f_cpu],
        drain_cpu: [s_drain_cpu, f_drain_cpu],
        machine_cpu: [s_machine_cpu, f_machine_cpu],
        rss: mut s_rss,
        infer: s_infer,
        batch: s_batch,
    } = drains(env, workload, [&scorer, &forwarder], events).await?;
    // The scorer's live maximum (generator and system on this machine together); latency at half of
    // it, and at a fixed 10,000 events/s.
    let live = latency(env, &scorer, workload, None, events, 77).await?;
    let half = (live.achieved / 2.0).max(100.0);
    let at_half = latencies(env, [&scorer, &forwarder], workload, half, 200).await?;
    let at_10k = latencies(env, [&scorer, &forwarder], workload, 10_000.0, 300).await?;
    s_rss.extend(at_half.rss.iter().chain(&at_10k.rss));
    let (s_p50, s_p99, f_p50, f_p99) =
        (at_half.p50[0].clone(), at_half.p99[0].clone(), at_half.p50[1].clone(), at_half.p99[1].clone());
    let ratios: Vec<f64> = s_rate.iter().zip(&f_rate).map(|(s, f)| s / f).collect();
    let input_key = match workload {
        Workload::Fraud => input_key_drains(env, models_topic, &forwarder, events).await?,
        Workload::Text => Json::Null,
    };
    table(&[
        ("scorer events/s", &s_rate),
        ("forwarder events/s", &f_rate),
        ("throughput ratio", &ratios),
        ("scorer CPU us/event", &s_cpu),
        ("forwarder CPU us/event", &f_cpu),
        ("scorer CPU us/event draining", &s_drain_cpu),
        ("forwarder CPU us/event draining", &f_drain_cpu),
        ("machine CPU us/event, scorer draining", &s_machine_cpu),
        ("machine CPU us/event, forwarder draining", &f_machine_cpu),
        ("scorer inference us/event", &s_infer),
        ("scorer p99 ms", &s_p99),
        ("forwarder p99 ms", &f_p99),
        ("scorer p99 ms: to its output", &at_half.to_output_p99[0]),
        ("forwarder p99 ms: to its output", &at_half.to_output_p99[1]),
        ("scorer p99 ms: after its output", &at_half.after_output_p99[0]),
        ("forwarder p99 ms: after its output", &at_half.after_output_p99[1]),
        ("scorer p99 ms @ 10k/s", &at_10k.p99[0]),
        ("forwarder p99 ms @ 10k/s", &at_10k.p99[1]),
        ("scorer p99 ms @ 10k/s: to its output", &at_10k.to_output_p99[0]),
        ("forwarder p99 ms @ 10k/s: to its output", &at_10k.to_output_p99[1]),
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
        "scorer_p50_ms_10k": median(&at_10k.p50[0]),
        "forwarder_p50_ms_10k": median(&at_10k.p50[1]),
        "scorer_p99_ms_10k": median(&at_10k.p99[0]),
        "forwarder_p99_ms_10k": median(&at_10k.p99[1]),
        "p99_difference_ms_10k": median(&at_10k.p99[0]) - median(&at_10k.p99[1]),
        // Where the tails are: each side of the output's timestamp (the system handing the output to
        // its producer), at half the live maximum and at 10k/s.
        "p99_split_ms": {
            "scorer_to_output": median(&at_half.to_output_p99[0]),
            "forwarder_to_output": median(&at_half.to_output_p99[1]),
            "scorer_after_output": median(&at_half.after_output_p99[0]),
            "forwarder_after_output": median(&at_half.after_output_p99[1]),
            "scorer_to_output_10k": median(&at_10k.to_output_p99[0]),
            "forwarder_to_output_10k": median(&at_10k.to_output_p99[1]),
            "scorer_after_output_10k": median(&at_10k.after_output_p99[0]),
            "forwarder_after_output_10k": median(&at_10k.after_output_p99[1]),
        },
        "scorer_rss_mb": s_rss.iter().cloned().fold(0.0, f64::max),
        "scorer_cpu_us_per_event": median(&s_cpu),
        "forwarder_cpu_us_per_event": median(&f_cpu),
        // While draining: from the first outputs to the last (start-up, a fixed cost, left out).
        "scorer_drain_cpu_us_per_event": median(&s_drain_cpu),
        "forwarder_drain_cpu_us_per_event": median(&f_drain_cpu),
        // The machine's, the broker's included: the rest of it beside the system is
        // `machine_… − …_drain_cpu_us_per_event`.
        "scorer_machine_drain_cpu_us_per_event": median(&s_machine_cpu),
        "forwarder_machine_drain_cpu_us_per_event": median(&f_machine_cpu),
        "scorer_inference_us_per_event": median(&s_infer),
        "scorer_mean_batch": median(&s_batch),
        "input_key": input_key,
        "events": events,
    }))
}

/// The fraud drains again with `scores-key = "input"` (a score keyed as its input, so produced to
/// its input's partition), against the forwarder in rounds of their own.
async fn input_key_drains(env: &Env, models_topic: &str, forwarder: &System, events: u64) -> Result<Json, BenchError> {
    let mut scorer = scorer_system_with(Workload::Fraud, models_topic, "scores-key = \"input\"");
    scorer.name = "scorer-fraud-input-key".into();
    let d = drains(env, Workload::Fraud, [&scorer, forwarder], events).await?;
    let ratios: Vec<f64> = d.rate[0].iter().zip(&d.rate[1]).map(|(s, f)| s / f).collect();
    table(&[
        ("scorer (input key) events/s", &d.rate[0]),
        ("forwarder events/s", &d.rate[1]),
        ("throughput ratio (input key)", &ratios),
        ("scorer (input key) CPU us/event draining", &d.drain_cpu[0]),
        ("forwarder CPU us/event draining", &d.drain_cpu[1]),
        ("machine CPU us/event, scorer (input key) draining", &d.machine_cpu[0]),
        ("machine CPU us/event, forwarder draining", &d.machine_cpu[1]),
    ]);
    Ok(json!({
        "scorer_events_per_s": median(&d.rate[0]),
        "forwarder_events_per_s": median(&d.rate[1]),
        "throughput_ratio": median(&ratios),
        "throughput_ratio_runs": ratios,
        "scorer_drain_cpu_us_per_event": median(&d.drain_cpu[0]),
        "forwarder_drain_cpu_us_per_event": median(&d.drain_cpu[1]),
        "scorer_machine_drain_cpu_us_per_event": median(&d.machine_cpu[0]),
        "forwarder_machine_drain_cpu_us_per_event": median(&d.machine_cpu[1]),
    }))
}

/// Latency percentiles of two systems at one rate, over `env.rounds` alternating rounds.
#[derive(Default)]
struct Latencies {
    /// p50 and p99 per system (in the order given), one value per round.
    p50: [Vec<f64>; 2],
    p99: [Vec<f64>; 2],
    /// The p99s of the two sides of the output's timestamp ([`crate::probe`]): due → handed to the
    /// system's producer, and handed → consumed.
    to_output_p99: [Vec<f64>; 2],
    after_output_p99: [Vec<f64>; 2],
    /// The first system's peak RSS per round.
    rss: Vec<f64>,
}

async fn latencies(
    env: &Env,
    systems: [&System; 2],
    workload: Workload,
    rate: f64,
    seed: u64,
) -> Result<Latencies, BenchError> {
    let mut out = Latencies::default();
    let n = (rate * env.latency_secs) as u64;
    for round in 0..env.rounds {
        // Alternate which goes first.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let l = latency(env, systems[i], workload, Some(rate), n, seed + round as u64).await?;
            out.p50[i].push(l.percentiles.p50_ms);
            out.p99[i].push(l.percentiles.p99_ms);
            out.to_output_p99[i].push(l.percentiles.to_output_p99_ms);
            out.after_output_p99[i].push(l.percentiles.after_output_p99_ms);
            if i == 0 {
                out.rss.push(l.rss_mb);
            }
        }
        eprintln!(
            "{} latency round {} at {rate:.0}/s: p99 {} {:.2} ms ({:.0} + {:.0}), {} {:.2} ms ({:.0} + {:.0})",
            systems[0].name,
            round + 1,
            systems[0].name,
            out.p99[0][round],
            out.to_output_p99[0][round],
            out.after_output_p99[0][round],
            systems[1].name,
            out.p99[1][round],
            out.to_output_p99[1][round],
            out.after_output_p99[1][round],
        );
    }
    Ok(out)
}

/// The scorer benchmark: fraud (MLP) and sentiment (hashed text) against the forwarder, and the
/// scorer's memory under a backlog ten times what it scores in a latency run.
pub async fn scorer(env: &Env) -> Result<Json, BenchError> {
    let started = Instant::now();
    let hot_path = json!({
        "fraud": super::hot_path::hot_path(Workload::Fraud, 4096, 7)?,
        "sentiment": super::hot_path::hot_path(Workload::Text, 4096, 7)?,
    });
    let models_topic = models_topic(env, "models").await?;
    register_models(env, &models_topic).await?;
    let fraud = scorer_workload(env, Workload::Fraud, &models_topic, env.events).await?;
    // As many texts as transactions: a drain of a quarter of them (0.1 s) was mostly the first
    // micro-batches and swung by a fifth between rounds.
    let text = scorer_workload(env, Workload::Text, &models_topic, env.events).await?;
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
        "scorer_p99_ms_10k": fraud["scorer_p99_ms_10k"],
        "forwarder_p99_ms_10k": fraud["forwarder_p99_ms_10k"],
        "scorer_rss_mb": fraud["scorer_rss_mb"],
        "fraud_mlp": fraud,
        "sentiment": text,
        "hot_path": hot_path,
        "overload": {"backlog_events": backlog, "events_per_s": over.events_per_s, "rss_mb": over.rss_mb,
            "rss_vs_normal": over.rss_mb / fraud["scorer_rss_mb"].as_f64().unwrap_or(1.0)},
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    let path = write_report(env, "scorer", &report)?;
    eprintln!("scorer benchmark -> {}", path.display());
    Ok(report)
}
