//! The online model families, one module each, behind one trait ([`OnlineModel`]: predict, learn,
//! export the exact scoring model, describe). What every family shares — the optimisers, the class
//! weights, the anchoring pull, the hyper-parameters — lives here; a family's weights, arithmetic,
//! export and default candidate grid live in its own module ([`logistic`], [`mlp`], [`text`],
//! [`tree`], [`forest`]).
//!
//! To add a family: write a module with a type implementing [`OnlineModel`] (and `Serialize` /
//! `Deserialize`: it travels in the learner state), add a [`Family`] variant naming it, a
//! [`Online`] variant holding it, and its arm in [`Online::new`]; if its graph is a new shape, add
//! the shape to `vigil_models::Model`.

pub mod forest;
pub mod logistic;
pub mod mlp;
pub mod text;
pub mod tree;

use serde::{Deserialize, Serialize};
use vigil_models::Model;

pub use self::forest::AdaptiveForest;
pub use self::logistic::Logistic;
pub use self::mlp::Mlp;
pub use self::text::HashedText;
pub use self::tree::HoeffdingTree;

/// One example's inputs.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    /// A dense, already standardised row.
    Dense(&'a [f64]),
    /// Hashed text: bucket indices and weights (padding has weight 0).
    Text(&'a [i64], &'a [f32]),
}

/// What a model of any family does.
pub trait OnlineModel {
    /// The probability of the positive class.
    fn predict(&self, row: Row<'_>) -> f64;
    /// One step of learning on an example weighted `weight`; returns the probability predicted
    /// before it.
    fn learn(&mut self, row: Row<'_>, y: f64, weight: f64) -> f64;
    /// The exact scoring model (the graph the scorer runs).
    fn export(&self) -> Model;
    /// From now on, pull the weights towards `anchor`'s (with the hyper-parameters' strength),
    /// when it is a model of the same shape.
    fn set_anchor(&mut self, anchor: &Online);
}

/// Model families, as hyper-parameters name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// Logistic regression.
    Logistic,
    /// One ReLU hidden layer of this many units.
    Mlp(usize),
    /// Hashed-text linear model over this many buckets.
    Text(usize),
    /// Hoeffding tree: a split attempt every `grace` examples, down to `max_depth`.
    Tree {
        /// Examples (of weight) between split attempts at a leaf.
        grace: u32,
        /// Depth limit.
        max_depth: u32,
    },
    /// Adaptive random forest of this many Hoeffding trees.
    Forest {
        /// Trees.
        trees: u32,
        /// Depth limit of each.
        max_depth: u32,
    },
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

impl Hyper {
    /// A short description, for logs and reports.
    pub fn describe(&self) -> String {
        let fam = match self.family {
            Family::Logistic => "lr".to_string(),
            Family::Mlp(h) => format!("mlp{h}"),
            Family::Text(b) => format!("text{b}"),
            Family::Tree { grace, max_depth } => return format!("ht/grace{grace}/depth{max_depth}"),
            Family::Forest { trees, max_depth } => return format!("arf{trees}/depth{max_depth}"),
        };
        let opt = match self.optimizer {
            Optimizer::Sgd { lr } => format!("sgd{lr}"),
            Optimizer::Adam { lr } => format!("adam{lr}"),
        };
        format!("{fam}/{opt}/l2={}", self.l2)
    }

    /// The intercept's learning rate.
    pub fn intercept_lr(&self) -> f64 {
        self.intercept_lr.unwrap_or(self.optimizer.lr())
    }
}

/// A model of any family (what candidates hold and learner states carry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Online {
    /// Logistic regression.
    Logistic(Logistic),
    /// A one-hidden-layer MLP.
    Mlp(Mlp),
    /// A hashed-text linear model.
    Text(HashedText),
    /// A Hoeffding tree.
    Tree(HoeffdingTree),
    /// An adaptive random forest.
    Forest(AdaptiveForest),
}

macro_rules! each {
    ($self:expr, $m:ident => $e:expr) => {
        match $self {
            Online::Logistic($m) => $e,
            Online::Mlp($m) => $e,
            Online::Text($m) => $e,
            Online::Tree($m) => $e,
            Online::Forest($m) => $e,
        }
    };
}

impl Online {
    /// A fresh model of `hyper`'s family for `inputs` dense inputs (ignored by text models).
    pub fn new(hyper: Hyper, inputs: usize) -> Online {
        match hyper.family {
            Family::Logistic => Online::Logistic(Logistic::new(hyper, inputs)),
            Family::Mlp(h) => Online::Mlp(Mlp::new(hyper, inputs, h)),
            Family::Text(buckets) => Online::Text(HashedText::new(hyper, buckets)),
            Family::Tree { grace, max_depth } => Online::Tree(HoeffdingTree::new(hyper, inputs, grace, max_depth)),
            Family::Forest { trees, max_depth } => Online::Forest(AdaptiveForest::new(hyper, inputs, trees, max_depth)),
        }
    }

    /// Its hyper-parameters.
    pub fn hyper(&self) -> &Hyper {
        each!(self, m => &m.core.hyper)
    }
}

impl OnlineModel for Online {
    fn predict(&self, row: Row<'_>) -> f64 {
        each!(self, m => m.predict(row))
    }

    fn learn(&mut self, row: Row<'_>, y: f64, weight: f64) -> f64 {
        each!(self, m => m.learn(row, y, weight))
    }

    fn export(&self) -> Model {
        each!(self, m => m.export())
    }

    fn set_anchor(&mut self, anchor: &Online) {
        each!(self, m => m.set_anchor(anchor))
    }
}

/// What every family carries besides its weights: its hyper-parameters, class counts and the
/// optimiser state of up to four parameter vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Core {
    /// Hyper-parameters.
    pub hyper: Hyper,
    /// Class counts (balanced class weights).
    pub classes: Classes,
    moments: Vec<Moments>,
}

impl Core {
    fn new(hyper: Hyper) -> Core {
        Core { hyper, classes: Classes::default(), moments: vec![Moments::default(); 4] }
    }

    /// Counts the example and returns the gradient of the log loss at `p` for label `y`, scaled
    /// by `weight` and the class weight.
    fn gradient(&mut self, p: f64, y: f64, weight: f64) -> f64 {
        self.classes.count(y);
        (p - y) * weight * self.classes.weight(self.hyper.positive_weight, y)
    }

    /// A step of the optimiser on parameter vector `k`.
    fn step(&mut self, k: usize, w: &mut [f64], g: &[f64]) {
        let opt = self.hyper.optimizer;
        self.moments[k].step(opt, w, g);
    }
}

/// Examples and positives seen, for balanced class weights.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Classes {
    /// Examples learnt.
    pub seen: u64,
    positives: u64,
}

impl Classes {
    fn count(&mut self, y: f64) {
        self.seen += 1;
        if y >= 0.5 {
            self.positives += 1;
        }
    }

    /// The weight of an example of class `y`: `positive_weight`, or balanced online.
    fn weight(&self, positive_weight: Option<f64>, y: f64) -> f64 {
        let pw = match positive_weight {
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

/// Adds the anchoring pull `strength · (w − anchor)` to `grad`.
fn pull(grad: &mut [f64], w: &[f64], anchor: Option<&Vec<f64>>, strength: f64) {
    if let Some(a) = anchor {
        for ((g, w), a) in grad.iter_mut().zip(w).zip(a) {
            *g += strength * (w - a);
        }
    }
}

/// The logistic function (clamped so that it never overflows).
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z.clamp(-500.0, 500.0)).exp())
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}
