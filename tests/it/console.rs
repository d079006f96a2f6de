//! `vigil console`: the live page during an end-to-end run, opened by headless Chromium (Debian's
//! package, installed by the set-up) — the champion, the drifted feature and its alert, charts
//! drawn, updates arriving over server-sent events — with a screenshot kept under
//! `target/screenshots/`; the state rebuilt from the topics by a restarted console (a reload loses
//! nothing); and, on the fault broker, the page saying the brokers are away and coming back with
//! them (`faults.rs` runs that part: the fault broker is one).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use vigil_e2e::pages;
use vigil_e2e::*;
use vigil_events::{AlertKind, AlertState};

const T: Duration = Duration::from_secs(180);
const WINDOW: &str = "1500,2200";

/// `vigil console` on `port` with the stack's configuration.
pub fn start(stack: &Stack, port: u16) -> Child {
    Command::new(bin("vigil"))
        .args(["--config", stack.config.to_str().unwrap(), "console", "--listen", &format!("127.0.0.1:{port}")])
        .env("VIGIL_LOG__LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// The console's `/api/state` once `check` holds for it.
pub async fn state_when(port: u16, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(T, what, || async {
        let (code, body) = http_get(port, "/api/state")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && check(&v)).then_some(v)
    })
    .await
}

/// The model's entry in a state.
pub fn model<'a>(state: &'a Value, name: &str) -> Option<&'a Value> {
    state["models"].as_array()?.iter().find(|m| m["model"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_run_live_in_a_browser_and_survives_a_restart() {
    let stack = Stack::with_sections("console", 1, "challenger-share = 0.0\n", "", pages::QUICK_DRIFT).await;
    let port = free_port();
    // Started before anything exists: the console picks topics and models up as they appear.
    let mut console = Running(start(&stack, port));
    let (mut scorer, mut drift) = pages::drifting_fraud_run(&stack);
    let drifted = |v: &Value| {
        let open = v["alerts"]["open"].as_array().into_iter().flatten();
        open.clone().any(|a| a["kind"] == "DATA_DRIFT" && a["feature"] == "amount")
            && model(v, "fraud").is_some_and(|m| m["champion"] == 1 && m["accuracy"].is_f64())
    };
    let state = state_when(port, "the console showing v1 and the amount's drift alert", drifted).await;
    let fraud_state = model(&state, "fraud").unwrap();
    assert!(fraud_state["scores"]["champion"].as_u64().unwrap() > 1000, "{fraud_state}");
    assert!(fraud_state["timeline"].as_array().unwrap().iter().any(|m| m["version"] == 1 && m["what"] == "promoted"));
    assert_eq!(state["broker"]["connected"], true);

    // `?updates=3`: the page takes three server-sent events, then closes the stream, so that the
    // headless browser (which waits for the network to go quiet) reads the DOM they made.
    let url = format!("http://127.0.0.1:{port}/?updates=3");
    let dom = pages::chromium(&url, WINDOW, &["--virtual-time-budget=10000", "--dump-dom"]);
    let updates: u64 = dom.split("data-updates=\"").nth(1).and_then(|s| s[..s.find('"')?].parse().ok()).unwrap_or(0);
    assert_eq!(updates, 3, "the page's script swapped in three server-sent updates");
    assert_eq!(pages::text_of(&dom, "fraud-champion").as_deref(), Some("v1"));
    let rate: f64 = pages::text_of(&dom, "fraud-rate").unwrap().parse().unwrap();
    assert!(rate >= 0.0);
    let alerts = &dom[dom.find("id=\"alerts\"").expect("the alerts table")..];
    assert!(alerts.contains("<td class=\"feature\">amount</td>"), "the drift alert names the amount");
    for chart in ["fraud-scores", "fraud-quality", "fraud-drift", "fraud-rate-chart"] {
        assert!(pages::chart_draws(&dom, chart), "the {chart} chart draws a line");
    }
    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("console.png");
    let _ = std::fs::remove_file(&shot);
    pages::chromium(&url, WINDOW, &["--virtual-time-budget=10000", &format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a screenshot: {} bytes", png.len());
    println!("console screenshot: {} ({} bytes, {updates} updates seen)", shot.display(), png.len());

    // A restarted console rebuilds the same picture from the topics.
    terminate(&mut console.0, Duration::from_secs(20));
    let mut console = Running(start(&stack, port));
    state_when(port, "the restarted console showing the same", drifted).await;
    let (code, page) = http_get(port, "/").unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("id=\"fraud-champion\">v1<"), "the page as served, before any script runs");
    let (stopped, status) = terminate(&mut console.0, Duration::from_secs(20));
    assert!(stopped && status.is_some_and(|s| s.success()), "the console stops cleanly on SIGTERM: {status:?}");
    terminate(&mut drift.0, Duration::from_secs(20));
    terminate(&mut scorer.0, Duration::from_secs(20));
    stack.delete().await;
}

/// On the fault broker (`faults.rs` calls this: it owns that broker, and has pointed this thread's
/// helpers at it): the console says the brokers are away while the broker is killed, and shows
/// what is produced once it is back.
pub async fn across_a_broker_restart(broker: &vigil_e2e::fault::FaultBroker) {
    use_broker(&broker.bootstrap());
    let _proxy = vigil_e2e::fault::Proxy::start(broker.proxy_port, broker.port);
    wait_for(Duration::from_secs(60), "the fault broker through the proxy", || async {
        admin().inner().fetch_metadata(None, Duration::from_secs(2)).ok().map(|_| ())
    })
    .await;
    let stack = Stack::new("console-restart", 1, "").await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let port = free_port();
    let mut console = Running(start(&stack, port));
    state_when(port, "the bootstrap's champion", |v| model(v, "fraud").is_some_and(|m| m["champion"] == 1)).await;
    broker.kill();
    let away = state_when(port, "the brokers shown away", |v| v["broker"]["connected"] == false).await;
    println!("console while the broker is down: {}", away["broker"]);
    broker.start();
    state_when(port, "the brokers shown back", |v| v["broker"]["connected"] == true).await;
    let mut alert = pages::alert(AlertKind::Latency, AlertState::Firing, "-", "after-restart");
    alert.message = "produced after the broker came back".into();
    let payload = vigil_events::Codec::new().encode_event(&alert).unwrap();
    produce(&producer(), &stack.alerts, Some(b"after-restart"), &payload).await;
    let seen = |v: &Value| v["alerts"]["open"].as_array().into_iter().flatten().any(|a| a["message"] == alert.message);
    state_when(port, "the alert produced after the restart", seen).await;
    let (stopped, status) = terminate(&mut console.0, Duration::from_secs(20));
    assert!(stopped && status.is_some_and(|s| s.success()), "{status:?}");
    stack.delete().await;
}
