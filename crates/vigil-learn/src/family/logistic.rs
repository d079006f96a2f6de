//! Logistic regression: `sigmoid(w · x + b)` over a dense row, trained with SGD or Adam, L2, class
//! weights and optional anchoring; River's `LogisticRegression` when configured as River's defaults
//! ([`river`]).

use serde::{Deserialize, Serialize};
use vigil_models::Model;

use super::{Core, Family, Hyper, Online, OnlineModel, Optimizer, Row, pull, sigmoid, to_f32};

/// A logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    /// Hyper-parameters, class counts, optimiser state.
    pub core: Core,
    w: Vec<f64>,
    b: f64,
    anchor: Option<Vec<f64>>,
}

impl Logistic {
    /// Zero weights for `inputs` inputs.
    pub fn new(hyper: Hyper, inputs: usize) -> Logistic {
        Logistic { core: Core::new(hyper), w: vec![0.0; inputs], b: 0.0, anchor: None }
    }

    fn logit(&self, row: Row<'_>) -> f64 {
        match row {
            Row::Dense(x) => self.w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + self.b,
            Row::Text(..) => self.b,
        }
    }
}

impl OnlineModel for Logistic {
    fn predict(&self, row: Row<'_>) -> f64 {
        sigmoid(self.logit(row))
    }

    fn learn(&mut self, row: Row<'_>, y: f64, weight: f64) -> f64 {
        let p = sigmoid(self.logit(row));
        let g = self.core.gradient(p, y, weight);
        let Row::Dense(x) = row else { return p };
        let l2 = self.core.hyper.l2;
        let mut grad: Vec<f64> = x.iter().zip(&self.w).map(|(x, w)| g * x + l2 * w).collect();
        pull(&mut grad, &self.w, self.anchor.as_ref(), self.core.hyper.anchor);
        self.core.step(0, &mut self.w, &grad);
        self.b -= self.core.hyper.intercept_lr() * g;
        p
    }

    fn export(&self) -> Model {
        Model::Logistic { w: to_f32(&self.w), b: self.b as f32 }
    }

    fn set_anchor(&mut self, anchor: &Online) {
        if let Online::Logistic(a) = anchor
            && a.w.len() == self.w.len()
            && self.core.hyper.anchor > 0.0
        {
            self.anchor = Some(a.w.clone());
        }
    }
}

/// River's `StandardScaler | LogisticRegression()` with its defaults: SGD with learning rate 0.01,
/// intercept learning rate 0.01, no L2, no class weights.
pub fn river(seed: u64) -> Hyper {
    Hyper {
        family: Family::Logistic,
        optimizer: Optimizer::Sgd { lr: 0.01 },
        intercept_lr: Some(0.01),
        l2: 0.0,
        positive_weight: Some(1.0),
        anchor: 0.0,
        seed,
    }
}

/// The default logistic candidates: SGD over a range of learning rates (`positive_weight` `None`:
/// balanced class weights).
pub fn candidates(seed: u64, positive_weight: Option<f64>) -> Vec<Hyper> {
    [0.01, 0.05, 0.2]
        .iter()
        .enumerate()
        .map(|(k, lr)| Hyper {
            family: Family::Logistic,
            optimizer: Optimizer::Sgd { lr: *lr },
            intercept_lr: None,
            l2: 0.0,
            positive_weight,
            anchor: 0.0,
            seed: seed + k as u64,
        })
        .collect()
}
