//! Exported graphs against independent tools: Python's `onnx.checker` and onnxruntime score Vigil's
//! logistic regression, MLP and hashed-text graphs identically (to 1e-5) to Vigil's own ONNX Runtime
//! sessions and to the models' Rust arithmetic.

use serde_json::json;
use vigil_e2e::*;
use vigil_models::families::{Dense, Model, sigmoid};
use vigil_models::{Provider, Runtime};

fn weights(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

#[test]
fn python_onnx_checker_and_onnxruntime_agree_with_vigil() {
    let rt = Runtime::global(None).expect("make test sets ORT_DYLIB_PATH");
    let dir = std::env::temp_dir().join(unique("graphs"));
    std::fs::create_dir_all(&dir).unwrap();
    let (rows, d) = (32, 43);
    let x: Vec<f32> = weights(rows * d, 11).iter().map(|v| v * 2.5).collect();
    let mut manifest = Vec::new();
    let tabular = [
        ("logistic-regression", Model::Logistic { w: weights(d, 1), b: 0.2 }),
        (
            "mlp",
            Model::Mlp {
                layers: vec![
                    Dense { inputs: d, outputs: 32, w: weights(d * 32, 2), b: weights(32, 3) },
                    Dense { inputs: 32, outputs: 16, w: weights(32 * 16, 4), b: weights(16, 5) },
                    Dense { inputs: 16, outputs: 1, w: weights(16, 6), b: vec![0.05] },
                ],
            },
        ),
    ];
    for (name, model) in &tabular {
        let bytes = model.to_onnx(name, 1).to_bytes();
        let path = dir.join(format!("{name}.onnx"));
        std::fs::write(&path, &bytes).unwrap();
        let (_, vigil) = rt.session(&bytes, Provider::Cpu, 1).unwrap().run_f32(&x, rows, d).unwrap();
        for r in 0..rows {
            let rust = sigmoid(model.logit_dense(&x[r * d..(r + 1) * d]));
            assert!((vigil[r] - rust).abs() < 1e-5, "{name}: ONNX Runtime {} vs Rust {rust}", vigil[r]);
        }
        manifest.push(json!({"name": name, "path": path, "expected": vigil,
            "inputs": {"features": {"dtype": "float32", "shape": [rows, d], "data": x}}}));
    }
    let (buckets, len) = (4096, 24);
    let text = Model::HashedText { table: weights(buckets, 7), b: -0.1 };
    let idx: Vec<i64> = (0..rows * len).map(|i| ((i * 131 + 7) % buckets) as i64).collect();
    let val: Vec<f32> = (0..rows * len).map(|i| if i % len < (i / len) % len { 0.2 } else { 0.0 }).collect();
    let bytes = text.to_onnx("sentiment", 1).to_bytes();
    let path = dir.join("hashed-text.onnx");
    std::fs::write(&path, &bytes).unwrap();
    let vigil = rt.session(&bytes, Provider::Cpu, 1).unwrap().run_text(&idx, &val, rows, len).unwrap();
    for r in 0..rows {
        let rust = sigmoid(text.logit_text(&idx[r * len..(r + 1) * len], &val[r * len..(r + 1) * len]));
        assert!((vigil[r] - rust).abs() < 1e-5);
    }
    manifest.push(json!({"name": "hashed-text", "path": path, "expected": vigil, "inputs": {
        "indices": {"dtype": "int64", "shape": [rows, len], "data": idx},
        "values": {"dtype": "float32", "shape": [rows, len], "data": val}}}));
    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let (code, out, err) = python_support("onnx_parity.py", &[manifest_path.to_str().unwrap()], None);
    assert_eq!(code, 0, "python parity failed:\n{out}\n{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    for l in &lines {
        assert_eq!(l["checker"], "ok");
        assert_eq!(l["ok"], true, "{l}");
        assert!(l["max_abs_diff"].as_f64().unwrap() <= 1e-5);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
