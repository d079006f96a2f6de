//! A Hoeffding tree (Domingos & Hulten's VFDT) as River's `HoeffdingTreeClassifier` grows it with
//! majority-class leaves: each active leaf keeps, per feature and class, a Gaussian of the values
//! seen (weight, mean, variance, min, max); every `grace` examples of weight it scores ten
//! equal-width thresholds per feature by information gain (a branch must hold over 1% of the
//! weight), and splits on the best when it beats the second by more than the Hoeffding bound
//! (`δ` = 1e-7, range log2(2) = 1) or the bound is under `τ` = 0.05 (River 0.26 stores but does
//! not apply `max_share_to_split`; neither does this). A leaf at the depth limit, or whose best
//! split is no split, stops growing. Children start from the
//! parent's class weights divided by the Gaussians' CDFs at the threshold. A leaf predicts its
//! share of positives, so the tree exports exactly as an ONNX tree ensemble.

use serde::{Deserialize, Serialize};
use vigil_models::Model;
use vigil_models::families::{Tree, TreeNode};

use super::{Core, Family, Hyper, Online, OnlineModel, Optimizer, Row};
use crate::rng::Rng;

/// Hoeffding bound confidence (River's `delta`) of a tree on its own.
const DELTA: f64 = 1e-7;
/// Tie threshold (River's `tau`).
const TAU: f64 = 0.05;
/// Thresholds tried per feature (River's `GaussianSplitter(n_splits=10)`).
const N_SPLITS: usize = 10;
/// A branch must hold more than this share of the weight (River's `min_branch_fraction`).
const MIN_BRANCH: f64 = 0.01;
/// Nodes at most: the state (a Gaussian per feature and class in every active leaf) travels in
/// every checkpoint, so 256 leaves over 30 features is ~1 MB of it; leaves then stop growing.
pub const MAX_NODES: usize = 511;

/// Running weight, mean, variance (River's `Var`, ddof 1), min and max of one feature in one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Gauss {
    n: f64,
    mean: f64,
    s: f64,
    min: f64,
    max: f64,
}

impl Gauss {
    fn new(x: f64) -> Gauss {
        Gauss { n: 0.0, mean: 0.0, s: 0.0, min: x, max: x }
    }

    fn update(&mut self, x: f64, w: f64) {
        let old = self.mean;
        self.n += w;
        self.mean += w / self.n * (x - old);
        self.s += w * (x - old) * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// P(X <= x) under the Gaussian (0 when it has no spread, as River's).
    fn cdf(&self, x: f64) -> f64 {
        let sigma = if self.n > 1.0 { (self.s / (self.n - 1.0)).sqrt() } else { 0.0 };
        if sigma == 0.0 {
            return 0.0;
        }
        0.5 * (1.0 + statrs::function::erf::erf((x - self.mean) / (sigma * std::f64::consts::SQRT_2)))
    }
}

/// One feature's Gaussians, per class.
type Observer = [Option<Gauss>; 2];

/// A split a leaf could make: merit, feature, threshold and the children's class weights.
type Suggestion = (f64, Option<(usize, f64, [f64; 2], [f64; 2])>);

/// A leaf: class weights, depth, weight at the last split attempt, the features it may split on
/// (all, or a random subset in a forest) and their observers (empty once it stops growing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Leaf {
    stats: [f64; 2],
    depth: u32,
    last_attempt: f64,
    active: bool,
    features: Vec<u32>,
    observers: Vec<Observer>,
}

impl Leaf {
    fn new(stats: [f64; 2], depth: u32) -> Leaf {
        Leaf {
            stats,
            depth,
            last_attempt: stats[0] + stats[1],
            active: true,
            features: Vec::new(),
            observers: Vec::new(),
        }
    }

    fn total(&self) -> f64 {
        self.stats[0] + self.stats[1]
    }

    fn deactivate(&mut self) {
        self.active = false;
        self.observers = Vec::new();
        self.features = Vec::new();
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Node {
    Split { feature: usize, threshold: f64, left: usize, right: usize },
    Leaf(Leaf),
}

/// A Hoeffding tree over dense rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoeffdingTree {
    /// Hyper-parameters and class counts (no optimiser state: trees have no gradients).
    pub core: Core,
    inputs: usize,
    grace: f64,
    max_depth: u32,
    delta: f64,
    /// Features each leaf may split on: all (0), or this many drawn at random per leaf (forests).
    subset: usize,
    rng: Rng,
    nodes: Vec<Node>,
}

impl HoeffdingTree {
    /// One leaf; splits are tried every `grace` examples of weight, down to `max_depth`.
    pub fn new(hyper: Hyper, inputs: usize, grace: u32, max_depth: u32) -> HoeffdingTree {
        HoeffdingTree::with(hyper, inputs, (grace, max_depth), DELTA, 0)
    }

    /// A forest's member: Hoeffding bound confidence `delta`, leaves drawing `subset` features.
    pub fn with(
        hyper: Hyper,
        inputs: usize,
        (grace, max_depth): (u32, u32),
        delta: f64,
        subset: usize,
    ) -> HoeffdingTree {
        let nodes = vec![Node::Leaf(Leaf::new([0.0; 2], 0))];
        let (rng, grace) = (Rng::new(hyper.seed), f64::from(grace.max(1)));
        HoeffdingTree { core: Core::new(hyper), inputs, grace, max_depth, delta, subset, rng, nodes }
    }

    /// The features a new leaf may split on.
    fn draw_features(&mut self) -> Vec<u32> {
        let mut all: Vec<u32> = (0..self.inputs as u32).collect();
        if self.subset == 0 || self.subset >= self.inputs {
            return all;
        }
        // A partial Fisher–Yates shuffle: the first `subset` places are a uniform sample.
        for i in 0..self.subset {
            let j = i + self.rng.below((self.inputs - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(self.subset);
        all
    }

    fn leaf_of(&self, x: &[f64]) -> usize {
        let mut at = 0;
        while let Node::Split { feature, threshold, left, right } = &self.nodes[at] {
            let v = x.get(*feature).copied().unwrap_or(f64::NAN);
            at = if v <= *threshold { *left } else { *right };
        }
        at
    }

    /// Splits made so far and leaves.
    pub fn size(&self) -> (usize, usize) {
        let leaves = self.nodes.iter().filter(|n| matches!(n, Node::Leaf(_))).count();
        (self.nodes.len() - leaves, leaves)
    }

    /// The root's test, if it has split: (feature, threshold).
    pub fn root_split(&self) -> Option<(usize, f64)> {
        match &self.nodes[0] {
            Node::Split { feature, threshold, .. } => Some((*feature, *threshold)),
            Node::Leaf(_) => None,
        }
    }

    /// Tries to split leaf `at` (River's `_attempt_to_split`).
    fn attempt_split(&mut self, at: usize) {
        let room = self.nodes.len() + 2 <= MAX_NODES;
        let len = self.nodes.len();
        let delta = self.delta;
        let Node::Leaf(leaf) = &mut self.nodes[at] else { return };
        if leaf.stats.iter().filter(|w| **w > 0.0).count() < 2 {
            return;
        }
        let total = leaf.total();
        let mut suggestions: Vec<Suggestion> = vec![(f64::NEG_INFINITY, None)];
        let features = leaf.features.iter();
        suggestions.extend(features.zip(&leaf.observers).map(|(f, o)| best_split(o, *f as usize, leaf.stats)));
        suggestions.sort_by(|a, b| a.0.total_cmp(&b.0)); // stable, as Python's sort
        let bound = (delta.recip().ln() / (2.0 * total)).sqrt();
        let (best, second) = (&suggestions[suggestions.len() - 1], &suggestions[suggestions.len() - 2]);
        if !(best.0 - second.0 > bound || bound < TAU) {
            return;
        }
        match best.1 {
            Some((feature, threshold, l, r)) if room => {
                let depth = leaf.depth + 1;
                let (left, right) = (len, len + 1);
                self.nodes.push(Node::Leaf(Leaf::new(l, depth)));
                self.nodes.push(Node::Leaf(Leaf::new(r, depth)));
                self.nodes[at] = Node::Split { feature, threshold, left, right };
            }
            _ => leaf.deactivate(),
        }
    }
}

/// The best of one feature's ten thresholds by information gain (River's `GaussianSplitter`).
fn best_split(o: &Observer, feature: usize, pre: [f64; 2]) -> Suggestion {
    let present = o.iter().flatten();
    let min = present.clone().map(|g| g.min).fold(f64::INFINITY, f64::min);
    let max = present.map(|g| g.max).fold(f64::NEG_INFINITY, f64::max);
    let mut best: Suggestion = (f64::NEG_INFINITY, None);
    if !min.is_finite() {
        return best;
    }
    let bin = (max - min) / (N_SPLITS as f64 + 1.0);
    for i in 0..N_SPLITS {
        let v = min + bin * (i as f64 + 1.0);
        if !(min < v && v < max) {
            continue;
        }
        let (mut l, mut r) = ([0.0; 2], [0.0; 2]);
        for (c, g) in o.iter().enumerate() {
            let Some(g) = g else { continue };
            if v < g.min {
                r[c] = g.n;
            } else if v >= g.max {
                l[c] = g.n;
            } else {
                l[c] = g.cdf(v) * g.n;
                r[c] = g.n - l[c];
            }
        }
        let merit = info_gain(pre, [l, r]);
        if merit > best.0 {
            best = (merit, Some((feature, v, l, r)));
        }
    }
    best
}

/// Entropy (bits) of class weights.
fn entropy(d: [f64; 2]) -> f64 {
    let sum: f64 = d.iter().filter(|w| **w > 0.0).sum();
    if sum <= 0.0 {
        return 0.0;
    }
    let h: f64 = d.iter().filter(|w| **w > 0.0).map(|w| -w * w.log2()).sum();
    (h + sum * sum.log2()) / sum
}

/// Information gain of a binary split; −∞ unless both branches hold over [`MIN_BRANCH`] of the weight.
fn info_gain(pre: [f64; 2], post: [[f64; 2]; 2]) -> f64 {
    let weights = post.map(|d| d[0] + d[1]);
    let total = weights[0] + weights[1];
    if total <= 0.0 || weights.iter().filter(|w| **w / total > MIN_BRANCH).count() < 2 {
        return f64::NEG_INFINITY;
    }
    entropy(pre) - (weights[0] * entropy(post[0]) + weights[1] * entropy(post[1])) / total
}

impl OnlineModel for HoeffdingTree {
    fn predict(&self, row: Row<'_>) -> f64 {
        let Row::Dense(x) = row else { return 0.5 };
        match &self.nodes[self.leaf_of(x)] {
            Node::Leaf(l) if l.total() > 0.0 => l.stats[1] / l.total(),
            _ => 0.5,
        }
    }

    fn learn(&mut self, row: Row<'_>, y: f64, weight: f64) -> f64 {
        let p = self.predict(row);
        let Row::Dense(x) = row else { return p };
        self.core.classes.count(y);
        let w = weight * self.core.classes.weight(self.core.hyper.positive_weight, y);
        let class = usize::from(y >= 0.5);
        let at = self.leaf_of(x);
        let (grace, max_depth) = (self.grace, self.max_depth);
        let fresh = matches!(&self.nodes[at], Node::Leaf(l) if l.active && l.observers.is_empty());
        let drawn = if fresh { self.draw_features() } else { Vec::new() };
        let Node::Leaf(leaf) = &mut self.nodes[at] else { return p };
        leaf.stats[class] += w;
        if !leaf.active {
            return p;
        }
        if fresh {
            leaf.observers = vec![[None, None]; drawn.len()];
            leaf.features = drawn;
        }
        for (o, f) in leaf.observers.iter_mut().zip(&leaf.features) {
            let v = x.get(*f as usize).copied().unwrap_or(0.0);
            o[class].get_or_insert_with(|| Gauss::new(v)).update(v, w);
        }
        if leaf.depth >= max_depth {
            leaf.deactivate();
        } else if leaf.total() - leaf.last_attempt >= grace {
            let seen = leaf.total();
            self.attempt_split(at);
            if let Node::Leaf(leaf) = &mut self.nodes[at] {
                leaf.last_attempt = seen;
            }
        }
        p
    }

    fn export(&self) -> Model {
        Model::Tree(self.tree())
    }

    fn set_anchor(&mut self, _anchor: &Online) {}
}

impl HoeffdingTree {
    /// The tree as served: thresholds in `f32`, leaves holding their share of positives.
    pub fn tree(&self) -> Tree {
        let nodes = self
            .nodes
            .iter()
            .map(|n| match n {
                Node::Split { feature, threshold, left, right } => TreeNode::Split {
                    feature: *feature as u32,
                    threshold: *threshold as f32,
                    left: *left as u32,
                    right: *right as u32,
                },
                Node::Leaf(l) => {
                    TreeNode::Leaf { p: if l.total() > 0.0 { (l.stats[1] / l.total()) as f32 } else { 0.5 } }
                }
            })
            .collect();
        Tree { inputs: self.inputs, nodes }
    }
}

/// River's `HoeffdingTreeClassifier(leaf_prediction="mc")` with its other defaults (grace period
/// 200, no depth limit but [`MAX_NODES`]), unweighted classes.
pub fn river(seed: u64) -> Hyper {
    hyper(Family::Tree { grace: 200, max_depth: u32::MAX }, Some(1.0), seed)
}

/// The default tree candidates: River's grace period and a quicker one, depth at most 16.
pub fn candidates(seed: u64, positive_weight: Option<f64>) -> Vec<Hyper> {
    [200, 50]
        .iter()
        .enumerate()
        .map(|(k, g)| hyper(Family::Tree { grace: *g, max_depth: 16 }, positive_weight, seed + k as u64))
        .collect()
}

/// The hyper-parameters of a tree family (trees have no optimiser: the learning-rate fields are 0).
pub(super) fn hyper(family: Family, positive_weight: Option<f64>, seed: u64) -> Hyper {
    Hyper {
        family,
        optimizer: Optimizer::Sgd { lr: 0.0 },
        intercept_lr: None,
        l2: 0.0,
        positive_weight,
        anchor: 0.0,
        seed,
    }
}
