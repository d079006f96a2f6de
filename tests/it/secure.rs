//! Vigil against a secured broker (`scripts/kafka-secure.sh`, started by `make test`): SASL_SSL
//! with SCRAM-SHA-512, certificates made by the script, ACLs. Every service and the CLI run as the
//! `vigil` principal; a principal allowed only to write input topics is refused on the models and
//! alerts topics; the password appears in no log (librdkafka's debug on) and not in `vigil config`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use vigil_e2e::*;
use vigil_events::{Codec, Score, Variant};

/// The secured broker's address, CA and users (from the env file the script writes).
struct Secure {
    bootstrap: String,
    ca: String,
    vigil: (String, String),
    producer: (String, String),
}

fn secure() -> Secure {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: start scripts/kafka-secure.sh and source its env file (make test does both)")
        })
    };
    Secure {
        bootstrap: var("VIGIL_SECURE_BOOTSTRAP"),
        ca: var("VIGIL_SECURE_CA"),
        vigil: (var("VIGIL_SECURE_VIGIL_USER"), var("VIGIL_SECURE_VIGIL_PASSWORD")),
        producer: (var("VIGIL_SECURE_PRODUCER_USER"), var("VIGIL_SECURE_PRODUCER_PASSWORD")),
    }
}

fn client(s: &Secure, (user, password): &(String, String)) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &s.bootstrap)
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("ssl.ca.location", &s.ca);
    c
}

/// A configuration file for `principal`, with Vigil's topics under `prefix`, the input topics the
/// producer principal may write, and the signing keys.
fn config(s: &Secure, principal: &(String, String), prefix: &str, key: &Path, public: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[kafka]
bootstrap-servers = "{bootstrap}"
security-protocol = "sasl_ssl"
sasl-mechanism = "SCRAM-SHA-512"
sasl-username = "{user}"
sasl-password = "{password}"
linger-ms = 1

[kafka.properties]
"ssl.ca.location" = "{ca}"

[topics]
scores = "{prefix}-scores"
models = "{prefix}-models"
alerts = "{prefix}-alerts"
drift = "{prefix}-drift"
dlq = "{prefix}-dlq"
partitions = 2

[[inputs]]
topic = "transactions"
schema = "dev.vigil.demo.Transaction"
model = "fraud"
labels = "transactions.labels"

[scorer]
http-listen = "127.0.0.1:0"
group-id = "{prefix}-scorer"
trusted-keys = ["{public}"]

[learner]
http-listen = "127.0.0.1:0"
group-id = "{prefix}-learner"
sign-key = "{key}"

[drift]
http-listen = "127.0.0.1:0"
group-id = "{prefix}-drift"
"#,
        bootstrap = s.bootstrap,
        user = principal.0,
        password = principal.1,
        ca = s.ca,
        key = key.display(),
    );
    temp_file("secure.toml", &text)
}

fn run(program: &str, config: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = std::process::Command::new(bin(program));
    cmd.args(args).env("VIGIL_CONFIG", config).env("VIGIL_LOG__LEVEL", "debug").stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// The producer principal may write transactions but nothing Vigil obeys.
async fn producer_is_refused_on_control_topics(s: &Secure, prefix: &str) {
    let p: FutureProducer = client(s, &s.producer).set("message.timeout.ms", "10000").create().unwrap();
    for topic in [format!("{prefix}-models"), format!("{prefix}-alerts")] {
        let r = p.send(FutureRecord::to(&topic).key("fraud/99").payload("forged"), Duration::from_secs(15)).await;
        match r {
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed), _)) => {}
            other => panic!("the producer principal wrote to {topic}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_service_runs_against_a_secured_broker_and_only_trusted_principals_write_control_topics() {
    let s = secure();
    let prefix = unique("secure");
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("signing.key");
    let (code, public, err) = vigil(&["models", "keygen", "--out", key.to_str().unwrap()], &[], None);
    assert_eq!(code, 0, "{err}");
    let vigil_cfg = config(&s, &s.vigil, &prefix, &key, public.trim());
    let producer_cfg = config(&s, &s.producer, &prefix, &key, public.trim());
    let admin: AdminClient<DefaultClientContext> = client(&s, &s.vigil).create().unwrap();
    let _ = admin.delete_topics(&["transactions", "transactions.labels"], &AdminOptions::new()).await;
    // librdkafka's debug output on: everything for the CLI, its configuration and security for the
    // services.
    let debug = [("VIGIL_KAFKA__PROPERTIES__DEBUG", "all")];
    let service_debug = ("VIGIL_KAFKA__PROPERTIES__DEBUG", "security,broker,conf");

    let mut logs: Vec<(String, String)> = Vec::new();
    let (code, out) = run("vigil", &vigil_cfg, &["topics", "create"], &debug);
    assert_eq!(code, 0, "{out}");
    logs.push(("vigil topics create".into(), out));
    let (code, out) = run("vigil", &vigil_cfg, &["models", "bootstrap"], &debug);
    assert!(code == 0 && out.contains("read back and verified"), "{out}");
    logs.push(("vigil models bootstrap".into(), out));
    let (code, out) = run("vigil", &vigil_cfg, &["config"], &[]);
    assert!(code == 0 && out.contains("sasl-password"), "{out}");
    logs.push(("vigil config".into(), out));

    let mut running = Vec::new();
    for service in ["vigil-scorer", "vigil-learner", "vigil-drift"] {
        let port = free_port();
        let log = dir.join(format!("{service}.log"));
        let mut cmd = std::process::Command::new(bin(service));
        cmd.env("VIGIL_CONFIG", &vigil_cfg)
            .env("VIGIL_LOG__LEVEL", "debug")
            .env(format!("VIGIL_{}__HTTP_LISTEN", service[6..].to_uppercase()), format!("127.0.0.1:{port}"))
            .env(service_debug.0, service_debug.1)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("{service}.err"))).unwrap());
        running.push(Running(cmd.spawn().unwrap()));
        wait_ready(port, Duration::from_secs(60), service);
    }

    // The producer principal writes transactions and labels; the scorer scores them.
    let (code, out) = run(
        "vigil-load",
        &producer_cfg,
        &["fraud", "--topic", "transactions", "--labels-topic", "transactions.labels", "--events", "500"],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    logs.push(("vigil-load".into(), out));
    let consumer: StreamConsumer = client(&s, &s.vigil)
        .set("group.id", format!("{prefix}-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&format!("{prefix}-scores")]).unwrap();
    let codec = Codec::new();
    let mut ids = HashSet::new();
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while ids.len() < 500 {
        assert!(std::time::Instant::now() < until, "only {} of 500 events scored", ids.len());
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await else { continue };
        let score: Score = codec.decode_event(rdkafka::Message::payload(&m).unwrap()).unwrap();
        if score.variant == Variant::Champion {
            ids.insert(score.event_id);
        }
    }

    producer_is_refused_on_control_topics(&s, &prefix).await;
    let (code, out) = run("vigil", &producer_cfg, &["models", "bootstrap", "--force"], &debug);
    assert_ne!(code, 0, "the producer principal published models: {out}");
    logs.push(("vigil models bootstrap as producer".into(), out));

    for mut r in running {
        terminate(&mut r.0, Duration::from_secs(20));
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log" || e == "err") {
            logs.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    // librdkafka dumped its configuration (password redacted) in every service, and in the CLI's
    // runs with its debug on (a short run may exit before its client's log lines are written).
    let dumped = |name: &str| logs.iter().any(|(n, l)| n.contains(name) && l.contains("sasl.password = [redacted]"));
    for name in ["vigil-scorer.err", "vigil-learner.err", "vigil-drift.err", "vigil models bootstrap"] {
        assert!(dumped(name), "no librdkafka configuration dump in {name}");
    }
    for (user, password) in [&s.vigil, &s.producer] {
        for (name, log) in &logs {
            assert!(!log.contains(password.as_str()), "{user}'s password is in {name}");
        }
    }
    let topics: Vec<String> =
        ["scores", "models", "alerts", "drift", "dlq"].iter().map(|t| format!("{prefix}-{t}")).collect();
    let mut names: Vec<&str> = topics.iter().map(String::as_str).collect();
    names.extend(["transactions", "transactions.labels"]);
    let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
}
