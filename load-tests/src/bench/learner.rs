//! The learner benchmark: prequential runs over ELEC2 and credit default in file order beside River
//! 0.26.1 run in the same session.

use super::*;

/// One prequential pass of a learner over rows; returns (metrics of the served predictions,
/// examples per second, served candidates).
fn prequential(
    rows: &[(Vec<f64>, f64)],
    setup: vigil_learn::Setup,
) -> (vigil_learn::metrics::Prequential, f64, Vec<String>) {
    let mut learner = vigil_learn::Learner::new(setup);
    let mut m = vigil_learn::metrics::Prequential::new(1000, 0.5);
    let started = Instant::now();
    for (x, y) in rows {
        let p = learner.learn(vigil_learn::Example::Dense(x), *y);
        m.update(p, *y > 0.5);
    }
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    (m, rate, learner.served())
}

fn csv_rows(
    path: &Path,
    label: &str,
    positive: Option<&str>,
    drop: &[&str],
) -> Result<Vec<(Vec<f64>, f64)>, BenchError> {
    use crate::sim::replay::{Mapping, load};
    let m = Mapping {
        label_column: label.into(),
        positive: positive.map(str::to_string),
        id_column: None,
        drop: drop.iter().map(|s| s.to_string()).collect(),
        id_prefix: "b".into(),
        schema: None,
    };
    let rows = load(path, &m)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let x = r
                .record
                .as_object()
                .map(|o| o.iter().filter(|(k, _)| *k != "event_id").filter_map(|(_, v)| v.as_f64()).collect())
                .unwrap_or_default();
            (x, r.label)
        })
        .collect())
}

/// The learner benchmark: prequential runs over ELEC2 (accuracy) and credit default (ROC AUC, as
/// River's `metrics.ROCAUC` computes it) in file order, beside River 0.26.1 run in the same session.
pub async fn learner(env: &Env) -> Result<Json, BenchError> {
    use vigil_learn::learner::{river_logistic, tabular_candidates};
    use vigil_learn::select::{Metric, Policy};
    let root = repo_root(&env.bin_dir);
    let data = std::env::var("VIGIL_DATA").map(PathBuf::from).unwrap_or_else(|_| root.join("../shared/data"));
    if !data.join("elec2.csv").exists() {
        let report = json!({"benchmark": "learner", "skipped": format!("{} has no elec2.csv (the shared datasets are not here)", data.display())});
        write_report(env, "learner", &report)?;
        eprintln!("learner benchmark skipped: {}", report["skipped"]);
        return Ok(report);
    }
    let elec = csv_rows(&data.join("elec2.csv"), "class", Some("UP"), &["Date"])?;
    let credit = csv_rows(&data.join("credit-default.csv"), "default.payment.next.month", None, &["ID"])?;
    let setup = |d: usize, candidates, metric, top: usize, clip: Option<f64>| vigil_learn::Setup {
        width: d,
        numeric: d,
        clip: vec![clip; d],
        candidates,
        policy: Policy { metric, round: 2000, min_keep: 2, min_age: 1000, window: 1000, threshold: 0.5 },
        rehearsal: 0,
        replay_ratio: 0.0,
        serve_top: top,
        seed: 1,
    };
    // River in the same run (the quick mode skips the slow forest; its figures come from the reference).
    let script = root.join("../shared/baselines/river_baseline.py");
    let python = python_bin(&root);
    eprintln!("running River ({})", script.display());
    let out = Command::new(&python).arg(&script).args(["--quick", "--data"]).arg(&data).output()?;
    if !out.status.success() {
        return Err(format!("River baseline failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let river: Json = serde_json::from_slice(&out.stdout)?;
    let reference: Json = std::fs::read(root.join("../shared/baselines/river-reference.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Json::Null);
    let river_lr = |ds: &str, k: &str| river["learning"][ds]["logistic_regression"][k].as_f64().unwrap_or(f64::NAN);
    let arf = |ds: &str| reference["learning"][ds]["adaptive_random_forest_10"]["value"].as_f64().unwrap_or(f64::NAN);

    let (mut rates_elec, mut rates_credit) = (Vec::new(), Vec::new());
    let mut lr = (0.0, 0.0);
    for round in 0..env.rounds {
        let (m, r, _) = prequential(&elec, setup(elec[0].0.len(), vec![river_logistic(1)], Metric::Accuracy, 1, None));
        rates_elec.push(r);
        let (c, rc, _) = prequential(&credit, setup(credit[0].0.len(), vec![river_logistic(1)], Metric::Auc, 1, None));
        rates_credit.push(rc);
        lr = (m.accuracy(), c.river_auc());
        eprintln!("round {}: logistic regression {r:.0} updates/s (elec2), {rc:.0}/s (credit)", round + 1);
    }
    let (best_elec, best_rate, elec_served) =
        prequential(&elec, setup(elec[0].0.len(), tabular_candidates(1, false), Metric::Accuracy, 2, Some(3.0)));
    let (best_credit, _, credit_served) =
        prequential(&credit, setup(credit[0].0.len(), tabular_candidates(1, false), Metric::Auc, 2, Some(3.0)));
    let trees = trees(env, &root, &elec, &credit, &setup)?;
    let updates = median(&rates_elec);
    let river_updates = river_lr("elec2", "events_per_s");
    let report = json!({
        "benchmark": "learner",
        "machine": machine(env),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "commit": commit(),
        "river_version": river["river_version"],
        "lr_elec2_accuracy": lr.0,
        "river_lr_elec2_accuracy": river_lr("elec2", "value"),
        "lr_credit_default_auc": lr.1,
        "river_lr_credit_default_auc": river_lr("credit_default", "value"),
        "best_elec2_accuracy": best_elec.accuracy(),
        "best_elec2_selected": elec_served,
        "best_elec2_updates_per_s": best_rate,
        "best_to_river_arf_updates": best_rate / trees["river_forest_updates_per_s"].as_f64().unwrap_or(f64::NAN),
        "river_best_elec2_accuracy": arf("elec2"),
        "best_credit_default_auc": best_credit.river_auc(),
        "best_credit_default_exact_auc": best_credit.auc(),
        "best_credit_default_selected": credit_served,
        "river_best_credit_default_auc": arf("credit_default"),
        "updates_per_s": updates,
        "updates_per_s_runs": rates_elec,
        "river_updates_per_s": river_updates,
        "update_ratio": updates / river_updates,
        "credit_updates_per_s": median(&rates_credit),
        "river_credit_updates_per_s": river_lr("credit_default", "events_per_s"),
        "credit_update_ratio": median(&rates_credit) / river_lr("credit_default", "events_per_s"),
        "tree_elec2_accuracy": trees["elec2_accuracy"],
        "river_tree_elec2_accuracy": trees["river_elec2_accuracy"],
        "tree_credit_default_auc": trees["credit_default_auc"],
        "tree_updates_per_s": trees["updates_per_s"],
        "river_tree_updates_per_s": trees["river_updates_per_s"],
        "tree_update_ratio": trees["update_ratio"],
        "forest_elec2_accuracy": trees["forest_elec2_accuracy"],
        "river_arf_mc_elec2_accuracy": trees["river_forest_elec2_accuracy"],
        "forest_credit_default_auc": trees["forest_credit_default_auc"],
        "arf_updates_per_s": trees["forest_updates_per_s"],
        "river_arf_updates_per_s": trees["river_forest_updates_per_s"],
        "notes": "AUC as River's metrics.ROCAUC computes it (10 thresholds, trapezoid); River's best is its Adaptive Random Forest (10 trees) from shared/baselines/river-reference.json. updates/s are prequential (predict, then learn) events per second of the logistic regression, one core each. tree_*: one Hoeffding tree with River's defaults and majority-class leaves (tree::river) beside River's HoeffdingTreeClassifier(leaf_prediction='mc'); forest_* / arf_*: Vigil's adaptive random forest (10 trees) beside River's ARFClassifier(n_models=10, leaf_prediction='mc'), both run in the same session (load-tests/baselines/river_tree.py); every Vigil figure goes through the learner (online standardisation included).",
    });
    let path = write_report(env, "learner", &report)?;
    eprintln!("\nlearner benchmark -> {}", path.display());
    print_summary(&report);
    Ok(report)
}

/// The report's headline figures on standard error.
fn print_summary(report: &Json) {
    for k in [
        "lr_elec2_accuracy",
        "river_lr_elec2_accuracy",
        "lr_credit_default_auc",
        "river_lr_credit_default_auc",
        "best_elec2_accuracy",
        "river_best_elec2_accuracy",
        "best_credit_default_auc",
        "river_best_credit_default_auc",
        "updates_per_s",
        "river_updates_per_s",
        "update_ratio",
        "tree_elec2_accuracy",
        "river_tree_elec2_accuracy",
        "tree_credit_default_auc",
        "tree_update_ratio",
        "best_elec2_updates_per_s",
        "best_to_river_arf_updates",
        "forest_elec2_accuracy",
        "river_arf_mc_elec2_accuracy",
        "forest_credit_default_auc",
        "arf_updates_per_s",
        "river_arf_updates_per_s",
    ] {
        eprintln!("  {k:<32} {:>14.4}", report[k].as_f64().unwrap_or(f64::NAN));
    }
}

type Rows = [(Vec<f64>, f64)];

/// One Hoeffding tree (River's defaults, majority-class leaves) and one adaptive random forest (ten
/// trees) over both datasets, and River's over ELEC2 in the same session: accuracy, AUC and
/// prequential updates per second.
fn trees(
    env: &Env,
    root: &Path,
    elec: &Rows,
    credit: &Rows,
    setup: &dyn Fn(
        usize,
        Vec<vigil_learn::family::Hyper>,
        vigil_learn::select::Metric,
        usize,
        Option<f64>,
    ) -> vigil_learn::Setup,
) -> Result<Json, BenchError> {
    use vigil_learn::select::Metric;
    let tree = || vec![vigil_learn::family::tree::river(1)];
    let mut rates = Vec::new();
    let mut accuracy = 0.0;
    for _ in 0..env.rounds {
        let (m, r, _) = prequential(elec, setup(elec[0].0.len(), tree(), Metric::Accuracy, 1, None));
        accuracy = m.accuracy();
        rates.push(r);
    }
    let (c, _, _) = prequential(credit, setup(credit[0].0.len(), tree(), Metric::Auc, 1, None));
    let csv: String = elec
        .iter()
        .map(|(x, y)| x.iter().map(f64::to_string).chain([y.to_string()]).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let rows = env.out_dir.join("elec2-rows.csv");
    std::fs::write(&rows, csv)?;
    let python = python_bin(root);
    let river = |kind: &str| -> Result<Json, BenchError> {
        let out =
            Command::new(&python).arg(root.join("load-tests/baselines/river_tree.py")).arg(&rows).arg(kind).output()?;
        if !out.status.success() {
            return Err(format!("River's {kind} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let (river_tree, river_forest) = (river("tree")?, river("forest")?);
    let _ = std::fs::remove_file(&rows);
    let forest = || vec![vigil_learn::family::forest::candidates(1, Some(1.0)).remove(0)];
    let (fe, forest_rate, _) = prequential(elec, setup(elec[0].0.len(), forest(), Metric::Accuracy, 1, None));
    let (fc, _, _) = prequential(credit, setup(credit[0].0.len(), forest(), Metric::Auc, 1, None));
    let river_rate = river_tree["updates_per_s"].as_f64().unwrap_or(f64::NAN);
    Ok(json!({
        "elec2_accuracy": accuracy,
        "river_elec2_accuracy": river_tree["accuracy"],
        "credit_default_auc": c.river_auc(),
        "updates_per_s": median(&rates),
        "river_updates_per_s": river_rate,
        "update_ratio": median(&rates) / river_rate,
        "forest_elec2_accuracy": fe.accuracy(),
        "river_forest_elec2_accuracy": river_forest["accuracy"],
        "forest_credit_default_auc": fc.river_auc(),
        "forest_updates_per_s": forest_rate,
        "river_forest_updates_per_s": river_forest["updates_per_s"],
    }))
}
