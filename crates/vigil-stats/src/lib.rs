//! Statistics for drift detection, without I/O: the two-sample Kolmogorov–Smirnov test with exact
//! p-values ([`ks`]), chi-squared homogeneity ([`chi2`]), PSI, Jensen–Shannon and Wasserstein
//! ([`divergence`]), multiple-testing corrections ([`correction`]), mergeable histograms
//! ([`histogram`]), streaming detectors with River's semantics ([`detectors`]: ADWIN,
//! Page-Hinkley, DDM, KSWIN, the last with Python's generator from [`pyrandom`]), and paired tests
//! of one model against another on the same labels ([`paired`]: DeLong's for AUC, a paired z-test), and
//! the always-valid sequential test of live A/B tests ([`sequential`]).

pub mod chi2;
pub mod correction;
pub mod detectors;
pub mod divergence;
pub mod histogram;
pub mod ks;
pub mod paired;
pub mod proportions;
pub mod pyrandom;
pub mod sequential;

pub use correction::Correction;
pub use detectors::{Adwin, Ddm, Detector, DetectorConfig, DetectorKind, Kswin, PageHinkley};

#[cfg(test)]
mod tests;
