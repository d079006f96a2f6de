//! `vigil report`: a model's page from the topics — the champion's ROC curve and calibration on its
//! labelled window, drift statistics over time naming the feature that moved, the version history —
//! opened by headless Chromium (Debian's package, installed by the set-up), with its screenshot kept
//! under `target/screenshots/`.

use std::time::Duration;

use vigil_e2e::*;
use vigil_events::{Codec, DriftReport};

const T: Duration = Duration::from_secs(180);

fn fraud<'a>(stack: &'a Stack, prefix: &'a str, events: &'a str) -> Vec<&'a str> {
    let labels = ["--label-fast-mean-ms", "5", "--label-slow-share", "0", "--label-grace", "2"];
    let mut args = vec!["fraud", "--topic", &stack.tx, "--labels-topic", &stack.tx_labels, "--rate", "2000"];
    args.extend(["--events", events, "--business-gap-ms", "1", "--id-prefix", prefix, "--seed", prefix]);
    args.extend(labels);
    args
}

/// Headless Chromium on `url`, with `args`; its standard output.
fn chromium(url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2400"])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (scripts/setup.sh installs it)");
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_shows_the_champion_the_drifted_feature_and_the_history_in_a_browser() {
    let drift = "window = 500\nwarmup = 500\nevaluate-every = 250\nreport-interval-ms = 1000\ncooldown-ms = 600000\n";
    let stack = Stack::with_sections("report", 1, "challenger-share = 0.0\n", "", drift).await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let mut scorer = Running(stack.spawn("vigil-scorer", &[]));
    let mut drift = Running(stack.spawn("vigil-drift", &[]));
    stack.load(&fraud(&stack, "1", "2000"));
    let mut shifted = fraud(&stack, "2", "1500");
    shifted.extend(["--drift", "amounts:3,at=0"]);
    stack.load(&shifted);
    let codec = Codec::new();
    collect_until(&stack.drift, "read_committed", T, "a report with the amount drifted", |r| {
        r.iter()
            .filter_map(|m| codec.decode_event::<DriftReport>(m.payload.as_deref()?).ok())
            .any(|d| d.features.iter().any(|f| f.feature == "amount" && f.drifted) && d.accuracy.is_some())
    })
    .await;

    let page = std::env::temp_dir().join(unique("report")).with_extension("html");
    let (code, out, err) = stack.vigil(&["report", "fraud", "--out", page.to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}{err}");
    println!("{out}");
    let url = format!("file://{}", page.display());
    let dom = chromium(&url, &["--dump-dom"]);
    let text_of = |id: &str| {
        let start = dom.find(&format!("id=\"{id}\">"))? + id.len() + 6;
        Some(dom[start..start + dom[start..].find('<')?].to_string())
    };
    assert_eq!(text_of("champion").as_deref(), Some("v1"), "the bootstrap champion");
    let labelled: usize = text_of("labelled").unwrap().parse().unwrap();
    assert!(labelled > 2000, "the champion's scores joined with their labels: {labelled}");
    let auc: f64 = text_of("auc").unwrap().parse().unwrap();
    assert!((0.5..=1.0).contains(&auc), "{auc}");
    assert!(text_of("drifted").unwrap().split(", ").any(|f| f == "amount"), "{:?}", text_of("drifted"));
    for chart in ["roc", "calibration", "quality", "drift"] {
        let svg = &dom[dom.find(&format!("<svg id=\"{chart}\"")).unwrap_or_else(|| panic!("no {chart} chart"))..];
        let svg = &svg[..svg.find("</svg>").unwrap()];
        let drawn = svg.matches("points=\"").count() - svg.matches("points=\"\"").count();
        assert!(drawn > 0, "{chart} draws a line: {svg}");
    }
    assert!(dom.contains("<td>v1</td><td>promoted</td><td>champion</td>"), "the history names v1 the champion");

    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("report.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&url, &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a screenshot of the page: {} bytes", png.len());
    println!("report screenshot: {} ({} bytes)", shot.display(), png.len());
    terminate(&mut drift.0, Duration::from_secs(20));
    terminate(&mut scorer.0, Duration::from_secs(20));
    stack.delete().await;
}
