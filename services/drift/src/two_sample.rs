//! The data-drift tests: each compares one feature's live window with its reference and says how
//! far apart they are (statistic, p-value, effect size, PSI where bins exist). A [`Reference`]'s
//! kind picks its test ([`test_for`]): Kolmogorov–Smirnov for numeric features and the scores,
//! chi-squared homogeneity for categorical ones. A new test is a type implementing [`DriftTest`],
//! chosen in [`test_for`].

use vigil_stats::{chi2, divergence, ks};

use crate::monitor::{Reference, bin_counts};

/// A feature's live window, as a test takes it.
pub enum Live {
    /// Finite values, sorted.
    Numeric(Vec<f64>),
    /// Values per category (the reference's categories, in its order).
    Categorical(Vec<f64>),
}

/// What a test found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The test's statistic.
    pub statistic: f64,
    /// Its p-value (before correction).
    pub p: f64,
    /// The population stability index, where bins exist.
    pub psi: Option<f64>,
    /// The effect size compared with `min-effect` (KS distance, total-variation distance).
    pub effect: f64,
}

/// A two-sample test of a live window against a reference.
pub trait DriftTest: Sync {
    /// Its name in alerts and reports.
    fn name(&self) -> &'static str;
    /// The name of its statistic in alerts.
    fn statistic(&self) -> &'static str;
    /// Compares; `None` when the two do not fit this test or hold too few values.
    fn compare(&self, reference: &Reference, live: &Live) -> Option<Comparison>;
}

/// Fewest values on either side of a KS test.
const MIN_VALUES: usize = 30;

/// Two-sample Kolmogorov–Smirnov (SciPy's p-values), with the PSI over the reference's bins.
pub struct Ks;

impl DriftTest for Ks {
    fn name(&self) -> &'static str {
        "ks"
    }

    fn statistic(&self) -> &'static str {
        "ks_d"
    }

    fn compare(&self, reference: &Reference, live: &Live) -> Option<Comparison> {
        let (Reference::Numeric { sample, edges, counts }, Live::Numeric(values)) = (reference, live) else {
            return None;
        };
        if values.len() < MIN_VALUES || sample.len() < MIN_VALUES {
            return None;
        }
        let r = ks::ks_2samp_sorted(sample, values);
        let psi = (edges.len() >= 2 && counts.len() == edges.len() - 1)
            .then(|| divergence::psi(counts, &bin_counts(edges, values)));
        Some(Comparison { statistic: r.statistic, p: r.p_value, psi, effect: r.statistic })
    }
}

/// Chi-squared homogeneity of category counts; the effect is the total-variation distance.
pub struct ChiSquared;

impl DriftTest for ChiSquared {
    fn name(&self) -> &'static str {
        "chi2"
    }

    fn statistic(&self) -> &'static str {
        "chi2"
    }

    fn compare(&self, reference: &Reference, live: &Live) -> Option<Comparison> {
        let (Reference::Categorical(reference), Live::Categorical(live)) = (reference, live) else { return None };
        let r = chi2::homogeneity(reference, live);
        let (tr, tl): (f64, f64) = (reference.iter().sum(), live.iter().sum());
        let effect = if tr > 0.0 && tl > 0.0 {
            0.5 * reference.iter().zip(live).map(|(a, b)| (a / tr - b / tl).abs()).sum::<f64>()
        } else {
            0.0
        };
        Some(Comparison { statistic: r.statistic, p: r.p_value, psi: Some(divergence::psi(reference, live)), effect })
    }
}

/// The test a reference is compared with.
pub fn test_for(reference: &Reference) -> &'static dyn DriftTest {
    match reference {
        Reference::Numeric { .. } => &Ks,
        Reference::Categorical(_) => &ChiSquared,
    }
}
