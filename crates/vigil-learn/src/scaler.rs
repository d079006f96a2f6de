//! Online standardisation of numeric inputs, with River's `StandardScaler` semantics: running mean and
//! population variance (Welford), and `(x - mean) / sd`, or 0 while the variance is 0. The learner
//! learns the statistics from an example before transforming it, as River's pipelines do, and writes
//! them into the exported feature spec, so the scorer standardises exactly as training last did.

use serde::{Deserialize, Serialize};

/// Running statistics of the first `n` inputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Values seen per input (missing ones are not counted, as River counts per feature).
    count: Vec<u64>,
    mean: Vec<f64>,
    var: Vec<f64>,
}

impl Scaler {
    /// Statistics of `n` inputs.
    pub fn new(n: usize) -> Scaler {
        Scaler { count: vec![0; n], mean: vec![0.0; n], var: vec![0.0; n] }
    }

    /// Inputs it scales.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    /// Whether it scales nothing.
    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// Updates the statistics with a raw row (its first `len()` values); NaN marks a missing value.
    pub fn learn(&mut self, x: &[f64]) {
        for (i, xi) in x.iter().enumerate().take(self.mean.len()) {
            if xi.is_nan() {
                continue;
            }
            self.count[i] += 1;
            let n = self.count[i] as f64;
            let old = self.mean[i];
            self.mean[i] += (xi - old) / n;
            self.var[i] += ((xi - old) * (xi - self.mean[i]) - self.var[i]) / n;
        }
    }

    /// Standardises the first `len()` values of `x` in place; a missing (NaN) value becomes 0, the
    /// mean, which is what the scorer's imputation gives once the statistics are in the spec.
    pub fn transform(&self, x: &mut [f64]) {
        for (i, xi) in x.iter_mut().enumerate().take(self.mean.len()) {
            *xi = if xi.is_nan() || self.var[i] <= 0.0 { 0.0 } else { (*xi - self.mean[i]) / self.var[i].sqrt() };
        }
    }

    /// Mean and standard deviation of input `i` (sd 1 while unknown).
    pub fn stats(&self, i: usize) -> (f64, f64) {
        let sd = self.var[i].sqrt();
        (self.mean[i], if sd > 0.0 { sd } else { 1.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_batch_population_statistics() {
        let xs = [1.0, 2.0, 4.0, 8.0, 16.0];
        let mut s = Scaler::new(1);
        for x in xs {
            s.learn(&[x]);
        }
        let mean = xs.iter().sum::<f64>() / 5.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 5.0;
        let (m, sd) = s.stats(0);
        assert!((m - mean).abs() < 1e-12 && (sd - var.sqrt()).abs() < 1e-12);
        let mut x = [16.0];
        s.transform(&mut x);
        assert!((x[0] - (16.0 - mean) / var.sqrt()).abs() < 1e-12);
        let mut fresh = Scaler::new(1);
        fresh.learn(&[3.0]);
        let mut y = [3.0];
        fresh.transform(&mut y);
        assert_eq!(y[0], 0.0, "zero variance gives 0, as River does");
    }
}
