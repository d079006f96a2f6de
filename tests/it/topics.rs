//! `vigil topics create` and `vigil topics list`, checked through the admin API.

use vigil_e2e::*;
use vigil_kafka::admin;

fn config_file(prefix: &str) -> (std::path::PathBuf, Vec<String>) {
    let names: Vec<String> = ["tx", "tx-labels", "scores", "models", "alerts", "drift", "dlq", "experiments"]
        .iter()
        .map(|n| format!("{prefix}-{n}"))
        .collect();
    let text = format!(
        r#"
[topics]
scores = "{2}"
models = "{3}"
alerts = "{4}"
drift = "{5}"
dlq = "{6}"
experiments = "{7}"
partitions = 2

[[inputs]]
topic = "{0}"
schema = "dev.vigil.demo.Transaction"
model = "fraud"
labels = "{1}"
"#,
        names[0], names[1], names[2], names[3], names[4], names[5], names[6], names[7]
    );
    (temp_file("vigil.toml", &text), names)
}

#[tokio::test]
async fn topics_create_makes_every_topic_with_its_settings_and_is_idempotent() {
    let (file, names) = config_file(&unique("topics"));
    let file = file.to_str().unwrap().to_string();
    let (code, out, err) = vigil(&["--config", &file, "topics", "create"], &[], None);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().filter(|l| l.starts_with("created")).count(), names.len(), "{out}");

    let a = admin();
    for name in &names {
        let partitions = admin::partition_count(&a, name).unwrap();
        let configs = admin::describe(&a, name).await.unwrap();
        let get = |k: &str| configs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        if name.ends_with("-models") {
            assert_eq!(partitions, 1, "the models topic keeps transitions in one order");
            assert_eq!(get("cleanup.policy"), "compact");
            assert_eq!(get("max.message.bytes"), "67108864");
        } else if name.ends_with("-experiments") {
            assert_eq!(partitions, 1, "one order of an experiment's records for every reader");
            assert_eq!(get("cleanup.policy"), "compact");
        } else {
            assert_eq!(partitions, 2, "{name}");
            assert_eq!(get("cleanup.policy"), "delete", "{name}");
        }
        if ["-scores", "-alerts", "-drift", "-dlq"].iter().any(|s| name.ends_with(s)) {
            assert_eq!(get("retention.ms"), "604800000", "{name}");
        }
    }

    // Twice is harmless.
    let (code, out, _) = vigil(&["--config", &file, "topics", "create"], &[], None);
    assert_eq!(code, 0);
    assert_eq!(out.lines().filter(|l| l.starts_with("exists")).count(), names.len(), "{out}");

    // `topics list` exits 0 while every topic is as expected, 1 once one is missing.
    let (code, out, err) = vigil(&["--config", &file, "topics", "list"], &[], None);
    assert_eq!((code, out.lines().filter(|l| l.starts_with("ok")).count()), (0, names.len()), "{out}{err}");
    delete_topics(&[names[0].as_str()]).await;
    let (code, out, _) = wait_for(std::time::Duration::from_secs(30), "the topic gone", || async {
        let r = vigil(&["--config", &file, "topics", "list"], &[], None);
        (r.0 != 0).then_some(r)
    })
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.lines().any(|l| l.starts_with("missing") && l.contains(&names[0])), "{out}");
    let (code, out, _) = vigil(&["--config", &file, "topics", "list", "--output", "json"], &[], None);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let states: Vec<(&str, &str)> =
        rows.as_array().unwrap().iter().map(|r| (r["topic"].as_str().unwrap(), r["state"].as_str().unwrap())).collect();
    assert_eq!(code, 1);
    assert_eq!(
        states.iter().filter(|(_, s)| *s == "missing").collect::<Vec<_>>(),
        vec![&(names[0].as_str(), "missing")]
    );
    assert_eq!(states.len(), names.len());
    let (code, out, _) = vigil(&["schemas", "--output", "json"], &[], None);
    let schemas: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(code, 0);
    assert!(schemas.as_array().unwrap().iter().any(|s| s["schema"] == "dev.vigil.events.Alert" && s["version"] == 2));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    delete_topics(&refs).await;
}

#[tokio::test]
async fn an_existing_models_topic_without_compaction_is_reported() {
    let (file, names) = config_file(&unique("topics-bad"));
    create_topics(&[&names[3]], 1).await; // models, but with the default cleanup.policy=delete
    let (code, out, _) = vigil(&["--config", file.to_str().unwrap(), "topics", "create"], &[], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DIFFERS") && out.contains("cleanup.policy: expected compact, found delete"), "{out}");
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    delete_topics(&refs).await;
}
