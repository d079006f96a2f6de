//! A one-hidden-layer perceptron: ReLU hidden units, one sigmoid output, He-initialised from the
//! candidate's seed, trained by backpropagation with SGD or Adam, L2, class weights and optional
//! anchoring of the first layer.

use serde::{Deserialize, Serialize};
use vigil_models::Model;
use vigil_models::families::Dense;

use super::{Core, Family, Hyper, Online, OnlineModel, Optimizer, Row, pull, sigmoid, to_f32};
use crate::rng::Rng;

/// An MLP with one hidden layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    /// Hyper-parameters, class counts, optimiser state.
    pub core: Core,
    inputs: usize,
    hidden: usize,
    /// First layer, row-major `[inputs, hidden]`.
    w1: Vec<f64>,
    b1: Vec<f64>,
    w2: Vec<f64>,
    b: f64,
    anchor: Option<Vec<f64>>,
}

impl Mlp {
    /// Random weights for `inputs` inputs and `hidden` units.
    pub fn new(hyper: Hyper, inputs: usize, hidden: usize) -> Mlp {
        let mut rng = Rng::new(hyper.seed);
        let scale = (2.0 / inputs.max(1) as f64).sqrt();
        let w1 = (0..inputs * hidden).map(|_| rng.normal() * scale).collect();
        let w2 = (0..hidden).map(|_| rng.normal() * (1.0 / hidden as f64).sqrt()).collect();
        Mlp { core: Core::new(hyper), inputs, hidden, w1, b1: vec![0.0; hidden], w2, b: 0.0, anchor: None }
    }

    /// The hidden activations and the output logit.
    fn forward(&self, row: Row<'_>) -> (Vec<f64>, f64) {
        let Row::Dense(x) = row else { return (Vec::new(), self.b) };
        let h = self.hidden;
        let mut a = self.b1.clone();
        for (i, xi) in x.iter().enumerate().take(self.inputs) {
            if *xi != 0.0 {
                for (aj, wij) in a.iter_mut().zip(&self.w1[i * h..(i + 1) * h]) {
                    *aj += xi * wij;
                }
            }
        }
        a.iter_mut().for_each(|v| *v = v.max(0.0));
        let z = a.iter().zip(&self.w2).map(|(a, w)| a * w).sum::<f64>() + self.b;
        (a, z)
    }
}

impl OnlineModel for Mlp {
    fn predict(&self, row: Row<'_>) -> f64 {
        sigmoid(self.forward(row).1)
    }

    fn learn(&mut self, row: Row<'_>, y: f64, weight: f64) -> f64 {
        let (hidden, z) = self.forward(row);
        let p = sigmoid(z);
        let g = self.core.gradient(p, y, weight);
        let Row::Dense(x) = row else { return p };
        let (h, l2) = (self.hidden, self.core.hyper.l2);
        let g2: Vec<f64> = hidden.iter().zip(&self.w2).map(|(a, w)| g * a + l2 * w).collect();
        let back: Vec<f64> = (0..h).map(|j| if hidden[j] > 0.0 { g * self.w2[j] } else { 0.0 }).collect();
        let mut g1 = vec![0.0; self.w1.len()];
        for (i, xi) in x.iter().enumerate().take(self.inputs) {
            for j in 0..h {
                g1[i * h + j] = back[j] * xi + l2 * self.w1[i * h + j];
            }
        }
        pull(&mut g1, &self.w1, self.anchor.as_ref(), self.core.hyper.anchor);
        self.core.step(0, &mut self.w1, &g1);
        self.core.step(1, &mut self.b1, &back);
        self.core.step(2, &mut self.w2, &g2);
        self.b -= self.core.hyper.intercept_lr() * g;
        p
    }

    fn export(&self) -> Model {
        let (d, h) = (self.inputs, self.hidden);
        Model::Mlp {
            layers: vec![
                Dense { inputs: d, outputs: h, w: to_f32(&self.w1), b: to_f32(&self.b1) },
                Dense { inputs: h, outputs: 1, w: to_f32(&self.w2), b: vec![self.b as f32] },
            ],
        }
    }

    fn set_anchor(&mut self, anchor: &Online) {
        if let Online::Mlp(a) = anchor
            && a.w1.len() == self.w1.len()
            && self.core.hyper.anchor > 0.0
        {
            self.anchor = Some(a.w1.clone());
        }
    }
}

/// The default MLP candidates: Adam over a few widths and learning rates.
pub fn candidates(seed: u64, positive_weight: Option<f64>) -> Vec<Hyper> {
    [(16, 0.005), (32, 0.002), (64, 0.001), (64, 0.002)]
        .iter()
        .enumerate()
        .map(|(k, (h, lr))| Hyper {
            family: Family::Mlp(*h),
            optimizer: Optimizer::Adam { lr: *lr },
            intercept_lr: None,
            l2: 0.0,
            positive_weight,
            anchor: 0.0,
            seed: seed + 10 + k as u64,
        })
        .collect()
}
