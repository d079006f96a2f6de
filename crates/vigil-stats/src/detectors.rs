//! Streaming drift detectors with River 0.26's semantics and defaults, so that for the same
//! parameters and stream they report the same detection indices: ADWIN (Bifet & Gavaldà 2007, with
//! exponential-histogram buckets), Page-Hinkley, DDM (Gama et al. 2004) and KSWIN (Raab et al.
//! 2020). Like River's, each detector starts afresh on the update after a detection.

use std::collections::VecDeque;

use crate::ks;
use crate::pyrandom::PyRandom;

/// A streaming change detector.
pub trait Detector: Send {
    /// Adds one value; returns whether a change is detected at it.
    fn update(&mut self, x: f64) -> bool;
    /// The detector's name, as alerts call it.
    fn name(&self) -> &'static str;
}

/// A detector chosen by name, with its parameters (what configuration files hold): every parameter
/// left out takes River's default for that detector.
///
/// ```toml
/// kind = "kswin"     # adwin, ddm, page-hinkley or kswin
/// alpha = 0.005
/// window-size = 100
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DetectorConfig {
    /// Which detector.
    pub kind: DetectorKind,
    /// ADWIN: confidence (0.002); Page-Hinkley: tolerated change (0.005).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// Page-Hinkley: detection threshold (50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Page-Hinkley: forgetting factor (0.9999); KSWIN: the test's significance (0.005).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Page-Hinkley: values before detecting (30); DDM: warm start (30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u64>,
    /// DDM: warning level in standard deviations (2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning_threshold: Option<f64>,
    /// DDM: drift level in standard deviations (3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_threshold: Option<f64>,
    /// KSWIN: window (100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_size: Option<usize>,
    /// KSWIN: the recent part of the window that is tested (30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stat_size: Option<usize>,
    /// KSWIN: seed of its sampling (42).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// The detectors there are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorKind {
    /// ADWIN.
    #[default]
    Adwin,
    /// DDM.
    Ddm,
    /// Page-Hinkley.
    PageHinkley,
    /// KSWIN.
    Kswin,
}

impl DetectorConfig {
    /// Every problem: parameters the kind does not take, or values out of range (`key` prefixes
    /// the messages).
    pub fn validate(&self, key: &str) -> Vec<String> {
        use DetectorKind::*;
        let mut p = Vec::new();
        let takes: &[&str] = match self.kind {
            Adwin => &["delta"],
            Ddm => &["min-instances", "warning-threshold", "drift-threshold"],
            PageHinkley => &["delta", "threshold", "alpha", "min-instances"],
            Kswin => &["alpha", "window-size", "stat-size", "seed"],
        };
        let set = [
            ("delta", self.delta.is_some()),
            ("threshold", self.threshold.is_some()),
            ("alpha", self.alpha.is_some()),
            ("min-instances", self.min_instances.is_some()),
            ("warning-threshold", self.warning_threshold.is_some()),
            ("drift-threshold", self.drift_threshold.is_some()),
            ("window-size", self.window_size.is_some()),
            ("stat-size", self.stat_size.is_some()),
            ("seed", self.seed.is_some()),
        ];
        for (name, _) in set.iter().filter(|(n, on)| *on && !takes.contains(n)) {
            p.push(format!("{key}.{name}: {:?} takes only {}", self.kind, takes.join(", ")));
        }
        let unit = |name: &str, v: Option<f64>, p: &mut Vec<String>| {
            if let Some(v) = v.filter(|v| !(*v > 0.0 && *v < 1.0)) {
                p.push(format!("{key}.{name}: {v} is not in (0, 1)"));
            }
        };
        if matches!(self.kind, Adwin) {
            unit("delta", self.delta, &mut p);
        }
        unit("alpha", self.alpha, &mut p);
        let (w, s) = (self.window_size.unwrap_or(100), self.stat_size.unwrap_or(30));
        if matches!(self.kind, Kswin) && s >= w {
            p.push(format!("{key}.stat-size: {s} must be smaller than window-size {w}"));
        }
        p
    }

    /// A fresh detector.
    pub fn build(&self) -> Box<dyn Detector> {
        match self.kind {
            DetectorKind::Adwin => Box::new(Adwin::new(self.delta.unwrap_or(0.002))),
            DetectorKind::Ddm => Box::new(Ddm::new(
                self.min_instances.unwrap_or(30),
                self.warning_threshold.unwrap_or(2.0),
                self.drift_threshold.unwrap_or(3.0),
            )),
            DetectorKind::PageHinkley => Box::new(PageHinkley::new(
                self.min_instances.unwrap_or(30),
                self.delta.unwrap_or(0.005),
                self.threshold.unwrap_or(50.0),
                self.alpha.unwrap_or(0.9999),
            )),
            DetectorKind::Kswin => Box::new(Kswin::new(
                self.alpha.unwrap_or(0.005),
                self.window_size.unwrap_or(100),
                self.stat_size.unwrap_or(30),
                self.seed.unwrap_or(42),
            )),
        }
    }
}

/// One row of ADWIN's exponential histogram: summaries of 2^row values each, oldest first.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Row {
    totals: VecDeque<f64>,
    variances: VecDeque<f64>,
}

/// ADWIN's adaptive window.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Window {
    delta: f64,
    clock: u64,
    max_buckets: usize,
    min_len: f64,
    grace: f64,
    total: f64,
    variance: f64,
    width: f64,
    tick: u64,
    rows: Vec<Row>,
}

impl Window {
    fn new(delta: f64, clock: u64, max_buckets: usize, min_len: usize, grace: usize) -> Window {
        Window {
            delta,
            clock,
            max_buckets,
            min_len: min_len as f64,
            grace: grace as f64,
            total: 0.0,
            variance: 0.0,
            width: 0.0,
            tick: 0,
            rows: vec![Row::default()],
        }
    }

    fn insert(&mut self, x: f64) {
        self.rows[0].totals.push_back(x);
        self.rows[0].variances.push_back(0.0);
        self.width += 1.0;
        if self.width > 1.0 {
            let d = x - self.total / (self.width - 1.0);
            self.variance += (self.width - 1.0) * d * d / self.width;
        }
        self.total += x;
        // Merge the two oldest summaries of a full row into the next row, as far as needed.
        let mut r = 0;
        while self.rows[r].totals.len() == self.max_buckets + 1 {
            let size = (1u64 << r) as f64;
            let (t0, t1) = (self.rows[r].totals[0], self.rows[r].totals[1]);
            let (v0, v1) = (self.rows[r].variances[0], self.rows[r].variances[1]);
            let (m0, m1) = (t0 / size, t1 / size);
            let merged_var = v0 + v1 + size * 0.5 * (m0 - m1) * (m0 - m1);
            for _ in 0..2 {
                self.rows[r].totals.pop_front();
                self.rows[r].variances.pop_front();
            }
            if r + 1 == self.rows.len() {
                self.rows.push(Row::default());
            }
            self.rows[r + 1].totals.push_back(t0 + t1);
            self.rows[r + 1].variances.push_back(merged_var);
            r += 1;
        }
    }

    /// Drops the oldest summary.
    fn drop_oldest(&mut self) {
        let last = self.rows.len() - 1;
        let size = (1u64 << last) as f64;
        let (Some(u), Some(v)) = (self.rows[last].totals.pop_front(), self.rows[last].variances.pop_front()) else {
            return;
        };
        let mu = u / size;
        self.width -= size;
        self.total -= u;
        let mu_window = self.total / self.width;
        self.variance -= v + size * self.width * (mu - mu_window) * (mu - mu_window) / (size + self.width);
        if self.rows[last].totals.is_empty() && last > 0 {
            self.rows.pop();
        }
    }

    fn cut(&self, n0: f64, n1: f64, diff: f64) -> bool {
        let delta_prime = (2.0 * self.width.ln() / self.delta).ln();
        let m = 1.0 / (n0 - self.min_len + 1.0) + 1.0 / (n1 - self.min_len + 1.0);
        let eps = (2.0 * m * (self.variance / self.width) * delta_prime).sqrt() + 2.0 / 3.0 * delta_prime * m;
        diff.abs() > eps
    }

    fn detect(&mut self) -> bool {
        self.tick += 1;
        if !self.tick.is_multiple_of(self.clock) || self.width <= self.grace {
            return false;
        }
        let mut detected = false;
        loop {
            let mut shrink = false;
            let (mut n0, mut n1, mut u0, mut u1) = (0.0, self.width, 0.0, self.total);
            'scan: for r in (0..self.rows.len()).rev() {
                let size = (1u64 << r) as f64;
                let len = self.rows[r].totals.len();
                for k in 0..len {
                    n0 += size;
                    n1 -= size;
                    let t = self.rows[r].totals[k];
                    u0 += t;
                    u1 -= t;
                    if r == 0 && k == len - 1 {
                        break 'scan;
                    }
                    if n1 >= self.min_len && n0 >= self.min_len && self.cut(n0, n1, u0 / n0 - u1 / n1) {
                        shrink = true;
                        detected = true;
                        if self.width > 0.0 {
                            self.drop_oldest();
                            break 'scan;
                        }
                    }
                }
            }
            if !shrink {
                break;
            }
        }
        detected
    }
}

/// ADWIN (serialisable: forests keep one per tree in the learner's state).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adwin {
    params: (f64, u64, usize, usize, usize),
    window: Window,
    detected: bool,
}

impl Adwin {
    /// River's defaults: clock 32, 5 buckets per row, sub-windows of at least 5, grace 10.
    pub fn new(delta: f64) -> Adwin {
        Adwin::with(delta, 32, 5, 5, 10)
    }

    /// All parameters.
    pub fn with(delta: f64, clock: u64, max_buckets: usize, min_window_length: usize, grace_period: usize) -> Adwin {
        let params = (delta, clock.max(1), max_buckets, min_window_length, grace_period);
        Adwin {
            params,
            window: Window::new(delta, clock.max(1), max_buckets, min_window_length, grace_period),
            detected: false,
        }
    }

    /// Values in the window.
    pub fn width(&self) -> f64 {
        self.window.width
    }

    /// Mean of the window.
    pub fn estimation(&self) -> f64 {
        if self.window.width > 0.0 { self.window.total / self.window.width } else { 0.0 }
    }
}

impl Detector for Adwin {
    fn update(&mut self, x: f64) -> bool {
        if self.detected {
            let (d, c, b, m, g) = self.params;
            self.window = Window::new(d, c, b, m, g);
        }
        self.window.insert(x);
        self.detected = self.window.detect();
        self.detected
    }

    fn name(&self) -> &'static str {
        "adwin"
    }
}

/// Page-Hinkley (two-sided).
#[derive(Debug, Clone)]
pub struct PageHinkley {
    min_instances: u64,
    delta: f64,
    threshold: f64,
    alpha: f64,
    n: u64,
    mean: f64,
    sum_up: f64,
    sum_down: f64,
    min_up: f64,
    max_down: f64,
    detected: bool,
}

impl PageHinkley {
    /// River's `PageHinkley(min_instances, delta, threshold, alpha)` in mode "both".
    pub fn new(min_instances: u64, delta: f64, threshold: f64, alpha: f64) -> PageHinkley {
        let mut p = PageHinkley {
            min_instances,
            delta,
            threshold,
            alpha,
            n: 0,
            mean: 0.0,
            sum_up: 0.0,
            sum_down: 0.0,
            min_up: 0.0,
            max_down: 0.0,
            detected: false,
        };
        p.reset();
        p
    }

    fn reset(&mut self) {
        self.n = 0;
        self.mean = 0.0;
        self.sum_up = 0.0;
        self.sum_down = 0.0;
        self.min_up = f64::INFINITY;
        self.max_down = -1.0;
        self.detected = false;
    }
}

impl Detector for PageHinkley {
    fn update(&mut self, x: f64) -> bool {
        if self.detected {
            self.reset();
        }
        self.n += 1;
        self.mean += (1.0 / self.n as f64) * (x - self.mean);
        let dev = x - self.mean;
        self.sum_up = self.alpha * self.sum_up + dev - self.delta;
        self.sum_down = self.alpha * self.sum_down + dev + self.delta;
        if self.sum_up < self.min_up {
            self.min_up = self.sum_up;
        }
        if self.sum_down > self.max_down {
            self.max_down = self.sum_down;
        }
        if self.n >= self.min_instances {
            self.detected =
                self.sum_up - self.min_up > self.threshold || self.max_down - self.sum_down > self.threshold;
        }
        self.detected
    }

    fn name(&self) -> &'static str {
        "page-hinkley"
    }
}

/// DDM, for a 0/1 error stream.
#[derive(Debug, Clone)]
pub struct Ddm {
    warm_start: u64,
    warning: f64,
    drift: f64,
    n: u64,
    p: f64,
    p_min: f64,
    s_min: f64,
    ps_min: f64,
    detected: bool,
    /// Whether the last update was in the warning zone.
    pub warning_detected: bool,
}

impl Ddm {
    /// River's `binary.DDM(warm_start, warning_threshold, drift_threshold)`.
    pub fn new(warm_start: u64, warning_threshold: f64, drift_threshold: f64) -> Ddm {
        Ddm {
            warm_start,
            warning: warning_threshold,
            drift: drift_threshold,
            n: 0,
            p: 0.0,
            p_min: f64::NAN,
            s_min: f64::NAN,
            ps_min: f64::INFINITY,
            detected: false,
            warning_detected: false,
        }
    }
}

impl Detector for Ddm {
    fn update(&mut self, x: f64) -> bool {
        if self.detected {
            *self = Ddm::new(self.warm_start, self.warning, self.drift);
        }
        self.n += 1;
        self.p += (1.0 / self.n as f64) * (x - self.p);
        let s = (self.p * (1.0 - self.p) / self.n as f64).sqrt();
        if self.n > self.warm_start {
            if self.p + s <= self.ps_min {
                self.p_min = self.p;
                self.s_min = s;
                self.ps_min = self.p_min + self.s_min;
            }
            self.warning_detected = self.p + s > self.p_min + self.warning * self.s_min;
            if self.p + s > self.p_min + self.drift * self.s_min {
                self.detected = true;
                self.warning_detected = false;
            }
        }
        self.detected
    }

    fn name(&self) -> &'static str {
        "ddm"
    }
}

/// KSWIN: a KS test between the newest `stat_size` values and `stat_size` values drawn (with
/// Python's generator, for parity) from the rest of a `window_size` window.
#[derive(Debug, Clone)]
pub struct Kswin {
    alpha: f64,
    window_size: usize,
    stat_size: usize,
    seed: u64,
    window: VecDeque<f64>,
    rng: PyRandom,
    detected: bool,
    /// The last test's p-value.
    pub p_value: f64,
}

impl Kswin {
    /// River's `KSWIN(alpha, window_size, stat_size, seed)`.
    pub fn new(alpha: f64, window_size: usize, stat_size: usize, seed: u64) -> Kswin {
        Kswin {
            alpha,
            window_size,
            stat_size,
            seed,
            window: VecDeque::with_capacity(window_size),
            rng: PyRandom::new(seed),
            detected: false,
            p_value: 0.0,
        }
    }
}

impl Detector for Kswin {
    fn update(&mut self, x: f64) -> bool {
        if self.detected {
            *self = Kswin::new(self.alpha, self.window_size, self.stat_size, self.seed);
        }
        if self.window.len() == self.window_size {
            self.window.pop_front();
        }
        self.window.push_back(x);
        if self.window.len() < self.window_size {
            return false;
        }
        let older = self.window_size - self.stat_size;
        let picks = self.rng.sample_range(older, self.stat_size);
        let sample: Vec<f64> = picks.iter().map(|i| self.window[*i]).collect();
        let recent: Vec<f64> = self.window.iter().skip(older).copied().collect();
        let r = ks::ks_2samp(&sample, &recent);
        self.p_value = r.p_value;
        self.detected = r.p_value <= self.alpha && r.statistic > 0.1;
        self.detected
    }

    fn name(&self) -> &'static str {
        "kswin"
    }
}
