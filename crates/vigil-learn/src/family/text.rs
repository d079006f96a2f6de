//! The hashed-text linear model: `sigmoid(Σ table[index] · value + b)` over a text's hashed n-grams,
//! trained with sparse AdaGrad on the touched buckets (lazy L2).

use serde::{Deserialize, Serialize};
use vigil_models::Model;

use super::{Core, Family, Hyper, Online, OnlineModel, Optimizer, Row, sigmoid, to_f32};

/// A hashed-text linear model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HashedText {
    /// Hyper-parameters, class counts, optimiser state.
    pub core: Core,
    /// One weight per bucket.
    table: Vec<f64>,
    b: f64,
    /// Per-bucket squared-gradient sums.
    adagrad: Vec<f64>,
}

impl HashedText {
    /// Zero weights over `buckets` buckets.
    pub fn new(hyper: Hyper, buckets: usize) -> HashedText {
        HashedText { core: Core::new(hyper), table: vec![0.0; buckets], b: 0.0, adagrad: Vec::new() }
    }

    fn logit(&self, row: Row<'_>) -> f64 {
        let Row::Text(idx, val) = row else { return self.b };
        idx.iter()
            .zip(val)
            .map(|(i, v)| self.table.get(*i as usize).copied().unwrap_or(0.0) * f64::from(*v))
            .sum::<f64>()
            + self.b
    }
}

impl OnlineModel for HashedText {
    fn predict(&self, row: Row<'_>) -> f64 {
        sigmoid(self.logit(row))
    }

    fn learn(&mut self, row: Row<'_>, y: f64, weight: f64) -> f64 {
        let p = sigmoid(self.logit(row));
        let g = self.core.gradient(p, y, weight);
        let Row::Text(idx, val) = row else { return p };
        if self.adagrad.len() != self.table.len() {
            self.adagrad = vec![0.0; self.table.len()];
        }
        let (lr, l2) = (self.core.hyper.optimizer.lr(), self.core.hyper.l2);
        for (i, v) in idx.iter().zip(val) {
            if *v == 0.0 {
                continue;
            }
            let i = *i as usize;
            let gi = g * f64::from(*v) + l2 * self.table[i];
            self.adagrad[i] += gi * gi;
            self.table[i] -= lr * gi / (self.adagrad[i].sqrt() + 1e-8);
        }
        self.b -= self.core.hyper.intercept_lr() * g;
        p
    }

    fn export(&self) -> Model {
        Model::HashedText { table: to_f32(&self.table), b: self.b as f32 }
    }

    fn set_anchor(&mut self, _anchor: &Online) {}
}

/// The default hashed-text candidates over `buckets` buckets: SGD-scaled AdaGrad at a few rates.
pub fn candidates(seed: u64, buckets: usize) -> Vec<Hyper> {
    [0.05, 0.2, 0.5]
        .iter()
        .enumerate()
        .map(|(k, lr)| Hyper {
            family: Family::Text(buckets),
            optimizer: Optimizer::Sgd { lr: *lr },
            intercept_lr: Some(0.01),
            l2: 0.0,
            positive_weight: Some(1.0),
            anchor: 0.0,
            seed: seed + k as u64,
        })
        .collect()
}
