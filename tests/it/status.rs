//! `vigil status` in a terminal: driven through a pseudo-terminal (`script`), it shows the
//! champions, the inputs' ends and the scorer's lag once it has caught up, and only the alerts still
//! open; with `--watch` it redraws (clearing the screen) with the inputs' rates.

use std::time::Duration;

use vigil_e2e::pages::alert;
use vigil_e2e::*;
use vigil_events::{AlertKind, AlertState, Codec};

/// Runs `vigil status ARGS` in a pseudo-terminal; its screen.
fn in_terminal(stack: &Stack, args: &str) -> String {
    let command = format!("{} status {args}", vigil_bin().display());
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("VIGIL_CONFIG", &stack.config)
        .env("VIGIL_KAFKA__BOOTSTRAP_SERVERS", bootstrap())
        .env("VIGIL_LOG__LEVEL", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_in_a_terminal_shows_champions_inputs_lag_and_open_alerts() {
    let stack = Stack::new("status", 1, "challenger-share = 0.0\n").await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    stack.load(&["fraud", "--topic", &stack.tx, "--labels-topic", "none", "--rate", "0", "--events", "300"]);
    let codec = Codec::new();
    let p = producer();
    for a in [
        alert(AlertKind::DataDrift, AlertState::Firing, "amount", "data-drift/fraud/amount"),
        alert(AlertKind::DataDrift, AlertState::Firing, "hour_sin", "data-drift/fraud/hour_sin"),
        alert(AlertKind::DataDrift, AlertState::Resolved, "hour_sin", "data-drift/fraud/hour_sin"),
        alert(AlertKind::ModelPromoted, AlertState::Firing, "-", "model-promoted/fraud/1"),
    ] {
        produce(&p, &stack.alerts, Some(a.dedup_key.as_bytes()), &codec.encode_event(&a).unwrap()).await;
    }
    let mut scorer = Running(stack.spawn("vigil-scorer", &[]));
    let tx_line =
        |screen: &str| screen.lines().find(|l| l.trim_start().starts_with(stack.tx.as_str())).map(String::from);
    let screen = wait_for(Duration::from_secs(120), "the scorer caught up, as status shows", || async {
        let screen = in_terminal(&stack, "");
        let cols: Vec<String> = tx_line(&screen)?.split_whitespace().map(String::from).collect();
        (cols.len() == 5 && cols[2] == "300" && cols[4] == "0").then_some(screen)
    })
    .await;
    println!("{screen}");
    let fraud = screen.lines().find(|l| l.trim_start().starts_with("fraud ")).expect("a fraud row");
    assert!(fraud.split_whitespace().nth(1) == Some("v1"), "{fraud}");
    assert!(screen.contains("OPEN ALERTS (1)"), "one alert still open: {screen}");
    let open = screen.lines().skip_while(|l| !l.starts_with("OPEN ALERTS")).collect::<Vec<_>>().join("\n");
    assert!(open.contains("DataDrift") && open.contains("amount") && !open.contains("hour_sin"), "{open}");
    assert!(!open.contains("ModelPromoted"), "notices are not open alerts: {open}");

    let watched = in_terminal(&stack, "--watch 0.5 & sleep 2.5; kill $!");
    assert!(watched.matches("\x1b[2J").count() >= 2, "redraws in a terminal: {watched:?}");
    let rates: Vec<String> =
        watched.lines().filter_map(tx_line).map(|l| l.split_whitespace().nth(3).unwrap().to_string()).collect();
    assert!(rates.len() >= 2 && rates[0] == "-" && rates[1..].iter().all(|r| r == "0"), "no traffic now: {rates:?}");
    terminate(&mut scorer.0, Duration::from_secs(20));
    stack.delete().await;
}

/// `vigil completions SHELL` writes a script the shell accepts, naming the subcommands.
#[test]
fn completions_are_scripts_the_shells_accept() {
    let (code, script, err) = vigil(&["completions", "bash"], &[], None);
    assert_eq!(code, 0, "{err}");
    assert!(script.contains("_vigil") && script.contains("status") && script.contains("encoder"), "{script}");
    let file = temp_file("vigil.bash", &script);
    let check = std::process::Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
    let (code, zsh, _) = vigil(&["completions", "zsh"], &[], None);
    assert!(code == 0 && zsh.starts_with("#compdef vigil"), "{zsh}");
}

/// `vigil-load` draws a progress bar on standard error in a terminal, and none in a pipe (where its
/// JSON summary is all that comes out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_run_shows_progress_in_a_terminal_only() {
    let stack = Stack::new("progress", 1, "").await;
    let command = format!(
        "{} fraud --topic {} --labels-topic none --rate 4000 --events 4000",
        bin("vigil-load").display(),
        stack.tx
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("VIGIL_CONFIG", &stack.config)
        .env("VIGIL_LOG__LEVEL", "warn")
        // A terminal that says what it is (CI runs with no TERM, which reads as a dumb one).
        .env("TERM", "xterm-256color")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("/4000 records"), "a bar in the terminal: {screen:?}");
    let summary =
        stack.load(&["fraud", "--topic", &stack.tx, "--labels-topic", "none", "--rate", "0", "--events", "10"]);
    assert_eq!(summary["events"], 10, "{summary}");
    stack.delete().await;
}
