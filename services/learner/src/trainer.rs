//! One model's training: featurise joined events with the raw form of the model's spec, learn
//! prequentially, keep the reference window, evaluate the champion on the same labels, and build
//! checkpoints (exact ONNX graph, spec with the learnt standardisation, metrics, reference statistics,
//! offsets, learner state) and the promotion decision. An encoder model's events are embedded here
//! by the frozen encoder its spec names, and its heads learn from the embeddings.

use std::collections::VecDeque;

use crate::config::{LearnerConfig, PromotionTest};
use serde::{Deserialize, Serialize};
use vigil_events::{FeatureKind, FeatureReference, ModelCheckpoint, PrequentialMetrics};
use vigil_features::spec::{Encoding, FeatureSpec};
use vigil_features::{FeatureError, Featurizer, Field};
use vigil_learn::metrics::Prequential;
use vigil_learn::select::{Metric, Policy};
use vigil_learn::{Example, Learner, Setup};
use vigil_stats::paired::Comparison;

/// A featurised event waiting for its label.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// Raw dense values (transformed, not standardised; NaN: missing).
    Dense(Vec<f64>),
    /// Hashed text.
    Text(Vec<i64>, Vec<f32>),
}

/// Counters of the join and of training.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Labels settled: applied, late, unknown, duplicate or malformed (labels read but still waiting for their
    /// event are not counted yet, so that the count matches the offsets a checkpoint records).
    pub labels: u64,
    /// Labels applied (joined and learnt from).
    pub trained: u64,
    /// Labels whose event was evicted from the join window first.
    pub late: u64,
    /// Labels for events never seen.
    pub unknown: u64,
    /// Second labels for an event already learnt from.
    #[serde(default)]
    pub duplicates: u64,
    /// Labels that did not decode or had no usable value.
    pub malformed: u64,
    /// Events that could not be featurised.
    pub bad_events: u64,
}

/// What survives a restart (the learner state in a checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The spec as the model's inputs were first defined (before learnt standardisation).
    pub spec: String,
    /// The learner.
    pub learner: Learner,
    /// Prequential metrics of the served predictions.
    pub served: Prequential,
    /// The champion's version and its metrics on the same labels.
    pub champion: Option<(i64, Prequential)>,
    /// Counters.
    pub counts: Counts,
    /// The last examples' raw rows and served scores (reference window).
    pub recent: VecDeque<(Vec<f64>, f64)>,
    /// Examples since the last checkpoint.
    pub since_checkpoint: u64,
    /// The last labelled examples both the served model and the champion scored: (served,
    /// champion, label), for the paired promotion test.
    #[serde(default)]
    pub pairs: VecDeque<(f32, f32, bool)>,
    /// When this learner last promoted (UTC ms).
    #[serde(default)]
    pub last_promoted_ms: Option<i64>,
}

/// Training of one model.
pub struct Trainer {
    /// Model name.
    pub model: String,
    /// Everything checkpointed.
    pub state: State,
    spec: FeatureSpec,
    raw: Featurizer,
    /// Reference window length.
    window: usize,
    /// The encoder of an encoder model.
    encoder: Option<Encoder>,
}

/// The sentence encoder an encoder model's spec names, loaded for the learner.
pub struct Encoder {
    /// The checked artifact (its tokenizer featurises).
    pub artifact: vigil_models::EncoderArtifact,
    /// Its session.
    pub embedder: vigil_models::Embedder,
}

impl Encoder {
    /// The encoder `spec` names, if it names one, from the model folders in `artifacts`.
    pub fn for_spec(
        spec: &FeatureSpec,
        artifacts: &vigil_models::artifacts::Artifacts,
        runtime: &vigil_models::Runtime,
    ) -> Result<Option<Encoder>, String> {
        let Some(e) = &spec.encoder else { return Ok(None) };
        let artifact = vigil_models::EncoderArtifact::load(e, artifacts, runtime)
            .map_err(|why| format!("the encoder of the spec (learner.model-dirs): {why}"))?;
        let embedder =
            artifact.embedder(runtime, vigil_models::Provider::Cpu, 1).map_err(|e| vigil_runtime::error_chain(&e))?;
        Ok(Some(Encoder { artifact, embedder }))
    }
}

/// A metric's windowed value (higher is better).
pub fn score(p: &Prequential, metric: Metric) -> f64 {
    match metric {
        Metric::Accuracy => p.window_accuracy(),
        Metric::Auc => p.window_auc().unwrap_or(0.5),
        Metric::LogLoss => -p.window_log_loss(),
    }
}

impl Trainer {
    /// A fresh trainer for `spec`.
    pub fn new(
        model: &str,
        spec: FeatureSpec,
        schema: &apache_avro::Schema,
        cfg: &LearnerConfig,
        encoder: Option<Encoder>,
    ) -> Result<Trainer, String> {
        let raw = featurizer(&spec, schema, &encoder)?;
        let policy = Policy {
            metric: cfg.metric,
            round: (cfg.window as u64 * 2).max(500),
            min_keep: 2,
            min_age: (cfg.window as u64 / 2).max(200),
            window: cfg.window,
            threshold: 0.5,
        };
        let (width, numeric, candidates) = match (&spec.text, &spec.encoder) {
            (Some(t), _) => (0, 0, vigil_learn::learner::text_candidates(cfg.seed, t.buckets as usize)),
            (None, Some(e)) => (e.dim as usize, 0, vigil_learn::learner::encoder_candidates(cfg.seed)),
            (None, None) => (
                spec.width(),
                spec.numeric.len(),
                vigil_learn::learner::tabular_candidates_of(cfg.seed, cfg.metric == Metric::Auc, &cfg.families),
            ),
        };
        let candidates = candidates.into_iter().map(|mut h| {
            h.anchor = cfg.anchor;
            h
        });
        let setup = Setup {
            width,
            numeric,
            clip: spec.numeric.iter().map(|n| n.clip).collect(),
            candidates: candidates.collect(),
            policy,
            // Text rows are long, embeddings longer, and the buffer goes into every checkpoint's
            // learner state (JSON): 200 embeddings are ~1.5 MB of it.
            rehearsal: match (&spec.text, &spec.encoder) {
                (Some(_), _) => cfg.rehearsal.min(1000),
                (None, Some(_)) => cfg.rehearsal.min(200),
                (None, None) => cfg.rehearsal,
            },
            replay_ratio: cfg.replay_ratio,
            serve_top: cfg.serve_top,
            seed: cfg.seed,
        };
        let state = State {
            spec: spec.to_toml(),
            learner: Learner::new(setup),
            served: Prequential::new(cfg.window, 0.5),
            champion: None,
            counts: Counts::default(),
            recent: VecDeque::new(),
            since_checkpoint: 0,
            pairs: VecDeque::new(),
            last_promoted_ms: None,
        };
        Ok(Trainer { model: model.to_string(), state, spec, raw, window: cfg.window, encoder })
    }

    /// A trainer resumed from a checkpoint's learner state (`encoder`: the one its spec names).
    pub fn resume(
        model: &str,
        state: State,
        schema: &apache_avro::Schema,
        cfg: &LearnerConfig,
        encoder: Option<Encoder>,
    ) -> Result<Trainer, String> {
        let spec = Self::spec_of(&state)?;
        let raw = featurizer(&spec, schema, &encoder)?;
        Ok(Trainer { model: model.to_string(), state, spec, raw, window: cfg.window, encoder })
    }

    /// The spec a learner state trains.
    pub fn spec_of(state: &State) -> Result<FeatureSpec, String> {
        FeatureSpec::parse(&state.spec).map_err(|e| e.to_string())
    }

    /// The spec this trainer trains.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// The record fields the spec reads.
    pub fn fields(&self) -> &[String] {
        self.raw.fields()
    }

    /// Featurises an event's fields (in [`Trainer::fields`] order); a missing numeric value is NaN;
    /// an encoder model's text is embedded.
    pub fn featurise(&mut self, fields: &[Field<'_>]) -> Result<Row, FeatureError> {
        Ok(match self.raw.row(fields)? {
            vigil_features::Row::Text(i, v) => Row::Text(i, v),
            vigil_features::Row::Tokens(ids) => {
                let tokens = |why: String| FeatureError::Tokens { field: String::new(), why };
                let e = self.encoder.as_mut().ok_or_else(|| tokens("the encoder is not loaded".into()))?;
                let embedding = e.embedder.embed_one(&ids).map_err(|e| tokens(vigil_runtime::error_chain(&e)))?;
                Row::Dense(embedding.into_iter().map(f64::from).collect())
            }
            vigil_features::Row::Dense(x) => {
                Row::Dense(x.iter().map(|v| if v.is_infinite() { f64::NAN } else { f64::from(*v) }).collect())
            }
        })
    }

    /// Learns from a joined example; `champion_p` is the champion's score for it, if one serves.
    pub fn learn(&mut self, row: &Row, y: f64, champion_p: Option<f64>) -> f64 {
        let p = match row {
            Row::Dense(x) => self.state.learner.learn(Example::Dense(x), y),
            Row::Text(i, v) => self.state.learner.learn(Example::Text(i, v), y),
        };
        let label = y >= 0.5;
        self.state.served.update(p, label);
        if let (Some(cp), Some((_, m))) = (champion_p, self.state.champion.as_mut()) {
            m.update(cp, label);
            if self.state.pairs.len() == self.window {
                self.state.pairs.pop_front();
            }
            self.state.pairs.push_back((p as f32, cp as f32, label));
        }
        self.state.counts.trained += 1;
        self.state.since_checkpoint += 1;
        if let Row::Dense(x) = row {
            if self.state.recent.len() == self.window {
                self.state.recent.pop_front();
            }
            // An embedding is no feature the drift service watches: only its score is kept.
            let kept = if self.spec.is_tabular() { x.clone() } else { Vec::new() };
            self.state.recent.push_back((kept, p));
        }
        p
    }

    /// The champion now serving (resets its metrics when it changed).
    pub fn set_champion(&mut self, version: Option<i64>) {
        match (version, &self.state.champion) {
            (Some(v), Some((cur, _))) if *cur == v => {}
            (Some(v), _) => {
                self.state.champion = Some((v, Prequential::new(self.window, 0.5)));
                self.state.pairs.clear();
            }
            (None, _) => {
                self.state.champion = None;
                self.state.pairs.clear();
            }
        }
    }

    /// The checkpoint of the current best model, as a candidate (not yet published).
    pub fn checkpoint(
        &self,
        version: i64,
        parent: Option<i64>,
        now_ms: i64,
        offsets: Vec<vigil_events::TopicOffset>,
    ) -> Result<ModelCheckpoint, String> {
        let (model, spec) = self.state.learner.export(&self.spec);
        let onnx = model.to_onnx(&self.model, version).to_bytes();
        let served = &self.state.served;
        let (precision, recall) = served.window_precision_recall();
        let mut cp = vigil_models::checkpoint::build(
            vigil_models::checkpoint::NewCheckpoint {
                model: &self.model,
                version,
                parent,
                onnx,
                spec: &spec.to_toml(),
                status: vigil_events::CheckpointStatus::Candidate,
                reason: format!(
                    "learner: {} after {} labelled examples",
                    self.state.learner.served().join(" + "),
                    self.state.counts.trained
                ),
                now_ms,
            },
            None,
        );
        cp.metrics = Some(PrequentialMetrics {
            examples_seen: self.state.counts.trained as i64,
            log_loss: served.window_log_loss(),
            accuracy: served.window_accuracy(),
            auc: served.window_auc(),
            window: served.window_len() as i64,
            overall_accuracy: Some(served.accuracy()),
            precision,
            recall,
            threshold: served.threshold(),
        });
        cp.offsets = offsets;
        cp.reference = self.reference(&spec);
        cp.learner_state = Some(serde_json::to_vec(&self.state).map_err(|e| e.to_string())?);
        Ok(cp)
    }

    /// Reference statistics of the recent window: per numeric feature a sample, deciles and counts;
    /// per one-hot categorical feature the category counts; and the served scores.
    fn reference(&self, spec: &FeatureSpec) -> Vec<FeatureReference> {
        let recent = &self.state.recent;
        let mut out = Vec::new();
        if recent.is_empty() {
            return out;
        }
        for (k, n) in spec.numeric.iter().enumerate() {
            let sample: Vec<f64> = recent.iter().map(|(x, _)| x[k]).filter(|v| v.is_finite()).collect();
            out.push(numeric_reference(n.feature_name(), FeatureKind::Numeric, sample));
        }
        let mut offset = spec.numeric.len();
        for c in &spec.categorical {
            let slots = match c.encoding {
                Encoding::OneHot => c.values.len() + 1,
                Encoding::Hash => c.buckets as usize,
            };
            let mut counts = vec![0i64; slots];
            for (x, _) in recent {
                if let Some(i) = (0..slots).find(|i| x[offset + i] > 0.5) {
                    counts[i] += 1;
                }
            }
            let categories = match c.encoding {
                Encoding::OneHot => c.values.iter().cloned().chain(std::iter::once("<other>".to_string())).collect(),
                Encoding::Hash => (0..slots).map(|b| format!("#{b}")).collect(),
            };
            out.push(FeatureReference {
                feature: c.field.clone(),
                kind: FeatureKind::Categorical,
                count: recent.len() as i64,
                edges: Vec::new(),
                categories,
                counts,
                sample: Vec::new(),
            });
            offset += slots;
        }
        out.push(numeric_reference("__score__", FeatureKind::Score, recent.iter().map(|(_, p)| *p).collect()));
        out
    }

    /// Whether the last checkpoint should replace the champion: it beats the champion's windowed
    /// metric by the margin (or there is no champion yet), significantly so under
    /// `promotion-test = "paired"`, and the last promotion is `min-promotion-interval-ms` old.
    pub fn should_promote(&self, cfg: &LearnerConfig, now_ms: i64) -> (bool, String) {
        let mine = score(&self.state.served, cfg.metric);
        let since = self.state.last_promoted_ms.map(|t| now_ms.saturating_sub(t));
        match &self.state.champion {
            None => (true, format!("no champion yet; windowed {} {mine:.4}", cfg.metric)),
            Some((v, m)) if m.window_len() < self.window.min(200) => {
                (false, format!("champion v{v} not evaluated on enough labels yet ({})", m.window_len()))
            }
            Some((v, _)) if since.is_some_and(|s| (s as u128) < cfg.min_promotion_interval.as_millis()) => {
                let s = since.unwrap_or(0) / 1000;
                (false, format!("promoted {s} s ago; champion v{v} stays (min-promotion-interval-ms)"))
            }
            Some((v, m)) => {
                let theirs = score(m, cfg.metric);
                let ok = mine > theirs + cfg.promote_margin;
                let why = format!(
                    "windowed {} {mine:.4} vs champion v{v} {theirs:.4} (margin {})",
                    cfg.metric, cfg.promote_margin
                );
                match (ok, cfg.promotion_test) {
                    (true, PromotionTest::Paired) => self.paired_evidence(cfg, why),
                    _ => (ok, why),
                }
            }
        }
    }

    /// The paired test of the served model against the champion on the labels both scored.
    fn paired_evidence(&self, cfg: &LearnerConfig, why: String) -> (bool, String) {
        let pairs: Vec<(f64, f64, bool)> =
            self.state.pairs.iter().map(|(a, b, l)| (f64::from(*a), f64::from(*b), *l)).collect();
        let (test, result) = compare(&pairs, cfg.metric, cfg.promote_margin);
        match result {
            Some(c) => (
                c.p_value < cfg.promotion_alpha,
                format!(
                    "{why}; {test} on {} shared labels: gain {:.4} ± {:.4}, p {:.2e} (alpha {})",
                    pairs.len(),
                    c.gain,
                    c.se,
                    c.p_value,
                    cfg.promotion_alpha
                ),
            ),
            None => (false, format!("{why}; {test}: not enough shared labels of both classes ({})", pairs.len())),
        }
    }
}

/// Is the first model better than the second by more than `margin` on the same labelled examples
/// (`(first's probability, second's, label)`)? DeLong's test for auc, a paired z-test on per-example
/// gains for accuracy and log loss; the test's name and the comparison (`None` without enough of
/// both classes).
pub fn compare(pairs: &[(f64, f64, bool)], metric: Metric, margin: f64) -> (&'static str, Option<Comparison>) {
    use vigil_stats::paired;
    let loss = |p: f64, l: bool| -(if l { p } else { 1.0 - p }).clamp(1e-15, 1.0).ln();
    let hit = |p: f64, l: bool| f64::from(u8::from((p >= 0.5) == l));
    match metric {
        Metric::Auc => {
            let (first, second): (Vec<f64>, Vec<f64>) = pairs.iter().map(|(a, b, _)| (*a, *b)).unzip();
            let labels: Vec<bool> = pairs.iter().map(|p| p.2).collect();
            ("DeLong", paired::delong(&first, &second, &labels, margin))
        }
        Metric::Accuracy => {
            let gains: Vec<f64> = pairs.iter().map(|(a, b, l)| hit(*a, *l) - hit(*b, *l)).collect();
            ("paired z", paired::paired(&gains, margin))
        }
        Metric::LogLoss => {
            let gains: Vec<f64> = pairs.iter().map(|(a, b, l)| loss(*b, *l) - loss(*a, *l)).collect();
            ("paired z", paired::paired(&gains, margin))
        }
    }
}

/// The raw featuriser of `spec` (with the encoder's tokenizer, for an encoder model).
fn featurizer(
    spec: &FeatureSpec,
    schema: &apache_avro::Schema,
    encoder: &Option<Encoder>,
) -> Result<Featurizer, String> {
    let raw = Featurizer::new(&spec.raw(), schema).map_err(|p| p.join("; "))?;
    Ok(match encoder {
        Some(e) => raw.with_tokenizer(e.artifact.tokenizer.clone()),
        None => raw,
    })
}

fn numeric_reference(name: &str, kind: FeatureKind, mut sample: Vec<f64>) -> FeatureReference {
    sample.sort_by(f64::total_cmp);
    let n = sample.len();
    let mut edges: Vec<f64> =
        (0..=10).map(|q| if n == 0 { 0.0 } else { sample[((q * (n - 1)) / 10).min(n - 1)] }).collect();
    edges.dedup();
    let mut counts = vec![0i64; edges.len().saturating_sub(1).max(1)];
    for v in &sample {
        let i = edges.partition_point(|e| e <= v).saturating_sub(1).min(counts.len() - 1);
        counts[i] += 1;
    }
    // Keep at most 1,000 values (evenly spaced in rank) for two-sample tests.
    let step = (n / 1000).max(1);
    let kept: Vec<f64> = sample.iter().step_by(step).copied().collect();
    FeatureReference {
        feature: name.to_string(),
        kind,
        count: n as i64,
        edges,
        categories: Vec::new(),
        counts,
        sample: kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trainer(cfg: &LearnerConfig) -> Trainer {
        let codec = vigil_events::Codec::new();
        let schema = codec.schema(vigil_events::schemas::names::TRANSACTION).unwrap();
        let spec = FeatureSpec::parse(vigil_features::FRAUD_SPEC).unwrap();
        Trainer::new("fraud", spec, schema, cfg, None).unwrap()
    }

    /// Fills the champion's window and the shared pairs: `served` and `champion` score each label.
    fn evaluate(t: &mut Trainer, n: usize, served: impl Fn(usize, bool) -> f64, champion: impl Fn(usize, bool) -> f64) {
        t.set_champion(Some(1));
        for i in 0..n {
            let y = i % 3 == 0;
            let (a, b) = (served(i, y), champion(i, y));
            t.state.served.update(a, y);
            if let Some((_, m)) = t.state.champion.as_mut() {
                m.update(b, y);
            }
            t.state.pairs.push_back((a as f32, b as f32, y));
        }
    }

    /// A noisy score: the label's signal plus a deterministic wobble (`phase` picks the wobble).
    fn noisy(i: usize, y: bool, signal: f64, phase: f64) -> f64 {
        let wobble = ((i as f64 * phase).fract() - 0.5) * 0.8;
        (0.5 + if y { signal } else { -signal } + wobble).clamp(0.0, 1.0)
    }

    #[test]
    fn a_paired_test_promotes_on_evidence_not_on_a_lucky_window() {
        let margin_only =
            LearnerConfig { window: 2000, promotion_test: PromotionTest::None, ..LearnerConfig::default() };
        let paired = LearnerConfig { promotion_test: PromotionTest::Paired, ..margin_only.clone() };
        // A little better, within the noise: the served scores wobble independently of the champion's.
        let lucky = |i: usize, y: bool| noisy(i, y, 0.104, 0.414_214);
        let champion = |i: usize, y: bool| noisy(i, y, 0.1, 0.618_034);
        let mut t = trainer(&margin_only);
        evaluate(&mut t, 2000, lucky, champion);
        let (by_margin, why) = t.should_promote(&margin_only, 0);
        let (by_evidence, why_paired) = t.should_promote(&paired, 0);
        eprintln!("{why}\n{why_paired}");
        assert!(by_margin, "the margin alone promotes: {why}");
        assert!(!by_evidence, "the paired test does not: {why_paired}");
        assert!(why_paired.contains("DeLong"), "{why_paired}");
        // Clearly better: both promote.
        let mut t = trainer(&margin_only);
        evaluate(&mut t, 2000, |i, y| noisy(i, y, 0.25, 0.414_214), champion);
        let (ok, why) = t.should_promote(&paired, 0);
        assert!(ok, "{why}");
        // Not again within the minimum interval.
        t.state.last_promoted_ms = Some(1_000);
        let spaced = LearnerConfig { min_promotion_interval: std::time::Duration::from_secs(600), ..paired };
        let (again, why) = t.should_promote(&spaced, 61_000);
        assert!(!again && why.contains("60 s ago"), "{why}");
    }
}
