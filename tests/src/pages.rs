//! What the tests of Vigil's pages share: headless Chromium, the fraud run with drifting amounts
//! they draw, and alerts written by hand.

use vigil_events::{Alert, AlertKind, AlertState, Severity};

use crate::{Running, Stack};

/// Drift settings that report every second and alert within a few hundred events.
pub const QUICK_DRIFT: &str =
    "window = 500\nwarmup = 500\nevaluate-every = 250\nreport-interval-ms = 1000\ncooldown-ms = 600000\n";

/// Headless Chromium (Debian's package; `scripts/setup.sh` installs it) on `url`, with `args`;
/// its standard output.
pub fn chromium(url: &str, window: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", &format!("--window-size={window}")])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (scripts/setup.sh installs it)");
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the element with `id` in a dumped DOM (up to its first child).
pub fn text_of(dom: &str, id: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\">"))? + id.len() + 6;
    Some(dom[start..start + dom[start..].find('<')?].to_string())
}

/// Whether the SVG chart `id` in a dumped DOM draws at least one line.
pub fn chart_draws(dom: &str, id: &str) -> bool {
    let Some(at) = dom.find(&format!("<svg id=\"{id}\"")) else { return false };
    let svg = &dom[at..];
    let svg = &svg[..svg.find("</svg>").unwrap_or(svg.len())];
    svg.matches("points=\"").count() > svg.matches("points=\"\"").count()
}

/// The story the page tests draw: the starting models, a scorer and a drift service, 2,000
/// labelled transactions, then 1,500 whose amounts are three times larger. Returns the scorer and
/// the drift service, running.
pub fn drifting_fraud_run(stack: &Stack) -> (Running, Running) {
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let scorer = Running(stack.spawn("vigil-scorer", &[]));
    let drift = Running(stack.spawn("vigil-drift", &[]));
    for (prefix, events, shift) in [("1", "2000", None), ("2", "1500", Some("amounts:3,at=0"))] {
        let mut args = vec!["fraud", "--topic", &stack.tx, "--labels-topic", &stack.tx_labels, "--rate", "2000"];
        args.extend(["--events", events, "--business-gap-ms", "1", "--id-prefix", prefix, "--seed", prefix]);
        args.extend(["--label-fast-mean-ms", "5", "--label-slow-share", "0", "--label-grace", "2"]);
        if let Some(shift) = shift {
            args.extend(["--drift", shift]);
        }
        stack.load(&args);
    }
    (scorer, drift)
}

/// An alert about `fraud` v1 written by hand (`feature` moved), with its dedup `key`.
pub fn alert(kind: AlertKind, state: AlertState, feature: &str, key: &str) -> Alert {
    Alert {
        alert_id: format!("{key}-{state:?}"),
        time: vigil_kafka::now_ms(),
        kind,
        state,
        severity: Severity::Warning,
        model: Some("fraud".into()),
        model_version: Some(1),
        feature: Some(feature.into()),
        detector: Some("ks".into()),
        statistic: None,
        value: None,
        threshold: None,
        p_value: None,
        window_start: None,
        window_end: None,
        message: format!("{feature} moved"),
        dedup_key: key.into(),
    }
}
