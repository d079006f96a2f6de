//! The two-proportion z-test (pooled), one-sided: did a share rise from a baseline sample to a
//! recent one? Used for surge alerts (the share of negative predictions in one group).

use statrs::distribution::{ContinuousCDF, Normal};

/// The z statistic and one-sided p-value of "the share in sample 1 is greater than in sample 0".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProportionTest {
    /// (p1 − p0) / standard error under the pooled share.
    pub z: f64,
    /// P(Z ≥ z) under the null of equal shares.
    pub p_value: f64,
}

/// `x1` successes of `n1` against `x0` of `n0`; `None` when a sample is empty or the pooled share
/// is 0 or 1 (no variance: nothing to test).
pub fn greater(x1: f64, n1: f64, x0: f64, n0: f64) -> Option<ProportionTest> {
    if n1 <= 0.0 || n0 <= 0.0 {
        return None;
    }
    let pooled = (x1 + x0) / (n1 + n0);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n0)).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return None;
    }
    let z = (x1 / n1 - x0 / n0) / se;
    let p_value = Normal::standard().sf(z);
    Some(ProportionTest { z, p_value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_statsmodels_proportions_ztest() {
        // The pooled test statsmodels' proportions_ztest([60, 200], [100, 1000], alternative="larger")
        // computes: z = 0.4 / sqrt(p(1 − p)(1/100 + 1/1000)) with p = 260/1100, i.e. 8.9770, and
        // p = erfc(z / sqrt 2) / 2 = 1.3916e-19.
        let t = greater(60.0, 100.0, 200.0, 1000.0).unwrap();
        let pooled: f64 = 260.0 / 1100.0;
        let se = (pooled * (1.0 - pooled) * (1.0 / 100.0 + 1.0 / 1000.0)).sqrt();
        assert!((t.z - 0.4 / se).abs() < 1e-12);
        assert!((t.z - 8.976_975).abs() < 1e-5, "{}", t.z);
        assert!((t.p_value / 1.391_565e-19 - 1.0).abs() < 1e-4, "{}", t.p_value);
        let same = greater(20.0, 100.0, 200.0, 1000.0).unwrap();
        assert!((same.z).abs() < 1e-12 && (same.p_value - 0.5).abs() < 1e-12);
        assert!(greater(0.0, 100.0, 0.0, 100.0).is_none(), "no variance");
        assert!(greater(1.0, 0.0, 1.0, 10.0).is_none(), "empty sample");
    }
}
