//! Prequential evaluation (predict, then learn): log loss, accuracy and ROC AUC over a sliding window
//! and overall, precision and recall at the operating threshold. Overall AUC is computed both exactly
//! enough (10,000 score bins) and the way River's `metrics.ROCAUC` does (10 thresholds, trapezoid), so
//! that figures can be compared with River's like for like.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Prequential metrics of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prequential {
    window: usize,
    threshold: f64,
    recent: VecDeque<(f32, bool)>,
    n: u64,
    correct: u64,
    loss: f64,
    /// Overall score histogram per class (10,000 bins on [0, 1]).
    bins_pos: Vec<u64>,
    bins_neg: Vec<u64>,
    /// River-style confusion counts at 10 thresholds: (tp, fp, tn, fn).
    river: Vec<[u64; 4]>,
}

const BINS: usize = 10_000;
const RIVER_THRESHOLDS: usize = 10;

fn river_thresholds() -> Vec<f64> {
    let mut t: Vec<f64> = (0..RIVER_THRESHOLDS).map(|i| i as f64 / (RIVER_THRESHOLDS - 1) as f64).collect();
    t[0] -= 1e-7;
    t[RIVER_THRESHOLDS - 1] += 1e-7;
    t
}

impl Prequential {
    /// Metrics over a sliding window of `window` examples, deciding at `threshold`.
    pub fn new(window: usize, threshold: f64) -> Prequential {
        Prequential {
            window: window.max(1),
            threshold,
            recent: VecDeque::with_capacity(window),
            n: 0,
            correct: 0,
            loss: 0.0,
            bins_pos: vec![0; BINS],
            bins_neg: vec![0; BINS],
            river: vec![[0; 4]; RIVER_THRESHOLDS],
        }
    }

    /// Records the probability `p` predicted for an example whose label is `y`.
    pub fn update(&mut self, p: f64, y: bool) {
        let p = if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.5 };
        self.n += 1;
        // River's `predict_one` takes the larger probability, False on a tie.
        self.correct += u64::from((p > self.threshold) == y);
        let q = p.clamp(1e-15, 1.0 - 1e-15);
        self.loss += if y { -q.ln() } else { -(1.0 - q).ln() };
        let bin = ((p * BINS as f64) as usize).min(BINS - 1);
        if y {
            self.bins_pos[bin] += 1;
        } else {
            self.bins_neg[bin] += 1;
        }
        for (t, c) in river_thresholds().iter().zip(self.river.iter_mut()) {
            let predicted = p > *t;
            let k = match (y, predicted) {
                (true, true) => 0,
                (false, true) => 1,
                (false, false) => 2,
                (true, false) => 3,
            };
            c[k] += 1;
        }
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back((p as f32, y));
    }

    /// Examples seen.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Examples in the window.
    pub fn window_len(&self) -> usize {
        self.recent.len()
    }

    /// The threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Overall accuracy.
    pub fn accuracy(&self) -> f64 {
        if self.n == 0 { 0.0 } else { self.correct as f64 / self.n as f64 }
    }

    /// Overall mean log loss.
    pub fn log_loss(&self) -> f64 {
        if self.n == 0 { 0.0 } else { self.loss / self.n as f64 }
    }

    /// Overall ROC AUC from the score histogram; `None` until both classes were seen.
    pub fn auc(&self) -> Option<f64> {
        let (pos, neg): (u64, u64) = (self.bins_pos.iter().sum(), self.bins_neg.iter().sum());
        if pos == 0 || neg == 0 {
            return None;
        }
        // P(score of a positive > score of a negative), ties counted half.
        let mut below = 0u64;
        let mut wins = 0f64;
        for b in 0..BINS {
            wins += self.bins_pos[b] as f64 * (below as f64 + 0.5 * self.bins_neg[b] as f64);
            below += self.bins_neg[b];
        }
        Some(wins / (pos as f64 * neg as f64))
    }

    /// Overall ROC AUC as River's `metrics.ROCAUC()` computes it (10 thresholds, trapezoid).
    pub fn river_auc(&self) -> f64 {
        let rate = |a: u64, b: u64| if a + b == 0 { 0.0 } else { a as f64 / (a + b) as f64 };
        let tpr: Vec<f64> = self.river.iter().map(|c| rate(c[0], c[3])).collect();
        let fpr: Vec<f64> = self.river.iter().map(|c| rate(c[1], c[2])).collect();
        let mut area = 0.0;
        for i in 1..RIVER_THRESHOLDS {
            area += (fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2.0;
        }
        -area
    }

    /// Window accuracy.
    pub fn window_accuracy(&self) -> f64 {
        if self.recent.is_empty() {
            return 0.0;
        }
        self.recent.iter().filter(|(p, y)| (f64::from(*p) > self.threshold) == *y).count() as f64
            / self.recent.len() as f64
    }

    /// Window log loss.
    pub fn window_log_loss(&self) -> f64 {
        if self.recent.is_empty() {
            return 0.0;
        }
        self.recent
            .iter()
            .map(|(p, y)| {
                let q = f64::from(*p).clamp(1e-15, 1.0 - 1e-15);
                if *y { -q.ln() } else { -(1.0 - q).ln() }
            })
            .sum::<f64>()
            / self.recent.len() as f64
    }

    /// Window ROC AUC (exact, by ranking); `None` until both classes are in the window.
    pub fn window_auc(&self) -> Option<f64> {
        let mut v: Vec<(f32, bool)> = self.recent.iter().copied().collect();
        let pos = v.iter().filter(|x| x.1).count();
        let neg = v.len() - pos;
        if pos == 0 || neg == 0 {
            return None;
        }
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Mann–Whitney U with average ranks for ties.
        let mut rank_sum = 0.0;
        let mut i = 0;
        while i < v.len() {
            let mut j = i;
            while j < v.len() && v[j].0 == v[i].0 {
                j += 1;
            }
            let avg = (i + j + 1) as f64 / 2.0;
            rank_sum += avg * v[i..j].iter().filter(|x| x.1).count() as f64;
            i = j;
        }
        Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64))
    }

    /// Window precision and recall at the threshold (`None` when undefined).
    pub fn window_precision_recall(&self) -> (Option<f64>, Option<f64>) {
        let (mut tp, mut fp, mut fneg) = (0u64, 0u64, 0u64);
        for (p, y) in &self.recent {
            match (f64::from(*p) > self.threshold, *y) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fneg += 1,
                _ => {}
            }
        }
        let div = |a: u64, b: u64| (a + b > 0).then(|| a as f64 / (a + b) as f64);
        (div(tp, fp), div(tp, fneg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let mut m = Prequential::new(4, 0.5);
        for (p, y) in [(0.9, true), (0.8, false), (0.3, true), (0.1, false)] {
            m.update(p, y);
        }
        assert_eq!(m.accuracy(), 0.5);
        assert_eq!(m.window_auc(), Some(0.75));
        assert!((m.auc().unwrap() - 0.75).abs() < 1e-9);
        let (p, r) = m.window_precision_recall();
        assert_eq!((p, r), (Some(0.5), Some(0.5)));
        let ll = (-(0.9f64).ln() - (0.2f64).ln() - (0.3f64).ln() - (0.9f64).ln()) / 4.0;
        assert!((m.log_loss() - ll).abs() < 1e-6);
        // A perfect ranking.
        let mut perfect = Prequential::new(10, 0.5);
        for i in 0..10 {
            perfect.update(i as f64 / 10.0, i >= 5);
        }
        assert_eq!(perfect.window_auc(), Some(1.0));
        assert!((perfect.river_auc() - 1.0).abs() < 0.15);
        m.update(0.5, true);
        assert_eq!(m.window_len(), 4, "the window slides");
    }
}
