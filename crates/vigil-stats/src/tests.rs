//! Unit tests of the statistics (parity with River and SciPy runs in the end-to-end tests, which
//! have Python).

use crate::correction::{benjamini_hochberg, bonferroni};
use crate::detectors::{Adwin, Ddm, Detector, Kswin, PageHinkley};
use crate::histogram::Histogram;
use crate::ks::{kolmogorov_sf, ks_2samp};
use crate::pyrandom::PyRandom;
use crate::{chi2, divergence};

#[test]
fn ks_statistic_and_exact_p_values_of_small_samples() {
    // Identical samples: D = 0, p = 1.
    let a = [1.0, 2.0, 3.0, 4.0];
    let r = ks_2samp(&a, &a);
    assert_eq!((r.statistic, r.p_value), (0.0, 1.0));
    // Disjoint samples of 5: D = 1, p = 2 / C(10, 5) = 2/252.
    let r = ks_2samp(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]);
    assert_eq!(r.statistic, 1.0);
    assert!((r.p_value - 2.0 / 252.0).abs() < 1e-12, "{}", r.p_value);
    assert!(r.exact);
    // Unequal sizes, disjoint: p = 2 / C(7, 3).
    let r = ks_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0, 7.0]);
    assert!((r.p_value - 2.0 / 35.0).abs() < 1e-12, "{}", r.p_value);
    // The limiting distribution: P(K > 1.36) ≈ 0.0494.
    assert!((kolmogorov_sf(1.36) - 0.04946).abs() < 1e-4);
    assert!((kolmogorov_sf(0.1) - 1.0).abs() < 1e-6);
}

#[test]
fn corrections() {
    let p = [0.01, 0.04, 0.03, 0.5];
    let close = |got: &[f64], want: &[f64]| got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12);
    let bonf = bonferroni(&p);
    assert!(close(&bonf, &[0.04, 0.16, 0.12, 1.0]), "{bonf:?}");
    // scipy.stats.false_discovery_control([0.01, 0.04, 0.03, 0.5]).
    let bh = benjamini_hochberg(&p);
    assert!(close(&bh, &[0.04, 0.16 / 3.0, 0.16 / 3.0, 0.5]), "{bh:?}");
}

#[test]
fn chi_squared_and_divergences() {
    let same = chi2::homogeneity(&[50.0, 30.0, 20.0], &[100.0, 60.0, 40.0]);
    assert!(same.statistic.abs() < 1e-12 && (same.p_value - 1.0).abs() < 1e-12 && same.dof == 2);
    let shifted = chi2::homogeneity(&[50.0, 30.0, 20.0], &[20.0, 30.0, 50.0]);
    assert!(shifted.p_value < 1e-5, "{shifted:?}");
    assert!(divergence::psi(&[1.0, 1.0], &[1.0, 1.0]).abs() < 1e-12);
    assert!(divergence::psi(&[9.0, 1.0], &[1.0, 9.0]) > 1.0);
    assert!(divergence::jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]) - 2f64.ln() < 1e-12);
    assert!((divergence::wasserstein_sorted(&[0.0, 1.0], &[1.0, 2.0]) - 1.0).abs() < 1e-12);
}

#[test]
fn histograms_merge_over_the_same_edges() {
    let sample: Vec<f64> = (0..100).map(f64::from).collect();
    let mut h = Histogram::deciles(&sample);
    for x in &sample {
        h.add(*x);
    }
    assert_eq!(h.total(), 100.0);
    let other = h.clone();
    assert!(h.merge(&other));
    assert_eq!(h.total(), 200.0);
    assert!(!h.merge(&Histogram::new(vec![0.0, 1.0])));
}

#[test]
fn python_random_matches_cpython() {
    // random.Random(42).getrandbits(32) x3 and random.Random(42).sample(range(70 | 10), 3) in CPython 3.11.
    let mut r = PyRandom::new(42);
    assert_eq!([r.next_u32(), r.next_u32(), r.next_u32()], [2_746_317_213, 478_163_327, 107_420_369]);
    let mut r = PyRandom::new(42);
    assert_eq!(r.sample_range(70, 3), vec![14, 3, 35]);
    let mut r = PyRandom::new(42);
    assert_eq!(r.sample_range(10, 3), vec![1, 0, 4]);
}

#[test]
fn detectors_detect_a_step_and_stay_quiet_on_a_constant() {
    let step: Vec<f64> = (0..4000).map(|i| if i < 2000 { 0.0 } else { 1.0 }).collect();
    let mut dets: Vec<Box<dyn Detector>> = vec![
        Box::new(Adwin::new(0.002)),
        Box::new(PageHinkley::new(30, 0.005, 50.0, 0.9999)),
        Box::new(Kswin::new(0.005, 100, 30, 42)),
    ];
    for d in &mut dets {
        let hits: Vec<usize> = step.iter().enumerate().filter_map(|(i, x)| d.update(*x).then_some(i)).collect();
        assert!(hits.iter().any(|i| (2000..2200).contains(i)), "{} missed the step: {hits:?}", d.name());
        assert!(hits.iter().all(|i| *i >= 2000), "{} fired before the step: {hits:?}", d.name());
    }
    let mut ddm = Ddm::new(30, 2.0, 3.0);
    let errors: Vec<f64> = (0..3000)
        .map(|i| if i < 1500 { f64::from(u8::from(i % 10 == 0)) } else { f64::from(u8::from(i % 2 == 0)) })
        .collect();
    let hits: Vec<usize> = errors.iter().enumerate().filter_map(|(i, x)| ddm.update(*x).then_some(i)).collect();
    assert!(hits.first().is_some_and(|i| (1500..1700).contains(i)), "ddm: {hits:?}");
}

/// A detector chosen by name behaves as the one built by hand with the same parameters (River's
/// defaults for what is left out), and parameters of another kind are refused.
#[test]
fn detectors_are_built_by_name_with_their_parameters() {
    use crate::detectors::{Detector, DetectorConfig, DetectorKind, Kswin, PageHinkley};
    let stream: Vec<f64> = (0..3000).map(|i| if i < 1500 { (i % 7) as f64 } else { 5.0 + (i % 7) as f64 }).collect();
    let detections =
        |d: &mut dyn Detector| -> Vec<usize> { (0..stream.len()).filter(|i| d.update(stream[*i])).collect() };
    let cfg = DetectorConfig { kind: DetectorKind::Kswin, alpha: Some(0.01), ..DetectorConfig::default() };
    let mut by_name = cfg.build();
    assert_eq!(by_name.name(), "kswin");
    assert_eq!(detections(by_name.as_mut()), detections(&mut Kswin::new(0.01, 100, 30, 42)));
    let ph = DetectorConfig { kind: DetectorKind::PageHinkley, ..DetectorConfig::default() };
    let found = detections(ph.build().as_mut());
    assert!(!found.is_empty());
    assert_eq!(found, detections(&mut PageHinkley::new(30, 0.005, 50.0, 0.9999)));
    assert!(cfg.validate("d").is_empty());
    let mixed = DetectorConfig { kind: DetectorKind::Adwin, window_size: Some(5), ..DetectorConfig::default() };
    assert_eq!(mixed.validate("d"), vec!["d.window-size: Adwin takes only delta".to_string()]);
}
