//! The two-sample Kolmogorov–Smirnov test, two-sided, computed as SciPy's `ks_2samp` does with
//! `method="auto"`: the exact distribution while both samples have at most 10,000 values (Hodges'
//! lattice-path count, in the numerically stable form of Viehmann 2021; the closed form for equal
//! sizes), and beyond that the distribution of the one-sample statistic D_n with n = m·n/(m+n)
//! rounded ([`kstwo_sf`], Simard & L'Ecuyer 2011's choice of method per region), as SciPy's
//! `kstwo.sf` does. [`kolmogorov_sf`] is the limiting distribution, for callers that want it.

/// The result of a test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// The statistic D, the largest distance between the two empirical CDFs.
    pub statistic: f64,
    /// The p-value.
    pub p_value: f64,
    /// Whether the p-value is exact.
    pub exact: bool,
}

/// Sizes up to which the exact distribution is used (SciPy's `MAX_AUTO_N`).
pub const MAX_EXACT_N: usize = 10_000;

/// D: the largest distance between the empirical CDFs of `a` and `b` (both sorted).
pub fn statistic_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut d: f64 = 0.0;
    while i < a.len() && j < b.len() {
        let x = if a[i] <= b[j] { a[i] } else { b[j] };
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n1 - j as f64 / n2).abs());
    }
    d
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Two-sided two-sample KS test of `a` against `b` (any order; NaNs are not allowed).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> KsResult {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    ks_2samp_sorted(&a, &b)
}

/// [`ks_2samp`] on sorted samples.
pub fn ks_2samp_sorted(a: &[f64], b: &[f64]) -> KsResult {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return KsResult { statistic: 0.0, p_value: 1.0, exact: true };
    }
    let d = statistic_sorted(a, b);
    if n1.max(n2) <= MAX_EXACT_N
        && let Some((d_exact, p)) = exact(n1 as u64, n2 as u64, d)
    {
        return KsResult { statistic: d_exact, p_value: p, exact: true };
    }
    let (big, small) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = (big * small / (big + small)).round_ties_even().max(1.0) as u64;
    KsResult { statistic: d, p_value: kstwo_sf(en, d), exact: false }
}

/// The exact p-value, as SciPy computes it; `None` when the computation overflows.
fn exact(n1: u64, n2: u64, d: f64) -> Option<(f64, f64)> {
    let g = gcd(n1, n2);
    let lcm = (n1 / g) * n2;
    let h = (d * lcm as f64).round() as u64;
    let d = h as f64 / lcm as f64;
    if h == 0 {
        return Some((d, 1.0));
    }
    let p = if n1 == n2 { prob_outside_square(n1, h) } else { outer_prob_inside(n1, n2, g, h)? };
    if !(0.0..=1.0).contains(&p) || !p.is_finite() {
        return None;
    }
    Some((d, p))
}

/// P(D ≥ h/n) for two samples of size n: 2 Σ_{j≥1} (-1)^(j-1) C(2n, n-jh) / C(2n, n), summed from
/// the smallest term up (Horner-like), as SciPy does.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    while k >= 0 {
        let mut p1 = 1.0;
        let kh = k as f64 * h as f64;
        for j in 0..h {
            let j = j as f64;
            p1 = (n as f64 - kh - j) * p1 / (n as f64 + kh + j + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// 1 - P(path stays inside |x/m - y/n| < h/lcm), by the inside method with a sliding window,
/// computing the complement directly (Viehmann).
fn outer_prob_inside(m: u64, n: u64, g: u64, h: u64) -> Option<f64> {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = ((m / g) as f64, (n / g) as f64);
    let h = h as f64;
    let n_i = n as i64;
    let mut minj: i64 = 0;
    let mut maxj: i64 = ((h / mg).ceil() as i64).min(n_i + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n_i + 1) as usize;
    let mut a = vec![1.0f64; len_a.max(1)];
    for v in a.iter_mut().take(maxj as usize).skip(minj as usize) {
        *v = 0.0;
    }
    for i in 1..=m {
        let i_f = i as f64;
        let (lastminj, lastlen) = (minj, curlen);
        minj = (((ng * i_f - h) / mg).floor() as i64 + 1).max(0);
        minj = minj.min(n_i);
        maxj = (((ng * i_f + h) / mg).ceil() as i64).min(n_i + 1);
        if maxj <= minj {
            return Some(1.0);
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = (jj + minj) as f64;
            let idx = (jj + minj - lastminj) as usize;
            let prev = *a.get(idx)?;
            val = (prev * i_f + val * j) / (i_f + j);
            *a.get_mut(jj as usize)? = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            for k in (maxj - minj)..(maxj - minj + (lastlen - curlen)) {
                if let Some(v) = a.get_mut(k as usize) {
                    *v = 1.0;
                }
            }
        }
        if !val.is_finite() {
            return None;
        }
    }
    a.get((maxj - minj - 1) as usize).copied()
}

/// Survival function of the Kolmogorov distribution, P(K > x) = 2 Σ (-1)^(k-1) exp(-2 k² x²).
pub fn kolmogorov_sf(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < 0.2 {
        // The alternating series converges slowly here; use the theta-function form of the CDF.
        let t = std::f64::consts::PI * std::f64::consts::PI / (8.0 * x * x);
        let cdf = (2.0 * std::f64::consts::PI).sqrt() / x
            * (1..=20).map(|k| (-((2 * k - 1) as f64).powi(2) * t).exp()).sum::<f64>();
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    let mut s = 0.0;
    for k in 1..=100 {
        let term = (-2.0 * (k * k) as f64 * x * x).exp();
        s += if k % 2 == 1 { term } else { -term };
        if term < 1e-17 {
            break;
        }
    }
    (2.0 * s).clamp(0.0, 1.0)
}

/// P(D_n > x) for the two-sided one-sample statistic D_n (SciPy's `kstwo.sf(x, n)`).
pub fn kstwo_sf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        // Ruben–Gambino: P(D_n ≤ x) = n!/n^n (2t − 1)^n for 1/2n ≤ x ≤ 1/n.
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = (ln_gamma(nf + 1.0) - nf * nf.ln() + nf * (2.0 * t - 1.0).ln()).exp();
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    if t >= nf - 1.0 {
        return (2.0 * (1.0 - x).powf(nf)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let nx2 = t * x;
    if n <= 140 {
        if nx2 <= 4.0 {
            return (1.0 - durbin_cdf(n, x)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    if nx2 >= 370.0 {
        return 0.0;
    }
    if nx2 >= 2.2 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 { durbin_cdf(n, x) } else { pelz_good_cdf(n, x) };
    (1.0 - cdf).clamp(0.0, 1.0)
}

fn ln_gamma(x: f64) -> f64 {
    statrs::function::gamma::ln_gamma(x)
}

/// P(D_n^+ > x), the one-sided statistic, by the Birnbaum–Tingey sum in logarithms.
pub fn smirnov(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let last = (nf * (1.0 - x)).floor() as u64;
    let lg_n1 = ln_gamma(nf + 1.0);
    let mut p = 0.0;
    for v in 0..=last {
        let vf = v as f64;
        let e = x + vf / nf;
        let rest = 1.0 - e;
        if rest <= 0.0 {
            continue;
        }
        let t = lg_n1 - ln_gamma(vf + 1.0) - ln_gamma(nf - vf + 1.0) + (vf - 1.0) * e.ln() + (nf - vf) * rest.ln();
        if t > -745.0 {
            p += t.exp();
        }
    }
    (p * x).clamp(0.0, 1.0)
}

const SCALE_EXP: i32 = 128;

/// P(D_n ≤ d) by Durbin's matrix method as Marsaglia, Tsang & Wang (2003) compute it.
fn durbin_cdf(n: u64, d: f64) -> f64 {
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut v = vec![0.0f64; m];
    let mut w = vec![0.0f64; m];
    let mut fac = 1.0f64;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] = (1.0 - h.powi(j as i32)) * fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = vec![0.0f64; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let matmul = |a: &[f64], b: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; m * m];
        for i in 0..m {
            for l in 0..m {
                let x = a[i * m + l];
                if x != 0.0 {
                    for j in 0..m {
                        out[i * m + j] += x * b[l * m + j];
                    }
                }
            }
        }
        out
    };
    let mut pw: Vec<f64> = (0..m * m).map(|i| if i / m == i % m { 1.0 } else { 0.0 }).collect();
    let scale = 2f64.powi(SCALE_EXP);
    let (mut nn, mut expnt, mut h_expnt) = (n, 0i32, 0i32);
    while nn > 0 {
        if nn % 2 == 1 {
            pw = matmul(&pw, &hm);
            expnt += h_expnt;
        }
        hm = matmul(&hm, &hm);
        h_expnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > scale {
            for x in &mut hm {
                *x /= scale;
            }
            h_expnt += SCALE_EXP;
        }
        nn /= 2;
    }
    let mut p = pw[(k - 1) * m + (k - 1)];
    let nf = n as f64;
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < 1.0 / scale {
            p *= scale;
            expnt -= SCALE_EXP;
        }
    }
    if expnt != 0 {
        p *= 2f64.powi(expnt);
    }
    p.clamp(0.0, 1.0)
}

/// P(D_n ≤ x) by the Pelz–Good (1976) expansion.
fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    use std::f64::consts::PI;
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let (k1a, k1b) = (-z2, pi2 / 4.0);
    let (k2a, k2b, k2c) = (6.0 * z6 + 2.0 * z4, (2.0 * z4 - 5.0 * z2) * pi2 / 4.0, pi4 * (1.0 - 2.0 * z2) / 16.0);
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qp = q.powf(8.0 * kk as f64);
        let coeffs = [1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6];
        for (acc, c) in k.iter_mut().zip(coeffs) {
            *acc = *acc * qp + c;
        }
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let div = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (acc, dv) in k.iter_mut().zip(div) {
        *acc = *acc * q * sqrt2pi / dv;
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    let sqrt3z = 3f64.sqrt() * z;
    for kk in (1..=maxk).rev() {
        let kf = kk as f64;
        let k2 = kf * kf;
        let qp = q2.powf(k2);
        k2extra += k2 * qp;
        let kspi = PI * kf;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * k2 * qp;
    }
    k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    k.iter().enumerate().map(|(i, v)| v / nf.powf(i as f64 / 2.0)).sum()
}
