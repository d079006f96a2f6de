//! The rollback guard. When the champion moves forward — the learner's promotion, an A/B winner's
//! or an operator's — the version it replaced stays loaded and scores the same labelled events
//! beside the new one for `learner.rollback-window` labels. Once `rollback-min-labels` labels are
//! in, and every 100 after, the guard compares them on those labels: when the predecessor beats the
//! new champion by more than `rollback-margin` in the learner's metric, significantly (the paired
//! test of `trainer::compare` at `promotion-alpha`), the new champion is rolled back; when the window
//! passes without that, the guard lets go. A promoted version that falls behind stops serving
//! within a few hundred labels instead of waiting for a person to notice.

use crate::champion::Champion;
use crate::config::LearnerConfig;

/// The predecessor of a new champion, scoring beside it, and the watch over them.
pub struct Guard {
    /// The version the champion replaced.
    pub predecessor: Champion,
    /// Their scores on the same labels.
    pub watch: Watch,
}

/// The labelled events both versions scored, and when to look next.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The predecessor's version.
    pub old: i64,
    /// The new champion's version.
    pub new: i64,
    /// (predecessor's probability, new champion's, label) on the same events.
    pairs: Vec<(f64, f64, bool)>,
    next_look: usize,
}

/// What the guard says after a label.
#[derive(Debug, PartialEq)]
pub enum Judgement {
    /// Not enough labels yet, or no evidence either way yet.
    Wait,
    /// The window passed: the new champion holds.
    Holds(String),
    /// The predecessor is better: roll the new champion back (why).
    RollBack(String),
}

impl Watch {
    /// A watch of `new` against `old`.
    pub fn new(old: i64, new: i64) -> Watch {
        Watch { old, new, pairs: Vec::new(), next_look: 0 }
    }

    /// One labelled event both scored.
    pub fn push(&mut self, predecessor: f64, champion: f64, label: bool) {
        self.pairs.push((predecessor, champion, label));
    }

    /// Judges the labels so far.
    pub fn judge(&mut self, cfg: &LearnerConfig) -> Judgement {
        let n = self.pairs.len();
        if (n as u64) < cfg.rollback_min_labels || n < self.next_look {
            return Judgement::Wait;
        }
        self.next_look = n + 100;
        let (old, new) = (self.old, self.new);
        let (test, result) = crate::trainer::compare(&self.pairs, cfg.metric, cfg.rollback_margin);
        let done = n as u64 >= cfg.rollback_window;
        match result {
            Some(c) if c.p_value < cfg.promotion_alpha => Judgement::RollBack(format!(
                "v{old} beat v{new} by {:.4} ± {:.4} in {} on the same {n} labels (margin {}, {test} p {:.2e}); v{old} serves again",
                c.gain, c.se, cfg.metric, cfg.rollback_margin, c.p_value
            )),
            Some(c) if done => Judgement::Holds(format!(
                "v{new} held against v{old} over {n} labels ({} gain of v{old} {:+.4})",
                cfg.metric, c.gain
            )),
            None if done => Judgement::Holds(format!("v{new} held: {n} labels without both classes")),
            _ => Judgement::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(n: usize, seed: u64) -> Vec<(f64, bool)> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                (u, u < 0.3)
            })
            .collect()
    }

    #[test]
    fn a_worse_champion_is_rolled_back_and_an_equal_one_holds() {
        let cfg = LearnerConfig { rollback_min_labels: 200, rollback_window: 1000, ..LearnerConfig::default() };
        // The predecessor ranks well (its score follows the label); the new champion says 0.9 always.
        let mut w = Watch::new(4, 5);
        let mut said = Judgement::Wait;
        for (u, y) in labelled(1000, 7) {
            w.push(if y { 0.4 + u } else { u - 0.3 }, 0.9, y);
            said = w.judge(&cfg);
            if said != Judgement::Wait {
                break;
            }
        }
        let Judgement::RollBack(why) = said else { panic!("{said:?}") };
        assert_eq!(w.pairs.len(), 200, "judged at the first look");
        assert!(why.contains("v4 beat v5") && why.contains("auc"), "{why}");
        // The same model on both sides: it holds once the window passes, never rolled back.
        let mut w = Watch::new(4, 5);
        let mut said = Vec::new();
        for (u, y) in labelled(1000, 9) {
            let p = if y { 0.3 + u } else { u };
            w.push(p, p, y);
            said.push(w.judge(&cfg));
        }
        assert!(!said.iter().any(|j| matches!(j, Judgement::RollBack(_))));
        assert!(matches!(said.last(), Some(Judgement::Holds(_))), "{:?}", said.last());
    }
}
