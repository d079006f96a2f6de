//! One model's learner: online standardisation, the candidate pool, the rehearsal buffer, and the
//! export of the best candidate as a scoring model with the feature spec it needs.

use serde::{Deserialize, Serialize};
use vigil_features::FeatureSpec;
use vigil_models::Model;

use crate::family::{Hyper, OnlineModel, Row, logistic, mlp, text};
use crate::rehearsal::{Reservoir, Stored};
use crate::rng::Rng;
use crate::scaler::Scaler;
use crate::select::{Policy, Pool};

/// How a learner is set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// Dense inputs (0 for text models).
    pub width: usize,
    /// The first `numeric` dense inputs are standardised online.
    pub numeric: usize,
    /// Clip of each standardised numeric input (as the spec's `clip`).
    pub clip: Vec<Option<f64>>,
    /// Candidate configurations.
    pub candidates: Vec<Hyper>,
    /// Selection rules.
    pub policy: Policy,
    /// Rehearsal buffer size (0: none).
    pub rehearsal: usize,
    /// Replayed examples per new example (fractions drawn at random).
    pub replay_ratio: f64,
    /// Serve the mean of the `serve_top` best candidates (1: the best alone).
    pub serve_top: usize,
    /// Seed.
    pub seed: u64,
}

/// A learner and its whole state (serialisable, for checkpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Learner {
    /// Setup.
    pub setup: Setup,
    scaler: Scaler,
    /// Candidates.
    pub pool: Pool,
    reservoir: Reservoir,
    rng: Rng,
    /// Labelled examples learnt.
    pub examples: u64,
}

/// One labelled example's inputs before standardisation.
#[derive(Debug, Clone, Copy)]
pub enum Example<'a> {
    /// Dense raw values (transformed but not standardised); NaN marks a missing numeric value.
    Dense(&'a [f64]),
    /// Hashed text.
    Text(&'a [i64], &'a [f32]),
}

impl Learner {
    /// A fresh learner.
    pub fn new(setup: Setup) -> Learner {
        // Never prune below what is served.
        let mut policy = setup.policy.clone();
        policy.min_keep = policy.min_keep.max(setup.serve_top);
        let pool = Pool::new(&setup.candidates, setup.width, policy);
        Learner {
            scaler: Scaler::new(setup.numeric),
            reservoir: Reservoir::new(setup.rehearsal),
            rng: Rng::new(setup.seed),
            pool,
            examples: 0,
            setup,
        }
    }

    fn scaled(&self, raw: &[f64]) -> Vec<f64> {
        let mut x = raw.to_vec();
        self.scaler.transform(&mut x);
        for (i, c) in self.setup.clip.iter().enumerate().take(self.setup.numeric) {
            if let Some(c) = c {
                x[i] = x[i].clamp(-c, *c);
            }
        }
        x
    }

    /// The standardised row the models see (tests compare exported graphs on it).
    #[cfg(test)]
    pub fn scaled_for_tests(&self, raw: &[f64]) -> Vec<f64> {
        self.scaled(raw)
    }

    /// Predict, then learn (prequential): returns the best candidate's probability for the example
    /// before it learnt from it.
    pub fn learn(&mut self, example: Example<'_>, y: f64) -> f64 {
        let label = y >= 0.5;
        let top = self.pool.top(self.setup.serve_top.max(1));
        let served = |p: &[f64]| top.iter().map(|i| p[*i]).sum::<f64>() / top.len() as f64;
        match example {
            Example::Dense(raw) => {
                // As River's pipelines do: predict with the statistics so far, then learn the
                // statistics from this example and train on it standardised with them.
                let x = self.scaled(raw);
                let predictions = self.pool.predict_all(Row::Dense(&x), label);
                self.scaler.learn(raw);
                let x = self.scaled(raw);
                self.pool.learn_all(Row::Dense(&x), y, 1.0);
                self.finish(Stored::Dense(x), y);
                served(&predictions)
            }
            Example::Text(idx, val) => {
                let predictions = self.pool.predict_all(Row::Text(idx, val), label);
                self.pool.learn_all(Row::Text(idx, val), y, 1.0);
                self.finish(Stored::Text(idx.to_vec(), val.to_vec()), y);
                served(&predictions)
            }
        }
    }

    fn finish(&mut self, stored: Stored, y: f64) {
        self.examples += 1;
        self.pool.tick();
        if self.setup.rehearsal == 0 {
            return;
        }
        // Replay before storing the new example, so that it is not replayed at once.
        let whole = self.setup.replay_ratio.floor() as usize;
        let extra = usize::from(self.rng.uniform() < self.setup.replay_ratio.fract());
        for _ in 0..whole + extra {
            if let Some((old, oy)) = self.reservoir.draw(&mut self.rng).cloned() {
                match &old {
                    Stored::Dense(x) => self.pool.learn_all(Row::Dense(x), oy, 1.0),
                    Stored::Text(i, v) => self.pool.learn_all(Row::Text(i, v), oy, 1.0),
                }
            }
        }
        self.reservoir.offer(stored, y, &mut self.rng);
    }

    /// The served probability for an example (the mean of the top candidates), without learning.
    pub fn predict(&self, example: Example<'_>) -> f64 {
        let top = self.pool.top(self.setup.serve_top.max(1));
        let scaled = match example {
            Example::Dense(raw) => Some(self.scaled(raw)),
            Example::Text(..) => None,
        };
        let row = match (&scaled, example) {
            (Some(x), _) => Row::Dense(x),
            (None, Example::Text(i, v)) => Row::Text(i, v),
            (None, Example::Dense(x)) => Row::Dense(x),
        };
        top.iter().map(|i| self.pool.candidates[*i].model.predict(row)).sum::<f64>() / top.len() as f64
    }

    /// Adds fresh challengers (e.g. after a concept-drift alert): one per current candidate's
    /// configuration, with new seeds, trained from now on only; the pool never grows past `max`
    /// (the worst judged candidates outside the served ones make room). Returns how many joined.
    pub fn add_fresh_challengers(&mut self, max: usize) -> usize {
        let hypers: Vec<Hyper> = self.pool.candidates.iter().map(|c| c.model.hyper().clone()).collect();
        let mut added = 0;
        for (k, mut h) in hypers.into_iter().enumerate() {
            if self.pool.candidates.len() >= max && !self.pool.evict_worst(self.setup.serve_top) {
                break;
            }
            h.seed = h.seed.wrapping_add(self.examples).wrapping_add(k as u64 * 7919);
            self.pool.add(h);
            added += 1;
        }
        added
    }

    /// Descriptions of the served candidates, best first.
    pub fn served(&self) -> Vec<String> {
        self.pool
            .top(self.setup.serve_top.max(1))
            .iter()
            .map(|i| self.pool.candidates[*i].model.hyper().describe())
            .collect()
    }

    /// Anchors every candidate with anchoring enabled to the best candidate's weights now (call when
    /// a version is promoted).
    pub fn anchor_to_best(&mut self) {
        let best = self.pool.candidates[self.pool.best()].model.clone();
        for c in &mut self.pool.candidates {
            c.model.set_anchor(&best);
        }
    }

    /// The best candidate as a scoring model, and `spec` with the learnt standardisation written in
    /// (numeric features' `mean` and `std`; missing values imputed at the mean) and Vigil's own
    /// graph names (a spec taken from a foreign champion may name other ones).
    pub fn export(&self, spec: &FeatureSpec) -> (Model, FeatureSpec) {
        let top = self.pool.top(self.setup.serve_top.max(1));
        let model = if top.len() == 1 {
            self.pool.candidates[top[0]].model.export()
        } else {
            Model::Mean(top.iter().map(|i| self.pool.candidates[*i].model.export()).collect())
        };
        let mut spec = spec.clone();
        spec.graph = Default::default();
        for (i, n) in spec.numeric.iter_mut().enumerate().take(self.setup.numeric) {
            let (mean, sd) = self.scaler.stats(i);
            n.mean = mean;
            n.std = sd;
            n.impute = None;
        }
        (model, spec)
    }

    /// The scaler (for reference statistics).
    pub fn scaler(&self) -> &Scaler {
        &self.scaler
    }

    /// The rehearsal buffer.
    pub fn reservoir(&self) -> &Reservoir {
        &self.reservoir
    }
}

/// River's `StandardScaler | LogisticRegression()` with its defaults (see [`logistic::river`]).
pub fn river_logistic(seed: u64) -> Hyper {
    logistic::river(seed)
}

/// The default candidates for tabular models: every tabular family's grid (logistic regressions and
/// small MLPs over a range of learning rates, Hoeffding trees over two grace periods, an adaptive
/// random forest), with
/// balanced class weights when `class_weights`.
pub fn tabular_candidates(seed: u64, class_weights: bool) -> Vec<Hyper> {
    let pw = if class_weights { None } else { Some(1.0) };
    let mut v = logistic::candidates(seed, pw);
    v.extend(mlp::candidates(seed, pw));
    v.extend(crate::family::tree::candidates(seed + 40, pw));
    v.extend(crate::family::forest::candidates(seed + 50, pw));
    v
}

/// The tabular families, as `learner.families` names them.
pub const TABULAR_FAMILIES: [&str; 4] = ["logistic", "mlp", "tree", "forest"];

/// [`tabular_candidates`] of the named families only.
pub fn tabular_candidates_of(seed: u64, class_weights: bool, families: &[String]) -> Vec<Hyper> {
    use crate::family::Family;
    let name = |f: Family| match f {
        Family::Logistic => "logistic",
        Family::Mlp(_) => "mlp",
        Family::Tree { .. } => "tree",
        Family::Forest { .. } => "forest",
        Family::Text(_) => "text",
    };
    tabular_candidates(seed, class_weights)
        .into_iter()
        .filter(|h| families.iter().any(|f| f == name(h.family)))
        .collect()
}

/// The default candidates for heads on a sentence encoder's L2-normalised embeddings: logistic
/// regression (SGD with steps large enough for unit-length rows, and Adam) and two small MLPs.
pub fn encoder_candidates(seed: u64) -> Vec<Hyper> {
    use crate::family::{Family, Optimizer};
    let head = |k: u64, family: Family, optimizer: Optimizer| Hyper {
        family,
        optimizer,
        intercept_lr: None,
        l2: 0.0,
        positive_weight: Some(1.0),
        anchor: 0.0,
        seed: seed + 20 + k,
    };
    vec![
        head(0, Family::Logistic, Optimizer::Sgd { lr: 1.0 }),
        head(1, Family::Logistic, Optimizer::Adam { lr: 0.01 }),
        head(2, Family::Mlp(32), Optimizer::Adam { lr: 0.002 }),
        head(3, Family::Mlp(64), Optimizer::Adam { lr: 0.001 }),
    ]
}

/// The default candidates for hashed-text models.
pub fn text_candidates(seed: u64, buckets: usize) -> Vec<Hyper> {
    text::candidates(seed, buckets)
}
