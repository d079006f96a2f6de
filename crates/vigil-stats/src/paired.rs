//! Whether one model is better than another on the same labelled examples: DeLong's test for two
//! correlated ROC AUCs (DeLong, DeLong & Clarke-Pearson 1988, with midranks as Sun & Xu 2014 compute
//! the structural components), and a paired z-test on per-example differences (accuracy, log loss).
//! Each is one-sided against a margin: H0 says the first model's gain is at most `margin`.

use statrs::distribution::{ContinuousCDF, Normal};

/// A one-sided comparison: the observed gain, its standard error and the p-value of "gain ≤ margin".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The first model's metric minus the second's.
    pub gain: f64,
    /// Standard error of the gain.
    pub se: f64,
    /// P-value of H0: gain ≤ margin (1 when nothing can be said).
    pub p_value: f64,
}

fn one_sided(gain: f64, se: f64, margin: f64) -> Comparison {
    let p_value = if se > 0.0 && se.is_finite() {
        let z = (gain - margin) / se;
        Normal::new(0.0, 1.0).map(|n| 1.0 - n.cdf(z)).unwrap_or(1.0)
    } else if gain > margin {
        0.0
    } else {
        1.0
    };
    Comparison { gain, se, p_value }
}

/// Midranks (ties share the mean of their ranks), 1-based.
fn midranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &order[i..=j] {
            ranks[*k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Each model's AUC and structural components (V10 over positives, V01 over negatives).
pub(crate) fn components(scores: &[f64], labels: &[bool]) -> (f64, Vec<f64>, Vec<f64>) {
    let pos: Vec<f64> = scores.iter().zip(labels).filter(|(_, y)| **y).map(|(s, _)| *s).collect();
    let neg: Vec<f64> = scores.iter().zip(labels).filter(|(_, y)| !**y).map(|(s, _)| *s).collect();
    let (m, n) = (pos.len() as f64, neg.len() as f64);
    let all: Vec<f64> = pos.iter().chain(&neg).copied().collect();
    let (r_all, r_pos, r_neg) = (midranks(&all), midranks(&pos), midranks(&neg));
    let v10: Vec<f64> = (0..pos.len()).map(|i| (r_all[i] - r_pos[i]) / n).collect();
    let v01: Vec<f64> = (0..neg.len()).map(|j| 1.0 - (r_all[pos.len() + j] - r_neg[j]) / m).collect();
    let auc = v10.iter().sum::<f64>() / m;
    (auc, v10, v01)
}

/// Sample covariance.
fn cov(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (n - 1.0)
}

/// DeLong's test: is model A's AUC above model B's by more than `margin`, on these labels? `None`
/// without both classes.
pub fn delong(a: &[f64], b: &[f64], labels: &[bool], margin: f64) -> Option<Comparison> {
    let positives = labels.iter().filter(|y| **y).count();
    if positives == 0 || positives == labels.len() || a.len() != labels.len() || b.len() != labels.len() {
        return None;
    }
    let (auc_a, v10a, v01a) = components(a, labels);
    let (auc_b, v10b, v01b) = components(b, labels);
    let (m, n) = (positives as f64, (labels.len() - positives) as f64);
    let s10 = cov(&v10a, &v10a) + cov(&v10b, &v10b) - 2.0 * cov(&v10a, &v10b);
    let s01 = cov(&v01a, &v01a) + cov(&v01b, &v01b) - 2.0 * cov(&v01a, &v01b);
    let var = (s10 / m + s01 / n).max(0.0);
    Some(one_sided(auc_a - auc_b, var.sqrt(), margin))
}

/// A paired z-test on per-example gains (e.g. correct-A minus correct-B, or loss-B minus loss-A):
/// is their mean above `margin`? `None` for fewer than two examples.
pub fn paired(gains: &[f64], margin: f64) -> Option<Comparison> {
    let n = gains.len() as f64;
    if n < 2.0 {
        return None;
    }
    let mean = gains.iter().sum::<f64>() / n;
    Some(one_sided(mean, (cov(gains, gains) / n).sqrt(), margin))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The structural components from their definition, O(m·n): an independent check of the
    /// midrank computation.
    fn brute(scores: &[f64], labels: &[bool]) -> (f64, Vec<f64>, Vec<f64>) {
        let psi = |x: f64, y: f64| {
            if x > y {
                1.0
            } else if x == y {
                0.5
            } else {
                0.0
            }
        };
        let pos: Vec<f64> = scores.iter().zip(labels).filter(|(_, y)| **y).map(|(s, _)| *s).collect();
        let neg: Vec<f64> = scores.iter().zip(labels).filter(|(_, y)| !**y).map(|(s, _)| *s).collect();
        let v10: Vec<f64> =
            pos.iter().map(|x| neg.iter().map(|y| psi(*x, *y)).sum::<f64>() / neg.len() as f64).collect();
        let v01: Vec<f64> =
            neg.iter().map(|y| pos.iter().map(|x| psi(*x, *y)).sum::<f64>() / pos.len() as f64).collect();
        (v10.iter().sum::<f64>() / pos.len() as f64, v10, v01)
    }

    fn data(seed: u64, n: usize, skill: f64) -> (Vec<f64>, Vec<bool>) {
        let mut s = seed;
        let mut u = move || {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let labels: Vec<bool> = (0..n).map(|_| u() < 0.3).collect();
        // Scores rounded to two decimals, so that ties occur.
        let scores = labels.iter().map(|y| ((f64::from(u8::from(*y)) * skill + u()) * 100.0).round() / 100.0).collect();
        (scores, labels)
    }

    #[test]
    fn midrank_components_equal_their_definition_with_ties() {
        let (scores, labels) = data(1, 400, 0.4);
        let (auc, v10, v01) = components(&scores, &labels);
        let (want, w10, w01) = brute(&scores, &labels);
        assert!((auc - want).abs() < 1e-12, "{auc} vs {want}");
        assert!(v10.iter().zip(&w10).chain(v01.iter().zip(&w01)).all(|(a, b)| (a - b).abs() < 1e-12));
    }

    #[test]
    fn delong_tells_a_better_model_from_an_equal_one() {
        let (labels, weak) = {
            let (s, l) = data(2, 2000, 0.2);
            (l, s)
        };
        // The same labels, a stronger score: clearly better; the same scores: no evidence.
        let strong: Vec<f64> = weak.iter().zip(&labels).map(|(s, y)| s + if *y { 0.3 } else { 0.0 }).collect();
        let better = delong(&strong, &weak, &labels, 0.0).unwrap();
        assert!(better.gain > 0.1 && better.p_value < 1e-6, "{better:?}");
        let same = delong(&weak, &weak, &labels, 0.0).unwrap();
        assert_eq!((same.gain, same.p_value), (0.0, 1.0));
        let margin = delong(&strong, &weak, &labels, better.gain + 0.05).unwrap();
        assert!(margin.p_value > 0.9, "a margin above the gain: {margin:?}");
        assert!(delong(&weak, &weak, &[true; 2000], 0.0).is_none(), "one class only");
    }

    #[test]
    fn a_paired_test_needs_a_consistent_gain() {
        let gains: Vec<f64> = (0..1000).map(|i| if i % 10 == 0 { 1.0 } else { 0.0 }).collect();
        assert!(paired(&gains, 0.0).unwrap().p_value < 1e-6);
        let noise: Vec<f64> = (0..1000).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        assert!(paired(&noise, 0.0).unwrap().p_value > 0.4);
    }
}
