//! The judge of live A/B tests. It follows the experiments topic; while a model's test runs, it
//! joins each score served under the test (its arm named in the `Score`) with the event's label,
//! adds the outcome to the arm's metric — accuracy of the decisions, AUC of the scores, or the mean
//! cost of the decisions — and looks at the sequential test (`vigil_stats::sequential`) as the
//! labels come. When the test names a winner, finds no difference worth knowing, or reaches its
//! label budget, the judge writes the experiment DONE with its verdict and figures, and an
//! `AB_TEST` alert that says so; while it runs, a RUNNING record with the figures so far every few
//! seconds (what `vigil ab status` shows). The figures live in memory: a restarted judge counts
//! again from the scores and labels it re-reads.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use vigil_events::{Alert, AlertKind, AlertState, Experiment, ExperimentState, OutcomeMetric, Severity, Verdict};
use vigil_kafka::experiments::Experiments;
use vigil_kafka::now_ms;
use vigil_stats::sequential::{self, Decision, Estimate, Look, Sequential};

use crate::pending::Pending;

/// Labels per arm before the first look (the normal approximation needs some).
const MIN_LABELS: usize = 30;

/// Labels per arm before "no difference" may be concluded: the variances are estimated, and a
/// small sample of a rare outcome (a 1% error rate) makes them look smaller than they are.
const MIN_LABELS_NO_DIFFERENCE: usize = 200;

/// How often a running test's figures are published.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// A score served under a test, waiting for its label.
#[derive(Debug, Clone, Copy)]
struct Served {
    b: bool,
    score: f64,
    decision: bool,
}

/// One arm's outcomes so far.
#[derive(Debug, Default)]
struct Arm {
    n: usize,
    sum: f64,
    sum_sq: f64,
    scores: Vec<f64>,
    labels: Vec<bool>,
}

impl Arm {
    fn add(&mut self, e: &Experiment, s: Served, y: bool) {
        let outcome = match e.metric {
            OutcomeMetric::Accuracy => f64::from(u8::from(s.decision == y)),
            OutcomeMetric::Cost if s.decision && !y => e.false_positive_cost,
            OutcomeMetric::Cost if !s.decision && y => e.false_negative_cost,
            OutcomeMetric::Cost => 0.0,
            OutcomeMetric::Auc => {
                self.scores.push(s.score);
                self.labels.push(y);
                0.0
            }
        };
        self.n += 1;
        self.sum += outcome;
        self.sum_sq += outcome * outcome;
    }

    fn estimate(&self, metric: OutcomeMetric) -> Option<Estimate> {
        match metric {
            OutcomeMetric::Auc => sequential::auc(&self.scores, &self.labels),
            OutcomeMetric::Accuracy => sequential::mean_from(self.n, self.sum, self.sum_sq, true),
            OutcomeMetric::Cost => sequential::mean_from(self.n, self.sum, self.sum_sq, false),
        }
    }
}

/// A running test and its evidence.
struct Trial {
    experiment: Experiment,
    served: Pending<Served>,
    labels: Pending<f64>,
    arms: [Arm; 2],
    test: Sequential,
    last: Option<(Estimate, Estimate, Look)>,
    next_look: usize,
    published: Instant,
}

impl Trial {
    fn new(experiment: Experiment, join_window: usize, max_age_ms: i64) -> Trial {
        let test = Sequential::new(experiment.alpha, experiment.min_effect);
        Trial {
            experiment,
            served: Pending::new(join_window, max_age_ms),
            labels: Pending::new(join_window, max_age_ms),
            arms: Default::default(),
            test,
            last: None,
            next_look: 2 * MIN_LABELS,
            published: Instant::now(),
        }
    }

    fn joined(&mut self, s: Served, label: f64) -> Option<Experiment> {
        self.arms[usize::from(s.b)].add(&self.experiment, s, label >= 0.5);
        let n = self.arms[0].n + self.arms[1].n;
        if n < self.next_look || self.arms.iter().any(|a| a.n < MIN_LABELS) {
            return None;
        }
        // Every 20 labels, then every 2% more (the AUC's estimate sorts its arm's scores).
        self.next_look = n + (n / 50).max(20);
        let metric = self.experiment.metric;
        let (a, b) = (self.arms[0].estimate(metric)?, self.arms[1].estimate(metric)?);
        let look = self.test.look(&a, &b, metric != OutcomeMetric::Cost);
        self.last = Some((a, b, look));
        let budget = self.arms.iter().all(|a| a.n as i64 >= self.experiment.max_labels);
        let few = self.arms.iter().any(|a| a.n < MIN_LABELS_NO_DIFFERENCE);
        match look.decision {
            Some(Decision::NoDifference) if few && !budget => None,
            Some(d) => Some(self.ended(d, false)),
            None if budget => Some(self.ended(Decision::NoDifference, true)),
            None => None,
        }
    }

    /// The experiment with the figures so far.
    fn figures(&self) -> Experiment {
        let mut e = self.experiment.clone();
        e.updated_at = now_ms();
        e.labels_a = self.arms[0].n as i64;
        e.labels_b = self.arms[1].n as i64;
        if let Some((a, b, look)) = &self.last {
            (e.metric_a, e.metric_b, e.p_value) = (Some(a.value), Some(b.value), Some(look.p_value));
        }
        e
    }

    fn ended(&self, d: Decision, budget: bool) -> Experiment {
        let mut e = self.figures();
        e.state = ExperimentState::Done;
        e.verdict = Some(match d {
            Decision::A => Verdict::A,
            Decision::B => Verdict::B,
            Decision::NoDifference => Verdict::NoDifference,
        });
        let Some((a, b, look)) = self.last else { return e };
        let metric = metric_name(e.metric);
        let figures = format!(
            "{metric} A (v{}) {:.4} on {} labels, B (v{}) {:.4} on {}; B − A = {:+.4} ± {:.4} (always-valid, level {}), p = {:.3}",
            e.version_a, a.value, a.n, e.version_b, b.value, b.n, look.difference, look.radius, e.alpha, look.p_value
        );
        e.message = match (d, budget) {
            (Decision::A, _) => format!("A/B test {}: A (v{}) wins; {figures}", e.experiment_id, e.version_a),
            (Decision::B, _) => format!("A/B test {}: B (v{}) wins; {figures}", e.experiment_id, e.version_b),
            (_, false) => format!(
                "A/B test {}: no difference larger than {} between A and B; {figures}",
                e.experiment_id, e.min_effect
            ),
            (_, true) => {
                format!(
                    "A/B test {}: no difference found within {} labels per arm; {figures}",
                    e.experiment_id, e.max_labels
                )
            }
        };
        e
    }
}

/// Every model's running test.
pub struct Judge {
    experiments: Experiments,
    trials: HashMap<String, Trial>,
    join_window: usize,
    max_age_ms: i64,
    /// Records to write: finished and progressing experiments, and verdict alerts.
    pub out: Vec<Outgoing>,
}

/// What the judge writes.
pub enum Outgoing {
    /// An experiment record (key = model).
    Experiment(Experiment),
    /// An alert.
    Alert(Alert),
}

impl Judge {
    /// A judge whose joins hold `join_window` entries, none older than `max_age_ms`.
    pub fn new(join_window: usize, max_age_ms: i64) -> Judge {
        Judge { experiments: Experiments::default(), trials: HashMap::new(), join_window, max_age_ms, out: Vec::new() }
    }

    /// A record of the experiments topic.
    pub fn experiment(&mut self, payload: Option<&[u8]>, codec: &vigil_events::Codec) -> Result<(), String> {
        if !self.experiments.apply_bytes(codec, payload)? {
            return Ok(());
        }
        let (window, age) = (self.join_window, self.max_age_ms);
        self.trials.retain(|model, t| {
            self.experiments.running(model).is_some_and(|e| e.experiment_id == t.experiment.experiment_id)
        });
        for e in self.experiments.all() {
            if e.state == ExperimentState::Running && !self.trials.contains_key(&e.model) {
                tracing::info!(model = %e.model, experiment = %e.experiment_id, "judging an A/B test");
                self.trials.insert(e.model.clone(), Trial::new(e.clone(), window, age));
            }
        }
        Ok(())
    }

    /// A score served under experiment `id` in arm B (`b`) or A, stamped `now_ms`.
    pub fn score(&mut self, model: &str, id: &str, event_id: &str, s: (bool, f64, bool), now_ms: i64) {
        let Some(t) = self.trials.get_mut(model).filter(|t| t.experiment.experiment_id == id) else { return };
        let served = Served { b: s.0, score: s.1, decision: s.2 };
        match t.labels.take(event_id) {
            Some(y) => self.joined(model, served, y),
            None => t.served.insert(event_id, served, now_ms),
        }
    }

    /// A label of `model`'s event.
    pub fn label(&mut self, model: &str, event_id: &str, label: f64, now_ms: i64) {
        let Some(t) = self.trials.get_mut(model) else { return };
        match t.served.take(event_id) {
            Some(s) => self.joined(model, s, label),
            None => t.labels.insert(event_id, label, now_ms),
        }
    }

    fn joined(&mut self, model: &str, s: Served, label: f64) {
        let Some(t) = self.trials.get_mut(model) else { return };
        if let Some(done) = t.joined(s, label) {
            self.trials.remove(model);
            tracing::info!(model, message = %done.message, "A/B test ended");
            self.out.push(Outgoing::Alert(verdict_alert(&done)));
            self.experiments.apply(done.clone());
            self.out.push(Outgoing::Experiment(done));
        }
    }

    /// Figures of the running tests that are due for publishing.
    pub fn progress(&mut self) {
        for t in self.trials.values_mut() {
            if t.published.elapsed() >= PROGRESS_EVERY && t.last.is_some() {
                t.published = Instant::now();
                self.out.push(Outgoing::Experiment(t.figures()));
            }
        }
    }
}

fn metric_name(m: OutcomeMetric) -> &'static str {
    match m {
        OutcomeMetric::Accuracy => "accuracy",
        OutcomeMetric::Auc => "auc",
        OutcomeMetric::Cost => "cost",
    }
}

/// The alert that ends a test.
fn verdict_alert(e: &Experiment) -> Alert {
    let winner = match e.verdict {
        Some(Verdict::A) => Some(e.version_a),
        Some(Verdict::B) => Some(e.version_b),
        _ => None,
    };
    Alert {
        alert_id: format!("ab-test-{}-{}", e.experiment_id, now_ms()),
        time: now_ms(),
        kind: AlertKind::AbTest,
        state: AlertState::Firing,
        severity: Severity::Info,
        model: Some(e.model.clone()),
        model_version: winner,
        feature: None,
        detector: Some("msprt".into()),
        statistic: Some(metric_name(e.metric).to_string()),
        value: match (e.metric_a, e.metric_b) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        },
        threshold: Some(e.alpha),
        p_value: e.p_value,
        window_start: Some(e.started_at),
        window_end: Some(e.updated_at),
        message: e.message.clone(),
        dedup_key: format!("ab-test/{}/{}", e.model, e.experiment_id),
    }
}
