//! The sentiment benchmark (issue 13): quality, prequential on each of VADER's four sets (binary:
//! rating > 0) in one seeded shuffle — the sentence encoder with heads learnt online, the hashed
//! n-gram model, and River's bag-of-words logistic regression on the same stream, run here — and
//! speed: the scorer serving encoder + head against a Python scorer written the usual way
//! (confluent-kafka, fastavro, tokenizers, onnxruntime) on the same graphs and preloaded texts.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use vigil_features::spec::FeatureSpec;
use vigil_features::{Featurizer, Field, Row};
use vigil_learn::metrics::Prequential;
use vigil_learn::select::{Metric, Policy};
use vigil_learn::{Example, Learner, Setup};
use vigil_models::{EncoderArtifact, Runtime};

use super::*;
use crate::sim::text::{LabelledText, VADER_FILES, load_vader};

/// The sentiment benchmark; `VIGIL_BENCH_SENTIMENT_TEXTS` caps each set (0: all of it).
pub async fn sentiment(env: &Env) -> Result<Json, BenchError> {
    let root = repo_root(&env.bin_dir);
    let cache = std::env::var("VIGIL_CACHE").map(PathBuf::from).unwrap_or_else(|_| root.join(".cache"));
    let checkpoint = cache.join("all-minilm-l6-v2");
    if !checkpoint.join("model.safetensors").exists() {
        let report =
            json!({"benchmark": "sentiment", "skipped": "no encoder checkpoint (scripts/setup.sh fetches it)"});
        write_report(env, "sentiment", &report)?;
        return Ok(report);
    }
    let store = env.out_dir.join("encoder-store");
    let stored = vigil_models::encoder::store(&checkpoint, &store)?;
    let spec_text =
        format!("model = \"sentiment\"\nschema = \"dev.vigil.demo.TextEvent\"\n{}", stored.spec_section("text", 128));
    let spec = FeatureSpec::parse(&spec_text)?;
    let rt = Runtime::global(None)?;
    let artifacts = vigil_models::artifacts::Artifacts::new(vec![store.clone()]);
    let encoder = EncoderArtifact::load(spec.encoder.as_ref().ok_or("no encoder")?, &artifacts, &rt)?;
    let limit = std::env::var("VIGIL_BENCH_SENTIMENT_TEXTS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let quality = quality(env, &root, &encoder, &rt, limit)?;
    let speed = speed(env, &root, &store, &spec_text, &stored).await?;
    let hashed_ratio = std::fs::read(env.out_dir.join("scorer.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
        .map(|r| r["sentiment"]["throughput_ratio"].clone())
        .unwrap_or(Json::Null);
    let report = json!({
        "benchmark": "sentiment",
        "machine": machine(env),
        "commit": commit(),
        "quality": quality,
        "speed": speed,
        "encoder_vs_python": speed["encoder_vs_python"],
        "hashed_throughput_ratio": hashed_ratio,
        "notes": "Quality: prequential accuracy over each VADER set (rating > 0 positive, 0 left out) in one seeded shuffle, the same stream for the three models. The encoder is all-MiniLM-L6-v2 as Vigil builds it (max 128 tokens), frozen; its heads are the learner's encoder candidates (logistic regression, MLPs) with model selection. hashed_throughput_ratio is the scorer benchmark's sentiment (hashed n-grams) scorer / forwarder ratio from scorer.json of the same run, when it ran.",
    });
    let path = write_report(env, "sentiment", &report)?;
    eprintln!("\nsentiment benchmark -> {}\n{}", path.display(), serde_json::to_string_pretty(&report["quality"])?);
    Ok(report)
}

fn policy() -> Policy {
    Policy { metric: Metric::Accuracy, round: 2000, min_keep: 2, min_age: 1000, window: 1000, threshold: 0.5 }
}

fn setup(width: usize, candidates: Vec<vigil_learn::family::Hyper>) -> Setup {
    Setup {
        width,
        numeric: 0,
        clip: Vec::new(),
        candidates,
        policy: policy(),
        rehearsal: 0,
        replay_ratio: 0.0,
        serve_top: 2,
        seed: 1,
    }
}

/// Prequential accuracy of the hashed n-gram model (the demo's spec) on `texts`.
fn hashed(texts: &[LabelledText]) -> Result<f64, BenchError> {
    let spec = FeatureSpec::parse(vigil_features::SENTIMENT_SPEC)?;
    let schema = vigil_events::schemas::current(vigil_events::schemas::names::TEXT_EVENT).ok_or("no schema")?;
    let f = Featurizer::new(&spec, &schema.schema).map_err(|p| p.join("; "))?;
    let buckets = spec.text.as_ref().map(|t| t.buckets as usize).unwrap_or(1);
    let mut learner = Learner::new(setup(0, vigil_learn::learner::text_candidates(1, buckets)));
    let mut m = Prequential::new(1000, 0.5);
    for t in texts {
        let Ok(Row::Text(i, v)) = f.row(&[Field::Str(&t.text)]) else { continue };
        m.update(learner.learn(Example::Text(&i, &v), t.label), t.label > 0.5);
    }
    Ok(m.accuracy())
}

/// Prequential accuracy of heads learnt on the frozen encoder's embeddings of `texts`, and the
/// encoder's texts/s on this machine (batches of 256, grouped by length).
fn encoder_heads(texts: &[LabelledText], encoder: &EncoderArtifact, rt: &Runtime) -> Result<(f64, f64), BenchError> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut embedder = encoder.embedder(rt, vigil_models::Provider::Cpu, cores)?;
    let len = encoder.tokenizer.max_tokens();
    let started = Instant::now();
    let mut rows = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(256) {
        let (mut ids, mut mask) = (vec![0i64; chunk.len() * len], vec![0f32; chunk.len() * len]);
        for (r, t) in chunk.iter().enumerate() {
            encoder.tokenizer.fill(&t.text, &mut ids[r * len..(r + 1) * len], &mut mask[r * len..(r + 1) * len])?;
        }
        let e = embedder.embed(&ids, &mask, chunk.len(), len)?;
        rows.extend(e.chunks(encoder.dim).map(|x| x.iter().map(|v| f64::from(*v)).collect::<Vec<f64>>()));
    }
    let rate = texts.len() as f64 / started.elapsed().as_secs_f64();
    let mut learner = Learner::new(setup(encoder.dim, vigil_learn::learner::encoder_candidates(1)));
    let mut m = Prequential::new(1000, 0.5);
    for (x, t) in rows.iter().zip(texts) {
        m.update(learner.learn(Example::Dense(x), t.label), t.label > 0.5);
    }
    Ok((m.accuracy(), rate))
}

fn quality(env: &Env, root: &Path, encoder: &EncoderArtifact, rt: &Runtime, limit: usize) -> Result<Json, BenchError> {
    let data = std::env::var("VIGIL_DATA").map(PathBuf::from).unwrap_or_else(|_| root.join("../shared/data"));
    let dir = data.join("sentiment");
    if !dir.is_dir() {
        return Ok(json!({"skipped": format!("{} is not here (the shared datasets)", dir.display())}));
    }
    let all = load_vader(&dir)?;
    let (mut sets, mut files) = (serde_json::Map::new(), Vec::new());
    for (_, source) in VADER_FILES {
        let mut texts: Vec<LabelledText> = all.iter().filter(|t| t.source == *source).cloned().collect();
        texts.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
        if limit > 0 {
            texts.truncate(limit);
        }
        let file = env.out_dir.join(format!("{source}.jsonl"));
        let lines: Vec<String> = texts.iter().map(|t| json!({"text": t.text, "label": t.label}).to_string()).collect();
        std::fs::write(&file, lines.join("\n") + "\n")?;
        files.push(file);
        let hashed = hashed(&texts)?;
        let (head, rate) = encoder_heads(&texts, encoder, rt)?;
        eprintln!(
            "{source}: encoder head {head:.4}, hashed {hashed:.4} ({} texts, encoder {rate:.0} texts/s)",
            texts.len()
        );
        sets.insert(
            source.to_string(),
            json!({"texts": texts.len(), "encoder_head_accuracy": head, "hashed_accuracy": hashed, "encoder_texts_per_s_batch_256": rate}),
        );
    }
    let python = python_bin(root);
    let out = Command::new(&python).arg(root.join("load-tests/baselines/river_sentiment.py")).args(&files).output()?;
    if !out.status.success() {
        return Err(format!("River baseline failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let river: Json = serde_json::from_slice(&out.stdout)?;
    for (source, set) in sets.iter_mut() {
        let r = &river["sets"][source.as_str()];
        set["river_bow_accuracy"] = r["accuracy"].clone();
        let beats = |k: &str| set[k].as_f64() < set["encoder_head_accuracy"].as_f64();
        set["encoder_beats_both"] = json!(beats("hashed_accuracy") && beats("river_bow_accuracy"));
    }
    Ok(json!({"river_version": river["river_version"], "sets": sets}))
}

/// Throughput of the scorer serving encoder + head against the Python scorer, alternating.
async fn speed(
    env: &Env,
    root: &Path,
    store: &Path,
    spec: &str,
    stored: &vigil_models::encoder::Stored,
) -> Result<Json, BenchError> {
    use vigil_models::checkpoint::{self, NewCheckpoint};
    let models_topic = models_topic(env, "encoder-models").await?;
    let w: Vec<f32> = (0..stored.dim).map(|i| ((i * 7919 % 200) as f32 - 100.0) / 400.0).collect();
    let head = vigil_models::Model::Logistic { w, b: 0.0 }.to_onnx("sentiment", 1).to_bytes();
    let head_path = env.out_dir.join("encoder-head.onnx");
    std::fs::write(&head_path, &head)?;
    let cp = checkpoint::build(
        NewCheckpoint {
            model: "sentiment",
            version: 1,
            parent: None,
            onnx: head,
            spec,
            status: vigil_events::CheckpointStatus::Promoted,
            reason: "benchmark".into(),
            now_ms: now_ms(),
        },
        None,
    );
    vigil_kafka::models::publish(&vigil_kafka::models::producer(&env.kafka)?, &Codec::new(), &models_topic, &cp)
        .await?;
    // As many intra-op threads as onnxruntime's Python default: one per core.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let dirs = format!("model-dirs = [{:?}]\nintra-threads = {cores}", store.display().to_string());
    let mut scorer = super::scorer::scorer_system_with(Workload::Text, &models_topic, &dirs);
    scorer.name = "scorer-encoder".into();
    let python = python_bin(root);
    let path = |p: PathBuf| p.display().to_string();
    let baseline = System {
        name: "python-encoder".into(),
        program: path(python),
        args: vec![
            path(root.join("load-tests/baselines/python_encoder_scorer.py")),
            "--input".into(),
            "{input}".into(),
            "--output".into(),
            "{output}".into(),
            "--group".into(),
            "{group}".into(),
            "--encoder".into(),
            path(store.join(format!("{}.onnx", stored.artifact))),
            "--tokenizer".into(),
            path(store.join(format!("{}.json", stored.tokenizer))),
            "--head".into(),
            path(head_path),
            "--schema".into(),
            path(root.join("schemas/TextEvent.avsc")),
        ],
        env: Vec::new(),
        config: None,
    };
    // Long enough that the twentieth of the outputs the rate leaves out (the first batches, made
    // while each system starts) spans several of the scorer's micro-batches.
    let events = (env.events / 10).clamp(300, 20_000);
    let (mut vigil, mut py) = (Vec::new(), Vec::new());
    for round in 0..env.rounds {
        let input = unique("encoder-in");
        topics(env, &[&input]).await?;
        preload(env, Workload::Text, &input, events, round as u64).await?;
        let order: [&System; 2] = if round % 2 == 0 { [&scorer, &baseline] } else { [&baseline, &scorer] };
        for system in order {
            let t = throughput(env, system, &input, events).await?;
            if system.name == scorer.name { vigil.push(t.events_per_s) } else { py.push(t.events_per_s) }
        }
        eprintln!("encoder round {}: scorer {:.0} texts/s, Python {:.0} texts/s", round + 1, vigil[round], py[round]);
        drop_topics(env, &[&input]).await;
    }
    drop_topics(env, &[&models_topic]).await;
    let ratios: Vec<f64> = vigil.iter().zip(&py).map(|(v, p)| v / p).collect();
    Ok(json!({
        "texts": events,
        "scorer_texts_per_s": median(&vigil),
        "python_texts_per_s": median(&py),
        "encoder_vs_python": median(&ratios),
        "encoder_vs_python_runs": ratios,
        "scorer_texts_per_s_runs": vigil,
        "python_texts_per_s_runs": py,
    }))
}
