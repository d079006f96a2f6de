//! Online model selection: candidate configurations trained side by side on the same stream, each
//! evaluated prequentially; successive halving drops the worse half of the candidates old enough to
//! judge every `round` examples, down to `min_keep`. New candidates can join at any time (fresh
//! challengers after a drift alert, or exploration around the best).

use serde::{Deserialize, Serialize};

use crate::family::{Hyper, Online, OnlineModel, Row};
use crate::metrics::Prequential;

/// The metric candidates are ranked by, over the sliding window (`auc`, `accuracy`, `log-loss`
/// in configuration; learner states written before these names read too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Accuracy at the threshold.
    #[serde(alias = "Accuracy")]
    Accuracy,
    /// ROC AUC.
    #[serde(alias = "Auc")]
    Auc,
    /// Log loss (lower is better).
    #[serde(alias = "LogLoss")]
    LogLoss,
}

impl Metric {
    /// Its name in configuration and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Auc => "auc",
            Metric::LogLoss => "log-loss",
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Selection rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Ranking metric.
    pub metric: Metric,
    /// Examples between halvings.
    pub round: u64,
    /// Candidates never dropped below this many.
    pub min_keep: usize,
    /// Examples a candidate must have seen before it can be dropped or chosen.
    pub min_age: u64,
    /// Sliding window of the metrics.
    pub window: usize,
    /// Decision threshold.
    pub threshold: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { metric: Metric::Accuracy, round: 2000, min_keep: 2, min_age: 1000, window: 1000, threshold: 0.5 }
    }
}

/// One candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Its model.
    pub model: Online,
    /// Its prequential metrics.
    pub metrics: Prequential,
    /// Step at which it joined.
    pub born: u64,
}

/// The candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Current candidates.
    pub candidates: Vec<Candidate>,
    /// Rules.
    pub policy: Policy,
    step: u64,
    inputs: usize,
    /// (description, windowed score) of candidates dropped so far.
    pub dropped: Vec<(String, f64)>,
    /// Candidates from best to worst, re-ranked every `window / 10` examples (ranking sorts windows).
    #[serde(default)]
    ranking: Vec<usize>,
}

impl Pool {
    /// A pool of fresh candidates for `inputs` dense inputs.
    pub fn new(hypers: &[Hyper], inputs: usize, policy: Policy) -> Pool {
        let candidates = hypers
            .iter()
            .map(|h| Candidate {
                model: Online::new(h.clone(), inputs),
                metrics: Prequential::new(policy.window, policy.threshold),
                born: 0,
            })
            .collect();
        Pool { candidates, policy, step: 0, inputs, dropped: Vec::new(), ranking: Vec::new() }
    }

    /// A candidate's windowed score (higher is better).
    pub fn score(&self, c: &Candidate) -> f64 {
        match self.policy.metric {
            Metric::Accuracy => c.metrics.window_accuracy(),
            Metric::Auc => c.metrics.window_auc().unwrap_or(0.5),
            Metric::LogLoss => -c.metrics.window_log_loss(),
        }
    }

    /// Index of the best candidate, as last ranked.
    pub fn best(&self) -> usize {
        self.top(1).first().copied().unwrap_or(0)
    }

    /// The `k` best candidates, as last ranked.
    pub fn top(&self, k: usize) -> Vec<usize> {
        let valid: Vec<usize> = self.ranking.iter().copied().filter(|i| *i < self.candidates.len()).take(k).collect();
        if valid.is_empty() { (0..self.candidates.len().min(k.max(1))).collect() } else { valid }
    }

    /// Ranks the candidates: those old enough by score, then the rest oldest first.
    fn rank(&self) -> Vec<usize> {
        let old_enough = |i: &usize| self.candidates[*i].metrics.count() >= self.policy.min_age;
        let mut judged: Vec<usize> = (0..self.candidates.len()).filter(old_enough).collect();
        judged.sort_by(|a, b| self.score(&self.candidates[*b]).total_cmp(&self.score(&self.candidates[*a])));
        let mut young: Vec<usize> = (0..self.candidates.len()).filter(|i| !old_enough(i)).collect();
        young.sort_by_key(|i| self.candidates[*i].born);
        judged.extend(young);
        judged
    }

    /// Every candidate predicts `row` (before learning); metrics record it. Returns the predictions.
    pub fn predict_all(&mut self, row: Row<'_>, y: bool) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.candidates.len());
        for c in &mut self.candidates {
            let p = c.model.predict(row);
            c.metrics.update(p, y);
            out.push(p);
        }
        out
    }

    /// Every candidate learns from an example (`weight` 1 for new ones, also for replays).
    pub fn learn_all(&mut self, row: Row<'_>, y: f64, weight: f64) {
        for c in &mut self.candidates {
            c.model.learn(row, y, weight);
        }
    }

    /// Counts a new example and halves the pool when a round ends.
    pub fn tick(&mut self) {
        self.step += 1;
        if self.policy.round > 0 && self.step.is_multiple_of(self.policy.round) {
            self.halve();
        }
        let every = (self.policy.window as u64 / 10).max(1);
        if self.step.is_multiple_of(every) || self.ranking.is_empty() {
            self.ranking = self.rank();
        }
    }

    fn halve(&mut self) {
        let mut judged: Vec<(usize, f64)> = (0..self.candidates.len())
            .filter(|i| self.candidates[*i].metrics.count() >= self.policy.min_age)
            .map(|i| (i, self.score(&self.candidates[i])))
            .collect();
        if self.candidates.len() <= self.policy.min_keep || judged.len() < 2 {
            return;
        }
        judged.sort_by(|a, b| a.1.total_cmp(&b.1));
        let drop = (judged.len() / 2).min(self.candidates.len() - self.policy.min_keep);
        let mut gone: Vec<usize> = judged[..drop].iter().map(|x| x.0).collect();
        gone.sort_unstable_by(|a, b| b.cmp(a));
        for i in gone {
            let c = self.candidates.remove(i);
            let s = match self.policy.metric {
                Metric::Accuracy => c.metrics.window_accuracy(),
                Metric::Auc => c.metrics.window_auc().unwrap_or(0.5),
                Metric::LogLoss => c.metrics.window_log_loss(),
            };
            self.dropped.push((c.model.hyper().describe(), s));
        }
        self.ranking = self.rank();
    }

    /// Adds a fresh candidate (e.g. a challenger trained only on post-drift data).
    pub fn add(&mut self, hyper: Hyper) {
        self.candidates.push(Candidate {
            model: Online::new(hyper, self.inputs),
            metrics: Prequential::new(self.policy.window, self.policy.threshold),
            born: self.step,
        });
    }

    /// Removes the worst judged candidate outside the `keep` best, making room for a fresh one;
    /// `false` when none is judged yet (a pool of newcomers is left alone).
    pub fn evict_worst(&mut self, keep: usize) -> bool {
        let top = self.top(keep.max(1));
        let worst = (0..self.candidates.len())
            .filter(|i| !top.contains(i) && self.candidates[*i].metrics.count() >= self.policy.min_age)
            .min_by(|a, b| self.score(&self.candidates[*a]).total_cmp(&self.score(&self.candidates[*b])));
        let Some(i) = worst else { return false };
        self.candidates.remove(i);
        self.ranking = self.rank();
        true
    }

    /// Examples seen.
    pub fn step(&self) -> u64 {
        self.step
    }
}
