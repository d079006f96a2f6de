//! A binary decision tree over dense features, exported as one `ai.onnx.ml` `TreeEnsembleRegressor`
//! (opset 3): a node sends a row left when `x[feature] <= threshold` (`BRANCH_LEQ`, in `float`, as
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
        let n = self.nodes.len();
        let (mut features, mut values, mut modes, mut trues, mut falses) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut leaf_ids, mut leaf_values) = (vec![], vec![]);
        for (id, node) in self.nodes.iter().enumerate() {
            match node {
                TreeNode::Split { feature, threshold, left, right } => {
                    features.push(i64::from(*feature));
                    values.push(*threshold);
                    modes.push("BRANCH_LEQ".to_string());
                    trues.push(i64::from(*left));
                    falses.push(i64::from(*right));
                }
                TreeNode::Leaf { p } => {
                    features.push(0);
                    values.push(0.0);
                    modes.push("LEAF".to_string());
                    trues.push(0);
                    falses.push(0);
                    leaf_ids.push(id as i64);
                    leaf_values.push(*p);
                }
            }
        }
        let leaves = leaf_ids.len();
        let attrs = [
            ("n_targets", Attr::Int(1)),
            ("aggregate_function", Attr::Str("SUM".into())),
            ("post_transform", Attr::Str("NONE".into())),
            ("nodes_treeids", Attr::Ints(vec![0; n])),
            ("nodes_nodeids", Attr::Ints((0..n as i64).collect())),
            ("nodes_featureids", Attr::Ints(features)),
            ("nodes_values", Attr::Floats(values)),
            ("nodes_modes", Attr::Strings(modes)),
            ("nodes_truenodeids", Attr::Ints(trues)),
            ("nodes_falsenodeids", Attr::Ints(falses)),
            ("target_treeids", Attr::Ints(vec![0; leaves])),
            ("target_nodeids", Attr::Ints(leaf_ids)),
            ("target_ids", Attr::Ints(vec![0; leaves])),
            ("target_weights", Attr::Floats(leaf_values)),
        ];
        g.ml_node("TreeEnsembleRegressor", &[FEATURES], &attrs)
    }
}
