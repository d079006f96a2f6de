//! The your-own-data benchmark (`vigil-bench byo`):
//!
//! - **Quality through Kafka**: `credit-default.csv` (from `../shared/data`) as records of a schema
//!   of its own, a spec inferred from the file (`vigil_features::infer`, what `vigil spec infer`
//!   does), and a model created from nothing by the learner service reading the records and their
//!   labels from the broker. `kafka_auc` is the prequential ROC AUC (River's way) of what it served,
//!   read from its last checkpoint's state; `inprocess_auc` is the same learner run in-process over
//!   the same rows in file order; `auc_gap` is what the Kafka path costs (target ≤ 0.01). The learner
//!   benchmark's best credit-default AUC (another feature set: every column raw) is reported beside.
//! - **Speed on a foreign model**: the scorer draining a topic of records scored by a gradient-boosted
//!   tree ensemble exported by scikit-learn (skl2onnx, `ai.onnx.ml` operators), beside the forwarder
//!   on the same topic, alternating.

use std::collections::HashMap;

use vigil_events::{CheckpointStatus, ModelCheckpoint};
use vigil_features::infer::{InferOptions, infer};

use super::*;

/// The rows of the file as records of a schema of their own: `ID` becomes the string `event_id`,
/// column names become Avro names.
struct Dataset {
    schema: String,
    name: String,
    records: Vec<Json>,
    labels: Vec<f64>,
}

fn avro_name(column: &str) -> String {
    column.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn credit_dataset(path: &Path) -> Result<Dataset, BenchError> {
    let mut reader = csv::Reader::from_path(path)?;
    let header: Vec<String> =
        reader.headers()?.iter().map(|h| if h == "ID" { "event_id".into() } else { avro_name(h) }).collect();
    let label = "default_payment_next_month";
    let fields: Vec<Json> = header
        .iter()
        .map(|h| {
            let ty = match h.as_str() {
                "event_id" => "string",
                h if h.starts_with("LIMIT") || h.starts_with("BILL") || h.starts_with("PAY_AMT") => "double",
                _ => "int",
            };
            json!({"name": h, "type": ty})
        })
        .collect();
    let schema =
        json!({"type": "record", "name": "Application", "namespace": "bench.credit", "fields": fields}).to_string();
    let codec = Codec::new();
    let (name, _) = codec.add_schema(&schema)?;
    let avro = codec.schema(&name)?;
    let at = header.iter().position(|h| h == label).ok_or("no label column")?;
    let (mut records, mut labels) = (Vec::new(), Vec::new());
    for row in reader.records() {
        let cells: Vec<String> = row?.iter().map(str::to_string).collect();
        labels.push(cells[at].parse::<f64>()?);
        records.push(vigil_events::json::from_cells(&header, &cells, avro)?);
    }
    Ok(Dataset { schema, name, records, labels })
}

/// The learner's settings in both runs.
fn learner_config() -> vigil_learner::LearnerConfig {
    vigil_learner::LearnerConfig { checkpoint_every: 5000, min_examples: 1000, ..Default::default() }
}

/// The learner in-process over the rows in file order: its prequential River-style AUC and rate.
fn in_process(d: &Dataset, spec: &vigil_features::FeatureSpec) -> Result<(f64, f64), BenchError> {
    let codec = Codec::new();
    let (name, _) = codec.add_schema(&d.schema)?;
    let avro = codec.schema(&name)?;
    let mut trainer = vigil_learner::trainer::Trainer::new("credit", spec.clone(), avro, &learner_config(), None)?;
    let wanted: Vec<String> = trainer.fields().to_vec();
    let started = Instant::now();
    for (record, y) in d.records.iter().zip(&d.labels) {
        let value = vigil_events::json::from_json(record, avro)?;
        let apache_avro::types::Value::Record(fields) = &value else { continue };
        let by_name: HashMap<&str, &apache_avro::types::Value> = fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let row: Vec<vigil_events::Field<'_>> =
            wanted.iter().map(|w| vigil_events::Field::of(by_name[w.as_str()])).collect();
        if let Ok(r) = trainer.featurise(&row) {
            trainer.learn(&r, *y, None);
        }
    }
    let rate = d.records.len() as f64 / started.elapsed().as_secs_f64();
    Ok((trainer.state.served.river_auc(), rate))
}

/// The learner service over the same rows through the broker: its last checkpoint's AUC and the
/// records per second from the first produced record to that checkpoint.
async fn through_kafka(env: &Env, d: &Dataset, spec_text: &str) -> Result<(f64, f64, u64), BenchError> {
    let prefix = unique("byo");
    let t = |s: &str| format!("{prefix}-{s}");
    let (input, labels, models) = (t("credit"), t("credit-labels"), t("models"));
    let others = [t("scores"), t("alerts"), t("drift"), t("dlq")];
    // One partition each: labels are applied in file order, as in-process.
    let admin: AdminClient<DefaultClientContext> = client::base_config(&env.kafka, "bench-admin").create()?;
    let mut all: Vec<&str> = vec![&input, &labels, &models];
    all.extend(others.iter().map(String::as_str));
    let new: Vec<NewTopic<'_>> = all.iter().map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(1))).collect();
    admin.create_topics(&new, &AdminOptions::new()).await?;
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("credit.avsc"), &d.schema)?;
    std::fs::write(dir.join("credit.toml"), spec_text)?;
    let lc = learner_config();
    let config = format!(
        "[topics]\nmodels = \"{models}\"\nscores = \"{}\"\nalerts = \"{}\"\ndrift = \"{}\"\ndlq = \"{}\"\n\n[[inputs]]\ntopic = \"{input}\"\nschema-file = \"{}\"\nspec = \"{}\"\nmodel = \"credit\"\nlabels = \"{labels}\"\n\n[learner]\nhttp-listen = \"127.0.0.1:0\"\ngroup-id = \"{prefix}\"\ncheckpoint-every = {}\nmin-examples = {}\n",
        others[0],
        others[1],
        others[2],
        others[3],
        dir.join("credit.avsc").display(),
        dir.join("credit.toml").display(),
        lc.checkpoint_every,
        lc.min_examples,
    );
    let learner = System {
        name: "learner".into(),
        program: "vigil-learner".into(),
        args: Vec::new(),
        env: Vec::new(),
        config: Some(config),
    };
    let mut child = learner.spawn(env, &input, &labels, &prefix)?;
    let started = Instant::now();
    produce_with_labels(env, d, &input, &labels).await?;
    let n = d.records.len() as u64;
    let last = wait_for_state(env, &models, n).await;
    let elapsed = started.elapsed().as_secs_f64();
    stop(&mut child);
    drop_topics(env, &all).await;
    let (auc, trained) = last?;
    Ok((auc, n as f64 / elapsed, trained))
}

/// Each record, then its label, in file order.
async fn produce_with_labels(env: &Env, d: &Dataset, input: &str, labels: &str) -> Result<(), BenchError> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let codec = Codec::new();
    let (name, _) = codec.add_schema(&d.schema)?;
    let avro = codec.schema(&name)?;
    let producer: FutureProducer = client::producer_config(&env.kafka, "bench-byo").create()?;
    let mut pending = Vec::new();
    for (record, y) in d.records.iter().zip(&d.labels) {
        let bytes = codec.encode_value(&d.name, &vigil_events::json::from_json(record, avro)?)?;
        let id = record["event_id"].as_str().unwrap_or_default().to_string();
        let label = codec.encode_event(&vigil_events::Label {
            event_id: id.clone(),
            label: *y,
            label_time: now_ms(),
            source: None,
        })?;
        for (topic, payload) in [(input, bytes), (labels, label)] {
            let record = FutureRecord::to(topic).key(&id).payload(&payload);
            pending.push(producer.send_result(record).map_err(|(e, _)| e)?);
        }
        if pending.len() > 50_000 {
            for p in pending.drain(..) {
                p.await?.map_err(|(e, _)| e)?;
            }
        }
    }
    for p in pending {
        p.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// Reads the models topic until a checkpoint's state has learnt from `n` labels; its served AUC.
async fn wait_for_state(env: &Env, models: &str, n: u64) -> Result<(f64, u64), BenchError> {
    let codec = Codec::new();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let records = vigil_kafka::models::read_all(&env.kafka, models, &codec)?;
        let states = records.into_iter().filter_map(|r| match r {
            vigil_kafka::models::ModelRecord::Checkpoint(cp) => Some(*cp),
            _ => None,
        });
        let best: Option<ModelCheckpoint> =
            states.filter(|c| c.status == CheckpointStatus::Candidate).max_by_key(|c| c.version);
        if let Some(cp) = best
            && let Some(state) = cp.learner_state.as_deref()
        {
            let state: vigil_learner::trainer::State = serde_json::from_slice(state)?;
            if state.counts.labels >= n {
                return Ok((state.served.river_auc(), state.counts.trained));
            }
        }
        if Instant::now() > deadline {
            return Err(format!("the learner did not learn from {n} labels within 900 s").into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Points of six normal coordinates, as Avro.
struct Points {
    codec: Codec,
    name: String,
    rng: vigil_learn::rng::Rng,
    i: u64,
}

impl generate::Source for Points {
    fn next_item(&mut self) -> Option<generate::Item> {
        self.i += 1;
        let mut fields = vec![("event_id".to_string(), apache_avro::types::Value::String(format!("p{}", self.i)))];
        fields.extend((0..6).map(|k| (format!("x{k}"), apache_avro::types::Value::Double(self.rng.normal()))));
        let payload = self.codec.encode_value(&self.name, &apache_avro::types::Value::Record(fields)).ok()?;
        Some(generate::Item {
            event_id: format!("p{}", self.i),
            key: None,
            payload,
            label: None,
            label_source: "",
            positive: false,
        })
    }
}

const POINT: &str = r#"{"type": "record", "name": "Point", "namespace": "bench.foreign", "fields": [
    {"name": "event_id", "type": "string"}, {"name": "x0", "type": "double"}, {"name": "x1", "type": "double"},
    {"name": "x2", "type": "double"}, {"name": "x3", "type": "double"}, {"name": "x4", "type": "double"},
    {"name": "x5", "type": "double"}]}"#;

/// The scorer on scikit-learn's gradient-boosted trees against the forwarder, alternating.
async fn foreign_speed(env: &Env) -> Result<Json, BenchError> {
    let root = repo_root(&env.bin_dir);
    let python = python_bin(&root);
    let dir = std::env::temp_dir().join(unique("foreign"));
    let out = Command::new(&python)
        .arg(root.join("tests/support/foreign_models.py"))
        .arg(&dir)
        .args(["--rows", "10"])
        .output()?;
    if !out.status.success() {
        return Err(format!("foreign_models.py: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let models = unique("foreign-models");
    let input = unique("points");
    topics(env, &[&input]).await?;
    let admin: AdminClient<DefaultClientContext> = client::base_config(&env.kafka, "bench-admin").create()?;
    admin.create_topics(&[NewTopic::new(&models, 1, TopicReplication::Fixed(1))], &AdminOptions::new()).await?;
    let spec = "model = \"trees\"\nschema = \"bench.foreign.Point\"\n".to_string()
        + &(0..6).map(|k| format!("[[numeric]]\nfield = \"x{k}\"\n")).collect::<String>()
        + "[graph]\ninput = \"float_input\"\noutput = \"probabilities\"\n";
    let cp = vigil_models::checkpoint::build(
        vigil_models::checkpoint::NewCheckpoint {
            model: "trees",
            version: 1,
            parent: None,
            onnx: std::fs::read(dir.join("sk-trees.onnx"))?,
            spec: &spec,
            status: CheckpointStatus::Promoted,
            reason: "benchmark".into(),
            now_ms: now_ms(),
        },
        None,
    );
    vigil_kafka::models::publish(&vigil_kafka::models::producer(&env.kafka)?, &Codec::new(), &models, &cp).await?;
    let schema_file = dir.join("point.avsc");
    std::fs::write(&schema_file, POINT)?;
    let codec = Codec::new();
    let (name, _) = codec.add_schema(POINT)?;
    let mut source = Points { codec, name, rng: vigil_learn::rng::Rng::new(5), i: 0 };
    let cfg = RunConfig {
        topic: input.clone(),
        labels_topic: None,
        rate: None,
        max_events: Some(env.events),
        duration: None,
        delays: LabelDelays::default(),
        seed: 5,
        label_grace: Duration::ZERO,
    };
    generate::run(&env.kafka, &mut source, &cfg, &Codec::new(), Arc::new(Progress::default())).await?;
    let config = format!(
        "[topics]\nscores = \"{{output}}\"\nmodels = \"{models}\"\ndlq = \"{{output}}\"\nalerts = \"{{output}}\"\n\n[[inputs]]\ntopic = \"{{input}}\"\nschema-file = \"{}\"\nmodel = \"trees\"\n\n[scorer]\ngroup-id = \"{{group}}\"\nhttp-listen = \"127.0.0.1:{{port}}\"\nchallenger-share = 0.0\nrequire-signature = false\n",
        schema_file.display()
    );
    let scorer = System {
        name: "scorer-trees".into(),
        program: "vigil-scorer".into(),
        args: Vec::new(),
        env: Vec::new(),
        config: Some(config),
    };
    let (mut s, mut f) = (Vec::new(), Vec::new());
    for round in 0..env.rounds {
        let pair = if round % 2 == 0 { [&scorer, &System::forwarder()] } else { [&System::forwarder(), &scorer] };
        for system in pair {
            let t = throughput(env, system, &input, env.events).await?;
            if system.name == scorer.name { s.push(t.events_per_s) } else { f.push(t.events_per_s) }
        }
        eprintln!("foreign model round {}: scorer {:.0}/s, forwarder {:.0}/s", round + 1, s[round], f[round]);
    }
    drop_topics(env, &[&input, &models]).await;
    let ratios: Vec<f64> = s.iter().zip(&f).map(|(a, b)| a / b).collect();
    Ok(json!({
        "model": "scikit-learn GradientBoostingClassifier(40 trees, depth 3) via skl2onnx",
        "scorer_events_per_s": median(&s), "scorer_events_per_s_runs": s,
        "forwarder_events_per_s": median(&f), "forwarder_events_per_s_runs": f,
        "throughput_ratio": median(&ratios), "throughput_ratio_runs": ratios,
    }))
}

/// The benchmark; skipped (with a report saying so) without the shared datasets.
pub async fn byo(env: &Env) -> Result<Json, BenchError> {
    let root = repo_root(&env.bin_dir);
    let data = std::env::var("VIGIL_DATA").map(PathBuf::from).unwrap_or_else(|_| root.join("../shared/data"));
    let path = data.join("credit-default.csv");
    let quality = if path.exists() {
        let d = credit_dataset(&path)?;
        let codec = Codec::new();
        let (name, _) = codec.add_schema(&d.schema)?;
        let avro = codec.schema(&name)?;
        let sample: Vec<apache_avro::types::Value> =
            d.records.iter().take(10_000).map(|r| vigil_events::json::from_json(r, avro)).collect::<Result<_, _>>()?;
        let opts = InferOptions {
            model: "credit".into(),
            label: Some("default_payment_next_month".into()),
            ..Default::default()
        };
        let inferred = infer(avro, &sample, &opts)?;
        eprintln!("byo: inferred spec with {} input columns", inferred.spec.width());
        let (inprocess_auc, inprocess_rate) = in_process(&d, &inferred.spec)?;
        let (kafka_auc, kafka_rate, trained) = through_kafka(env, &d, &inferred.toml).await?;
        let learner: Json = std::fs::read(env.out_dir.join("learner.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Json::Null);
        eprintln!("byo: kafka_auc {kafka_auc:.4}, inprocess_auc {inprocess_auc:.4}");
        json!({
            "records": d.records.len(), "trained": trained, "input_columns": inferred.spec.width(),
            "kafka_auc": kafka_auc, "inprocess_auc": inprocess_auc, "auc_gap": (kafka_auc - inprocess_auc).abs(),
            "kafka_records_per_s": kafka_rate, "inprocess_records_per_s": inprocess_rate,
            "learner_benchmark_best_auc": learner["best_credit_default_auc"],
            "spec": inferred.toml,
        })
    } else {
        json!({"skipped": format!("{} is absent (the shared datasets are not here)", path.display())})
    };
    let speed = foreign_speed(env).await?;
    let report = json!({
        "benchmark": "byo", "machine": machine(env), "commit": commit(),
        "quality": quality, "foreign_model": speed,
        "notes": "AUC as River's metrics.ROCAUC computes it, prequential over the whole file in file order; the Kafka run uses one partition per topic so that labels apply in file order.",
    });
    let path = write_report(env, "byo", &report)?;
    eprintln!("\nbyo benchmark -> {}", path.display());
    for (k, v) in [
        ("kafka_auc", &report["quality"]["kafka_auc"]),
        ("inprocess_auc", &report["quality"]["inprocess_auc"]),
        ("auc_gap", &report["quality"]["auc_gap"]),
        ("foreign throughput_ratio", &report["foreign_model"]["throughput_ratio"]),
    ] {
        eprintln!("  {k:<26} {:>10.4}", v.as_f64().unwrap_or(f64::NAN));
    }
    Ok(report)
}
