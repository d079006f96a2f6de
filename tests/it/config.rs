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
