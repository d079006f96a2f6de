//! Distances between distributions: the population stability index over shared bins, the
//! Jensen–Shannon divergence, and the first Wasserstein distance between two samples.

/// PSI = Σ (live − ref) · ln(live / ref) over bin proportions; empty bins count as 1e-4.
pub fn psi(reference: &[f64], live: &[f64]) -> f64 {
    let (tr, tl): (f64, f64) = (reference.iter().sum(), live.iter().sum());
    if tr == 0.0 || tl == 0.0 {
        return 0.0;
    }
    reference
        .iter()
        .zip(live)
        .map(|(r, l)| {
            let (r, l) = ((r / tr).max(1e-4), (l / tl).max(1e-4));
            (l - r) * (l / r).ln()
        })
        .sum()
}

/// Jensen–Shannon divergence (natural log) between two count vectors.
pub fn jensen_shannon(a: &[f64], b: &[f64]) -> f64 {
    let (ta, tb): (f64, f64) = (a.iter().sum(), b.iter().sum());
    if ta == 0.0 || tb == 0.0 {
        return 0.0;
    }
    let kl = |p: f64, m: f64| if p > 0.0 { p * (p / m).ln() } else { 0.0 };
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let (p, q) = (x / ta, y / tb);
            let m = (p + q) / 2.0;
            0.5 * kl(p, m) + 0.5 * kl(q, m)
        })
        .sum()
}

/// The first Wasserstein distance between two sorted samples: ∫ |F_a − F_b|.
pub fn wasserstein_sorted(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut all: Vec<f64> = a.iter().chain(b).copied().collect();
    all.sort_by(f64::total_cmp);
    let (mut i, mut j) = (0usize, 0usize);
    let mut area = 0.0;
    for w in all.windows(2) {
        while i < a.len() && a[i] <= w[0] {
            i += 1;
        }
        while j < b.len() && b[j] <= w[0] {
            j += 1;
        }
        area += (i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs() * (w[1] - w[0]);
    }
    area
}
