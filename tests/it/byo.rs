//! Your own events and your own models: a record type that is not one of the demo's (its schema in a
//! file written by the test), a spec inferred from a sample, a model created from nothing by the
//! learner, scored by the scorer, watched by the drift service; the same through a schema registry
//! with two schema versions in flight; models trained elsewhere (scikit-learn, LightGBM) scored as
//! exported; and the bad input a new user produces.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use vigil_e2e::*;
use vigil_events::{AlertKind, CheckpointStatus, Codec, ModelCheckpoint, Score, Variant};
use vigil_kafka::dlq;

const T: Duration = Duration::from_secs(180);

/// The record type of the tests: loan applications, keyed by their own id field.
const LOAN_V1: &str = r#"{"type": "record", "name": "Loan", "namespace": "it.acme.credit", "fields": [
    {"name": "loan_id", "type": "string"},
    {"name": "applied_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "income", "type": ["null", "double"], "default": null},
    {"name": "age", "type": "int"},
    {"name": "term_months", "type": "int"},
    {"name": "purpose", "type": "string"},
    {"name": "region", "type": "string"},
    {"name": "defaulted", "type": "int"}]}"#;

/// Version 2 adds a field with a default (BACKWARD compatible).
fn loan_v2() -> String {
    LOAN_V1.replace(
        r#"{"name": "defaulted", "type": "int"}]}"#,
        r#"{"name": "defaulted", "type": "int"}, {"name": "channel", "type": "string", "default": "web"}]}"#,
    )
}

/// A deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` loans as CSV rows (ids from `first`); incomes multiplied by `income_factor`. Defaults
/// follow low income, youth, long terms and some purposes.
fn loans_csv(first: usize, n: usize, income_factor: f64, seed: u64, with_channel: bool) -> String {
    let mut rng = Rng(seed);
    let mut out = String::from("loan_id,applied_at,income,age,term_months,purpose,region,defaulted");
    out.push_str(if with_channel { ",channel\n" } else { "\n" });
    let purposes = ["car", "home", "study", "travel", "debt"];
    for i in first..first + n {
        let income = (-(1.0 - rng.next()).ln() * 2500.0 + 800.0) * income_factor;
        let age = 20 + (rng.next() * 50.0) as i64;
        let term = [12, 24, 36, 60][(rng.next() * 4.0) as usize % 4];
        let purpose = purposes[(rng.next() * 5.0) as usize % 5];
        let z = -1.2 - 1.4 * ((income / income_factor) / 2500.0).ln().max(-3.0) - 0.04 * (age as f64 - 40.0)
            + 0.02 * term as f64
            + if purpose == "debt" { 1.0 } else { 0.0 };
        let defaulted = u8::from(rng.next() < 1.0 / (1.0 + (-z).exp()));
        let missing = rng.next() < 0.03;
        let income = if missing { String::new() } else { format!("{income:.2}") };
        let region = format!("r{}", (rng.next() * 120.0) as u32);
        out.push_str(&format!(
            "L{i},{},{income},{age},{term},{purpose},{region},{defaulted}",
            1_767_621_600_000i64 + i as i64 * 1000
        ));
        out.push_str(if with_channel { ",app\n" } else { "\n" });
    }
    out
}

/// One test's topics and configuration for a loans input.
struct Own {
    dir: PathBuf,
    config: PathBuf,
    loans: String,
    labels: String,
    scores: String,
    models: String,
    alerts: String,
    dlq: String,
    all: Vec<String>,
    prefix: String,
}

impl Own {
    /// Topic names and a folder for this test's files.
    fn new(name: &str) -> Own {
        let prefix = unique(name);
        let t = |s: &str| format!("{prefix}-{s}");
        let (loans, labels, scores, models, alerts, drift, dlq, experiments) = (
            t("loans"),
            t("loans-labels"),
            t("scores"),
            t("models"),
            t("alerts"),
            t("drift"),
            t("dlq"),
            t("experiments"),
        );
        let dir = temp_file("x", "").parent().unwrap().to_path_buf();
        let all = vec![
            loans.clone(),
            labels.clone(),
            scores.clone(),
            models.clone(),
            alerts.clone(),
            drift,
            dlq.clone(),
            experiments,
        ];
        Own { config: dir.join("vigil.toml"), dir, loans, labels, scores, models, alerts, dlq, all, prefix }
    }

    /// The loans input, read with `keys` (schema-file or schema-subject, spec, …).
    fn loans_input(&self, keys: &str) -> String {
        format!(
            "[[inputs]]\ntopic = \"{}\"\nid-field = \"loan_id\"\nmodel = \"loans\"\nlabels = \"{}\"\n{keys}\n",
            self.loans, self.labels
        )
    }

    /// Writes the configuration: these inputs, and `extra` sections.
    fn configure(&self, inputs: &str, extra: &str) {
        let (prefix, t) = (&self.prefix, |s: &str| format!("{}-{s}", self.prefix));
        let text = format!(
            r#"
[kafka]
bootstrap-servers = "{bootstrap}"
linger-ms = 1

[topics]
scores = "{scores}"
models = "{models}"
alerts = "{alerts}"
drift = "{drift}"
dlq = "{dlq}"
experiments = "{experiments}"
partitions = 2

{inputs}

[scorer]
http-listen = "127.0.0.1:0"
group-id = "{prefix}-scorer"
require-signature = false

[learner]
http-listen = "127.0.0.1:0"
group-id = "{prefix}-learner"
min-examples = 800
checkpoint-every = 800

[drift]
http-listen = "127.0.0.1:0"
group-id = "{prefix}-drift"
window = 500
warmup = 500
evaluate-every = 100
{extra}
"#,
            bootstrap = bootstrap(),
            scores = self.scores,
            models = self.models,
            alerts = self.alerts,
            drift = t("drift"),
            dlq = self.dlq,
            experiments = t("experiments"),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn vigil(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        vigil(&all, &[], None)
    }

    fn spawn(&self, program: &str) -> Running {
        let mut cmd = std::process::Command::new(bin(program));
        cmd.env("VIGIL_CONFIG", &self.config).env("VIGIL_LOG__LEVEL", "warn").stdin(std::process::Stdio::null());
        Running(cmd.spawn().unwrap())
    }

    /// Replays a CSV of loans as Avro of `schema` with labels a little later than their events.
    fn replay(&self, csv: &Path, schema: &Path, rate: &str) {
        let out = std::process::Command::new(bin("vigil-load"))
            .args(["replay", "--csv", csv.to_str().unwrap(), "--schema-file", schema.to_str().unwrap()])
            .args(["--topic", &self.loans, "--labels-topic", &self.labels, "--label-column", "defaulted"])
            .args(["--id-column", "loan_id", "--rate", rate, "--events", "1000000", "--label-fast-share", "1"])
            .args(["--label-slow-share", "0", "--label-fast-mean-ms", "200", "--label-grace", "5"])
            .env("VIGIL_CONFIG", &self.config)
            .env("VIGIL_LOG__LEVEL", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "replay: {}", String::from_utf8_lossy(&out.stderr));
    }

    async fn delete(&self) {
        let names: Vec<&str> = self.all.iter().map(String::as_str).collect();
        delete_topics(&names).await;
    }
}

/// Vigil's own events of `records`, whatever their framing (with a registry, Vigil registered its
/// shipped schema: an id is that schema's).
fn decode<T: vigil_events::Event>(records: &[vigil_kafka::Input]) -> Vec<T> {
    let codec = Codec::new();
    let text = vigil_events::schemas::current(T::SCHEMA).unwrap().text;
    let read = |bytes: &[u8]| {
        if let Ok(vigil_events::Frame { writer: vigil_events::WriterId::RegistryId(id), .. }) =
            vigil_events::frame(bytes)
        {
            codec.add_registry_schema(id, text).ok()?;
        }
        codec.decode_event(bytes).ok()
    };
    records.iter().filter_map(|m| read(m.payload.as_deref()?)).collect()
}

/// Champion scores of `model`, by event id.
fn champion_scores(records: &[vigil_kafka::Input], model: &str) -> HashMap<String, Score> {
    decode::<Score>(records)
        .into_iter()
        .filter(|s| s.model == model && s.variant == Variant::Champion)
        .map(|s| (s.event_id.clone(), s))
        .collect()
}

/// The versions of `model` promoted so far on the models topic.
async fn wait_for_promotion(own: &Own, model: &str) -> ModelCheckpoint {
    let records = collect_until(&own.models, "read_committed", T, "a promoted checkpoint", |r| {
        decode::<ModelCheckpoint>(r).iter().any(|c| c.model == model && c.status == CheckpointStatus::Promoted)
    })
    .await;
    decode::<ModelCheckpoint>(&records)
        .into_iter()
        .find(|c| c.model == model && c.status == CheckpointStatus::Promoted)
        .unwrap()
}

#[tokio::test]
async fn a_record_type_of_its_own_goes_from_a_csv_to_scores_checkpoints_and_alerts() {
    let own = Own::new("byo");
    own.configure("", "");
    let schema = own.file("loan.avsc", LOAN_V1);
    let part1 = own.file("part1.csv", &loans_csv(0, 3000, 1.0, 1, false));

    // A spec inferred from a sample, every decision explained; the model's input columns listed.
    let (code, spec, err) = own.vigil(&[
        "spec",
        "infer",
        "--schema",
        schema.to_str().unwrap(),
        "--file",
        part1.to_str().unwrap(),
        "--label",
        "defaulted",
        "--model",
        "loans",
        "--sample",
        "2000",
    ]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "loan_id: an identifier",
        "applied_at: a time",
        "defaulted: the label",
        "heavy right tail",
        "field = \"term_months\"\nencoding = \"one-hot\"",
        "field = \"region\"\nencoding = \"hash\"",
    ] {
        assert!(spec.contains(needle), "`{needle}` not in the inferred spec:\n{spec}");
    }
    let spec_file = own.file("loans.toml", &spec);
    let (code, columns, err) = own.vigil(&["spec", "columns", spec_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(columns.contains("   0  income") && columns.contains("term_months=12"), "{columns}");

    // The input names its schema file and its spec: nothing compiled in.
    own.configure(
        &own.loans_input(&format!("schema-file = \"{}\"\nspec = \"{}\"", schema.display(), spec_file.display())),
        "",
    );
    let (code, out, err) = own.vigil(&["topics", "create"]);
    assert_eq!(code, 0, "{out}{err}");
    let _scorer = own.spawn("vigil-scorer");
    let _learner = own.spawn("vigil-learner");
    let _drift = own.spawn("vigil-drift");

    // The learner trains from nothing; its first checkpoint past min-examples becomes champion.
    own.replay(&part1, &schema, "1500");
    let champion = wait_for_promotion(&own, "loans").await;
    let auc = champion.metrics.as_ref().and_then(|m| m.auc).unwrap_or(0.0);
    assert!(auc > 0.65, "the model learnt something: windowed AUC {auc}");

    // Every event after the promotion is scored by a champion.
    let part2 = own.file("part2.csv", &loans_csv(10_000, 1500, 1.0, 2, false));
    own.replay(&part2, &schema, "1500");
    let mut seen = HashSet::new();
    collect_until(&own.scores, "read_committed", T, "a champion score for every event of part 2", |r| {
        seen.extend(
            champion_scores(&r[seen.len().min(r.len())..], "loans").into_keys().filter(|id| id.starts_with("L1")),
        );
        (10_000..11_500).all(|i| seen.contains(&format!("L{i}")))
    })
    .await;

    // A shift in one column raises DATA_DRIFT naming it.
    let part3 = own.file("part3.csv", &loans_csv(20_000, 1500, 4.0, 3, false));
    own.replay(&part3, &schema, "1500");
    let alerts = collect_until(&own.alerts, "read_committed", T, "a data-drift alert on income", |r| {
        decode::<vigil_events::Alert>(r).iter().any(|a| a.kind == AlertKind::DataDrift)
    })
    .await;
    let drifted: HashSet<String> = decode::<vigil_events::Alert>(&alerts)
        .into_iter()
        .filter(|a| a.kind == AlertKind::DataDrift)
        .filter_map(|a| a.feature)
        .collect();
    assert_eq!(drifted, HashSet::from(["income".to_string()]), "only the shifted column drifted");
    own.delete().await;
}

#[tokio::test]
async fn confluent_producers_with_two_schema_versions_are_scored_and_learnt_from() {
    let registry = registry_url();
    let extra = format!("[schema-registry]\nurl = \"{registry}\"");
    let own = Own::new("byo-sr");
    own.configure("", &extra);
    let subject = format!("{}-value", own.loans);
    let v1 = own.file("loan-v1.avsc", LOAN_V1);
    let v2 = own.file("loan-v2.avsc", &loan_v2());
    let part1 = own.file("part1.csv", &loans_csv(0, 2500, 1.0, 4, false));
    let part2 = own.file("part2.csv", &loans_csv(5000, 1000, 1.0, 5, true));
    let spec = {
        let (code, spec, err) = own.vigil(&[
            "spec",
            "infer",
            "--schema",
            v1.to_str().unwrap(),
            "--file",
            part1.to_str().unwrap(),
            "--label",
            "defaulted",
            "--model",
            "loans",
        ]);
        assert_eq!(code, 0, "{err}");
        own.file("loans.toml", &spec)
    };
    own.configure(&own.loans_input(&format!("schema-subject = \"{subject}\"\nspec = \"{}\"", spec.display())), &extra);
    // The subject has no version until the first producer registers one: topics first, by hand.
    create_topics(&[&own.loans, &own.labels, &own.scores, &own.alerts, &own.dlq, &own.all[5]], 2).await;
    create_topics(&[&own.models, &own.all[7]], 1).await; // and the experiments topic

    // Upstream writes version 1, then version 2 (compatible), both Confluent-framed.
    let produce = |schema: &Path, csv: &Path| {
        own.vigil(&[
            "produce",
            &own.loans,
            "--schema",
            schema.to_str().unwrap(),
            "--file",
            csv.to_str().unwrap(),
            "--label-column",
            "defaulted",
            "--labels-topic",
            &own.labels,
            "--id-field",
            "loan_id",
        ])
    };
    let (code, _, err) = produce(&v1, &part1);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = produce(&v2, &part2);
    assert_eq!(code, 0, "{err}");
    // A version that is not BACKWARD compatible (it cannot read what v2 wrote) is refused.
    let v3 = own.file(
        "loan-v3.avsc",
        &loan_v2().replace(r#"{"name": "age", "type": "int"}"#, r#"{"name": "age", "type": "string"}"#),
    );
    let (code, _, err) = produce(&v3, &part2);
    assert_ne!(code, 0);
    assert!(err.contains("not BACKWARD compatible"), "{err}");
    let ids: HashSet<u32> = read_all(&own.loans, "read_committed", Duration::from_secs(3))
        .await
        .iter()
        .map(|m| match vigil_events::frame(m.payload.as_deref().unwrap()).unwrap().writer {
            vigil_events::WriterId::RegistryId(id) => id,
            other => panic!("not Confluent framing: {other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 2, "two schema versions in flight: {ids:?}");

    // The services read with the subject's latest version (v2); v1 records resolve to it.
    let _learner = own.spawn("vigil-learner");
    let _scorer = own.spawn("vigil-scorer");
    wait_for_promotion(&own, "loans").await;
    // Each record is decoded once, and the ids checked once there are enough of them (both at
    // every record took minutes in debug builds).
    let (mut scored, mut read) = (HashSet::new(), 0);
    collect_until(&own.scores, "read_committed", T, "a champion score for every record of both versions", |r| {
        scored.extend(champion_scores(&r[read..], "loans").into_keys());
        read = r.len();
        scored.len() >= 3500 && (0..2500).chain(5000..6000).all(|i| scored.contains(&format!("L{i}")))
    })
    .await;
    let dead = read_all(&own.dlq, "read_committed", Duration::from_secs(2)).await;
    assert!(
        dead.is_empty(),
        "nothing dead-lettered: {:?}",
        dead.iter().map(|m| m.header(dlq::ERROR)).collect::<Vec<_>>()
    );
    own.delete().await;
}

#[tokio::test]
async fn models_trained_elsewhere_score_as_exported() {
    let out = temp_file("x", "").parent().unwrap().join("foreign");
    let (code, info, err) = python_support("foreign_models.py", &[out.to_str().unwrap(), "--rows", "300"], None);
    assert_eq!(code, 0, "{err}");
    let info: Json = serde_json::from_str(info.trim()).unwrap();
    let expected: Json = serde_json::from_str(&std::fs::read_to_string(out.join("expected.json")).unwrap()).unwrap();
    let schema = r#"{"type": "record", "name": "Point", "namespace": "it.foreign", "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "x0", "type": "double"}, {"name": "x1", "type": "double"}, {"name": "x2", "type": "double"},
        {"name": "x3", "type": "double"}, {"name": "x4", "type": "double"}, {"name": "x5", "type": "double"}]}"#;
    let names: Vec<&str> = info.as_object().unwrap().keys().map(String::as_str).collect();
    let own = Own::new("foreign");
    let schema_file = own.file("point.avsc", schema);
    // One input and model per exported graph, all reading the same records.
    let mut inputs = String::new();
    let mut topics = Vec::new();
    for name in &names {
        let topic = format!("{}-{name}", own.loans);
        inputs.push_str(&format!(
            "\n[[inputs]]\ntopic = \"{topic}\"\nschema-file = \"{}\"\nmodel = \"{name}\"\n",
            schema_file.display()
        ));
        topics.push(topic);
    }
    own.configure(&inputs, "");
    let mut all = own.all.clone();
    all.extend(topics.iter().cloned());
    let (code, o, err) = own.vigil(&["topics", "create"]);
    assert_eq!(code, 0, "{o}{err}");
    for name in &names {
        let e = &info[*name];
        let mut spec = format!("model = \"{name}\"\nschema = \"it.foreign.Point\"\n");
        for i in 0..6 {
            spec.push_str(&format!("[[numeric]]\nfield = \"x{i}\"\n"));
        }
        spec.push_str(&format!("[graph]\ninput = \"{}\"\noutput = \"probabilities\"\n", e["input"].as_str().unwrap()));
        let spec_file = own.file(&format!("{name}.toml"), &spec);
        let onnx = out.join(format!("{name}.onnx"));
        let (code, o, err) = own.vigil(&[
            "models",
            "register",
            "--onnx",
            onnx.to_str().unwrap(),
            "--spec",
            spec_file.to_str().unwrap(),
            "--promote",
        ]);
        assert_eq!(code, 0, "{name}: {o}{err}");
    }
    let _scorer = own.spawn("vigil-scorer");
    for topic in &topics {
        let (code, _, err) = own.vigil(&[
            "produce",
            topic,
            "--schema",
            schema_file.to_str().unwrap(),
            "--file",
            out.join("records.csv").to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
    }
    let records =
        collect_until(&own.scores, "read_committed", T, "300 scores per model", |r| r.len() >= 300 * names.len()).await;
    for name in &names {
        let got = champion_scores(&records, name);
        let want = expected[*name]["p"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (r, p) in want.iter().enumerate() {
            let s = &got[&format!("r{r}")];
            assert!((s.score - p.as_f64().unwrap()).abs() < 1e-5, "{name} r{r}: Vigil {} vs Python {p}", s.score);
        }
    }

    // A version moves to another cluster (here: another models topic) unchanged.
    let exported = own.dir.join("sk-logistic.vigil");
    let (code, _, err) = own.vigil(&["models", "export", "sk-logistic", "1", "--out", exported.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let other_models = format!("{}-elsewhere", own.models);
    create_topics(&[&other_models], 1).await;
    let elsewhere =
        own.file("elsewhere.toml", &std::fs::read_to_string(&own.config).unwrap().replace(&own.models, &other_models));
    let at = |args: &[&str]| {
        let mut all = vec!["--config", elsewhere.to_str().unwrap()];
        all.extend_from_slice(args);
        vigil(&all, &[], None)
    };
    let (code, out, err) = at(&["models", "import", exported.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sk-logistic v1 imported as promoted"), "{out}");
    let here = decode::<ModelCheckpoint>(&consume(&own.models, 3, T, "read_committed").await);
    let there = decode::<ModelCheckpoint>(&consume(&other_models, 1, T, "read_committed").await);
    let original = here.iter().find(|c| c.model == "sk-logistic").unwrap();
    assert_eq!(&there[0], original, "the version arrives unchanged");
    let (code, out, _) = at(&["models", "import", exported.to_str().unwrap()]);
    assert!(code == 0 && out.contains("already here"), "{out}");
    let (code, _, err) = own.vigil(&["models", "export", "lightgbm", "1", "--out", exported.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let renamed = Codec::new().encode_event(&ModelCheckpoint {
        model: "sk-logistic".into(),
        ..Codec::new().decode_event::<ModelCheckpoint>(&std::fs::read(&exported).unwrap()).unwrap()
    });
    std::fs::write(&exported, renamed.unwrap()).unwrap();
    let (code, _, err) = at(&["models", "import", exported.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("already here with another graph"), "{err}");
    all.push(other_models);
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    delete_topics(&names).await;
}

/// What a new user gets wrong: records written with a schema id the registry does not have, with a
/// writer schema that cannot be read as the input's, JSON missing a required field; a spec naming a
/// field the records lack, or an output the graph lacks. Each is a dead letter with its reason or a
/// clear refusal; good records beside them are scored.
#[tokio::test]
async fn bad_own_input_is_a_dead_letter_or_a_clear_refusal() {
    let registry = registry_url();
    let extra = format!("[schema-registry]\nurl = \"{registry}\"");
    let own = Own::new("byo-bad");
    own.configure("", &extra);
    let schema = own.file("loan.avsc", LOAN_V1);
    let sample = own.file("sample.csv", &loans_csv(0, 400, 1.0, 9, false));
    let (code, spec, err) = own.vigil(&[
        "spec",
        "infer",
        "--schema",
        schema.to_str().unwrap(),
        "--file",
        sample.to_str().unwrap(),
        "--label",
        "defaulted",
        "--model",
        "loans",
    ]);
    assert_eq!(code, 0, "{err}");
    let spec_file = own.file("loans.toml", &spec);
    let json_topic = format!("{}-json", own.loans);
    let inputs = format!(
        "{}\n[[inputs]]\ntopic = \"{json_topic}\"\nformat = \"json\"\nschema-file = \"{}\"\nid-field = \"loan_id\"\nmodel = \"loans\"\n",
        own.loans_input(&format!("schema-file = \"{}\"", schema.display())),
        schema.display()
    );
    own.configure(&inputs, &extra);
    let (code, out, err) = own.vigil(&["topics", "create"]);
    assert_eq!(code, 0, "{out}{err}");
    create_topics(&[&format!("{}-other", own.loans)], 1).await;

    // A model registered for the records: a logistic regression over the spec's columns.
    let width = vigil_features::FeatureSpec::parse(&spec).unwrap().width();
    let onnx = own.dir.join("loans.onnx");
    std::fs::write(&onnx, vigil_models::Model::Logistic { w: vec![0.1; width], b: 0.0 }.to_onnx("loans", 1).to_bytes())
        .unwrap();
    let register = |spec: &Path| {
        own.vigil(&[
            "models",
            "register",
            "--onnx",
            onnx.to_str().unwrap(),
            "--spec",
            spec.to_str().unwrap(),
            "--promote",
        ])
    };
    // Refused: a spec naming a field the records lack, a graph output that is not there.
    let missing_field = own.file("bad1.toml", &spec.replacen("field = \"age\"", "field = \"agee\"", 1));
    let (code, _, err) = register(&missing_field);
    assert_ne!(code, 0);
    assert!(err.contains("`agee` is not in the schema"), "{err}");
    let missing_output = own.file("bad2.toml", &format!("{spec}\n[graph]\noutput = \"probabilities\"\n"));
    let (code, _, err) = register(&missing_output);
    assert_ne!(code, 0);
    assert!(err.contains("no output `probabilities`") && err.contains("[graph]"), "{err}");
    let (code, _, err) = register(&spec_file);
    assert_eq!(code, 0, "{err}");
    let _scorer = own.spawn("vigil-scorer");

    // An id the registry never gave; a writer schema of the same name whose `age` is a string.
    let p = producer();
    let mut unknown = vec![0u8, 0x00, 0x0F, 0x42, 0x3F];
    unknown.extend_from_slice(b"\x02L1");
    produce(&p, &own.loans, Some(b"L1"), &unknown).await;
    let (code, _, err) = own.vigil(&[
        "produce", &format!("{}-other", own.loans), "--schema",
        own.file("odd.avsc", &LOAN_V1.replace(r#"{"name": "age", "type": "int"}"#, r#"{"name": "age", "type": "string"}"#)).to_str().unwrap(),
        "--file", own.file("odd.jsonl", "{\"loan_id\": \"L2\", \"applied_at\": 1, \"income\": null, \"age\": \"old\", \"term_months\": 12, \"purpose\": \"car\", \"region\": \"r1\", \"defaulted\": 0}\n").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let odd = consume(&format!("{}-other", own.loans), 1, T, "read_committed").await;
    produce(&p, &own.loans, Some(b"L2"), odd[0].payload.as_deref().unwrap()).await;
    // JSON: one missing a required field, one good.
    let good = r#"{"loan_id": "L4", "applied_at": 1, "income": {"double": 2500.0}, "age": 33, "term_months": 24, "purpose": "car", "region": "r7", "defaulted": 0}"#;
    produce(&p, &json_topic, Some(b"L3"), good.replace("L4", "L3").replace(r#""age": 33, "#, "").as_bytes()).await;
    produce(&p, &json_topic, Some(b"L4"), good.as_bytes()).await;

    let dead = collect_until(&own.dlq, "read_committed", T, "three dead letters", |r| r.len() >= 3).await;
    let reasons: HashMap<String, (String, String)> = dead
        .iter()
        .map(|m| {
            let h = |k: &str| String::from_utf8_lossy(m.header(k).unwrap_or_default()).to_string();
            (
                String::from_utf8_lossy(m.key.as_deref().unwrap_or_default()).to_string(),
                (h(dlq::ERROR_KIND), h(dlq::ERROR)),
            )
        })
        .collect();
    assert_eq!(reasons["L1"].0, "unknown-schema-id", "{reasons:?}");
    assert_eq!(reasons["L2"].0, "schema-mismatch", "{reasons:?}");
    assert_eq!(reasons["L3"].0, "json", "{reasons:?}");
    assert!(reasons["L3"].1.contains("age") && reasons["L3"].1.contains("missing"), "{reasons:?}");
    let scores = collect_until(&own.scores, "read_committed", T, "the good JSON record's score", |r| {
        champion_scores(r, "loans").contains_key("L4")
    })
    .await;
    assert_eq!(champion_scores(&scores, "loans").len(), 1, "only the good record is scored");
    let mut all = own.all.clone();
    all.extend([json_topic, format!("{}-other", own.loans)]);
    delete_topics(&all.iter().map(String::as_str).collect::<Vec<_>>()).await;
}
