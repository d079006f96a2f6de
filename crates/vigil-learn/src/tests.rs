//! Learning tests: they learn, they export what they learnt, a seed fixes everything, rehearsal keeps
//! a returning concept, selection keeps the better candidates.

use vigil_models::{Provider, Runtime};

use crate::family::{Family, Hyper, OnlineModel, Optimizer};
use crate::learner::{Example, Learner, Setup, river_logistic, tabular_candidates};
use crate::rng::Rng;
use crate::select::{Metric, Policy};

/// A two-feature stream: label = [a·x0 + b·x1 > 0], inputs with non-zero means.
fn stream(seed: u64, n: usize, a: f64, b: f64) -> Vec<([f64; 2], f64)> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| {
            let x = [3.0 + 2.0 * r.normal(), -1.0 + 0.5 * r.normal()];
            (x, f64::from(u8::from(a * (x[0] - 3.0) + b * (x[1] + 1.0) * 4.0 > 0.0)))
        })
        .collect()
}

fn setup(candidates: Vec<Hyper>, rehearsal: usize) -> Setup {
    Setup {
        width: 2,
        numeric: 2,
        clip: vec![None, None],
        candidates,
        policy: Policy { metric: Metric::Accuracy, round: 500, min_keep: 2, min_age: 200, window: 500, threshold: 0.5 },
        rehearsal,
        replay_ratio: 1.0,
        serve_top: 1,
        seed: 5,
    }
}

#[test]
fn river_style_logistic_regression_learns_a_linear_concept() {
    let mut l = Learner::new(setup(vec![river_logistic(1)], 0));
    let data = stream(1, 20_000, 1.0, -1.0);
    for (x, y) in &data {
        l.learn(Example::Dense(x), *y);
    }
    let acc = l.pool.candidates[0].metrics.window_accuracy();
    assert!(acc > 0.95, "window accuracy {acc}");
}

#[test]
fn exported_models_score_what_the_learner_predicts() {
    let rt = Runtime::global(None).unwrap_or_else(|e| panic!("{}", vigil_runtime::error_chain(&e)));
    let data = stream(2, 3000, 1.0, 1.0);
    for hyper in tabular_candidates(3, false) {
        let desc = hyper.describe();
        let mut l = Learner::new(setup(vec![hyper], 0));
        for (x, y) in &data {
            l.learn(Example::Dense(x), *y);
        }
        let model = l.pool.candidates[0].model.export();
        let mut s = rt.session(&model.to_onnx("t", 1).to_bytes(), Provider::Cpu, 1).unwrap();
        let rows: Vec<[f64; 2]> = data[..50].iter().map(|(x, _)| *x).collect();
        let scaled: Vec<f32> = rows.iter().flat_map(|x| l.scaled_for_tests(x)).map(|v| v as f32).collect();
        let (_, got) = s.run_f32(&scaled, rows.len(), 2).unwrap();
        for (r, x) in rows.iter().enumerate() {
            let want = l.predict(Example::Dense(x));
            assert!((f64::from(got[r]) - want).abs() < 1e-5, "{desc} row {r}: onnx {} vs rust {want}", got[r]);
        }
    }
}

#[test]
fn an_exported_ensemble_scores_what_the_learner_serves() {
    let rt = Runtime::global(None).unwrap_or_else(|e| panic!("{}", vigil_runtime::error_chain(&e)));
    let data = stream(4, 4000, 1.0, -1.0);
    let mut s = setup(tabular_candidates(3, false), 0);
    s.serve_top = 3;
    s.clip = vec![Some(2.0), Some(2.0)];
    let mut l = Learner::new(s);
    for (x, y) in &data {
        l.learn(Example::Dense(x), *y);
    }
    let spec = vigil_features::FeatureSpec::parse(
        "model = \"t\"\nschema = \"s\"\n[[numeric]]\nfield = \"a\"\nclip = 2.0\n[[numeric]]\nfield = \"b\"\nclip = 2.0\n",
    )
    .unwrap();
    let (model, exported) = l.export(&spec);
    assert_eq!(model.family(), "mean");
    assert_eq!(l.served().len(), 3);
    let mut session = rt.session(&model.to_onnx("t", 1).to_bytes(), Provider::Cpu, 1).unwrap();
    for (x, _) in &data[..40] {
        // Standardise as the scorer would with the exported spec.
        let z: Vec<f32> =
            x.iter().zip(&exported.numeric).map(|(v, n)| (((v - n.mean) / n.std).clamp(-2.0, 2.0)) as f32).collect();
        let (_, got) = session.run_f32(&z, 1, 2).unwrap();
        let want = l.predict(Example::Dense(x));
        assert!((f64::from(got[0]) - want).abs() < 1e-5, "onnx {} vs learner {want}", got[0]);
    }
}

#[test]
fn the_same_seed_gives_the_same_learner_and_state_round_trips() {
    let data = stream(3, 4000, 1.0, 0.5);
    let run = || {
        let mut l = Learner::new(setup(tabular_candidates(9, true), 100));
        for (x, y) in &data {
            l.learn(Example::Dense(x), *y);
        }
        l
    };
    let (a, b) = (run(), run());
    // Compared as their serialised state (a mismatch prints a diff-able line, not a dump).
    let state = |l: &Learner| serde_json::to_string(l).unwrap();
    assert!(state(&a) == state(&b), "two runs with one seed differ");
    let back: Learner = serde_json::from_str(&state(&a)).unwrap();
    assert!(back == a, "the state does not round-trip exactly");
    // Resuming from saved state gives the model an uninterrupted run gives.
    let mut first = Learner::new(setup(tabular_candidates(9, true), 100));
    for (x, y) in &data[..2500] {
        first.learn(Example::Dense(x), *y);
    }
    let mut resumed: Learner = serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
    for (x, y) in &data[2500..] {
        resumed.learn(Example::Dense(x), *y);
    }
    assert!(state(&resumed) == state(&a), "a resumed learner differs from an uninterrupted one");
}

#[test]
fn selection_drops_the_worse_candidates() {
    let mut hypers = tabular_candidates(4, false);
    // A hopeless candidate: learning rate zero.
    hypers.push(Hyper {
        family: Family::Logistic,
        optimizer: Optimizer::Sgd { lr: 0.0 },
        intercept_lr: Some(0.0),
        l2: 0.0,
        positive_weight: Some(1.0),
        anchor: 0.0,
        seed: 1,
    });
    let n = hypers.len();
    let mut l = Learner::new(setup(hypers, 0));
    for (x, y) in &stream(5, 5000, 1.0, -2.0) {
        l.learn(Example::Dense(x), *y);
    }
    assert!(l.pool.candidates.len() < n && l.pool.candidates.len() >= 2);
    assert!(
        l.pool.dropped.iter().any(|(d, _)| d.contains("sgd0/")),
        "the hopeless one was dropped: {:?}",
        l.pool.dropped
    );
}

/// Concept A (the label follows x0), then B (it follows x1), then A again: with rehearsal, replayed
/// examples of A keep part of it in the model, which is right sooner when A returns.
#[test]
fn rehearsal_keeps_a_returning_concept() {
    let concept = |seed: u64, n: usize, a: bool| -> Vec<([f64; 2], f64)> {
        let mut r = Rng::new(seed);
        (0..n)
            .map(|_| {
                let x = [r.normal(), r.normal()];
                (x, f64::from(u8::from(if a { x[0] > 0.0 } else { x[1] > 0.0 })))
            })
            .collect()
    };
    let run = |rehearsal: usize| {
        let mlp = Hyper {
            family: Family::Mlp(16),
            optimizer: Optimizer::Sgd { lr: 0.05 },
            intercept_lr: None,
            l2: 0.0,
            positive_weight: Some(1.0),
            anchor: 0.0,
            seed: 11,
        };
        let mut l = Learner::new(setup(vec![mlp], rehearsal));
        for (x, y) in concept(1, 6000, true).iter().chain(&concept(2, 6000, false)) {
            l.learn(Example::Dense(x), *y);
        }
        // Accuracy on the returning concept as it arrives: what the model still knows of A.
        let back = concept(3, 1000, true);
        let right = back.iter().filter(|(x, y)| (l.predict(Example::Dense(x)) > 0.5) == (*y > 0.5)).count();
        right as f64 / back.len() as f64
    };
    let (with, without) = (run(2000), run(0));
    eprintln!("returning concept: accuracy {with:.3} with rehearsal, {without:.3} without");
    assert!(with > without + 0.05, "rehearsal {with} vs none {without}");
}

/// Five uniform features; the label is `x1 > 0.3`, flipped for 5% of the rows.
fn step_concept(seed: u64, n: usize) -> Vec<([f64; 5], f64)> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| {
            let x = [r.uniform(), r.uniform(), r.uniform(), r.uniform(), r.uniform()];
            let y = (x[1] > 0.3) != (r.uniform() < 0.05);
            (x, f64::from(u8::from(y)))
        })
        .collect()
}

#[test]
fn a_hoeffding_tree_splits_on_the_feature_that_decides_and_exports_what_it_predicts() {
    use crate::family::{Online, tree};
    let mut t = Online::new(tree::river(1), 5);
    let rows = step_concept(3, 6000);
    let mut right = 0;
    for (k, (x, y)) in rows.iter().enumerate() {
        let p = t.learn(crate::family::Row::Dense(x), *y, 1.0);
        if k >= 4000 && (p > 0.5) == (*y > 0.5) {
            right += 1;
        }
    }
    let Online::Tree(ht) = &t else { panic!("a tree") };
    let (feature, threshold) = ht.root_split().expect("the root split");
    let (splits, leaves) = ht.size();
    eprintln!(
        "root: x{feature} <= {threshold:.4}; {splits} splits, {leaves} leaves; accuracy {}",
        right as f64 / 2000.0
    );
    assert_eq!(feature, 1, "the root tests the feature that decides");
    assert!((threshold - 0.3).abs() < 0.1, "near the concept's threshold: {threshold}");
    assert!(right as f64 / 2000.0 > 0.9, "accuracy on the last 2000 rows: {right}/2000");
    // The export predicts what the tree does, row by row (thresholds in f32, as ONNX compares).
    let model = t.export();
    for (x, _) in step_concept(4, 500) {
        let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
        let (rust, served) = (t.predict(crate::family::Row::Dense(&x)), f64::from(model.predict_dense(&x32)));
        assert!((rust - served).abs() < 1e-6, "{rust} vs {served}");
    }
    let rt = Runtime::global(None).expect("ONNX Runtime");
    let bytes = model.to_onnx("fraud", 1).to_bytes();
    let rows: Vec<f32> = step_concept(5, 64).iter().flat_map(|(x, _)| x.map(|v| v as f32)).collect();
    let (_, scores) = rt.session(&bytes, Provider::Cpu, 1).unwrap().run_f32(&rows, 64, 5).unwrap();
    for (r, s) in scores.iter().enumerate() {
        let want = model.predict_dense(&rows[r * 5..(r + 1) * 5]);
        assert!((s - want).abs() < 1e-6, "row {r}: ONNX Runtime {s} vs Rust {want}");
    }
}

#[test]
fn an_adaptive_forest_replaces_its_trees_after_a_change_and_exports_what_it_predicts() {
    use crate::family::{Online, Row, forest};
    let mut f = Online::new(forest::candidates(7, Some(1.0)).remove(0), 5);
    // The concept flips at 6,000: x1 > 0.3 becomes x3 <= 0.6.
    let before = step_concept(11, 6000);
    let after: Vec<([f64; 5], f64)> =
        step_concept(12, 6000).into_iter().map(|(x, _)| (x, f64::from(u8::from(x[3] <= 0.6)))).collect();
    let mut right_late = 0;
    for (k, (x, y)) in before.iter().chain(&after).enumerate() {
        let p = f.learn(Row::Dense(x), *y, 1.0);
        if k >= 10_000 && (p > 0.5) == (*y > 0.5) {
            right_late += 1;
        }
    }
    let Online::Forest(arf) = &f else { panic!("a forest") };
    let state = serde_json::to_vec(&f).unwrap().len();
    eprintln!(
        "forest: {:?} (trees, leaves), {} replaced, accuracy {}, state {state} bytes",
        arf.size(),
        arf.replaced,
        right_late as f64 / 2000.0
    );
    assert!(arf.replaced > 0, "the change replaced trees");
    assert!(right_late as f64 / 2000.0 > 0.9, "the new concept learnt: {right_late}/2000");
    let model = f.export();
    let rows: Vec<f32> = step_concept(13, 64).iter().flat_map(|(x, _)| x.map(|v| v as f32)).collect();
    let rt = Runtime::global(None).expect("ONNX Runtime");
    let (_, scores) =
        rt.session(&model.to_onnx("fraud", 1).to_bytes(), Provider::Cpu, 1).unwrap().run_f32(&rows, 64, 5).unwrap();
    for (r, s) in scores.iter().enumerate() {
        let x = &rows[r * 5..(r + 1) * 5];
        let (want, learner) =
            (model.predict_dense(x), f.predict(Row::Dense(&x.iter().map(|v| f64::from(*v)).collect::<Vec<_>>())));
        assert!((s - want).abs() < 1e-5, "row {r}: ONNX Runtime {s} vs Rust {want}");
        assert!((f64::from(want) - learner).abs() < 1e-4, "row {r}: served {want} vs learner {learner}");
    }
}
