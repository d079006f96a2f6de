//! The A/B benchmark (`vigil-bench ab`, part of `make bench`): the judge's sequential test
//! (`vigil_stats::sequential`, as the drift service runs it) on seeded simulated arms — Bernoulli
//! outcomes, the accuracy of each arm's decisions — beside the usual way of watching an A/B test: a
//! two-proportion z-test at level 0.05 recomputed at every look ("peeking"), and the same z-test read
//! once at a fixed horizon. Both look after every 50 labels per arm, up to `MAX_LABELS` per arm.
//!
//! - **False-positive rate**: arms equal (accuracy 0.80 both); the share of runs that name a winner.
//!   The sequential test must stay at or below its level however often it is looked at; peeking at the
//!   z-test does not.
//! - **Detection time**: arm B better by a known effect (0.01, 0.02, 0.05); the median labels per arm
//!   until B is named, and the share of runs that named it (power) within the budget — beside the
//!   fixed-horizon sample size for 80% power, the price of being allowed to look at any time.
//! - **No difference**: on equal arms, the share of runs that end with "no difference" (the
//!   confidence sequence inside ±`min_effect`, 0.02) and the median labels per arm that took.

use serde_json::{Value as Json, json};
use vigil_stats::sequential::{self, Decision, Sequential};

use super::{BenchError, Env};

/// Labels per arm a run may use.
const MAX_LABELS: usize = 20_000;
/// Labels per arm between looks.
const LOOK_EVERY: usize = 50;
/// Accuracy of arm A.
const BASE: f64 = 0.80;
/// Level, and the smallest effect worth knowing.
const ALPHA: f64 = 0.05;
const MIN_EFFECT: f64 = 0.02;
/// Two-sided z at 0.05, and z at 80% power.
const Z_ALPHA: f64 = 1.959_964;
const Z_POWER: f64 = 0.841_621;

/// How one run ended for each method: (decision, labels per arm), `None` when the budget ran out.
struct Run {
    sequential: Option<(Decision, usize)>,
    peeking: Option<usize>,
    fixed: bool,
}

fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One seeded run with arms of accuracy `pa` and `pb`.
fn run(seed: u64, pa: f64, pb: f64) -> Run {
    let mut u = uniform(seed);
    let mut test = Sequential::new(ALPHA, MIN_EFFECT);
    let (mut sa, mut sb) = (0.0, 0.0);
    let mut out = Run { sequential: None, peeking: None, fixed: false };
    for n in 1..=MAX_LABELS {
        sa += f64::from(u8::from(u() < pa));
        sb += f64::from(u8::from(u() < pb));
        if n % LOOK_EVERY != 0 {
            continue;
        }
        let z = z_test(sa, sb, n);
        if out.peeking.is_none() && z.abs() > Z_ALPHA {
            out.peeking = Some(n);
        }
        if out.sequential.is_none() {
            let (a, b) = (sequential::mean_from(n, sa, sa, true), sequential::mean_from(n, sb, sb, true));
            if let (Some(a), Some(b)) = (a, b)
                && let Some(d) = test.look(&a, &b, true).decision
            {
                out.sequential = Some((d, n));
            }
        }
    }
    out.fixed = z_test(sa, sb, MAX_LABELS).abs() > Z_ALPHA;
    out
}

/// The pooled two-proportion z statistic of B against A, `n` labels each.
fn z_test(sa: f64, sb: f64, n: usize) -> f64 {
    let nf = n as f64;
    let pooled = (sa + sb) / (2.0 * nf);
    let se = (pooled * (1.0 - pooled) * 2.0 / nf).sqrt();
    if se > 0.0 { (sb - sa) / nf / se } else { 0.0 }
}

fn median_of(mut xs: Vec<usize>) -> Option<usize> {
    xs.sort_unstable();
    xs.get(xs.len() / 2).copied()
}

/// Runs the A/B benchmark and writes `ab.json`.
pub async fn ab(env: &Env) -> Result<(), BenchError> {
    let runs = 200 * env.rounds as u64;
    eprintln!("\n== A/B test: sequential (mSPRT) vs peeking at a z-test, {runs} seeded runs per case ==");
    let null: Vec<Run> = (0..runs).map(|s| run(s, BASE, BASE)).collect();
    let rate = |k: usize| k as f64 / runs as f64;
    let fp_seq = rate(null.iter().filter(|r| matches!(r.sequential, Some((Decision::A | Decision::B, _)))).count());
    let fp_peek = rate(null.iter().filter(|r| r.peeking.is_some()).count());
    let fp_fixed = rate(null.iter().filter(|r| r.fixed).count());
    let no_diff: Vec<usize> = null
        .iter()
        .filter_map(|r| r.sequential.filter(|(d, _)| *d == Decision::NoDifference).map(|(_, n)| n))
        .collect();
    eprintln!(
        "  false positives at level {ALPHA}: sequential {fp_seq:.3}, peeking z {fp_peek:.3}, fixed-horizon z {fp_fixed:.3}"
    );
    let mut effects = Vec::new();
    for effect in [0.01, 0.02, 0.05] {
        let alt: Vec<Run> = (0..runs).map(|s| run(1_000_000 + s, BASE, BASE + effect)).collect();
        let found: Vec<usize> =
            alt.iter().filter_map(|r| r.sequential.filter(|(d, _)| *d == Decision::B).map(|(_, n)| n)).collect();
        let pb = BASE + effect;
        let var = BASE * (1.0 - BASE) + pb * (1.0 - pb);
        let fixed_n = ((Z_ALPHA + Z_POWER).powi(2) * var / (effect * effect)).ceil();
        let median = median_of(found.clone());
        eprintln!(
            "  effect {effect}: B named in {:.0}% of runs, median {} labels per arm (fixed horizon for 80% power: {fixed_n})",
            rate(found.len()) * 100.0,
            median.map_or("-".to_string(), |m| m.to_string())
        );
        effects.push(json!({
            "effect": effect,
            "accuracy_a": BASE,
            "accuracy_b": pb,
            "power": rate(found.len()),
            "median_labels_per_arm": median,
            "fixed_horizon_labels_per_arm_80_power": fixed_n,
        }));
    }
    let report: Json = json!({
        "benchmark": "ab",
        "commit": super::commit(),
        "runs_per_case": runs,
        "alpha": ALPHA,
        "min_effect": MIN_EFFECT,
        "max_labels_per_arm": MAX_LABELS,
        "look_every_labels_per_arm": LOOK_EVERY,
        "false_positive_rate": fp_seq,
        "false_positive_rate_peeking_z": fp_peek,
        "false_positive_rate_fixed_horizon_z": fp_fixed,
        "no_difference_rate": rate(no_diff.len()),
        "no_difference_median_labels_per_arm": median_of(no_diff),
        "detection": effects,
    });
    let path = super::write_report(env, "ab", &report)?;
    eprintln!("  report: {}", path.display());
    Ok(())
}
