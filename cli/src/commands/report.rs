//! `vigil report MODEL --out report.html`: one self-contained page a person can read — the
//! champion's ROC curve and calibration on its labelled window (its scores on the scores topic joined
//! with the input's labels), windowed accuracy / AUC and per-feature drift statistics over time (the
//! drift topic's reports), and the version history (the models topic). Charts are SVG drawn here: the
//! page needs no network and no script.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use vigil_events::{Codec, DriftReport, Label, Score, Variant};

use super::svg::{chart, esc, significance};
use crate::Config;

/// Records read from the end of each partition of the scores, labels and drift topics.
const TAIL: i64 = 50_000;

/// Writes the report of `model` to `out`.
pub fn run(config: &Config, model: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let codec = Codec::new();
    let registry = super::models::registry(config, &codec)?;
    let versions = registry.versions(model);
    anyhow::ensure!(!versions.is_empty(), "no version of model `{model}` on {}", config.topics.models);
    let input = config.inputs.iter().find(|i| i.model == model);
    let labels: HashMap<String, f64> = match input.filter(|i| !i.labels.is_empty()) {
        Some(i) => super::read_topic(config, &i.labels, Some(TAIL))?
            .iter()
            .filter_map(|b| codec.decode_event::<Label>(b).ok())
            .map(|l| (l.event_id, l.label))
            .collect(),
        None => HashMap::new(),
    };
    let pairs: Vec<(f64, bool)> = super::read_topic(config, &config.topics.scores, Some(TAIL))?
        .iter()
        .filter_map(|b| codec.decode_event::<Score>(b).ok())
        .filter(|s| s.model == model && s.variant == Variant::Champion)
        .filter_map(|s| Some((s.score, *labels.get(&s.event_id)? >= 0.5)))
        .collect();
    let reports: Vec<DriftReport> = super::read_topic(config, &config.topics.drift, Some(TAIL))?
        .iter()
        .filter_map(|b| codec.decode_event::<DriftReport>(b).ok())
        .filter(|r| r.model == model)
        .collect();
    let champion = registry.champion(model).map(|c| c.version);
    let html = page(model, champion, &pairs, &reports, &versions);
    std::fs::write(out, html).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: {} labelled scores, {} drift reports, {} versions",
        out.display(),
        pairs.len(),
        reports.len(),
        versions.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn page(
    model: &str,
    champion: Option<i64>,
    pairs: &[(f64, bool)],
    reports: &[DriftReport],
    versions: &[&vigil_events::ModelCheckpoint],
) -> String {
    let (roc, auc) = roc(pairs);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Vigil report: {m}</title><style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}svg{{background:#fafafa;border:1px solid #ddd;margin:0 1em 1em 0}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head><body>\
         <h1>Model <code>{m}</code></h1><p>Champion: <b id=\"champion\">{c}</b>. Labelled scores of the champion: \
         <b id=\"labelled\">{n}</b>; ROC AUC <b id=\"auc\">{a}</b>.</p>",
        m = esc(model),
        c = champion.map_or("none".into(), |v| format!("v{v}")),
        n = pairs.len(),
        a = auc.map_or("-".into(), |a| format!("{a:.4}")),
    );
    let diagonal = vec![(0.0, 0.0), (1.0, 1.0)];
    h += "<h2>Champion on its labelled window</h2>";
    h += &chart(
        "roc",
        "ROC curve",
        "false positive rate",
        "true positive rate",
        &[("ROC", roc), ("chance", diagonal.clone())],
        Some((0.0, 1.0)),
    );
    h += &chart(
        "calibration",
        "Calibration (10 bins)",
        "mean score",
        "share positive",
        &[("model", calibration(pairs)), ("perfect", diagonal)],
        Some((0.0, 1.0)),
    );
    h += "<h2>Over time (drift reports)</h2>";
    let t0 = reports.iter().map(|r| r.time).min().unwrap_or(0);
    let minutes = |t: i64| (t - t0) as f64 / 60_000.0;
    let quality: Vec<(&str, Vec<(f64, f64)>)> = vec![
        ("accuracy", reports.iter().filter_map(|r| Some((minutes(r.time), r.accuracy?))).collect()),
        ("AUC", reports.iter().filter_map(|r| Some((minutes(r.time), r.auc?))).collect()),
    ];
    h += &chart("quality", "Windowed accuracy and AUC", "minutes", "", &quality, Some((0.0, 1.0)));
    let mut features: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in reports {
        for f in &r.features {
            match features.iter_mut().find(|(n, _)| *n == f.feature) {
                Some((_, s)) => s.push((minutes(r.time), significance(f.adjusted_p_value))),
                None => features.push((f.feature.clone(), vec![(minutes(r.time), significance(f.adjusted_p_value))])),
            }
        }
    }
    features.sort_by(|a, b| peak(&b.1).total_cmp(&peak(&a.1)));
    let shown: Vec<(&str, Vec<(f64, f64)>)> = features.iter().take(6).map(|(n, s)| (n.as_str(), s.clone())).collect();
    let title = "Drift per feature: -log10 adjusted p (the six that moved most)";
    h += &chart("drift", title, "minutes", "-log10 p", &shown, None);
    let drifted: Vec<String> = features
        .iter()
        .filter(|(n, _)| reports.iter().any(|r| r.features.iter().any(|f| f.feature == *n && f.drifted)))
        .map(|(n, _)| esc(n))
        .collect();
    let _ = write!(
        h,
        "<p>Features that drifted in a report: <b id=\"drifted\">{}</b></p>",
        if drifted.is_empty() { "none".into() } else { drifted.join(", ") }
    );
    h += &history(versions, champion);
    h += "</body></html>\n";
    h
}

fn history(versions: &[&vigil_events::ModelCheckpoint], champion: Option<i64>) -> String {
    let mut h = String::from(
        "<h2>Version history</h2><table id=\"versions\"><tr><th>version</th><th>status</th><th>role</th>\
         <th>created (UTC ms)</th><th>accuracy</th><th>AUC</th><th style=\"text-align:left\">why</th></tr>",
    );
    for cp in versions {
        let m = cp.metrics.as_ref();
        let _ = write!(
            h,
            "<tr><td>v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            cp.version,
            format!("{:?}", cp.status).to_lowercase(),
            if Some(cp.version) == champion { "champion" } else { "" },
            cp.created_at,
            m.map_or("-".into(), |m| format!("{:.4}", m.accuracy)),
            m.and_then(|m| m.auc).map_or("-".into(), |a| format!("{a:.4}")),
            esc(&cp.status_reason),
        );
    }
    h + "</table>"
}

fn peak(s: &[(f64, f64)]) -> f64 {
    s.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max)
}

/// ROC points (false positive rate, true positive rate) and the area under them.
fn roc(pairs: &[(f64, bool)]) -> (Vec<(f64, f64)>, Option<f64>) {
    let positives = pairs.iter().filter(|p| p.1).count() as f64;
    let negatives = pairs.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return (Vec::new(), None);
    }
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp, mut area) = (0.0, 0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    for (i, (score, label)) in sorted.iter().enumerate() {
        if *label {
            tp += 1.0
        } else {
            fp += 1.0
        }
        // One point per distinct score: ties move together.
        if sorted.get(i + 1).is_none_or(|next| next.0 != *score) {
            let (x, y) = (fp / negatives, tp / positives);
            let (px, py) = points[points.len() - 1];
            area += (x - px) * (y + py) / 2.0;
            points.push((x, y));
        }
    }
    (points, Some(area))
}

/// Ten score bins: each bin's mean score against its share of positives.
fn calibration(pairs: &[(f64, bool)]) -> Vec<(f64, f64)> {
    let mut bins = [(0.0, 0.0, 0usize); 10];
    for (s, y) in pairs {
        let b = &mut bins[((s * 10.0) as usize).min(9)];
        b.0 += s;
        b.1 += f64::from(u8::from(*y));
        b.2 += 1;
    }
    bins.iter().filter(|b| b.2 > 0).map(|b| (b.0 / b.2 as f64, b.1 / b.2 as f64)).collect()
}
