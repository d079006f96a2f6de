//! Multiple-testing corrections: Benjamini–Hochberg (false discovery rate) and Bonferroni
//! (family-wise error), returning adjusted p-values in the input order.

/// Benjamini–Hochberg adjusted p-values (as `statsmodels` `fdr_bh`).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0f64;
    for rank in (0..m).rev() {
        let i = order[rank];
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        adjusted[i] = running.min(1.0);
    }
    adjusted
}

/// Bonferroni adjusted p-values.
pub fn bonferroni(p: &[f64]) -> Vec<f64> {
    p.iter().map(|x| (x * p.len() as f64).min(1.0)).collect()
}

/// A correction chosen by name (`benjamini-hochberg`, `bonferroni`, `none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Correction {
    /// Benjamini–Hochberg (false discovery rate).
    BenjaminiHochberg,
    /// Bonferroni (family-wise error).
    Bonferroni,
    /// No correction.
    None,
}

impl Correction {
    /// The adjusted p-values of `p`, in its order.
    pub fn adjust(&self, p: &[f64]) -> Vec<f64> {
        match self {
            Correction::BenjaminiHochberg => benjamini_hochberg(p),
            Correction::Bonferroni => bonferroni(p),
            Correction::None => p.to_vec(),
        }
    }
}
