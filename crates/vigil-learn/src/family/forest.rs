//! An adaptive random forest (Gomes et al. 2017, River's `ARFClassifier` with majority-class leaves):
//! `trees` Hoeffding trees (grace 50, δ 0.01), each leaf splitting on √d features drawn at random,
//! each example taught to each tree `k ~ Poisson(6)` times (online bagging). Every tree's errors
//! feed two ADWIN detectors: a warning (δ 0.01) starts a background tree that learns alongside, a
//! drift (δ 0.001) puts the background tree (or a fresh one) in its place. The forest votes with
//! each tree's accuracy since it was planted, and is served as one ONNX tree ensemble whose leaves
//! carry those weights.

use serde::{Deserialize, Serialize};
use vigil_models::Model;
use vigil_models::families::Forest;
use vigil_stats::detectors::{Adwin, Detector};

use super::tree::HoeffdingTree;
use super::{Core, Family, Hyper, Online, OnlineModel, Row};
use crate::rng::Rng;

/// Grace period of the forest's trees (River's ARF default).
const GRACE: u32 = 50;
/// Hoeffding bound confidence of the forest's trees (River's ARF default).
const TREE_DELTA: f64 = 0.01;
/// Online bagging rate (River's `lambda_value`).
const LAMBDA: f64 = 6.0;
/// ADWIN confidences: warning, drift.
const WARNING_DELTA: f64 = 0.01;
const DRIFT_DELTA: f64 = 0.001;

/// One tree with its detectors, its background tree and its accuracy since it was planted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Member {
    tree: HoeffdingTree,
    background: Option<HoeffdingTree>,
    warning: Adwin,
    drift: Adwin,
    right: f64,
    seen: f64,
}

impl Member {
    fn new(tree: HoeffdingTree) -> Member {
        Member {
            tree,
            background: None,
            warning: Adwin::new(WARNING_DELTA),
            drift: Adwin::new(DRIFT_DELTA),
            right: 0.0,
            seen: 0.0,
        }
    }

    /// The vote weight: accuracy since planted (1 before it is known, as River's `metric > 0` test).
    fn weight(&self) -> f64 {
        let accuracy = if self.seen > 0.0 { self.right / self.seen } else { 0.0 };
        if accuracy > 0.0 { accuracy } else { 1.0 }
    }
}

/// An adaptive random forest over dense rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveForest {
    /// Hyper-parameters and class counts.
    pub core: Core,
    inputs: usize,
    max_depth: u32,
    members: Vec<Member>,
    rng: Rng,
    /// Trees planted so far (seeds each new tree's feature draws).
    planted: u64,
    /// Drifts detected (trees replaced).
    pub replaced: u64,
}

impl AdaptiveForest {
    /// `trees` trees for `inputs` inputs, down to `max_depth`.
    pub fn new(hyper: Hyper, inputs: usize, trees: u32, max_depth: u32) -> AdaptiveForest {
        let rng = Rng::new(hyper.seed ^ 0xA4F);
        let mut f = AdaptiveForest {
            core: Core::new(hyper),
            inputs,
            max_depth,
            members: Vec::new(),
            rng,
            planted: 0,
            replaced: 0,
        };
        let members = (0..trees.max(1)).map(|_| Member::new(f.plant())).collect();
        f.members = members;
        f
    }

    /// A fresh tree whose leaves draw √d features.
    fn plant(&mut self) -> HoeffdingTree {
        self.planted += 1;
        let mut hyper = self.core.hyper.clone();
        hyper.seed = self.core.hyper.seed.wrapping_mul(1_000_003).wrapping_add(self.planted);
        let subset = ((self.inputs as f64).sqrt().round() as usize).max(1);
        HoeffdingTree::with(hyper, self.inputs, (GRACE, self.max_depth), TREE_DELTA, subset)
    }

    /// Knuth's Poisson draw.
    fn poisson(&mut self) -> u32 {
        let limit = (-LAMBDA).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.rng.uniform();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }

    /// Trees and the leaves they hold in all.
    pub fn size(&self) -> (usize, usize) {
        (self.members.len(), self.members.iter().map(|m| m.tree.size().1).sum())
    }
}

impl OnlineModel for AdaptiveForest {
    fn predict(&self, row: Row<'_>) -> f64 {
        let total: f64 = self.members.iter().map(Member::weight).sum();
        self.members.iter().map(|m| m.weight() * m.tree.predict(row)).sum::<f64>() / total
    }

    fn learn(&mut self, row: Row<'_>, y: f64, weight: f64) -> f64 {
        let p = self.predict(row);
        self.core.classes.count(y);
        let w = weight * self.core.classes.weight(self.core.hyper.positive_weight, y);
        for i in 0..self.members.len() {
            let k = f64::from(self.poisson());
            let m = &mut self.members[i];
            let wrong = (m.tree.predict(row) > 0.5) != (y >= 0.5);
            (m.right, m.seen) = (m.right + f64::from(u8::from(!wrong)), m.seen + 1.0);
            if k > 0.0 {
                if let Some(b) = m.background.as_mut() {
                    b.learn(row, y, w * k);
                }
                m.tree.learn(row, y, w * k);
            }
            let error = f64::from(u8::from(wrong));
            let warned = m.warning.update(error);
            let drifted = m.drift.update(error);
            if warned {
                let background = self.plant();
                let m = &mut self.members[i];
                m.background = Some(background);
                m.warning = Adwin::new(WARNING_DELTA);
            }
            if drifted {
                let fresh = match self.members[i].background.take() {
                    Some(b) => b,
                    None => self.plant(),
                };
                self.members[i] = Member::new(fresh);
                self.replaced += 1;
            }
        }
        p
    }

    fn export(&self) -> Model {
        Model::Forest(Forest {
            trees: self.members.iter().map(|m| m.tree.tree()).collect(),
            weights: self.members.iter().map(|m| m.weight() as f32).collect(),
        })
    }

    fn set_anchor(&mut self, _anchor: &Online) {}
}

/// The forest candidate: ten trees (River's ARF default), depth at most 16.
pub fn candidates(seed: u64, positive_weight: Option<f64>) -> Vec<Hyper> {
    vec![super::tree::hyper(Family::Forest { trees: 10, max_depth: 16 }, positive_weight, seed)]
}
