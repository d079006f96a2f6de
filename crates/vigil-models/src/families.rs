//! The model families Vigil trains and serves, with weights held in Rust: logistic regression, small
//! MLPs (ReLU hidden layers, sigmoid output), hashed-text linear models (a weight table gathered by
//! padded bucket indices) and decision trees (`ai.onnx.ml` `TreeEnsembleRegressor`, a leaf holding
//! the probability of the positive class). Each exports the exact ONNX graph the scorer runs, and predicts in Rust
//! with the same arithmetic (what the learner evaluates and the parity tests compare against).
//!
//! Graph signatures: tabular models take `features` `[batch, D]` `float`; text models take `indices`
//! `[batch, L]` `int64` and `values` `[batch, L]` `float`. Every model outputs `score` `[batch, 1]`
//! `float`, the probability of the positive class.

use serde::{Deserialize, Serialize};

use crate::graph::{Attr, Dim, GraphBuilder};

pub use self::tree::{Forest, Tree, TreeNode};
use crate::onnx::{ModelProto, data_type};

/// Graph input of tabular models.
pub const FEATURES: &str = "features";
/// Graph input of text models: bucket indices.
pub const INDICES: &str = "indices";
/// Graph input of text models: n-gram weights.
pub const VALUES: &str = "values";
/// Graph output of every model.
pub const SCORE: &str = "score";

/// A dense layer: `y = x · W + b`, `W` row-major `[inputs, outputs]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    /// Inputs.
    pub inputs: usize,
    /// Outputs.
    pub outputs: usize,
    /// Weights, row-major `[inputs, outputs]`.
    pub w: Vec<f32>,
    /// Bias, `[outputs]`.
    pub b: Vec<f32>,
}

impl Dense {
    /// A layer of zeros.
    pub fn zeros(inputs: usize, outputs: usize) -> Dense {
        Dense { inputs, outputs, w: vec![0.0; inputs * outputs], b: vec![0.0; outputs] }
    }

    /// `out = x · W + b`.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        out.copy_from_slice(&self.b);
        for (i, xi) in x.iter().enumerate().take(self.inputs) {
            if *xi == 0.0 {
                continue;
            }
            let row = &self.w[i * self.outputs..(i + 1) * self.outputs];
            for (o, w) in out.iter_mut().zip(row) {
                *o += xi * w;
            }
        }
    }
}

/// A model and its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Model {
    /// `sigmoid(x · w + b)`.
    Logistic {
        /// Weights `[D]`.
        w: Vec<f32>,
        /// Bias.
        b: f32,
    },
    /// ReLU hidden layers, then one output unit with a sigmoid.
    Mlp {
        /// Layers; the last has one output.
        layers: Vec<Dense>,
    },
    /// `sigmoid(Σ table[index] · value + b)` over a text's hashed n-grams.
    HashedText {
        /// One weight per bucket.
        table: Vec<f32>,
        /// Bias.
        b: f32,
    },
    /// The mean probability of several tabular models (an ensemble of the best candidates).
    Mean(Vec<Model>),
    /// A binary decision tree whose leaves hold probabilities.
    Tree(Tree),
    /// Trees voting with weights.
    Forest(Forest),
}

/// The logistic function.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

impl Model {
    /// Family name, for metadata and logs.
    pub fn family(&self) -> &'static str {
        match self {
            Model::Logistic { .. } => "logistic-regression",
            Model::Mlp { .. } => "mlp",
            Model::HashedText { .. } => "hashed-text",
            Model::Mean(_) => "mean",
            Model::Tree(_) => "decision-tree",
            Model::Forest(_) => "forest",
        }
    }

    /// Whether the model takes text inputs.
    pub fn is_text(&self) -> bool {
        match self {
            Model::HashedText { .. } => true,
            Model::Mean(m) => m.first().is_some_and(Model::is_text),
            _ => false,
        }
    }

    /// Width of the tabular input (0 for text models).
    pub fn width(&self) -> usize {
        match self {
            Model::Logistic { w, .. } => w.len(),
            Model::Mlp { layers } => layers.first().map(|l| l.inputs).unwrap_or(0),
            Model::HashedText { .. } => 0,
            Model::Mean(m) => m.first().map(Model::width).unwrap_or(0),
            Model::Tree(t) => t.inputs,
            Model::Forest(f) => f.inputs(),
        }
    }

    /// The probability of one dense row.
    pub fn predict_dense(&self, x: &[f32]) -> f32 {
        match self {
            Model::Mean(m) if !m.is_empty() => m.iter().map(|m| m.predict_dense(x)).sum::<f32>() / m.len() as f32,
            Model::Tree(t) => t.predict(x),
            Model::Forest(f) => f.predict(x),
            other => sigmoid(other.logit_dense(x)),
        }
    }

    /// The logit of one dense row.
    pub fn logit_dense(&self, x: &[f32]) -> f32 {
        match self {
            Model::Logistic { w, b } => w.iter().zip(x).map(|(w, x)| w * x).sum::<f32>() + b,
            Model::Mlp { layers } => {
                let mut cur = x.to_vec();
                for (k, layer) in layers.iter().enumerate() {
                    let mut next = vec![0.0; layer.outputs];
                    layer.forward(&cur, &mut next);
                    if k + 1 < layers.len() {
                        next.iter_mut().for_each(|v| *v = v.max(0.0));
                    }
                    cur = next;
                }
                cur.first().copied().unwrap_or(0.0)
            }
            Model::HashedText { b, .. } => *b,
            Model::Mean(_) | Model::Tree(_) | Model::Forest(_) => {
                let p = self.predict_dense(x).clamp(1e-7, 1.0 - 1e-7);
                (p / (1.0 - p)).ln()
            }
        }
    }

    /// The logit of one text row.
    pub fn logit_text(&self, indices: &[i64], values: &[f32]) -> f32 {
        match self {
            Model::HashedText { table, b } => {
                indices.iter().zip(values).map(|(i, v)| table.get(*i as usize).copied().unwrap_or(0.0) * v).sum::<f32>()
                    + b
            }
            _ => 0.0,
        }
    }

    /// The exact ONNX graph of this model.
    pub fn to_onnx(&self, name: &str, version: i64) -> ModelProto {
        let mut g = GraphBuilder::new(name);
        g.metadata("vigil.family", self.family()).metadata("vigil.model", name);
        let batch = Dim::Symbol("batch");
        g.output(SCORE, data_type::FLOAT, &[batch.clone(), Dim::Fixed(1)]);
        if self.is_text() {
            let len = Dim::Symbol("tokens");
            g.input(INDICES, data_type::INT64, &[batch.clone(), len.clone()]);
            g.input(VALUES, data_type::FLOAT, &[batch, len]);
        } else {
            g.input(FEATURES, data_type::FLOAT, &[batch, Dim::Fixed(self.width() as i64)]);
        }
        match self {
            Model::Mean(models) => {
                let outs: Vec<String> =
                    models.iter().enumerate().map(|(k, m)| m.emit(&mut g, &format!("m{k}_"))).collect();
                let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
                g.node_into("Mean", &refs, SCORE, &[]);
            }
            single => {
                let p = single.emit(&mut g, "");
                g.node_into("Identity", &[&p], SCORE, &[]);
            }
        }
        g.build(version, &format!("vigil {} model {name} v{version}", self.family()))
    }

    /// Adds this model's nodes (weights named with `prefix`) reading the graph inputs; returns the
    /// name of its probability output.
    fn emit(&self, g: &mut GraphBuilder, prefix: &str) -> String {
        match self {
            Model::Logistic { w, b } => {
                let d = w.len() as i64;
                let w = g.weights(&format!("{prefix}w"), &[d, 1], w.clone());
                let b = g.weights(&format!("{prefix}b"), &[1], vec![*b]);
                let z = g.node("MatMul", &[FEATURES, &w], &[]);
                let z = g.node("Add", &[&z, &b], &[]);
                g.node("Sigmoid", &[&z], &[])
            }
            Model::Mlp { layers } => {
                let mut cur = FEATURES.to_string();
                for (k, l) in layers.iter().enumerate() {
                    let w = g.weights(&format!("{prefix}w{k}"), &[l.inputs as i64, l.outputs as i64], l.w.clone());
                    let b = g.weights(&format!("{prefix}b{k}"), &[l.outputs as i64], l.b.clone());
                    let z = g.node("MatMul", &[&cur, &w], &[]);
                    let z = g.node("Add", &[&z, &b], &[]);
                    cur = if k + 1 < layers.len() { g.node("Relu", &[&z], &[]) } else { z };
                }
                g.node("Sigmoid", &[&cur], &[])
            }
            Model::HashedText { table, b } => {
                let t = g.weights(&format!("{prefix}table"), &[table.len() as i64], table.clone());
                let b = g.weights(&format!("{prefix}b"), &[1], vec![*b]);
                let axes = g.ints(&format!("{prefix}axes"), &[1], vec![1]);
                let gathered = g.node("Gather", &[&t, INDICES], &[("axis", Attr::Int(0))]);
                let weighted = g.node("Mul", &[&gathered, VALUES], &[]);
                let z = g.node("ReduceSum", &[&weighted, &axes], &[("keepdims", Attr::Int(1))]);
                let z = g.node("Add", &[&z, &b], &[]);
                g.node("Sigmoid", &[&z], &[])
            }
            Model::Mean(models) => {
                let outs: Vec<String> =
                    models.iter().enumerate().map(|(k, m)| m.emit(g, &format!("{prefix}m{k}_"))).collect();
                let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
                g.node("Mean", &refs, &[])
            }
            Model::Tree(t) => t.emit(g),
            Model::Forest(f) => f.emit(g),
        }
    }
}

mod tree;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_predictions_follow_the_formulas() {
        let lr = Model::Logistic { w: vec![1.0, -2.0], b: 0.5 };
        assert!((lr.logit_dense(&[3.0, 1.0]) - 1.5).abs() < 1e-6);
        let mlp = Model::Mlp {
            layers: vec![
                Dense { inputs: 2, outputs: 2, w: vec![1.0, -1.0, 1.0, 1.0], b: vec![0.0, 0.0] },
                Dense { inputs: 2, outputs: 1, w: vec![2.0, 3.0], b: vec![-1.0] },
            ],
        };
        // W rows are inputs: hidden = relu(1·[1, -1] + 2·[1, 1]) = [3, 1]; out = 2·3 + 3·1 - 1.
        assert!((mlp.logit_dense(&[1.0, 2.0]) - 8.0).abs() < 1e-6);
        let negative = mlp.logit_dense(&[-1.0, -2.0]);
        assert!((negative - -1.0).abs() < 1e-6, "relu clips both hidden units: {negative}");
        let text = Model::HashedText { table: vec![0.0, 1.0, -1.0, 2.0], b: 0.25 };
        assert!((text.logit_text(&[1, 3, 0], &[0.5, 0.5, 0.0]) - 1.75).abs() < 1e-6);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
    }
}
