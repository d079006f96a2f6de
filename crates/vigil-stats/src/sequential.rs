//! An A/B test that may be looked at after every label and still keeps its level: the mixture
//! sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis & Walsh ("Always valid
//! inference: continuous monitoring of A/B tests", Operations Research 2022), for the difference of
//! two independent arms' metrics under the normal approximation, with a normal mixing distribution
//! N(0, τ²) over the difference:
//!
//! Λₙ = √(V / (V + τ²)) · exp(τ² θ̂² / (2 V (V + τ²))),
//!
//! where θ̂ is arm B's estimate minus arm A's and V the variance of θ̂ (the arms' variances added:
//! they are independent). The always-valid p-value is the running minimum of 1 / Λₙ; a winner is
//! named when it falls to α. Inverting the same statistic gives a confidence sequence θ̂ ± r with
//! r² = V (V + τ²) / τ² · (2 ln(1/α) + ln((V + τ²) / V)); when it lies inside ±`min_effect`, the arms
//! differ by less than the smallest effect worth knowing — "no difference" — with the same
//! guarantee. The variances are estimated (plug-in), so the level holds approximately, the better the
//! more labels; `vigil-bench ab` measures it over seeded runs.

use crate::paired;

/// One arm's metric so far: its estimate, the variance of the estimate and the labels behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The metric.
    pub value: f64,
    /// Variance of the estimate.
    pub variance: f64,
    /// Labels.
    pub n: usize,
}

/// The estimate of a mean (accuracy from 0/1 outcomes, mean cost from per-event costs); `None`
/// for fewer than two values.
pub fn mean(values: &[f64]) -> Option<Estimate> {
    let binary = values.iter().all(|v| *v == 0.0 || *v == 1.0);
    let (sum, sum_sq) = values.iter().fold((0.0, 0.0), |(s, q), v| (s + v, q + v * v));
    mean_from(values.len(), sum, sum_sq, binary)
}

/// [`mean`] from running sums (`n` values, their sum and sum of squares; `binary`: all 0 or 1). A
/// proportion's variance is kept off zero (half an event either way), so that an arm right on every
/// label so far is not taken as certain.
pub fn mean_from(n: usize, sum: f64, sum_sq: f64, binary: bool) -> Option<Estimate> {
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let m = sum / nf;
    let var = if binary {
        let p = m.clamp(0.5 / nf, 1.0 - 0.5 / nf);
        p * (1.0 - p)
    } else {
        ((sum_sq - nf * m * m) / (nf - 1.0)).max(0.0)
    };
    Some(Estimate { value: m, variance: var / nf, n })
}

/// The estimate of an AUC with DeLong's variance (structural components); `None` without both
/// classes or with fewer than two of either.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<Estimate> {
    let m = labels.iter().filter(|y| **y).count();
    let n = labels.len() - m;
    if m < 2 || n < 2 || scores.len() != labels.len() {
        return None;
    }
    let (value, v10, v01) = paired::components(scores, labels);
    let var = |v: &[f64]| {
        let mu = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (v.len() - 1) as f64
    };
    let variance = var(&v10) / m as f64 + var(&v01) / n as f64;
    Some(Estimate { value, variance: variance.max(0.25 / (m * n) as f64), n: labels.len() })
}

/// How a look ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Arm A is better.
    A,
    /// Arm B is better.
    B,
    /// The arms differ by less than the smallest effect worth knowing.
    NoDifference,
}

/// What one look at the test says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    /// B's estimate minus A's.
    pub difference: f64,
    /// Half-width of the confidence sequence around the difference.
    pub radius: f64,
    /// The always-valid p-value of "no difference" (the running minimum).
    pub p_value: f64,
    /// Set when the test may stop.
    pub decision: Option<Decision>,
}

/// A sequential test of two arms, looked at as often as wanted.
#[derive(Debug, Clone)]
pub struct Sequential {
    alpha: f64,
    min_effect: f64,
    tau2: f64,
    p_value: f64,
}

impl Sequential {
    /// A test at level `alpha` that calls differences below `min_effect` no difference (the
    /// mixing scale τ is `min_effect` too: the test is most powerful for effects of about that size).
    pub fn new(alpha: f64, min_effect: f64) -> Sequential {
        Sequential { alpha, min_effect, tau2: min_effect * min_effect, p_value: 1.0 }
    }

    /// Looks at the arms' estimates now; `higher_is_better` says which way the metric points.
    pub fn look(&mut self, a: &Estimate, b: &Estimate, higher_is_better: bool) -> Look {
        let theta = b.value - a.value;
        let v = (a.variance + b.variance).max(1e-15);
        let t2 = self.tau2;
        let ln_lambda = 0.5 * (v / (v + t2)).ln() + t2 * theta * theta / (2.0 * v * (v + t2));
        self.p_value = self.p_value.min((-ln_lambda).exp().min(1.0));
        let radius = (v * (v + t2) / t2 * (2.0 * (1.0 / self.alpha).ln() + ((v + t2) / v).ln())).sqrt();
        let decision = if self.p_value <= self.alpha {
            Some(if (theta > 0.0) == higher_is_better { Decision::B } else { Decision::A })
        } else if theta.abs() + radius < self.min_effect {
            Some(Decision::NoDifference)
        } else {
            None
        };
        Look { difference: theta, radius, p_value: self.p_value, decision }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Bernoulli arms with success rates `pa`, `pb`, looked at every 50 labels per arm up to
    /// `max`: the decision and the labels per arm it took.
    fn run(seed: u64, pa: f64, pb: f64, max: usize) -> (Option<Decision>, usize) {
        let mut u = rng(seed);
        let mut t = Sequential::new(0.05, 0.05);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        while a.len() < max {
            a.push(f64::from(u8::from(u() < pa)));
            b.push(f64::from(u8::from(u() < pb)));
            if a.len() % 50 == 0 {
                let l = t.look(&mean(&a).unwrap(), &mean(&b).unwrap(), true);
                if l.decision.is_some() {
                    return (l.decision, a.len());
                }
            }
        }
        (None, max)
    }

    #[test]
    fn equal_arms_rarely_name_a_winner_however_often_looked_at() {
        let winners = (0..200).filter(|s| matches!(run(*s, 0.8, 0.8, 5000).0, Some(Decision::A | Decision::B))).count();
        // Level 0.05 (the benchmark reports the rate over more runs).
        assert!(winners <= 20, "{winners} of 200 equal runs named a winner");
        let ended = (0..50).filter(|s| run(*s, 0.8, 0.8, 5000).0 == Some(Decision::NoDifference)).count();
        assert!(ended >= 45, "only {ended} of 50 equal runs ended with no difference");
    }

    #[test]
    fn a_better_arm_wins() {
        for seed in 0..20 {
            let (d, n) = run(seed, 0.75, 0.9, 5000);
            assert_eq!(d, Some(Decision::B), "seed {seed}");
            assert!(n < 1000, "seed {seed}: {n} labels");
            assert_eq!(run(seed, 0.9, 0.75, 5000).0, Some(Decision::A));
        }
        // Lower is better (a cost): B's lower cost wins.
        let mut t = Sequential::new(0.05, 0.05);
        let (a, b) = (Estimate { value: 0.3, variance: 1e-4, n: 900 }, Estimate { value: 0.1, variance: 1e-4, n: 900 });
        assert_eq!(t.look(&a, &b, false).decision, Some(Decision::B));
    }

    #[test]
    fn the_p_value_never_rises_and_the_auc_variance_is_delongs() {
        let mut t = Sequential::new(0.05, 0.02);
        let a = Estimate { value: 0.8, variance: 1e-4, n: 100 };
        let p1 = t.look(&a, &Estimate { value: 0.83, ..a }, true).p_value;
        let p2 = t.look(&a, &Estimate { value: 0.8, ..a }, true).p_value;
        assert!(p1 < 1.0 && p2 == p1);
        // A perfect ranker: AUC 1 with the floor variance; a random one about 0.5.
        let labels: Vec<bool> = (0..200).map(|i| i % 3 == 0).collect();
        let perfect: Vec<f64> = labels.iter().map(|y| if *y { 0.9 } else { 0.1 }).collect();
        let e = auc(&perfect, &labels).unwrap();
        assert_eq!(e.value, 1.0);
        assert!(e.variance > 0.0);
        let mut u = rng(7);
        let random: Vec<f64> = labels.iter().map(|_| u()).collect();
        let r = auc(&random, &labels).unwrap();
        assert!((r.value - 0.5).abs() < 0.15 && (r.variance.sqrt() - 0.042).abs() < 0.015, "{r:?}");
        assert!(auc(&perfect[..1], &labels[..1]).is_none());
    }
}
