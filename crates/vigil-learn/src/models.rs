//! Online models in pure Rust: logistic regression, a one-hidden-layer MLP, and a hashed-text linear
//! model, with SGD or Adam (AdaGrad for the sparse text table), L2, class weights, and optional
//! anchoring to reference weights (an L2 pull towards the last promoted model). Every model exports
//! the exact graph the scorer runs ([`vigil_models::Model`]).

use serde::{Deserialize, Serialize};
use vigil_models::families::{Dense, Model};

use crate::rng::Rng;

/// One example's inputs.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    /// A dense, already standardised row.
    Dense(&'a [f64]),
    /// Hashed text: bucket indices and weights (padding has weight 0).
    Text(&'a [i64], &'a [f32]),
}

/// How weights move.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Optimizer {
    /// Plain SGD with a constant learning rate.
    Sgd {
        /// Learning rate.
        lr: f64,
    },
    /// Adam.
    Adam {
        /// Learning rate.
        lr: f64,
    },
}

impl Optimizer {
    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Sgd { lr } | Optimizer::Adam { lr } => *lr,
        }
    }
}

/// Optimiser state of one parameter vector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    m: Vec<f64>,
    v: Vec<f64>,
    t: u64,
}

impl Moments {
    fn step(&mut self, opt: Optimizer, w: &mut [f64], g: &[f64]) {
        match opt {
            Optimizer::Sgd { lr } => {
                for (w, g) in w.iter_mut().zip(g) {
                    *w -= lr * g;
                }
            }
            Optimizer::Adam { lr } => {
                const B1: f64 = 0.9;
                const B2: f64 = 0.999;
                const EPS: f64 = 1e-8;
                if self.m.len() != w.len() {
                    self.m = vec![0.0; w.len()];
                    self.v = vec![0.0; w.len()];
                }
                self.t += 1;
                let (c1, c2) = (1.0 - B1.powi(self.t as i32), 1.0 - B2.powi(self.t as i32));
                for i in 0..w.len() {
                    self.m[i] = B1 * self.m[i] + (1.0 - B1) * g[i];
                    self.v[i] = B2 * self.v[i] + (1.0 - B2) * g[i] * g[i];
                    w[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + EPS);
                }
            }
        }
    }
}

/// Hyper-parameters of a candidate model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyper {
    /// Which family.
    pub family: Family,
    /// Optimiser of the weights.
    pub optimizer: Optimizer,
    /// Learning rate of the intercept (River's `intercept_lr`); `None`: the optimiser's.
    pub intercept_lr: Option<f64>,
    /// L2 penalty.
    pub l2: f64,
    /// Weight of positive examples relative to negatives; `None`: balanced online from the class
    /// frequencies seen so far.
    pub positive_weight: Option<f64>,
    /// Pull towards the anchor weights (0: none).
    pub anchor: f64,

    /// Seed of the initial weights.
    pub seed: u64,
}

/// Model families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// Logistic regression.
    Logistic,
    /// One ReLU hidden layer of this many units.
    Mlp(usize),
    /// Hashed-text linear model over this many buckets.
    Text(usize),
}

impl Hyper {
    /// A short description, for logs and reports.
    pub fn describe(&self) -> String {
        let fam = match self.family {
            Family::Logistic => "lr".to_string(),
            Family::Mlp(h) => format!("mlp{h}"),
            Family::Text(b) => format!("text{b}"),
        };
        let opt = match self.optimizer {
            Optimizer::Sgd { lr } => format!("sgd{lr}"),
            Optimizer::Adam { lr } => format!("adam{lr}"),
        };
        format!("{fam}/{opt}/l2={}", self.l2)
    }
}

/// A model being trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Online {
    /// Its hyper-parameters.
    pub hyper: Hyper,
    /// Weights: logistic `[d]`; MLP `W1 [d, h]`, `b1 [h]`, `w2 [h]`; text `[buckets]`.
    w: Vec<f64>,
    /// Hidden biases (MLP).
    b1: Vec<f64>,
    /// Output weights (MLP).
    w2: Vec<f64>,
    /// Output intercept.
    b: f64,
    moments: Vec<Moments>,
    /// Per-bucket squared-gradient sums (text, AdaGrad).
    adagrad: Vec<f64>,
    /// Anchor weights (same layout as `w`), when anchoring.
    anchor_w: Option<Vec<f64>>,
    inputs: usize,
    /// Examples learnt.
    pub seen: u64,
    positives: u64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z.clamp(-500.0, 500.0)).exp())
}

impl Online {
    /// A fresh model for `inputs` dense inputs (ignored by text models).
    pub fn new(hyper: Hyper, inputs: usize) -> Online {
        let mut rng = Rng::new(hyper.seed);
        let (w, b1, w2) = match hyper.family {
            Family::Logistic => (vec![0.0; inputs], Vec::new(), Vec::new()),
            Family::Mlp(h) => {
                let scale = (2.0 / inputs.max(1) as f64).sqrt();
                let w = (0..inputs * h).map(|_| rng.normal() * scale).collect();
                let w2 = (0..h).map(|_| rng.normal() * (1.0 / h as f64).sqrt()).collect();
                (w, vec![0.0; h], w2)
            }
            Family::Text(buckets) => (vec![0.0; buckets], Vec::new(), Vec::new()),
        };
        Online {
            hyper,
            w,
            b1,
            w2,
            b: 0.0,
            moments: vec![Moments::default(); 4],
            adagrad: Vec::new(),
            anchor_w: None,
            inputs,
            seen: 0,
            positives: 0,
        }
    }

    /// Pulls the weights towards `anchor` from now on (with strength `hyper.anchor`).
    pub fn set_anchor(&mut self, anchor: &Online) {
        if anchor.w.len() == self.w.len() && self.hyper.anchor > 0.0 {
            self.anchor_w = Some(anchor.w.clone());
        }
    }

    /// The probability of the positive class.
    pub fn predict(&self, row: Row<'_>) -> f64 {
        sigmoid(self.logit(row, None))
    }

    fn logit(&self, row: Row<'_>, hidden: Option<&mut Vec<f64>>) -> f64 {
        match (self.hyper.family, row) {
            (Family::Logistic, Row::Dense(x)) => self.w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + self.b,
            (Family::Mlp(h), Row::Dense(x)) => {
                let mut a = self.b1.clone();
                for (i, xi) in x.iter().enumerate().take(self.inputs) {
                    if *xi != 0.0 {
                        let row = &self.w[i * h..(i + 1) * h];
                        for (aj, wij) in a.iter_mut().zip(row) {
                            *aj += xi * wij;
                        }
                    }
                }
                a.iter_mut().for_each(|v| *v = v.max(0.0));
                let z = a.iter().zip(&self.w2).map(|(a, w)| a * w).sum::<f64>() + self.b;
                if let Some(out) = hidden {
                    *out = a;
                }
                z
            }
            (Family::Text(_), Row::Text(idx, val)) => {
                idx.iter()
                    .zip(val)
                    .map(|(i, v)| self.w.get(*i as usize).copied().unwrap_or(0.0) * f64::from(*v))
                    .sum::<f64>()
                    + self.b
            }
            _ => self.b,
        }
    }

    /// The weight of an example of class `y` (class weights).
    fn example_weight(&self, y: f64) -> f64 {
        let pw = match self.hyper.positive_weight {
            Some(w) => w,
            None => {
                let n = self.seen.max(1) as f64;
                let pos = (self.positives as f64).max(1.0);
                let neg = (n - self.positives as f64).max(1.0);
                (neg / pos).clamp(1.0, 50.0)
            }
        };
        if y >= 0.5 { pw } else { 1.0 }
    }

    /// One step of learning on an example; returns the probability predicted before it.
    pub fn learn(&mut self, row: Row<'_>, y: f64, weight: f64) -> f64 {
        self.seen += 1;
        if y >= 0.5 {
            self.positives += 1;
        }
        let mut hidden = Vec::new();
        let z = self.logit(row, Some(&mut hidden));
        let p = sigmoid(z);
        let g = (p - y) * weight * self.example_weight(y);
        let opt = self.hyper.optimizer;
        let intercept_lr = self.hyper.intercept_lr.unwrap_or(opt.lr());
        let l2 = self.hyper.l2;
        match (self.hyper.family, row) {
            (Family::Logistic, Row::Dense(x)) => {
                let mut grad: Vec<f64> = x.iter().zip(&self.w).map(|(x, w)| g * x + l2 * w).collect();
                self.pull(&mut grad);
                self.moments[0].step(opt, &mut self.w, &grad);
                self.b -= intercept_lr * g;
            }
            (Family::Mlp(h), Row::Dense(x)) => {
                // Output layer.
                let g2: Vec<f64> = hidden.iter().zip(&self.w2).map(|(a, w)| g * a + l2 * w).collect();
                let back: Vec<f64> = (0..h).map(|j| if hidden[j] > 0.0 { g * self.w2[j] } else { 0.0 }).collect();
                let mut g1 = vec![0.0; self.w.len()];
                for (i, xi) in x.iter().enumerate().take(self.inputs) {
                    for j in 0..h {
                        g1[i * h + j] = back[j] * xi + l2 * self.w[i * h + j];
                    }
                }
                self.pull(&mut g1);
                let (m0, rest) = self.moments.split_at_mut(1);
                m0[0].step(opt, &mut self.w, &g1);
                rest[0].step(opt, &mut self.b1, &back);
                rest[1].step(opt, &mut self.w2, &g2);
                self.b -= intercept_lr * g;
            }
            (Family::Text(_), Row::Text(idx, val)) => {
                // Sparse AdaGrad on the touched buckets, with lazy L2.
                if self.adagrad.len() != self.w.len() {
                    self.adagrad = vec![0.0; self.w.len()];
                }
                let lr = opt.lr();
                for (i, v) in idx.iter().zip(val) {
                    if *v == 0.0 {
                        continue;
                    }
                    let i = *i as usize;
                    let gi = g * f64::from(*v) + l2 * self.w[i];
                    self.adagrad[i] += gi * gi;
                    self.w[i] -= lr * gi / (self.adagrad[i].sqrt() + 1e-8);
                }
                self.b -= intercept_lr * g;
            }
            _ => {}
        }
        p
    }

    fn pull(&self, grad: &mut [f64]) {
        if let Some(a) = &self.anchor_w {
            let k = self.hyper.anchor;
            for ((g, w), a) in grad.iter_mut().zip(&self.w).zip(a) {
                *g += k * (w - a);
            }
        }
    }

    /// The exact scoring model.
    pub fn export(&self) -> Model {
        let f = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
        match self.hyper.family {
            Family::Logistic => Model::Logistic { w: f(&self.w), b: self.b as f32 },
            Family::Mlp(h) => Model::Mlp {
                layers: vec![
                    Dense { inputs: self.inputs, outputs: h, w: f(&self.w), b: f(&self.b1) },
                    Dense { inputs: h, outputs: 1, w: f(&self.w2), b: vec![self.b as f32] },
                ],
            },
            Family::Text(_) => Model::HashedText { table: f(&self.w), b: self.b as f32 },
        }
    }
}
