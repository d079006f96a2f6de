//! The sentence encoder Vigil builds from all-MiniLM-L6-v2's weights (fetched by the set-up into
//! `.cache/all-minilm-l6-v2`): `vigil encoder build` writes the graph, and Python checks it
//! independently — `onnx.checker`, then onnxruntime on Vigil's graph against a NumPy forward pass
//! of BERT written in the check, on VADER's texts (a spread of 200 with the longest; all of them
//! with `VIGIL_ENCODER_TEXTS=30000`), tokenised by Python's `tokenizers`.

use std::path::PathBuf;

use vigil_e2e::*;

#[test]
fn the_encoder_graph_equals_an_independent_forward_pass() {
    let cache = std::env::var("VIGIL_CACHE").map(PathBuf::from).unwrap_or_else(|_| root().join(".cache"));
    let checkpoint = cache.join("all-minilm-l6-v2");
    assert!(checkpoint.join("model.safetensors").exists(), "run scripts/setup.sh: it fetches the encoder");
    let out = temp_file("encoder.onnx", "");
    let (code, stdout, err) =
        vigil(&["encoder", "build", "--from", checkpoint.to_str().unwrap(), "--out", out.to_str().unwrap()], &[], None);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("sha256"), "{stdout}");
    let data = std::env::var("VIGIL_DATA").map(PathBuf::from).unwrap_or_else(|_| root().join("../shared/data"));
    let texts = std::env::var("VIGIL_ENCODER_TEXTS").unwrap_or_else(|_| "200".into());
    let vader = data.join("sentiment");
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
