//! The sentence encoder Vigil builds from all-MiniLM-L6-v2's weights (fetched by the set-up into
//! `.cache/all-minilm-l6-v2`): `vigil encoder build` writes the graph, and Python checks it
//! independently — `onnx.checker`, then onnxruntime on Vigil's graph against a NumPy forward pass
//! of BERT written in the check, on VADER's texts (a spread of 200 with the longest; all of them
//! with `VIGIL_ENCODER_TEXTS=30000`), tokenised by Python's `tokenizers`; and `vigil encoder
//! tokenize` (the `tokenizers` crate) gives the ids Python's `tokenizers` gives on every VADER text.

use std::path::PathBuf;

use vigil_e2e::*;

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
