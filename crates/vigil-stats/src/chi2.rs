//! Chi-squared test of homogeneity between two count vectors (reference and live) over the same
//! categories, as `scipy.stats.chi2_contingency` computes it on the 2 × k table (without Yates'
//! correction; categories empty in both are dropped).

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Statistic, degrees of freedom and p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chi2Result {
    /// The statistic.
    pub statistic: f64,
    /// Degrees of freedom.
    pub dof: usize,
    /// The p-value.
    pub p_value: f64,
}

/// Tests whether `a` and `b` (counts per category) come from one distribution.
pub fn homogeneity(a: &[f64], b: &[f64]) -> Chi2Result {
    let cols: Vec<(f64, f64)> = a.iter().zip(b).map(|(x, y)| (*x, *y)).filter(|(x, y)| x + y > 0.0).collect();
    let (ta, tb): (f64, f64) = (cols.iter().map(|c| c.0).sum(), cols.iter().map(|c| c.1).sum());
    let total = ta + tb;
    if cols.len() < 2 || ta == 0.0 || tb == 0.0 {
        return Chi2Result { statistic: 0.0, dof: 0, p_value: 1.0 };
    }
    let mut stat = 0.0;
    for (x, y) in &cols {
        let col = x + y;
        let (ea, eb) = (ta * col / total, tb * col / total);
        stat += (x - ea).powi(2) / ea + (y - eb).powi(2) / eb;
    }
    let dof = cols.len() - 1;
    let p = ChiSquared::new(dof as f64).map(|d| d.sf(stat)).unwrap_or(f64::NAN);
    Chi2Result { statistic: stat, dof, p_value: p.clamp(0.0, 1.0) }
}
