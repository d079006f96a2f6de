//! Binary decision trees over dense features (one, or a forest's weighted vote), exported as one
//! `ai.onnx.ml` `TreeEnsembleRegressor` (opset 3): a node sends a row left when `x[feature] <= threshold` (`BRANCH_LEQ`, in `float`, as
//! ONNX Runtime compares), and a leaf's value is the probability of the positive class, summed over
//! the one tree with no post-transform. The Rust walk below makes the same comparisons in `f32`.

use serde::{Deserialize, Serialize};

use crate::graph::{Attr, GraphBuilder};

use super::FEATURES;

/// One node; children are indices into [`Tree::nodes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TreeNode {
    /// `x[feature] <= threshold` goes to `left`, anything else (NaN too) to `right`.
    Split {
        /// Input column.
        feature: u32,
        /// Threshold.
        threshold: f32,
        /// Node taken when the test holds.
        left: u32,
        /// Node taken otherwise.
        right: u32,
    },
    /// The probability of the positive class.
    Leaf {
        /// Probability.
        p: f32,
    },
}

/// A tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Width of the input rows.
    pub inputs: usize,
    /// The nodes, root first.
    pub nodes: Vec<TreeNode>,
}

impl Tree {
    /// The leaf probability for one row (0.5 for an empty or malformed tree).
    pub fn predict(&self, x: &[f32]) -> f32 {
        let mut at = 0usize;
        // A well-formed tree ends at a leaf within `nodes.len()` steps; the bound guards a bad one.
        for _ in 0..=self.nodes.len() {
            match self.nodes.get(at) {
                Some(TreeNode::Leaf { p }) => return *p,
                Some(TreeNode::Split { feature, threshold, left, right }) => {
                    let v = x.get(*feature as usize).copied().unwrap_or(f32::NAN);
                    at = if v <= *threshold { *left } else { *right } as usize;
                }
                None => break,
            }
        }
        0.5
    }

    /// Number of leaves.
    pub fn leaves(&self) -> usize {
        self.nodes.iter().filter(|n| matches!(n, TreeNode::Leaf { .. })).count()
    }

    /// Adds the tree's `TreeEnsembleRegressor` reading the graph's features; returns its output
    /// (`[batch, 1]`, the probability).
    pub(crate) fn emit(&self, g: &mut GraphBuilder) -> String {
        let mut e = Ensemble::default();
        e.add(self, 0, 1.0);
        e.emit(g)
    }
}

/// Trees whose probabilities are averaged with weights (a forest's vote), served as one
/// `TreeEnsembleRegressor` whose leaves hold `p · weight / Σ weights`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    /// The trees (same input width).
    pub trees: Vec<Tree>,
    /// Each tree's vote weight.
    pub weights: Vec<f32>,
}

impl Forest {
    /// Each tree's share of the vote.
    fn shares(&self) -> Vec<f32> {
        let total: f32 = self.weights.iter().sum();
        if total > 0.0 {
            self.weights.iter().map(|w| w / total).collect()
        } else {
            vec![1.0 / self.trees.len().max(1) as f32; self.trees.len()]
        }
    }

    /// The weighted mean of the trees' probabilities (summed in the order ONNX Runtime sums).
    pub fn predict(&self, x: &[f32]) -> f32 {
        self.trees.iter().zip(self.shares()).map(|(t, s)| t.predict(x) * s).sum()
    }

    /// Width of the input rows.
    pub fn inputs(&self) -> usize {
        self.trees.first().map_or(0, |t| t.inputs)
    }

    pub(crate) fn emit(&self, g: &mut GraphBuilder) -> String {
        let mut e = Ensemble::default();
        for (k, (t, s)) in self.trees.iter().zip(self.shares()).enumerate() {
            e.add(t, k as i64, s);
        }
        e.emit(g)
    }
}

/// The attribute lists of one `TreeEnsembleRegressor`, tree by tree.
#[derive(Default)]
struct Ensemble {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    features: Vec<i64>,
    values: Vec<f32>,
    modes: Vec<String>,
    trues: Vec<i64>,
    falses: Vec<i64>,
    leaf_trees: Vec<i64>,
    leaf_ids: Vec<i64>,
    leaf_values: Vec<f32>,
}

impl Ensemble {
    /// Adds `tree` as tree `id`, its leaves scaled by `scale`.
    fn add(&mut self, tree: &Tree, id: i64, scale: f32) {
        for (n, node) in tree.nodes.iter().enumerate() {
            self.tree_ids.push(id);
            self.node_ids.push(n as i64);
            let (feature, value, mode, t, f) = match node {
                TreeNode::Split { feature, threshold, left, right } => {
                    (i64::from(*feature), *threshold, "BRANCH_LEQ", i64::from(*left), i64::from(*right))
                }
                TreeNode::Leaf { p } => {
                    self.leaf_trees.push(id);
                    self.leaf_ids.push(n as i64);
                    self.leaf_values.push(p * scale);
                    (0, 0.0, "LEAF", 0, 0)
                }
            };
            self.features.push(feature);
            self.values.push(value);
            self.modes.push(mode.to_string());
            self.trues.push(t);
            self.falses.push(f);
        }
    }

    fn emit(self, g: &mut GraphBuilder) -> String {
        let leaves = self.leaf_ids.len();
        let attrs = [
            ("n_targets", Attr::Int(1)),
            ("aggregate_function", Attr::Str("SUM".into())),
            ("post_transform", Attr::Str("NONE".into())),
            ("nodes_treeids", Attr::Ints(self.tree_ids)),
            ("nodes_nodeids", Attr::Ints(self.node_ids)),
            ("nodes_featureids", Attr::Ints(self.features)),
            ("nodes_values", Attr::Floats(self.values)),
            ("nodes_modes", Attr::Strings(self.modes)),
            ("nodes_truenodeids", Attr::Ints(self.trues)),
            ("nodes_falsenodeids", Attr::Ints(self.falses)),
            ("target_treeids", Attr::Ints(self.leaf_trees)),
            ("target_nodeids", Attr::Ints(self.leaf_ids)),
            ("target_ids", Attr::Ints(vec![0; leaves])),
            ("target_weights", Attr::Floats(self.leaf_values)),
        ];
        g.ml_node("TreeEnsembleRegressor", &[FEATURES], &attrs)
    }
}
