//! Invalid configuration stops start-up with every problem listed.

use vigil_e2e::*;

#[test]
fn invalid_config_exits_non_zero_and_lists_every_problem() {
    let file = temp_file(
        "bad.toml",
        r#"
[kafka]
compression = "brotli"
linger-ms = "soon"
sasl-password = 12345

[topics]
partitions = 0
scorse = "typo"

[[inputs]]
topic = "fraud.transactions"
format = "xml"
model = "fraud"
schema = "dev.vigil.demo.Transaction"

[log]
format = "yaml"

[scorer]
provider = "tpu"
max-wait-ms = -1

[learner]
metric = "f1"
families = ["oak"]

[drift.concept-detector]
kind = "hunch"
"#,
    );
    let (code, _, err) = vigil(
        &["--config", file.to_str().unwrap(), "config"],
        &[("VIGIL_HTTP__LISTEN", "not-an-address"), ("VIGIL_KAFKA__QUEUE_MAX_MESSAGES", "-3")],
        None,
    );
    assert_eq!(code, 2, "{err}");
    for needle in [
        "kafka.linger-ms",
        "kafka.sasl-password",
        "topics.scorse",
        "inputs[0].format",
        "log.format",
        "VIGIL_KAFKA__QUEUE_MAX_MESSAGES",
        "kafka.compression",
        "topics.partitions",
        "http.listen",
        "scorer.provider",
        "scorer.max-wait-ms",
        "learner.metric",
        "learner.families[0]",
        "drift.concept-detector.kind",
    ] {
        assert!(err.contains(needle), "`{needle}` not reported:\n{err}");
    }
    assert!(!err.contains("12345"), "a secret's value was printed:\n{err}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let (code, _, err) = vigil(&["--config", "/nonexistent/vigil.toml", "config"], &[], None);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/vigil.toml") && err.contains("cannot read"), "{err}");
}

/// Detectors are chosen by name with their parameters; parameters another detector takes are errors.
#[test]
fn the_concept_detector_is_chosen_by_name_with_its_parameters() {
    let good = temp_file("kswin.toml", "[drift.concept-detector]\nkind = \"kswin\"\nalpha = 0.01\nwindow-size = 200\n");
    let (code, out, err) = vigil(&["--config", good.to_str().unwrap(), "config"], &[], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kind = \"kswin\"") && out.contains("window-size = 200"), "{out}");
    let bad = temp_file("mixed.toml", "[drift.concept-detector]\nkind = \"adwin\"\nwindow-size = 5\n");
    let (code, _, err) = vigil(&["--config", bad.to_str().unwrap(), "config"], &[], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("drift.concept-detector.window-size") && err.contains("takes only delta"), "{err}");
}

/// `config/vigil.example.toml` documents every key of every section at its default: it is what
/// `vigil config --defaults` prints (regenerate it with that command), and it loads as the defaults.
#[test]
fn the_example_file_is_the_defaults() {
    let path = root().join("config/vigil.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    let (code, defaults, err) = vigil(&["config", "--defaults"], &[], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(body.trim(), defaults.trim(), "regenerate config/vigil.example.toml with `vigil config --defaults`");
    let (code, loaded, err) = vigil(&["--config", path.to_str().unwrap(), "config"], &[], None);
    assert_eq!(code, 0, "{err}");
    let (_, plain, _) = vigil(&["config"], &[], None);
    assert_eq!(loaded, plain);
}

/// The demo's file adds its two inputs, bounds the joins by ten minutes, and changes nothing else.
#[test]
fn the_demo_file_adds_the_demo_inputs() {
    let demo = root().join("config/demo.toml");
    let (code, out, err) = vigil(&["--config", demo.to_str().unwrap(), "config"], &[], None);
    assert_eq!(code, 0, "{err}");
    let doc: toml::Table = out.parse().unwrap();
    let inputs = doc["inputs"].as_array().unwrap();
    let models: Vec<&str> = inputs.iter().map(|i| i["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["fraud", "sentiment"]);
    let (_, plain, _) = vigil(&["config"], &[], None);
    let mut plain: toml::Table = plain.parse().unwrap();
    let mut without = doc.clone();
    without.remove("inputs");
    assert!(plain.remove("inputs").is_none_or(|i| i.as_array().is_some_and(Vec::is_empty)));
    // …and bounds the joins by ten minutes of traffic (its labels come within 20 s).
    for section in ["learner", "drift"] {
        let demo = without[section].as_table_mut().unwrap().remove("join-max-age-ms");
        let default = plain[section].as_table_mut().unwrap().remove("join-max-age-ms");
        assert_eq!(
            (demo.and_then(|v| v.as_integer()), default.and_then(|v| v.as_integer())),
            (Some(600_000), Some(86_400_000))
        );
    }
    assert_eq!(without, plain);
}
