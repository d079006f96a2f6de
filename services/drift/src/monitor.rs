//! One model's drift monitor, without I/O: live windows of every raw feature and of the champion's
//! scores, a reference to compare them with (the champion checkpoint's, or a warm-up window), the
//! tests and their multiple-testing correction, the stream of errors once labels join the scores
//! (concept drift, windowed accuracy and AUC) and the scoring latency. It turns what it sees into
//! [`Finding`]s; [`crate::alerts`] decides which become alerts.

use std::collections::{HashMap, VecDeque};

use crate::config::DriftConfig;
use crate::pending::Pending;
use crate::two_sample::{Comparison, DriftTest, Live, test_for};
use vigil_events::{AlertKind, FeatureDrift, FeatureKind, FeatureReference, Severity};
use vigil_features::spec::{Encoding, FeatureSpec, Transform};
use vigil_learn::metrics::Prequential;
use vigil_stats::detectors::Detector;

/// The name under which the scores are compared, as in checkpoints and alerts.
pub const SCORE: &str = "__score__";

/// A fixed-capacity window of the newest values.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    values: VecDeque<T>,
    capacity: usize,
}

impl<T: Copy> Ring<T> {
    /// An empty window of `capacity` values.
    pub fn new(capacity: usize) -> Ring<T> {
        Ring { values: VecDeque::with_capacity(capacity), capacity }
    }

    /// Adds a value, dropping the oldest when full.
    pub fn push(&mut self, v: T) {
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(v);
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether the window is full.
    pub fn is_full(&self) -> bool {
        self.values.len() == self.capacity
    }

    /// The values, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.values.iter().copied()
    }

    /// Empties the window.
    pub fn clear(&mut self) {
        self.values.clear();
    }
}

/// Where each feature sits in a raw feature row.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Numeric features, in row order (slot = index).
    pub numeric: Vec<String>,
    /// Categorical features: name, first slot, category names (one per slot).
    pub categorical: Vec<(String, usize, Vec<String>)>,
    /// Features of the clock (time-of-day transforms of a timestamp): never tested, because two
    /// windows of a clock never overlap (a two-sample test tells them apart however close in time
    /// they are) and a daily cycle is seasonality, not drift.
    pub clock: Vec<String>,
}

impl Layout {
    /// The layout of `spec`'s raw rows (text and encoder specs have no per-feature layout: only scores are
    /// compared for them).
    pub fn of(spec: &FeatureSpec) -> Layout {
        if !spec.is_tabular() {
            return Layout { numeric: Vec::new(), categorical: Vec::new(), clock: Vec::new() };
        }
        let clock = spec
            .numeric
            .iter()
            .filter(|n| matches!(n.transform, Transform::HourSin | Transform::HourCos))
            .map(|n| n.feature_name().to_string())
            .collect();
        let numeric: Vec<String> = spec.numeric.iter().map(|n| n.feature_name().to_string()).collect();
        let mut offset = numeric.len();
        let mut categorical = Vec::new();
        for c in &spec.categorical {
            let names: Vec<String> = match c.encoding {
                Encoding::OneHot => c.values.iter().cloned().chain(std::iter::once("<other>".to_string())).collect(),
                Encoding::Hash => (0..c.buckets).map(|b| format!("#{b}")).collect(),
            };
            let slots = names.len();
            categorical.push((c.field.clone(), offset, names));
            offset += slots;
        }
        Layout { numeric, categorical, clock }
    }
}

/// A reference distribution of one feature.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    /// A sorted sample, and bins (edges and counts) for the PSI.
    Numeric {
        /// Sorted values.
        sample: Vec<f64>,
        /// Bin edges (may be empty).
        edges: Vec<f64>,
        /// Values per bin.
        counts: Vec<f64>,
    },
    /// Values per category.
    Categorical(Vec<f64>),
}

/// The reference a monitor compares with: per feature (numeric, then categorical, then the score).
#[derive(Debug, Clone, PartialEq)]
pub struct References {
    /// Champion version whose checkpoint supplied it; `None` for a warm-up window.
    pub version: Option<i64>,
    /// By feature name.
    pub by_feature: HashMap<String, Reference>,
}

impl References {
    /// The references in a checkpoint that fit `layout` (categorical counts must have one count per
    /// category); `None` when the checkpoint carries none.
    pub fn from_checkpoint(version: i64, refs: &[FeatureReference], layout: &Layout) -> Option<References> {
        let mut by_feature = HashMap::new();
        for r in refs {
            match r.kind {
                FeatureKind::Numeric | FeatureKind::Score => {
                    let known = r.feature == SCORE || layout.numeric.contains(&r.feature);
                    if known && !r.sample.is_empty() {
                        let mut sample: Vec<f64> = r.sample.iter().copied().filter(|v| v.is_finite()).collect();
                        sample.sort_by(f64::total_cmp);
                        by_feature.insert(
                            r.feature.clone(),
                            Reference::Numeric {
                                sample,
                                edges: r.edges.clone(),
                                counts: r.counts.iter().map(|c| *c as f64).collect(),
                            },
                        );
                    }
                }
                FeatureKind::Categorical => {
                    let fits = layout.categorical.iter().any(|(n, _, cats)| n == &r.feature && cats == &r.categories);
                    if fits {
                        by_feature.insert(
                            r.feature.clone(),
                            Reference::Categorical(r.counts.iter().map(|c| *c as f64).collect()),
                        );
                    }
                }
            }
        }
        (!by_feature.is_empty()).then_some(References { version: Some(version), by_feature })
    }
}

fn numeric_reference(values: impl Iterator<Item = f64>) -> Option<Reference> {
    let mut sample: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    if sample.is_empty() {
        return None;
    }
    sample.sort_by(f64::total_cmp);
    let n = sample.len();
    let mut edges: Vec<f64> = (0..=10).map(|q| sample[(q * (n - 1)) / 10]).collect();
    edges.dedup();
    let counts = bin_counts(&edges, &sample);
    Some(Reference::Numeric { sample, edges, counts })
}

/// Counts of `values` in the bins `[e_i, e_i+1)` (the last bin closed; values outside go to the
/// nearest end bin).
pub fn bin_counts(edges: &[f64], values: &[f64]) -> Vec<f64> {
    let bins = edges.len().saturating_sub(1).max(1);
    let mut counts = vec![0.0; bins];
    for v in values {
        let i = edges.partition_point(|e| e <= v).saturating_sub(1).min(bins - 1);
        counts[i] += 1.0;
    }
    counts
}

/// A condition the monitor observed at one moment, active or clear.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What kind of alert it would raise.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// Feature, `__score__`, or none.
    pub feature: Option<String>,
    /// Detector: ks, chi2, adwin, ddm, page-hinkley, threshold.
    pub detector: String,
    /// Name of the statistic in `value`.
    pub statistic: String,
    /// Its value.
    pub value: f64,
    /// The threshold it is compared with.
    pub threshold: f64,
    /// Adjusted p-value, for tests.
    pub p_value: Option<f64>,
    /// Whether the condition holds now.
    pub active: bool,
    /// A sentence for people.
    pub message: String,
}

impl Finding {
    /// The deduplication key: kind/model/feature/detector.
    pub fn key(&self, model: &str) -> String {
        let kind = serde_json::to_value(self.kind).ok().and_then(|v| v.as_str().map(str::to_lowercase));
        format!(
            "{}/{model}/{}/{}",
            kind.unwrap_or_else(|| "other".into()).replace('_', "-"),
            self.feature.as_deref().unwrap_or("-"),
            self.detector
        )
    }
}

/// The result of one comparison of the windows with the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Per-feature results (the score included), for the report.
    pub features: Vec<FeatureDrift>,
    /// Every condition checked, active or not.
    pub findings: Vec<Finding>,
    /// Event times the live window spans (ms).
    pub window: (i64, i64),
    /// Events in the live window.
    pub events: usize,
}

/// Windowed quality figures, for the report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Labelled events in the window.
    pub labelled: usize,
    /// Share of wrong decisions.
    pub error_rate: Option<f64>,
    /// Windowed accuracy.
    pub accuracy: Option<f64>,
    /// Windowed ROC AUC.
    pub auc: Option<f64>,
    /// p99 produce-to-score latency, ms.
    pub p99_latency_ms: Option<f64>,
}

/// One test of an evaluation: the feature, the test, and what it found.
struct Test {
    name: String,
    test: &'static dyn DriftTest,
    found: Comparison,
}

fn sorted_finite(ring: &Ring<f64>) -> Live {
    let mut values: Vec<f64> = ring.iter().filter(|v| v.is_finite()).collect();
    values.sort_by(f64::total_cmp);
    Live::Numeric(values)
}

fn category_counts(ring: &Ring<u16>, categories: usize) -> Live {
    let mut live = vec![0.0; categories];
    for s in ring.iter().filter(|s| (*s as usize) < categories) {
        live[s as usize] += 1.0;
    }
    Live::Categorical(live)
}

/// A champion score waiting for its label.
#[derive(Debug, Clone, Copy)]
struct Scored {
    score: f64,
    decision: bool,
}

/// Labelled events, newest first, whose error rate is compared with the rest of the window when
/// the concept detector fires.
const RECENT_ERRORS: usize = 100;

fn max_age_ms(cfg: &DriftConfig) -> i64 {
    i64::try_from(cfg.join_max_age.as_millis()).unwrap_or(i64::MAX)
}

/// One model's drift monitor.
pub struct Monitor {
    /// Model name.
    pub model: String,
    cfg: DriftConfig,
    layout: Layout,
    numeric: Vec<Ring<f64>>,
    categorical: Vec<Ring<u16>>,
    scores: Ring<f64>,
    times: Ring<i64>,
    latency: Ring<f64>,
    reference: References,
    warm_rows: Vec<Vec<f64>>,
    warm_scores: Vec<f64>,
    since_eval: usize,
    /// Input events seen.
    pub events: u64,
    /// Champion scores seen.
    pub scored: u64,
    scored_waiting: Pending<Scored>,
    labels_waiting: Pending<f64>,
    /// The newest record time seen (epoch ms): waiting scores and labels age against it.
    newest_ms: i64,
    errors: Ring<u8>,
    quality: Prequential,
    detector: Box<dyn Detector>,
    /// Labels joined with a score.
    pub labelled: u64,
    /// The champion version whose scores are watched.
    pub champion: Option<i64>,
    last: Option<Evaluation>,
}

impl Monitor {
    /// A monitor of `model` whose raw rows are laid out as `layout`.
    pub fn new(model: &str, layout: Layout, cfg: &DriftConfig) -> Monitor {
        let w = cfg.window;
        Monitor {
            model: model.to_string(),
            numeric: layout.numeric.iter().map(|_| Ring::new(w)).collect(),
            categorical: layout.categorical.iter().map(|_| Ring::new(w)).collect(),
            layout,
            scores: Ring::new(w),
            times: Ring::new(w),
            latency: Ring::new(w),
            reference: References { version: None, by_feature: HashMap::new() },
            warm_rows: Vec::new(),
            warm_scores: Vec::new(),
            since_eval: 0,
            events: 0,
            scored: 0,
            scored_waiting: Pending::new(cfg.join_window, max_age_ms(cfg)),
            labels_waiting: Pending::new(cfg.join_window, max_age_ms(cfg)),
            newest_ms: 0,
            errors: Ring::new(w),
            quality: Prequential::new(w, 0.5),
            detector: cfg.concept_detector.build(),
            labelled: 0,
            champion: None,
            last: None,
            cfg: cfg.clone(),
        }
    }

    /// The layout of the rows the monitor takes.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The reference in use (empty until a checkpoint supplies one or the warm-up window fills).
    pub fn reference(&self) -> &References {
        &self.reference
    }

    /// The last evaluation.
    pub fn last(&self) -> Option<&Evaluation> {
        self.last.as_ref()
    }

    /// Uses `r` (a new champion's) as the reference from now on, feature by feature: a feature `r`
    /// has no reference for keeps the one it had. The live windows stay.
    pub fn set_reference(&mut self, r: References) {
        self.warm_rows.clear();
        self.warm_scores.clear();
        self.reference.version = r.version;
        self.reference.by_feature.extend(r.by_feature);
    }

    /// A new champion serves: its scores, errors and quality are judged on their own from now on.
    /// The scores' window and error stream start again; the features' windows stay (the inputs do
    /// not depend on the model). `r` (the checkpoint's references) replaces the reference; without
    /// one, or without a score reference in it, the scores warm up again.
    pub fn new_champion(&mut self, version: i64, r: Option<References>) {
        self.champion = Some(version);
        self.scores.clear();
        self.latency.clear();
        self.warm_scores.clear();
        self.scored_waiting.clear();
        self.errors.clear();
        self.quality = Prequential::new(self.cfg.window, 0.5);
        self.detector = self.cfg.concept_detector.build();
        match r {
            Some(r) => self.set_reference(r),
            None => {
                self.reference.by_feature.remove(SCORE);
            }
        }
    }

    /// Adds one input event's raw row (NaN: missing) and event time; returns an evaluation when one
    /// is due.
    pub fn event(&mut self, row: &[f64], time_ms: i64) -> Option<Evaluation> {
        self.events += 1;
        for (k, ring) in self.numeric.iter_mut().enumerate() {
            ring.push(row.get(k).copied().unwrap_or(f64::NAN));
        }
        for ((_, offset, cats), ring) in self.layout.categorical.iter().zip(&mut self.categorical) {
            let slot = (0..cats.len()).find(|i| row.get(offset + i).is_some_and(|v| *v > 0.5));
            ring.push(slot.map(|s| s as u16).unwrap_or(u16::MAX));
        }
        self.times.push(time_ms);
        if self.warming_features() {
            self.warm_rows.push(row.to_vec());
            if self.warm_rows.len() >= self.cfg.warmup {
                self.freeze_features();
            }
        }
        self.since_eval += 1;
        if self.since_eval >= self.cfg.evaluate_every {
            self.since_eval = 0;
            return self.evaluate();
        }
        None
    }

    /// A record stamped `ts_ms` was read: scores and labels waiting for their other half longer
    /// than `drift.join-max-age-ms` behind the newest record time are dropped as they are passed.
    pub fn observe_time(&mut self, ts_ms: i64) {
        self.newest_ms = self.newest_ms.max(ts_ms);
    }

    /// Scores and labels waiting for their other half.
    pub fn join_waiting(&self) -> (usize, usize) {
        (self.scored_waiting.len(), self.labels_waiting.len())
    }

    /// Adds one champion score with its produce-to-score latency; text models, which have no
    /// per-feature rows, are evaluated on their scores' cadence.
    pub fn score(&mut self, event_id: &str, score: f64, decision: bool, latency_ms: f64) -> Option<Evaluation> {
        self.scored += 1;
        self.scores.push(score);
        self.latency.push(latency_ms);
        if !self.reference.by_feature.contains_key(SCORE) {
            self.warm_scores.push(score);
            if self.warm_scores.len() >= self.cfg.warmup {
                if let Some(r) = numeric_reference(self.warm_scores.drain(..)) {
                    self.reference.by_feature.insert(SCORE.to_string(), r);
                }
                tracing::info!(model = %self.model, "warm-up scores frozen as the reference");
                self.scores.clear();
            }
        }
        let mut out = None;
        if let Some(label) = self.labels_waiting.take(event_id) {
            out = self.joined(Scored { score, decision }, label);
        } else {
            self.scored_waiting.insert(event_id, Scored { score, decision }, self.newest_ms);
        }
        out
    }

    /// Adds a label; returns a concept-drift finding when the error stream changes.
    pub fn label(&mut self, event_id: &str, label: f64) -> Option<Evaluation> {
        match self.scored_waiting.take(event_id) {
            Some(s) => self.joined(s, label),
            None => {
                self.labels_waiting.insert(event_id, label, self.newest_ms);
                None
            }
        }
    }

    fn joined(&mut self, s: Scored, label: f64) -> Option<Evaluation> {
        self.labelled += 1;
        let y = label >= 0.5;
        let wrong = s.decision != y;
        self.errors.push(u8::from(wrong));
        self.quality.update(s.score, y);
        let error_rate = self.error_rate().unwrap_or(0.0);
        if !self.detector.update(f64::from(u8::from(wrong))) {
            return None;
        }
        let det = self.detector.name().to_string();
        // Detectors such as ADWIN see a change either way; an error rate that fell is a better
        // model or an easier stream, not concept drift.
        let (before, after) = self.error_rates_around_change();
        if after <= before {
            tracing::info!(model = %self.model, detector = det, before, after, "the error rate fell: not concept drift");
            return None;
        }
        let finding = Finding {
            kind: AlertKind::ConceptDrift,
            severity: Severity::Critical,
            feature: None,
            detector: det.clone(),
            statistic: "error_rate".into(),
            value: error_rate,
            threshold: 0.0,
            p_value: None,
            active: true,
            message: format!(
                "{}: {det} detected a change in the error stream after {} labelled events: error rate {:.3} before, {:.3} in the last {} (window {:.3})",
                self.model,
                self.labelled,
                before,
                after,
                RECENT_ERRORS.min(self.errors.len() / 2),
                error_rate
            ),
        };
        let (start, end) = self.span();
        Some(Evaluation {
            features: Vec::new(),
            findings: vec![finding],
            window: (start, end),
            events: self.times.len(),
        })
    }

    /// Error rates of the window's older part and of its newest `RECENT_ERRORS` (at most half).
    fn error_rates_around_change(&self) -> (f64, f64) {
        let k = RECENT_ERRORS.min(self.errors.len() / 2).max(1);
        let split = self.errors.len().saturating_sub(k);
        let (mut old, mut new) = ((0.0, 0.0), (0.0, 0.0));
        for (i, e) in self.errors.iter().enumerate() {
            let part = if i < split { &mut old } else { &mut new };
            part.0 += f64::from(e);
            part.1 += 1.0;
        }
        (old.0 / f64::max(old.1, 1.0), new.0 / f64::max(new.1, 1.0))
    }

    fn error_rate(&self) -> Option<f64> {
        (!self.errors.is_empty()).then(|| self.errors.iter().map(f64::from).sum::<f64>() / self.errors.len() as f64)
    }

    fn span(&self) -> (i64, i64) {
        let start = self.times.iter().next().unwrap_or(0);
        let end = self.times.iter().last().unwrap_or(0);
        (start, end)
    }

    fn warming_features(&self) -> bool {
        let has_features = !(self.layout.numeric.is_empty() && self.layout.categorical.is_empty());
        let frozen = self
            .layout
            .numeric
            .iter()
            .chain(self.layout.categorical.iter().map(|c| &c.0))
            .any(|n| self.reference.by_feature.contains_key(n));
        has_features && self.reference.version.is_none() && !frozen
    }

    /// Freezes the warm-up rows into the features' reference and clears their live windows, so
    /// that these fill with what came after it.
    fn freeze_features(&mut self) {
        let rows = std::mem::take(&mut self.warm_rows);
        for (k, name) in self.layout.numeric.iter().enumerate() {
            if let Some(r) = numeric_reference(rows.iter().filter_map(|r| r.get(k).copied())) {
                self.reference.by_feature.insert(name.clone(), r);
            }
        }
        for (name, offset, cats) in &self.layout.categorical {
            let mut counts = vec![0.0; cats.len()];
            for r in &rows {
                if let Some(s) = (0..cats.len()).find(|i| r.get(offset + i).is_some_and(|v| *v > 0.5)) {
                    counts[s] += 1.0;
                }
            }
            self.reference.by_feature.insert(name.clone(), Reference::Categorical(counts));
        }
        tracing::info!(model = %self.model, events = rows.len(), "warm-up window frozen as the features' reference");
        for r in &mut self.numeric {
            r.clear();
        }
        for r in &mut self.categorical {
            r.clear();
        }
        self.times.clear();
    }

    /// Compares every live window with its reference now (when the windows are full).
    pub fn evaluate(&mut self) -> Option<Evaluation> {
        let tests = self.tests();
        if tests.is_empty() {
            return None;
        }
        let raw: Vec<f64> = tests.iter().map(|t| t.found.p).collect();
        let adjusted = self.cfg.correction.adjust(&raw);
        let reference = &self.reference;
        let alpha = self.cfg.significance;
        let mut features = Vec::new();
        let mut findings = Vec::new();
        let version =
            reference.version.map(|v| format!("v{v}'s training window")).unwrap_or("the warm-up window".into());
        for (Test { name, test, found }, adj) in tests.into_iter().zip(adjusted) {
            let Comparison { statistic: stat, p, psi, effect } = found;
            let drifted = adj < alpha && effect >= self.cfg.min_effect;
            let is_score = name == SCORE;
            features.push(FeatureDrift {
                feature: name.clone(),
                test: test.name().into(),
                statistic: stat,
                p_value: p,
                adjusted_p_value: adj,
                psi,
                drifted,
            });
            let what = if is_score { "the scores".to_string() } else { format!("feature {name}") };
            findings.push(Finding {
                kind: if is_score { AlertKind::PredictionDrift } else { AlertKind::DataDrift },
                severity: Severity::Warning,
                feature: Some(name.clone()),
                detector: test.name().into(),
                statistic: test.statistic().into(),
                value: stat,
                threshold: alpha,
                p_value: Some(adj),
                active: drifted,
                message: format!(
                    "{}: {what} drifted from {version}: {} {stat:.4}, adjusted p {adj:.2e} < {alpha}{}",
                    self.model,
                    test.name(),
                    psi.map(|v| format!(", PSI {v:.3}")).unwrap_or_default()
                ),
            });
        }
        findings.extend(self.threshold_findings());
        let (start, end) = self.span();
        let evaluation = Evaluation { features, findings, window: (start, end), events: self.times.len() };
        self.last = Some(evaluation.clone());
        Some(evaluation)
    }

    /// Every feature (the scores included) whose window is full and has a reference, tested.
    fn tests(&self) -> Vec<Test> {
        let w = self.cfg.window;
        let excluded = |name: &str| self.cfg.exclude_features.iter().chain(&self.layout.clock).any(|e| e == name);
        let mut windows: Vec<(&str, Option<Live>)> = Vec::new();
        let numeric = self.layout.numeric.iter().map(String::as_str).zip(&self.numeric).chain([(SCORE, &self.scores)]);
        for (name, ring) in numeric {
            let full = ring.len() >= w;
            windows.push((name, full.then(|| sorted_finite(ring))));
        }
        for ((name, _, cats), ring) in self.layout.categorical.iter().zip(&self.categorical) {
            let full = ring.len() >= w;
            windows.push((name, full.then(|| category_counts(ring, cats.len()))));
        }
        windows
            .into_iter()
            .filter(|(name, _)| !excluded(name))
            .filter_map(|(name, live)| {
                let reference = self.reference.by_feature.get(name)?;
                let test = test_for(reference);
                let found = test.compare(reference, &live?)?;
                Some(Test { name: name.to_string(), test, found })
            })
            .collect()
    }

    /// Accuracy, AUC and latency against their thresholds, and the concept detector's quiet periods.
    fn threshold_findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let q = self.quality();
        let enough = q.labelled >= self.cfg.min_labelled;
        let mut check = |kind, statistic: &str, value: Option<f64>, threshold: f64, below: bool| {
            if threshold <= 0.0 {
                return;
            }
            let Some(v) = value else { return };
            let active = if below { enough && v < threshold } else { v > threshold };
            out.push(Finding {
                kind,
                severity: if kind == AlertKind::Performance { Severity::Critical } else { Severity::Warning },
                feature: None,
                detector: "threshold".into(),
                statistic: statistic.into(),
                value: v,
                threshold,
                p_value: None,
                active,
                message: format!(
                    "{}: windowed {statistic} {v:.4} is {} {threshold}",
                    self.model,
                    if below { "below" } else { "above" }
                ),
            });
        };
        check(AlertKind::Performance, "accuracy", q.accuracy, self.cfg.min_accuracy, true);
        check(AlertKind::Performance, "auc", q.auc, self.cfg.min_auc, true);
        check(AlertKind::Latency, "p99_ms", q.p99_latency_ms, self.cfg.max_p99_latency_ms, false);
        // The concept detector's condition clears when an evaluation passes without a detection.
        out.push(Finding {
            kind: AlertKind::ConceptDrift,
            severity: Severity::Critical,
            feature: None,
            detector: self.detector.name().to_string(),
            statistic: "error_rate".into(),
            value: q.error_rate.unwrap_or(0.0),
            threshold: 0.0,
            p_value: None,
            active: false,
            message: format!("{}: no change in the error stream since the last evaluation", self.model),
        });
        out
    }

    /// Windowed quality.
    pub fn quality(&self) -> Quality {
        let labelled = self.quality.window_len();
        let mut lat: Vec<f64> = self.latency.iter().collect();
        lat.sort_by(f64::total_cmp);
        let p99 = (!lat.is_empty()).then(|| lat[((lat.len() as f64 * 0.99).ceil() as usize).clamp(1, lat.len()) - 1]);
        Quality {
            labelled,
            error_rate: self.error_rate(),
            accuracy: (labelled > 0).then(|| self.quality.window_accuracy()),
            auc: self.quality.window_auc(),
            p99_latency_ms: p99,
        }
    }
}
