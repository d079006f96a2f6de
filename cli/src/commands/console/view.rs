//! What the console draws: the page (served once; it then listens to `/events`), the live part
//! (HTML with SVG charts drawn here, sent on every update) and the same figures as JSON.

use std::fmt::Write;

use serde_json::{Value, json};

use super::state::{Board, ModelBoard};
use crate::commands::svg::{chart, esc, significance};

/// The whole page: the live part as it is now, and a script that swaps in each update. The page
/// works without the script too (it is a snapshot then); reloading it shows the same state.
pub fn page(board: &Board, now_ms: i64) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Vigil console</title><style>{STYLE}</style></head>\
         <body data-updates=\"0\"><header><h1>Vigil console</h1><span id=\"stream\">connecting…</span></header>\
         <main id=\"live\">{}</main><script>{SCRIPT}</script></body></html>\n",
        live(board, now_ms)
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em 2em;color:#222}header{display:flex;gap:2em;align-items:baseline}\
    svg{background:#fafafa;border:1px solid #ddd;margin:0 .6em .6em 0}section{border-top:2px solid #ccc;margin-top:1em}\
    table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}\
    .firing{color:#b00}.ok{color:#070}.figures b{margin-right:1.5em}";

/// Replaces the live part on each server-sent event; the browser reconnects by itself when the
/// console restarts.
/// `?updates=N` stops after N updates (the server ends the stream, the page closes it): a
/// snapshot for headless browsers, which wait for the network to go quiet.
const SCRIPT: &str = "let n=0;const s=document.getElementById('stream');\
    const max=Number(new URLSearchParams(location.search).get('updates')||0);\
    const es=new EventSource('/events'+(max?'?updates='+max:''));\
    es.onmessage=e=>{document.getElementById('live').innerHTML=e.data;n++;document.body.dataset.updates=n;\
    s.textContent='live ('+n+' updates)';if(max&&n>=max){es.close();s.textContent='stopped after '+n+' updates';}};\
    es.onerror=()=>{s.textContent='reconnecting…';};";

/// The live part: the brokers' state, one section per model, the alerts.
pub fn live(board: &Board, now_ms: i64) -> String {
    let mut h = String::new();
    let b = &board.broker;
    let _ = write!(
        h,
        "<p>Brokers: <b id=\"broker\" class=\"{}\">{}</b>{} · records read <b id=\"records\">{}</b> (undecodable {})</p>",
        if b.connected { "ok" } else { "firing" },
        if b.connected { "connected" } else { "unreachable" },
        b.error.as_ref().map_or(String::new(), |e| format!(" ({})", esc(e))),
        board.records,
        board.undecodable
    );
    for name in board.model_names() {
        h += &model(board, &name, now_ms);
    }
    h + &alerts(board, now_ms)
}

fn model(board: &Board, name: &str, now_ms: i64) -> String {
    let Some(m) = board.models.get(name) else { return String::new() };
    let (champion, challenger) = board.roles(name);
    let version = |v: Option<i64>| v.map_or("none".to_string(), |v| format!("v{v}"));
    let figure = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    let id = esc(name);
    let drifted = m.drifted_now();
    let mut h = format!(
        "<section><h2>Model <code>{id}</code></h2><p class=\"figures\">champion <b id=\"{id}-champion\">{}</b>\
         challenger <b id=\"{id}-challenger\">{}</b>events/s <b id=\"{id}-rate\">{:.0}</b>p99 latency ms <b id=\"{id}-p99\">{}</b>\
         accuracy <b id=\"{id}-accuracy\">{}</b>AUC <b id=\"{id}-auc\">{}</b>drifted now <b id=\"{id}-drifted\">{}</b></p>",
        version(champion),
        version(challenger),
        m.rate(now_ms, 10),
        figure(m.latest(|r| r.p99_latency_ms), 1),
        figure(m.latest(|r| r.accuracy), 4),
        figure(m.latest(|r| r.auc), 4),
        if drifted.is_empty() { "none".to_string() } else { esc(&drifted.join(", ")) },
    );
    h += &charts(board, m, &id, now_ms);
    h += &timeline(board, name);
    h + "</section>"
}

fn charts(board: &Board, m: &ModelBoard, id: &str, now_ms: i64) -> String {
    let now = now_ms / 1000;
    let rate: Vec<(f64, f64)> = (now - 300..now)
        .map(|s| ((s - now) as f64 / 60.0, m.per_second.get(&s).copied().unwrap_or(0) as f64))
        .collect();
    let mut h = chart(
        &format!("{id}-rate-chart"),
        "Scores per second",
        "minutes ago",
        "scores/s",
        &[("all variants", rate)],
        None,
    );
    let dist = [("champion", histogram(&m.champion)), ("challenger", histogram(&m.challenger))];
    h += &chart(&format!("{id}-scores"), "Score distribution (last scores)", "score", "share", &dist, None);
    let minutes = |t: i64| (t - now_ms) as f64 / 60_000.0;
    let quality = [
        ("accuracy", m.reports.iter().filter_map(|r| Some((minutes(r.time), r.accuracy?))).collect()),
        ("AUC", m.reports.iter().filter_map(|r| Some((minutes(r.time), r.auc?))).collect()),
    ];
    h += &chart(&format!("{id}-quality"), "Windowed accuracy and AUC", "minutes ago", "", &quality, Some((0.0, 1.0)));
    let latency = [("p99 ms", m.reports.iter().filter_map(|r| Some((minutes(r.time), r.p99_latency_ms?))).collect())];
    h += &chart(&format!("{id}-latency"), "p99 produce-to-score latency", "minutes ago", "ms", &latency, None);
    let mut features: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in &m.reports {
        for f in &r.features {
            let point = (minutes(r.time), significance(f.adjusted_p_value));
            match features.iter_mut().find(|(n, _)| *n == f.feature) {
                Some((_, s)) => s.push(point),
                None => features.push((f.feature.clone(), vec![point])),
            }
        }
    }
    let peak = |s: &[(f64, f64)]| s.iter().map(|p| p.1).fold(0.0, f64::max);
    features.sort_by(|a, b| peak(&b.1).total_cmp(&peak(&a.1)));
    let mut shown: Vec<(&str, Vec<(f64, f64)>)> =
        features.iter().take(5).map(|(n, s)| (n.as_str(), s.clone())).collect();
    if let (Some(first), Some(last)) = (m.reports.front(), m.reports.back()) {
        let line = significance(board.significance);
        shown.push(("threshold", vec![(minutes(first.time), line), (minutes(last.time), line)]));
    }
    let title = "Drift per feature: -log10 adjusted p (top five)";
    h + &chart(&format!("{id}-drift"), title, "minutes ago", "-log10 p", &shown, None)
}

/// Twenty bins of `[0, 1]`: each bin's share of the scores.
fn histogram(scores: &std::collections::VecDeque<f64>) -> Vec<(f64, f64)> {
    if scores.is_empty() {
        return Vec::new();
    }
    let mut bins = [0usize; 20];
    for s in scores {
        bins[((s.clamp(0.0, 1.0) * 20.0) as usize).min(19)] += 1;
    }
    bins.iter().enumerate().map(|(i, n)| ((i as f64 + 0.5) / 20.0, *n as f64 / scores.len() as f64)).collect()
}

fn timeline(board: &Board, name: &str) -> String {
    let mut h =
        String::from("<table class=\"timeline\"><tr><th>when (UTC)</th><th>version</th><th>what</th><th>why</th></tr>");
    for m in board.marks.iter().rev().filter(|m| m.model == name).take(12) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"what\">{}</td><td>{}</td></tr>",
            clock(m.time),
            m.version.map_or("-".into(), |v| format!("v{v}")),
            esc(&m.what),
            esc(&m.why)
        );
    }
    h + "</table>"
}

fn alerts(board: &Board, now_ms: i64) -> String {
    let open = board.open_alerts();
    let resolved = board.resolved_alerts();
    let mut h = format!(
        "<section><h2>Alerts: <span id=\"open-alerts\">{}</span> open, {} resolved</h2>",
        open.len(),
        resolved.len()
    );
    h += "<table id=\"alerts\"><tr><th>state</th><th>kind</th><th>model</th><th>feature / group</th><th>since</th><th>message</th></tr>";
    for (a, state) in open.iter().map(|a| (a, "firing")).chain(resolved.iter().take(10).map(|a| (a, "resolved"))) {
        let _ = write!(
            h,
            "<tr class=\"{state}\"><td>{state}</td><td class=\"kind\">{:?}</td><td>{}</td><td class=\"feature\">{}</td><td>{} ({:.0} s ago)</td><td>{}</td></tr>",
            a.kind,
            esc(a.model.as_deref().unwrap_or("-")),
            esc(a.feature.as_deref().unwrap_or("-")),
            clock(a.time),
            (now_ms - a.time).max(0) as f64 / 1000.0,
            esc(&a.message)
        );
    }
    h + "</table></section>"
}

/// `HH:MM:SS` of a UTC time in ms.
fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The same figures for scripts (`/api/state`).
pub fn json(board: &Board, now_ms: i64) -> Value {
    let models: Vec<Value> = board
        .model_names()
        .iter()
        .filter_map(|name| {
            let m = board.models.get(name)?;
            let (champion, challenger) = board.roles(name);
            let marks: Vec<Value> = board
                .marks
                .iter()
                .filter(|k| &k.model == name)
                .map(|k| json!({"time": k.time, "version": k.version, "what": k.what, "why": k.why}))
                .collect();
            Some(json!({
                "model": name, "champion": champion, "challenger": challenger,
                "serving": m.serving, "events_per_s": m.rate(now_ms, 10),
                "scores": {"champion": m.champion.len(), "challenger": m.challenger.len()},
                "reports": m.reports.len(), "p99_latency_ms": m.latest(|r| r.p99_latency_ms),
                "accuracy": m.latest(|r| r.accuracy), "auc": m.latest(|r| r.auc),
                "drifted": m.drifted_now(), "timeline": marks,
            }))
        })
        .collect();
    let alert = |a: &&vigil_events::Alert| json!({"kind": a.kind, "state": a.state, "model": a.model, "feature": a.feature, "time": a.time, "message": a.message});
    json!({
        "broker": {"connected": board.broker.connected, "since_ms": board.broker.since_ms, "error": board.broker.error},
        "records": board.records, "undecodable": board.undecodable, "models": models,
        "alerts": {"open": board.open_alerts().iter().map(alert).collect::<Vec<_>>(),
                   "resolved": board.resolved_alerts().iter().take(50).map(alert).collect::<Vec<_>>()},
    })
}
