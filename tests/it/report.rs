//! `vigil report`: a model's page from the topics — the champion's ROC curve and calibration on its
//! labelled window, drift statistics over time naming the feature that moved, the version history —
//! opened by headless Chromium (Debian's package, installed by the set-up), with its screenshot kept
//! under `target/screenshots/`.

use std::time::Duration;

use vigil_e2e::pages;
use vigil_e2e::*;
use vigil_events::{Codec, DriftReport};

const T: Duration = Duration::from_secs(180);
const WINDOW: &str = "1280,2400";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_shows_the_champion_the_drifted_feature_and_the_history_in_a_browser() {
    let stack = Stack::with_sections("report", 1, "challenger-share = 0.0\n", "", pages::QUICK_DRIFT).await;
    let (mut scorer, mut drift) = pages::drifting_fraud_run(&stack);
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
    let dom = pages::chromium(&url, WINDOW, &["--dump-dom"]);
    let text_of = |id: &str| pages::text_of(&dom, id);
    assert_eq!(text_of("champion").as_deref(), Some("v1"), "the bootstrap champion");
    let labelled: usize = text_of("labelled").unwrap().parse().unwrap();
    assert!(labelled > 2000, "the champion's scores joined with their labels: {labelled}");
    let auc: f64 = text_of("auc").unwrap().parse().unwrap();
    assert!((0.5..=1.0).contains(&auc), "{auc}");
    assert!(text_of("drifted").unwrap().split(", ").any(|f| f == "amount"), "{:?}", text_of("drifted"));
    for chart in ["roc", "calibration", "quality", "drift"] {
        assert!(pages::chart_draws(&dom, chart), "the {chart} chart draws a line");
    }
    assert!(dom.contains("<td>v1</td><td>promoted</td><td>champion</td>"), "the history names v1 the champion");

    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("report.png");
    let _ = std::fs::remove_file(&shot);
    pages::chromium(&url, WINDOW, &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a screenshot of the page: {} bytes", png.len());
    println!("report screenshot: {} ({} bytes)", shot.display(), png.len());
    terminate(&mut drift.0, Duration::from_secs(20));
    terminate(&mut scorer.0, Duration::from_secs(20));
    stack.delete().await;
}
