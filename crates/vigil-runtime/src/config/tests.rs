//! Tests of the shared sections and of the document's loading (each service tests its own section).

use super::*;

type Plain = Config;

#[test]
fn defaults_are_valid_and_name_no_input() {
    let c: Plain = layered::load(None, Vec::new()).unwrap();
    assert_eq!(c, Plain::default());
    assert!(c.validate().is_empty());
    assert!(c.inputs.is_empty(), "the demo's inputs live in config/demo.toml, not in the defaults");
}

#[test]
fn cross_field_rules_are_all_reported() {
    let env = vec![
        ("VIGIL_KAFKA__BOOTSTRAP_SERVERS".to_string(), "nohost".to_string()),
        ("VIGIL_KAFKA__SECURITY_PROTOCOL".to_string(), "sasl_ssl".to_string()),
        ("VIGIL_TOPICS__SCORES".to_string(), "bad topic!".to_string()),
        ("VIGIL_HTTP__LISTEN".to_string(), "everywhere".to_string()),
        ("VIGIL_TOPICS__PARTITIONS".to_string(), "0".to_string()),
        ("VIGIL_KAFKA__COMPRESSION".to_string(), "brotli".to_string()),
    ];
    let err = layered::load::<Plain>(None, env).unwrap_err();
    let text = err.to_string();
    for needle in [
        "kafka.bootstrap-servers",
        "kafka.sasl-mechanism",
        "topics.scores",
        "http.listen",
        "topics.partitions",
        "kafka.compression",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    assert_eq!(err.problems.len(), 6, "{text}");
}

#[test]
fn sections_of_other_programs_are_kept_as_written() {
    let file = std::env::temp_dir().join(format!("vigil-unchecked-{}.toml", std::process::id()));
    std::fs::write(&file, "[scorer]\nmax-batch = 64\nwhatever = \"x\"\n").unwrap();
    let c: Plain = layered::load(Some(&file), Vec::new()).unwrap();
    let shown = toml::to_string(&c.scorer).unwrap();
    assert!(shown.contains("max-batch = 64") && shown.contains("whatever"), "{shown}");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn input_models_are_listed_once_each() {
    let mut c = Plain::default();
    let input = |topic: &str, model: &str, labels: &str| InputConfig {
        topic: topic.into(),
        model: model.into(),
        labels: labels.into(),
        schema: "s".into(),
        ..InputConfig::default()
    };
    c.inputs = vec![input("a", "fraud", "a.labels"), input("b", "sentiment", ""), input("c", "fraud", "")];
    assert_eq!(c.input_models(false), vec!["fraud", "sentiment"]);
    assert_eq!(c.input_models(true), vec!["fraud"]);
    assert_eq!(check_models("learner", &["sentiment".into()], &c.inputs, true).len(), 1);
    assert!(check_models("scorer", &["sentiment".into()], &c.inputs, false).is_empty());
}

#[test]
fn secrets_never_show_in_debug_or_serialised_output() {
    let mut c = Plain::default();
    c.kafka.sasl_password = Secret::new("hunter2");
    c.kafka.properties.insert("sasl.oauthbearer.client.secret".into(), "s3cr3t".into());
    c.kafka.properties.insert("ssl.ca.location".into(), "/etc/ca.pem".into());
    c.schema_registry.password = Secret::new("pw-registry");
    for shown in [format!("{c:?}"), format!("{c:#?}"), toml::to_string(&c).unwrap()] {
        assert!(!shown.contains("hunter2") && !shown.contains("pw-registry"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
    assert!(!format!("{c:?}").contains("s3cr3t"));
    assert!(format!("{c:?}").contains("/etc/ca.pem"));
    assert_eq!(c.kafka.sasl_password.expose(), "hunter2");
}

#[test]
fn durations_are_written_as_milliseconds() {
    #[derive(Serialize, Deserialize)]
    struct T {
        #[serde(with = "millis")]
        wait: std::time::Duration,
    }
    let t: T = toml::from_str("wait = 250").unwrap();
    assert_eq!(t.wait, std::time::Duration::from_millis(250));
    assert_eq!(toml::to_string(&t).unwrap().trim(), "wait = 250");
}

#[test]
fn topic_names_follow_kafka_rules() {
    assert!(valid_topic("vigil.scores").is_ok());
    assert!(valid_topic("a_b-c.1").is_ok());
    assert!(valid_topic("").is_err());
    assert!(valid_topic("..").is_err());
    assert!(valid_topic("a/b").is_err());
    assert!(valid_topic(&"x".repeat(250)).is_err());
}
