//! From findings to alerts: an open condition (keyed kind/model/feature/detector) is alerted once when
//! it opens, again only after the cool-down if it still holds, and resolved (an alert with state
//! RESOLVED and the same key) after `resolve_after` consecutive clean observations (hysteresis), so
//! that a condition flickering around its threshold neither floods `vigil.alerts` nor opens and
//! closes at every evaluation.

use std::collections::HashMap;

use vigil_events::{Alert, AlertState, Severity};

use crate::monitor::Finding;

/// An open condition.
#[derive(Debug, Clone)]
struct Open {
    last_sent: i64,
    clean: u32,
}

/// What happened to a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Opened: a FIRING alert.
    Fired,
    /// Still open after the cool-down: a FIRING alert again.
    Repeated,
    /// Still open within the cool-down: nothing sent.
    Suppressed,
    /// Clean long enough: a RESOLVED alert.
    Resolved,
    /// Nothing to do.
    Quiet,
}

/// The open conditions of every model.
#[derive(Debug, Clone)]
pub struct AlertBook {
    cooldown_ms: i64,
    resolve_after: u32,
    open: HashMap<String, Open>,
}

impl AlertBook {
    /// A book with the given cool-down and hysteresis.
    pub fn new(cooldown: std::time::Duration, resolve_after: u32) -> AlertBook {
        let cooldown_ms = i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX);
        AlertBook { cooldown_ms, resolve_after: resolve_after.max(1), open: HashMap::new() }
    }

    /// Keys of the open conditions.
    pub fn open_keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.open.keys().cloned().collect();
        k.sort();
        k
    }

    /// Takes an alert read back from the alerts topic (this service's, from before a restart, or
    /// its own echo): a FIRING one opens its condition as sent at its time, so that it is not fired
    /// again within the cool-down; a RESOLVED one closes a condition opened before it.
    pub fn restore(&mut self, a: &Alert) {
        match a.state {
            AlertState::Firing => {
                let o = self.open.entry(a.dedup_key.clone()).or_insert(Open { last_sent: a.time, clean: 0 });
                o.last_sent = o.last_sent.max(a.time);
            }
            AlertState::Resolved => {
                if self.open.get(&a.dedup_key).is_some_and(|o| o.last_sent <= a.time) {
                    self.open.remove(&a.dedup_key);
                }
            }
        }
    }

    /// Records `f` for `model` (at `now`, champion `version`, live window `window`) and returns the
    /// alert to send, if any.
    pub fn observe(
        &mut self,
        model: &str,
        version: Option<i64>,
        f: &Finding,
        now: i64,
        window: (i64, i64),
    ) -> (Outcome, Option<Alert>) {
        let key = f.key(model);
        let outcome = match (self.open.get_mut(&key), f.active) {
            (None, true) => {
                self.open.insert(key.clone(), Open { last_sent: now, clean: 0 });
                Outcome::Fired
            }
            (Some(o), true) => {
                o.clean = 0;
                if now - o.last_sent >= self.cooldown_ms {
                    o.last_sent = now;
                    Outcome::Repeated
                } else {
                    Outcome::Suppressed
                }
            }
            (Some(o), false) => {
                o.clean += 1;
                if o.clean >= self.resolve_after {
                    self.open.remove(&key);
                    Outcome::Resolved
                } else {
                    Outcome::Quiet
                }
            }
            (None, false) => Outcome::Quiet,
        };
        let alert = match outcome {
            Outcome::Fired | Outcome::Repeated => Some(alert(model, version, f, &key, AlertState::Firing, now, window)),
            Outcome::Resolved => {
                let mut a = alert(model, version, f, &key, AlertState::Resolved, now, window);
                a.severity = Severity::Info;
                a.message = format!("resolved after {} clean evaluations: {}", self.resolve_after, clean_message(f));
                Some(a)
            }
            _ => None,
        };
        (outcome, alert)
    }
}

fn clean_message(f: &Finding) -> String {
    match f.p_value {
        Some(p) => format!(
            "{} {} is back in line ({} {:.4}, adjusted p {p:.3})",
            f.feature.as_deref().unwrap_or("the model"),
            f.detector,
            f.statistic,
            f.value
        ),
        None => format!("{} {} {:.4}", f.detector, f.statistic, f.value),
    }
}

fn alert(
    model: &str,
    version: Option<i64>,
    f: &Finding,
    key: &str,
    state: AlertState,
    now: i64,
    window: (i64, i64),
) -> Alert {
    Alert {
        alert_id: uuid::Uuid::new_v4().to_string(),
        time: now,
        kind: f.kind,
        state,
        severity: f.severity,
        model: Some(model.to_string()),
        model_version: version,
        feature: f.feature.clone(),
        detector: Some(f.detector.clone()),
        statistic: Some(f.statistic.clone()),
        value: Some(f.value),
        threshold: Some(f.threshold),
        p_value: f.p_value,
        window_start: Some(window.0),
        window_end: Some(window.1),
        message: f.message.clone(),
        dedup_key: key.to_string(),
    }
}
