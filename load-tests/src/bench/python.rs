//! The Python baseline: the fraud scorer against a fraud scorer written the usual Python way
//! (`baselines/python_fraud_scorer.py`: confluent-kafka, fastavro, the features computed in Python
//! from the same spec, onnxruntime on the same graph) and against the forwarder, each draining the
//! same preloaded topic, with the CPU time each spends per event. Before timing anything, both
//! score the same records and their scores are compared, so that the two do the same work.

use std::collections::HashMap;

use super::*;

/// Scores of one system, by event id.
type Scores = HashMap<String, f64>;

/// The Python baseline benchmark; writes `python.json`.
pub async fn python(env: &Env) -> Result<Json, BenchError> {
    let started = Instant::now();
    let root = repo_root(&env.bin_dir);
    let models_topic = models_topic(env, "models").await?;
    super::scorer::register_models(env, &models_topic).await?;
    let graph = std::env::temp_dir().join(format!("{}.onnx", unique("fraud")));
    std::fs::write(&graph, super::scorer::fraud_model()?.to_onnx("fraud", 1).to_bytes())?;
    let scorer = super::scorer::scorer_system(Workload::Fraud, &models_topic);
    let baseline = python_scorer(&root, &graph);
    let forwarder = System::forwarder();

    let parity = parity(env, [&scorer, &baseline]).await?;
    eprintln!(
        "python: {} events scored by both, largest score difference {:.2e}",
        parity["events"],
        parity["max_abs_difference"].as_f64().unwrap_or(f64::NAN)
    );
    let systems = [&scorer, &forwarder, &baseline];
    // Per system: events/s, and CPU µs per event (the whole process, start-up included).
    let (mut rates, mut cpu): ([Vec<f64>; 3], [Vec<f64>; 3]) = Default::default();
    // CPU µs per event while draining (start-up left out).
    let mut drain_cpu: [Vec<f64>; 3] = Default::default();
    for round in 0..env.rounds {
        let input = unique("python-in");
        topics(env, &[&input]).await?;
        preload(env, Workload::Fraud, &input, env.events, 500 + round as u64).await?;
        // Each round starts with the next system.
        for k in 0..3 {
            let i = (round + k) % 3;
            let t = throughput(env, systems[i], &input, env.events).await?;
            rates[i].push(t.events_per_s);
            cpu[i].push(t.cpu_s * 1e6 / env.events as f64);
            drain_cpu[i].push(t.drain_cpu_us_per_event);
        }
        let [s, f, p] = rates.each_ref().map(|r| r[round]);
        eprintln!("python round {}: scorer {s:.0}/s, forwarder {f:.0}/s, Python {p:.0}/s", round + 1);
        drop_topics(env, &[&input]).await;
    }
    let [s, f, p] = rates;
    drop_topics(env, &[&models_topic]).await;
    let _ = std::fs::remove_file(&graph);
    let vs_python: Vec<f64> = s.iter().zip(&p).map(|(s, p)| s / p).collect();
    let python_vs_forwarder: Vec<f64> = p.iter().zip(&f).map(|(p, f)| p / f).collect();
    let report = json!({
        "benchmark": "python",
        "machine": machine(env),
        "commit": commit(),
        "scorer_events_per_s": median(&s),
        "forwarder_events_per_s": median(&f),
        "python_events_per_s": median(&p),
        "scorer_vs_python": median(&vs_python),
        "python_vs_forwarder": median(&python_vs_forwarder),
        "scorer_vs_python_runs": vs_python,
        "python_vs_forwarder_runs": python_vs_forwarder,
        "scorer_events_per_s_runs": s,
        "forwarder_events_per_s_runs": f,
        "python_events_per_s_runs": p,
        "scorer_cpu_us_per_event": median(&cpu[0]),
        "forwarder_cpu_us_per_event": median(&cpu[1]),
        "python_cpu_us_per_event": median(&cpu[2]),
        "scorer_drain_cpu_us_per_event": median(&drain_cpu[0]),
        "forwarder_drain_cpu_us_per_event": median(&drain_cpu[1]),
        "python_drain_cpu_us_per_event": median(&drain_cpu[2]),
        "events": env.events,
        "parity": parity,
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    let path = write_report(env, "python", &report)?;
    eprintln!("python benchmark -> {}", path.display());
    Ok(report)
}

/// The Python fraud scorer on `graph`, the demo's fraud spec and the Transaction schema.
fn python_scorer(root: &Path, graph: &Path) -> System {
    let path = |p: PathBuf| p.display().to_string();
    System {
        name: "python-fraud".into(),
        program: path(python_bin(root)),
        args: vec![
            path(root.join("load-tests/baselines/python_fraud_scorer.py")),
            "--input".into(),
            "{input}".into(),
            "--output".into(),
            "{output}".into(),
            "--group".into(),
            "{group}".into(),
            "--model".into(),
            path(graph.to_path_buf()),
            "--spec".into(),
            path(root.join("crates/vigil-features/specs/fraud.toml")),
            "--schema".into(),
            path(root.join("schemas/Transaction.avsc")),
        ],
        env: Vec::new(),
        config: None,
    }
}

/// Both systems score the same 500 records; the largest difference between their scores of one
/// event (an error when an event has no score from both).
async fn parity(env: &Env, systems: [&System; 2]) -> Result<Json, BenchError> {
    const N: u64 = 500;
    let input = unique("parity-in");
    topics(env, &[&input]).await?;
    preload(env, Workload::Fraud, &input, N, 499).await?;
    let vigil = scores_of(env, systems[0], &input, N).await?;
    let python = scores_of(env, systems[1], &input, N).await?;
    drop_topics(env, &[&input]).await;
    let mut worst = 0.0f64;
    for (id, v) in &vigil {
        let p = python.get(id).ok_or_else(|| format!("{}: no score for {id}", systems[1].name))?;
        worst = worst.max((v - p).abs());
    }
    if vigil.len() as u64 != N || python.len() as u64 != N {
        return Err(format!("parity: {} and {} scores of {N} events", vigil.len(), python.len()).into());
    }
    Ok(json!({"events": N, "max_abs_difference": worst}))
}

/// The scores `system` writes for the first `n` records of `input`: Vigil's Avro `Score`s or the
/// Python scorer's JSON (`event_id`, `score`).
async fn scores_of(env: &Env, system: &System, input: &str, n: u64) -> Result<Scores, BenchError> {
    let output = unique(&format!("{}-scores", system.name));
    topics(env, &[&output]).await?;
    let mut child = system.spawn_on(env, input, &output, &unique(&system.name), free_port()?)?;
    let mut outputs = Outputs::open(env, &output)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while (outputs.read()?.count() as u64) < n {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            stop(&mut child);
            return Err(format!("{} did not score {n} events within 120 s", system.name).into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop(&mut child);
    let scores = read_scores(&outputs);
    drop_topics(env, &[&output]).await;
    scores
}

/// Every score in a topic whose offsets `outputs` has just read.
fn read_scores(outputs: &Outputs) -> Result<Scores, BenchError> {
    let codec = Codec::new();
    let mut tpl = TopicPartitionList::new();
    for &(p, low, _) in &outputs.ends {
        tpl.add_partition_offset(&outputs.topic, p, Offset::Offset(low))?;
    }
    outputs.c.assign(&tpl)?;
    let (mut scores, mut left) = (Scores::new(), outputs.count());
    let deadline = Instant::now() + Duration::from_secs(30);
    while left > 0 && Instant::now() < deadline {
        let Some(Ok(m)) = outputs.c.poll(Duration::from_millis(200)) else { continue };
        left -= 1;
        let bytes = m.payload().unwrap_or_default();
        if let Ok(s) = codec.decode_event::<vigil_events::Score>(bytes) {
            scores.insert(s.event_id, s.score);
        } else if let Ok(j) = serde_json::from_slice::<Json>(bytes)
            && let (Some(id), Some(score)) = (j["event_id"].as_str(), j["score"].as_f64())
        {
            scores.insert(id.to_string(), score);
        }
    }
    Ok(scores)
}
