//! The few distributions the simulators draw from, on a seeded generator: uniform, normal
//! (Box–Muller), log-normal, exponential, Bernoulli and weighted choice. Written here rather than
//! pulled in, so that a seed gives the same stream for as long as this file does not change.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A seeded random source.
pub struct Dist {
    rng: StdRng,
    spare_normal: Option<f64>,
}

impl Dist {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Dist {
        Dist { rng: StdRng::seed_from_u64(seed), spare_normal: None }
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n).
    pub fn index(&mut self, n: usize) -> usize {
        if n <= 1 { 0 } else { self.rng.random_range(0..n) }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// Log-normal with log-mean `mu` and log-sd `sigma` (heavy right tail).
    pub fn lognormal(&mut self, mu: f64, sigma: f64) -> f64 {
        (mu + sigma * self.normal()).exp()
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }

    /// An index drawn with the given (non-negative, not all zero) weights.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.rng.random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_moments_are_right() {
        let (mut a, mut b) = (Dist::new(7), Dist::new(7));
        assert!((0..100).all(|_| a.bits() == b.bits()));
        let mut d = Dist::new(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| d.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "normal: mean {mean}, var {var}");
        let e = (0..n).map(|_| d.exponential(3.0)).sum::<f64>() / n as f64;
        assert!((e - 3.0).abs() < 0.05, "exponential mean {e}");
        let mut counts = [0usize; 3];
        for _ in 0..n {
            counts[d.weighted(&[1.0, 2.0, 7.0])] += 1;
        }
        let share = counts[2] as f64 / n as f64;
        assert!((share - 0.7).abs() < 0.01, "weighted share {share}");
    }
}
