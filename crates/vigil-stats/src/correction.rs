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
