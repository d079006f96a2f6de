//! Surge alerts, for the financial-sentiment monitoring use: per group (the input's `group-field`,
//! such as a ticker, a topic or a source) the share of negative predictions in the group's last
//! `surge-window` champion scores is compared with the group's own baseline — its earlier scores,
//! with a memory of ten windows — by a one-sided two-proportion z-test (Bonferroni over the groups
//! tested). A significant rise of at least `surge-min-effect` raises a `SENTIMENT_SURGE` finding
//! naming the group and both shares; the alert book applies the drift alerts' cool-down and
//! resolve rules. Events and scores meet by event id in bounded, aged joins; groups are capped at
//! `surge-max-groups` (later groups are not watched, and counted).

use std::collections::{HashMap, VecDeque};

use vigil_events::{AlertKind, Severity};
use vigil_stats::proportions;

use crate::config::DriftConfig;
use crate::monitor::{Evaluation, Finding};
use crate::pending::Pending;

/// A group's recent and baseline predictions.
#[derive(Debug, Default)]
struct Group {
    /// The last predictions, `true` = negative.
    window: VecDeque<bool>,
    negative_in_window: usize,
    /// Predictions older than the window (decayed to at most ten windows).
    base_n: f64,
    base_negative: f64,
}

impl Group {
    fn add(&mut self, negative: bool, window: usize) {
        self.window.push_back(negative);
        self.negative_in_window += usize::from(negative);
        while self.window.len() > window {
            let old = self.window.pop_front().unwrap_or(false);
            self.negative_in_window -= usize::from(old);
            self.base_n += 1.0;
            self.base_negative += f64::from(u8::from(old));
        }
        let cap = 10.0 * window as f64;
        if self.base_n > cap {
            let keep = cap / self.base_n;
            self.base_n *= keep;
            self.base_negative *= keep;
        }
    }
}

/// One model's surge watch.
pub struct Surge {
    model: String,
    groups: HashMap<String, Group>,
    /// Event id → group, waiting for the champion's score.
    events: Pending<String>,
    /// Event id → negative, waiting for the event.
    scores: Pending<bool>,
    newest_ms: i64,
    since_eval: usize,
    window_start: i64,
    /// Events of groups past the cap, not watched.
    pub unwatched: u64,
    cfg: DriftConfig,
}

impl Surge {
    /// A watch over `model`'s groups.
    pub fn new(model: &str, cfg: &DriftConfig) -> Surge {
        let age = i64::try_from(cfg.join_max_age.as_millis()).unwrap_or(i64::MAX);
        Surge {
            model: model.to_string(),
            groups: HashMap::new(),
            events: Pending::new(cfg.join_window, age),
            scores: Pending::new(cfg.join_window, age),
            newest_ms: 0,
            since_eval: 0,
            window_start: 0,
            unwatched: 0,
            cfg: cfg.clone(),
        }
    }

    /// A new champion serves: its predictions are compared with its own, not its predecessor's
    /// (every group's window and baseline start again; events waiting for scores keep waiting).
    pub fn new_champion(&mut self) {
        self.groups.clear();
        self.scores.clear();
        self.since_eval = 0;
        self.window_start = 0;
    }

    /// An input event of `group` (at record time `ts`).
    pub fn event(&mut self, event_id: &str, group: &str, ts: i64) -> Option<Evaluation> {
        self.newest_ms = self.newest_ms.max(ts);
        match self.scores.take(event_id) {
            Some(negative) => self.joined(group, negative),
            None => {
                self.events.insert(event_id, group.to_string(), self.newest_ms);
                None
            }
        }
    }

    /// A champion score: negative when its decision is.
    pub fn score(&mut self, event_id: &str, negative: bool, ts: i64) -> Option<Evaluation> {
        self.newest_ms = self.newest_ms.max(ts);
        match self.events.take(event_id) {
            Some(group) => self.joined(&group, negative),
            None => {
                self.scores.insert(event_id, negative, self.newest_ms);
                None
            }
        }
    }

    fn joined(&mut self, group: &str, negative: bool) -> Option<Evaluation> {
        if self.window_start == 0 {
            self.window_start = self.newest_ms;
        }
        let (cap, window) = (self.cfg.surge_max_groups, self.cfg.surge_window);
        if let Some(g) = self.groups.get_mut(group) {
            g.add(negative, window);
        } else if self.groups.len() < cap {
            self.groups.entry(group.to_string()).or_default().add(negative, window);
        } else {
            self.unwatched += 1;
        }
        self.since_eval += 1;
        if self.since_eval < self.cfg.evaluate_every {
            return None;
        }
        self.since_eval = 0;
        Some(self.evaluate())
    }

    /// Tests every group with enough predictions in its window and its baseline.
    pub fn evaluate(&mut self) -> Evaluation {
        let min = self.cfg.surge_min_count as f64;
        let tested: Vec<(&String, &Group, proportions::ProportionTest)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.window.len() as f64 >= min && g.base_n >= min)
            .filter_map(|(name, g)| {
                let t = proportions::greater(
                    g.negative_in_window as f64,
                    g.window.len() as f64,
                    g.base_negative,
                    g.base_n,
                )?;
                Some((name, g, t))
            })
            .collect();
        let k = tested.len().max(1) as f64;
        let findings = tested.into_iter().map(|(name, g, t)| self.finding(name, g, t, k)).collect();
        let window = (self.window_start, self.newest_ms);
        self.window_start = self.newest_ms;
        Evaluation { features: Vec::new(), findings, window, events: self.cfg.surge_window }
    }

    fn finding(&self, group: &str, g: &Group, t: proportions::ProportionTest, tested: f64) -> Finding {
        let (share, base) = (g.negative_in_window as f64 / g.window.len() as f64, g.base_negative / g.base_n);
        let p = (t.p_value * tested).min(1.0);
        let active = p < self.cfg.significance && share - base >= self.cfg.surge_min_effect;
        Finding {
            kind: AlertKind::SentimentSurge,
            severity: Severity::Warning,
            feature: Some(group.to_string()),
            detector: "two-proportion".into(),
            statistic: "negative_share".into(),
            value: share,
            threshold: base + self.cfg.surge_min_effect,
            p_value: Some(p),
            active,
            message: format!(
                "{}: negative predictions in {group} at {:.1} % of the last {} against {:.1} % before (adjusted p {p:.2e})",
                self.model,
                100.0 * share,
                g.window.len(),
                100.0 * base
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_stats::pyrandom::PyRandom;

    fn cfg() -> DriftConfig {
        DriftConfig { surge_window: 200, surge_min_count: 50, evaluate_every: 100, ..DriftConfig::default() }
    }

    /// Feeds `n` events per group (in turn), negative with the group's share; returns the findings
    /// active at the end of the run, by group.
    fn feed(s: &mut Surge, rng: &mut PyRandom, shares: &[(&str, f64)], n: usize, from: usize) -> Vec<String> {
        let mut active = Vec::new();
        for i in from..from + n {
            for (group, share) in shares {
                let id = format!("{group}-{i}");
                let negative = f64::from(rng.next_u32()) / 4_294_967_296.0 < *share;
                // Half the scores come before their events.
                let e = if i % 2 == 0 {
                    s.event(&id, group, i as i64).or(s.score(&id, negative, i as i64))
                } else {
                    s.score(&id, negative, i as i64).or(s.event(&id, group, i as i64))
                };
                if let Some(e) = e {
                    active = e.findings.iter().filter(|f| f.active).filter_map(|f| f.feature.clone()).collect();
                }
            }
        }
        active
    }

    #[test]
    fn a_surge_in_one_group_is_found_and_named_and_the_others_stay_quiet() {
        let mut s = Surge::new("sentiment", &cfg());
        let mut rng = PyRandom::new(7);
        let calm = [("source=tweets", 0.2), ("source=news", 0.3), ("source=reviews", 0.25)];
        assert!(feed(&mut s, &mut rng, &calm, 3000, 0).is_empty(), "no surge in stationary groups");
        let surge = [("source=tweets", 0.2), ("source=news", 0.6), ("source=reviews", 0.25)];
        assert_eq!(feed(&mut s, &mut rng, &surge, 300, 3000), vec!["source=news".to_string()]);
        let e = s.evaluate();
        let news = e.findings.iter().find(|f| f.feature.as_deref() == Some("source=news")).unwrap();
        assert!(news.value > 0.5 && news.threshold < 0.5, "{news:?}");
        assert!(news.message.contains("source=news"), "{}", news.message);
    }

    #[test]
    fn a_new_champion_starts_every_group_again() {
        let mut s = Surge::new("sentiment", &cfg());
        let mut rng = PyRandom::new(9);
        feed(&mut s, &mut rng, &[("source=tweets", 0.1)], 1000, 0);
        s.new_champion();
        assert!(s.groups.is_empty());
        // The new model calls far more texts negative: compared with itself, that is no surge.
        assert!(feed(&mut s, &mut rng, &[("source=tweets", 0.5)], 1000, 1000).is_empty());
    }

    #[test]
    fn groups_are_capped() {
        let mut s = Surge::new("sentiment", &DriftConfig { surge_max_groups: 2, ..cfg() });
        for (i, g) in ["a", "b", "c", "c"].iter().enumerate() {
            s.event(&i.to_string(), g, 0);
            s.score(&i.to_string(), true, 0);
        }
        assert_eq!(s.groups.len(), 2);
        assert_eq!(s.unwatched, 2);
    }
}
