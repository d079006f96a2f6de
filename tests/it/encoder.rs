//! The sentence encoder Vigil builds from all-MiniLM-L6-v2's weights (fetched by the set-up into
//! `.cache/all-minilm-l6-v2`): `vigil encoder build` writes the graph, and Python checks it
//! independently — `onnx.checker`, then onnxruntime on Vigil's graph against a NumPy forward pass
//! of BERT written in the check, on VADER's texts (a spread of 200 with the longest; all of them
//! with `VIGIL_ENCODER_TEXTS=30000`), tokenised by Python's `tokenizers`; and `vigil encoder
//! tokenize` (the `tokenizers` crate) gives the ids Python's `tokenizers` gives on every VADER text.
//! On the broker: a transformer sentiment model (encoder + head) learnt from labels, served, its
//! heads hot-swapped, a three-class head filling `Score.scores`, and hostile texts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vigil_e2e::*;
use vigil_events::{Codec, Label, ModelCheckpoint, Score, TextEvent};
use vigil_features::FeatureSpec;
use vigil_models::{Provider, Runtime};

const T: Duration = Duration::from_secs(240);

/// The checkpoint the set-up fetched.
fn checkpoint() -> PathBuf {
    let cache = std::env::var("VIGIL_CACHE").map(PathBuf::from).unwrap_or_else(|_| root().join(".cache"));
    let checkpoint = cache.join("all-minilm-l6-v2");
    assert!(checkpoint.join("model.safetensors").exists(), "run scripts/setup.sh: it fetches the encoder");
    checkpoint
}

fn vader() -> PathBuf {
    let data = std::env::var("VIGIL_DATA").map(PathBuf::from).unwrap_or_else(|_| root().join("../shared/data"));
    data.join("sentiment")
}

#[test]
fn rust_tokens_are_python_tokens_on_every_vader_text() {
    let checkpoint = checkpoint();
    let (code, expected, err) =
        python_support("tokenizer_parity.py", &[checkpoint.to_str().unwrap(), vader().to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    let expected: Vec<serde_json::Value> = expected.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let input: String = expected.iter().map(|e| format!("{}\n", e["text"])).collect();
    let (code, got, err) = vigil(&["encoder", "tokenize", "--from", checkpoint.to_str().unwrap()], &[], Some(&input));
    assert_eq!(code, 0, "{err}");
    let got: Vec<serde_json::Value> = got.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got.len(), expected.len());
    let differ: Vec<&serde_json::Value> =
        expected.iter().zip(&got).filter(|(e, g)| e["ids"] != **g).map(|(e, _)| &e["text"]).collect();
    assert!(differ.is_empty(), "{} texts tokenised differently, e.g. {:?}", differ.len(), differ.first());
    let longest = got.iter().map(|g| g.as_array().unwrap().len()).max().unwrap();
    assert!(longest <= 256, "truncated to 256 tokens");
    println!("tokens: {} texts, the same ids as Python's tokenizers; longest {longest} tokens", got.len());
    if vader().is_dir() {
        assert!(got.len() > 20_000, "every VADER text");
    }
}

#[test]
fn the_encoder_graph_equals_an_independent_forward_pass() {
    let checkpoint = checkpoint();
    let out = temp_file("encoder.onnx", "");
    let (code, stdout, err) =
        vigil(&["encoder", "build", "--from", checkpoint.to_str().unwrap(), "--out", out.to_str().unwrap()], &[], None);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("sha256"), "{stdout}");
    let texts = std::env::var("VIGIL_ENCODER_TEXTS").unwrap_or_else(|_| "200".into());
    let vader = vader();
    let args = [out.to_str().unwrap(), checkpoint.to_str().unwrap(), vader.to_str().unwrap(), &texts];
    let (code, report, err) = python_support("encoder_parity.py", &args, None);
    assert_eq!(code, 0, "{err}");
    println!("encoder parity: {report}");
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(r["checker"], "ok");
    assert!(r["min_cosine"].as_f64().unwrap() >= 0.9999, "{report}");
    assert!(r["max_abs_difference"].as_f64().unwrap() < 1e-4, "{report}");
    if vader.is_dir() {
        assert!(r["texts"].as_u64().unwrap() >= 200, "{report}");
    }
}

/// The GPU script's steps (`scripts/gpu-bench.sh`) on this machine's CPU: MiniLM's shape with seeded
/// random weights in FP32 and FP16, both passing `onnx.checker`; the benchmark's JSON lines, FP16's
/// embeddings within 1e-3 of FP32's; and `--provider cuda` either runs on CUDA or is refused with a
/// reason (never a silent fall-back to the CPU). Only CUDA's own figures need the GPU machine.
#[test]
fn the_gpu_benchmarks_steps_run_on_the_cpu() {
    let dir = std::env::temp_dir().join(unique("gpu"));
    std::fs::create_dir_all(&dir).unwrap();
    let (fp32, fp16) = (dir.join("encoder-fp32.onnx"), dir.join("encoder-fp16.onnx"));
    let shape = root().join("load-tests/gpu");
    for (out, fp16_flag) in [(&fp32, None), (&fp16, Some("--fp16"))] {
        let mut args = vec!["encoder", "build", "--from", shape.to_str().unwrap(), "--random-weights"];
        args.extend(fp16_flag);
        args.extend(["--out", out.to_str().unwrap()]);
        let (code, _, err) = vigil(&args, &[], None);
        assert_eq!(code, 0, "{err}");
    }
    let check = "import onnx, sys\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(p, full_check=True)";
    let checked = std::process::Command::new(python()).args(["-c", check]).args([&fp32, &fp16]).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));

    let (fp16, fp32) = (fp16.to_str().unwrap(), fp32.to_str().unwrap());
    let args = ["encoder", "bench", "--graph", fp16, "--provider", "cpu", "--batches", "4,16", "--seq", "32"];
    let (code, out, err) =
        vigil(&[&args[..], &["--seconds", "0.2", "--parity", "--reference", fp32]].concat(), &[], None);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let rates: Vec<(u64, f64)> =
        lines.iter().filter_map(|l| Some((l["batch"].as_u64()?, l["texts_per_s"].as_f64()?))).collect();
    assert!(rates.len() == 2 && rates.iter().all(|&(_, r)| r > 0.0), "{out}");
    let parity = lines.iter().find_map(|l| l["max_abs_difference"].as_f64()).expect("a parity line");
    assert!(parity <= 1e-3, "FP16 differs from FP32 by {parity}");

    let (code, out, err) = vigil(
        &["encoder", "bench", "--graph", fp32, "--provider", "cuda", "--batches", "4", "--seconds", "0.1"],
        &[],
        None,
    );
    if code == 0 {
        assert!(out.contains("\"provider\":\"cuda\""), "ran, but not on CUDA: {out}");
    } else {
        assert!(err.contains("CUDA execution provider is not available"), "{err}");
    }
    println!("GPU script steps on the CPU: FP16 vs FP32 max difference {parity:.2e}, rates {rates:?}");
    std::fs::remove_dir_all(&dir).unwrap(); // 135 MB of graphs
}

/// `vigil encoder build --store`: the encoder and tokenizer in a fresh model folder; the printed
/// `[encoder]` section.
fn store() -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(unique("encoder-store"));
    let (code, section, err) = vigil(
        &["encoder", "build", "--from", checkpoint().to_str().unwrap(), "--store", dir.to_str().unwrap()],
        &[],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(section.starts_with("[encoder]") && section.contains("dim = 384"), "{section}");
    (dir, section)
}

/// A stack whose `sentiment` model is an encoder model: the spec file names the stored encoder.
async fn encoder_stack(name: &str, dir: &Path, section: &str) -> Stack {
    let dirs = format!("model-dirs = [{:?}]\n", dir.to_str().unwrap());
    let scorer = format!("{dirs}challenger-share = 0.0\n");
    let learner =
        format!("{dirs}min-examples = 100\ncheckpoint-every = 150\ncheckpoint-interval-ms = 3600000\nwindow = 200\n");
    let stack = Stack::with_sections(name, 1, &scorer, &learner, "").await;
    let spec = temp_file(
        "encoder-spec.toml",
        &format!("model = \"sentiment\"\nschema = \"dev.vigil.demo.TextEvent\"\n{section}"),
    );
    let config = std::fs::read_to_string(&stack.config).unwrap();
    let config = config.replacen(
        "group-field = \"source\"",
        &format!("group-field = \"source\"\nspec = {:?}", spec.to_str().unwrap()),
        1,
    );
    std::fs::write(&stack.config, config).unwrap();
    stack
}

fn texts(stack: &Stack, prefix: &str, events: &str, seed: &str, labels: bool) {
    let labels = if labels { stack.text_labels.as_str() } else { "none" };
    stack.load(&[
        "text",
        "--topic",
        &stack.texts,
        "--labels-topic",
        labels,
        "--rate",
        "0",
        "--events",
        events,
        "--seed",
        seed,
        "--id-prefix",
        prefix,
        "--label-fast-mean-ms",
        "5",
        "--label-slow-share",
        "0",
        "--label-grace",
        "2",
    ]);
}

fn sentiment_versions(records: &[vigil_kafka::Input]) -> Vec<ModelCheckpoint> {
    let codec = Codec::new();
    let all = records.iter().filter_map(|m| codec.decode_event::<ModelCheckpoint>(m.payload.as_deref()?).ok());
    all.filter(|c| c.model == "sentiment" && c.learner_state.is_some()).collect()
}

fn counts(cp: &ModelCheckpoint) -> serde_json::Value {
    let state: serde_json::Value = serde_json::from_slice(cp.learner_state.as_deref().unwrap()).unwrap();
    state["counts"].clone()
}

fn trained(cp: &ModelCheckpoint) -> u64 {
    counts(cp)["trained"].as_u64().unwrap()
}

fn settled(cp: &ModelCheckpoint) -> u64 {
    counts(cp)["labels"].as_u64().unwrap()
}

/// The champion the scorer on `port` serves for `sentiment`.
fn served_version(port: u16) -> Option<i64> {
    let (_, body) = http_get(port, "/metrics")?;
    let line = body.lines().find(|l| {
        l.starts_with("vigil_scorer_model_graph{")
            && l.contains("model=\"sentiment\"")
            && l.contains("variant=\"champion\"")
    })?;
    let start = line.find("version=\"")? + 9;
    line[start..start + line[start..].find('"')?].parse().ok()
}

/// Champion scores of `sentiment` by event id, once every id starting with `prefix` (`n` of them) has one.
async fn scores_of(stack: &Stack, prefix: &str, n: usize) -> HashMap<String, Score> {
    let codec = Codec::new();
    // Each record is decoded once, as it arrives.
    let (mut found, mut checked) = (0, 0);
    let records = collect_until(&stack.scores, "read_committed", T, "a score for every text", |r| {
        found += r[checked..]
            .iter()
            .filter_map(|m| codec.decode_event::<Score>(m.payload.as_deref()?).ok())
            .filter(|s| s.event_id.starts_with(prefix))
            .count();
        checked = r.len();
        found >= n
    })
    .await;
    let all = records.iter().filter_map(|m| codec.decode_event::<Score>(m.payload.as_deref()?).ok());
    all.filter(|s| s.event_id.starts_with(prefix) && s.model == "sentiment").map(|s| (s.event_id.clone(), s)).collect()
}

/// The texts and labels of ids starting with `prefix`.
async fn labelled(stack: &Stack, prefix: &str) -> Vec<(String, String, f64)> {
    let codec = Codec::new();
    let labels: HashMap<String, f64> = read_all(&stack.text_labels, "read_committed", Duration::from_secs(2))
        .await
        .iter()
        .filter_map(|m| codec.decode_event::<Label>(m.payload.as_deref()?).ok())
        .map(|l| (l.event_id, l.label))
        .collect();
    let texts = read_all(&stack.texts, "read_committed", Duration::from_secs(2)).await;
    let events = texts.iter().filter_map(|m| codec.decode_event::<TextEvent>(m.payload.as_deref()?).ok());
    events
        .filter(|t| t.event_id.starts_with(prefix))
        .filter_map(|t| Some((t.event_id.clone(), t.text.clone(), *labels.get(&t.event_id)?)))
        .collect()
}

/// Each head's probabilities on `texts`, computed here: the stored encoder, then the head's graph.
fn probabilities(dir: &Path, heads: &[&ModelCheckpoint], texts: &[&str]) -> Vec<Vec<f32>> {
    let rt = Runtime::global(None).unwrap();
    let spec = FeatureSpec::parse(&heads[0].feature_spec).unwrap();
    let artifacts = vigil_models::artifacts::Artifacts::new(vec![dir.to_path_buf()]);
    let encoder = vigil_models::EncoderArtifact::load(spec.encoder.as_ref().unwrap(), &artifacts, &rt).unwrap();
    let len = encoder.tokenizer.max_tokens();
    let (mut ids, mut mask) = (vec![0i64; texts.len() * len], vec![0f32; texts.len() * len]);
    for (r, t) in texts.iter().enumerate() {
        encoder.tokenizer.fill(t, &mut ids[r * len..(r + 1) * len], &mut mask[r * len..(r + 1) * len]).unwrap();
    }
    let embedding = encoder.embedder(&rt, Provider::Cpu, 1).unwrap().embed(&ids, &mask, texts.len(), len).unwrap();
    heads
        .iter()
        .map(|cp| {
            let graph = FeatureSpec::parse(&cp.feature_spec).unwrap().graph;
            let mut head = rt.session(cp.onnx.as_deref().unwrap(), Provider::Cpu, 1).unwrap();
            head.dense(&graph, &embedding, texts.len(), encoder.dim).unwrap().positives()
        })
        .collect()
}

fn accuracy_and_log_loss(p: &[f32], y: &[f64]) -> (f64, f64) {
    let right = p.iter().zip(y).filter(|(p, y)| (**p >= 0.5) == (**y >= 0.5)).count();
    let loss = p.iter().zip(y).map(|(p, y)| {
        let p = f64::from(*p).clamp(1e-7, 1.0 - 1e-7);
        -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
    });
    (right as f64 / p.len() as f64, loss.sum::<f64>() / p.len() as f64)
}

/// The learner embeds labelled texts with the stored encoder and learns heads; the scorer serves
/// encoder + head; a later head is promoted by hand and hot-swapped in; on texts the learner never
/// saw, the last head beats the first, and the scorer's scores are the encoder + head computed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transformer_sentiment_model_learns_heads_that_the_scorer_serves_and_swaps() {
    let (dir, section) = store();
    let stack = encoder_stack("encoder", &dir, &section).await;
    let scorer_port = free_port();
    let log = temp_file("encoder-scorer.log", "");
    let mut scorer = Running(stack.spawn_logged("vigil-scorer", scorer_port, &log));
    let mut learner = stack.spawn("vigil-learner", &[]);
    texts(&stack, "a", "1200", "5", true);
    let labels = read_all(&stack.text_labels, "read_committed", Duration::from_secs(2)).await.len() as u64;
    let models = collect_until(&stack.models, "read_committed", T, "a head that learnt every label", |r| {
        sentiment_versions(r).iter().any(|c| settled(c) == labels)
    })
    .await;
    terminate(&mut learner, Duration::from_secs(20));
    let heads = sentiment_versions(&models);
    let (first, last) =
        (heads.iter().min_by_key(|c| c.version).unwrap(), heads.iter().max_by_key(|c| c.version).unwrap());
    assert!(
        first.version < last.version && trained(first) < 300,
        "heads at {:?}",
        heads.iter().map(trained).collect::<Vec<_>>()
    );
    let (head, state) = (last.onnx.as_ref().unwrap().len(), last.learner_state.as_ref().unwrap().len());
    println!("v{}: head {head} bytes, learner state {state} bytes", last.version);
    assert!(head < 1 << 20, "a head is small: the encoder is stored once, not in the checkpoint");
    assert!(state < 8 << 20, "the learner state stays a few MB (rehearsal of 200 embeddings)");
    let a = scores_of(&stack, "a", 1200).await;
    assert!(a.values().all(|s| s.model_version >= first.version), "the learnt head scored every text");

    let version = last.version.to_string();
    let (code, out, err) = stack.vigil(&["models", "promote", "sentiment", &version], None);
    assert_eq!(code, 0, "{out}{err}");
    wait_for(Duration::from_secs(30), "the scorer serving the promoted head", || async {
        (served_version(scorer_port) == Some(last.version)).then_some(())
    })
    .await;
    texts(&stack, "b", "300", "6", true);
    let b = scores_of(&stack, "b", 300).await;
    let held_back = labelled(&stack, "b").await;
    assert!(held_back.len() > 200, "{} labelled held-back texts", held_back.len());
    let strs: Vec<&str> = held_back.iter().map(|(_, t, _)| t.as_str()).collect();
    let y: Vec<f64> = held_back.iter().map(|(_, _, y)| *y).collect();
    let p = probabilities(&dir, &[first, last], &strs);
    for ((id, _, _), here) in held_back.iter().zip(&p[1]) {
        let s = &b[id];
        assert_eq!(s.model_version, last.version, "the swapped-in head serves");
        assert!((s.score - f64::from(*here)).abs() < 1e-4, "{id}: scorer {} vs encoder + head here {here}", s.score);
    }
    let (first_acc, first_loss) = accuracy_and_log_loss(&p[0], &y);
    let (last_acc, last_loss) = accuracy_and_log_loss(&p[1], &y);
    println!(
        "held-back texts: v{} after {} labels accuracy {first_acc:.3} log loss {first_loss:.4}; v{} after {} labels accuracy {last_acc:.3} log loss {last_loss:.4}",
        first.version,
        trained(first),
        last.version,
        trained(last)
    );
    assert!(last_loss < first_loss && last_acc >= first_acc && last_acc >= 0.9, "the head improved with labels");
    terminate(&mut scorer.0, Duration::from_secs(20));
    stack.delete().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A three-class head exported elsewhere (negative / neutral / positive logits) behind the stored
/// encoder: registered and promoted with the CLI, it fills `Score.scores` with the three
/// probabilities; an empty text and one of emoji only are scored, one of 100 kB and one that is not
/// UTF-8 are dead letters with their reason, and the scorer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_class_head_fills_every_class_and_hostile_texts_never_stop_the_scorer() {
    let (dir, section) = store();
    let stack = encoder_stack("encoder3", &dir, &section).await;
    let head = temp_file("head3.onnx", "");
    let (code, out, err) = python_support("softmax_head.py", &[head.to_str().unwrap(), "384"], None);
    assert_eq!((code, out.trim()), (0, "ok"), "{err}");
    let graph = "[graph]\noutput = \"logits\"\npost = \"softmax\"\npositive-column = 2\n";
    let spec = format!("model = \"sentiment\"\nschema = \"dev.vigil.demo.TextEvent\"\n{section}\n{graph}");
    let spec = temp_file("spec3.toml", &spec);
    let args = ["models", "register", "--onnx", head.to_str().unwrap(), "--spec", spec.to_str().unwrap(), "--promote"];
    let (code, out, err) = stack.vigil(&args, None);
    assert_eq!(code, 0, "{out}{err}");
    let mut scorer = Running(stack.spawn("vigil-scorer", &[]));
    let codec = Codec::new();
    let event = |id: &str, text: &str| TextEvent {
        event_id: id.into(),
        event_time: 0,
        source: "s".into(),
        text: text.into(),
        language: None,
        author_id: None,
    };
    let p = producer();
    let texts = [
        ("h-good", "great service, I love it".to_string()),
        ("h-empty", String::new()),
        ("h-emoji", "😀🎉🔥👍🏽".repeat(10)),
        ("h-long", "word ".repeat(20_000)),
    ];
    for (id, text) in &texts {
        produce(&p, &stack.texts, Some(id.as_bytes()), &codec.encode_event(&event(id, text)).unwrap()).await;
    }
    let mut bytes = codec.encode_event(&event("h-utf8", "XX")).unwrap();
    let at = bytes.windows(2).rposition(|w| w == b"XX").unwrap();
    bytes[at..at + 2].copy_from_slice(&[0xFF, 0xFE]);
    produce(&p, &stack.texts, Some(b"h-utf8"), &bytes).await;
    produce(&p, &stack.texts, Some(b"h-after"), &codec.encode_event(&event("h-after", "awful, broken")).unwrap()).await;

    let scores = scores_of(&stack, "h-", 4).await;
    for id in ["h-good", "h-empty", "h-emoji", "h-after"] {
        let s = &scores[id];
        assert_eq!(s.scores.len(), 3, "{id}: every class {s:?}");
        assert!((s.scores.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{id}: probabilities {s:?}");
        assert!((s.score - s.scores[2]).abs() < 1e-9, "{id}: the score is the positive class's");
    }
    assert!(!scores.contains_key("h-long") && !scores.contains_key("h-utf8"));
    let dead = collect_until(&stack.dlq, "read_committed", T, "two dead letters", |r| r.len() >= 2).await;
    let kinds: HashMap<String, String> = dead
        .iter()
        .map(|m| {
            let h = |k: &str| String::from_utf8_lossy(m.header(k).unwrap_or_default()).to_string();
            let reason = format!("{}: {}", h(vigil_kafka::dlq::ERROR_KIND), h(vigil_kafka::dlq::ERROR));
            (String::from_utf8_lossy(m.key.as_deref().unwrap_or_default()).to_string(), reason)
        })
        .collect();
    println!(
        "dead letters: {kinds:?}; scores: {:?}",
        scores.values().map(|s| (&s.event_id, &s.scores)).collect::<Vec<_>>()
    );
    assert!(kinds.get("h-long").is_some_and(|k| k.starts_with("oversized-text: ")), "{kinds:?}");
    assert!(kinds.get("h-utf8").is_some_and(|k| k.contains("not UTF-8")), "{kinds:?}");
    assert!(scorer.0.try_wait().unwrap().is_none(), "the scorer still runs");
    terminate(&mut scorer.0, Duration::from_secs(20));
    stack.delete().await;
    let _ = std::fs::remove_dir_all(&dir);
}
