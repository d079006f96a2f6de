//! `vigil models list | show | promote | rollback | register | keygen | export | import | prune |
//! bootstrap`: the model registry on the `vigil.models` topic. Everything written is signed with
//! `--sign-key` (or `learner.sign-key`) when there is one, and read back and checked after.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::Config;
use anyhow::{Context, bail};
use clap::Subcommand;
use vigil_events::{Alert, AlertKind, AlertState, CheckpointStatus, Codec, ModelCheckpoint, Severity};
use vigil_features::FeatureSpec;
use vigil_kafka::ModelRegistry;
use vigil_kafka::model_registry::transition;
use vigil_kafka::models::{self, ModelRecord};
use vigil_kafka::now_ms;
use vigil_models::Runtime;
use vigil_models::checkpoint::{self, NewCheckpoint, Policy};

/// The `models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every version of every model (or of one), with its status.
    List {
        /// Only this model.
        model: Option<String>,
        /// `text` (a table) or `json` (one array).
        #[arg(long, value_enum, default_value = "text")]
        output: super::Output,
    },
    /// One version as JSON (ONNX bytes summarised), and its feature spec.
    Show {
        /// Model.
        model: String,
        /// Version.
        version: i64,
    },
    /// Make a version the champion.
    Promote {
        /// Model.
        model: String,
        /// Version.
        version: i64,
        /// Why (recorded in the registry).
        #[arg(long, default_value = "promoted by hand")]
        reason: String,
        /// Sign the change with this ed25519 secret key (hex file; default: `learner.sign-key`).
        #[arg(long)]
        sign_key: Option<PathBuf>,
    },
    /// Take the champion out of service; the previous promoted version serves again.
    Rollback {
        /// Model.
        model: String,
        /// Why.
        #[arg(long, default_value = "rolled back by hand")]
        reason: String,
        /// Sign the change with this ed25519 secret key (hex file; default: `learner.sign-key`).
        #[arg(long)]
        sign_key: Option<PathBuf>,
    },
    /// Register a model trained elsewhere: an ONNX file and the feature spec it expects.
    Register {
        /// The ONNX model (inputs and output as the spec's model family expects; see README).
        #[arg(long)]
        onnx: PathBuf,
        /// The feature spec (TOML).
        #[arg(long)]
        spec: PathBuf,
        /// Promote it at once (otherwise it is a candidate, scored in shadow).
        #[arg(long)]
        promote: bool,
        /// Sign it with this ed25519 secret key (hex file, see `keygen`; default: `learner.sign-key`).
        #[arg(long)]
        sign_key: Option<PathBuf>,
        /// Publish without validating it here first.
        #[arg(long)]
        no_validate: bool,
    },
    /// Make an ed25519 signing key: the secret goes to a file, the public key (for
    /// `scorer.trusted-keys`) is printed.
    Keygen {
        /// Where to write the secret key (hex).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a version — graph, spec, signature, lineage, status — to a file, to import elsewhere.
    Export {
        /// The model.
        model: String,
        /// The version.
        version: i64,
        /// The file (the checkpoint record as Avro, single-object encoded).
        #[arg(long)]
        out: PathBuf,
    },
    /// Publish a version exported from another cluster, unchanged (refused when this registry has
    /// another graph under the same model and version).
    Import {
        /// The file `vigil models export` wrote.
        file: PathBuf,
    },
    /// Delete old versions (tombstones) so that at most `--keep` of each model remain; never the
    /// champion, the versions it falls back to, the challenger or the newest learner state.
    Prune {
        /// Only this model.
        model: Option<String>,
        /// Versions to keep per model.
        #[arg(long)]
        keep: usize,
    },
    /// Register starting models for the demo's fraud and sentiment inputs (hand-set weights), promoted.
    Bootstrap {
        /// Also when the model already has versions.
        #[arg(long)]
        force: bool,
        /// Sign them with this ed25519 secret key (hex file; default: `learner.sign-key`).
        #[arg(long)]
        sign_key: Option<PathBuf>,
    },
}

/// Runs a `models` subcommand.
pub async fn run(config: &Config, cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    // The inputs' schemas, for validating a registered model's spec against its records.
    let (codec, config) = super::with_input_schemas(config).await;
    let config = &config;
    match cmd {
        ModelsCommand::List { model, output } => list(config, &codec, model, output),
        ModelsCommand::Show { model, version } => show(config, &codec, &model, version),
        ModelsCommand::Promote { model, version, reason, sign_key } => {
            promote(config, &codec, &model, version, &reason, signer(config, sign_key)?).await
        }
        ModelsCommand::Rollback { model, reason, sign_key } => {
            rollback(config, &codec, &model, &reason, signer(config, sign_key)?).await
        }
        ModelsCommand::Register { onnx, spec, promote, sign_key, no_validate } => {
            register(config, &codec, &onnx, &spec, promote, signer(config, sign_key)?, no_validate).await
        }
        ModelsCommand::Keygen { out } => keygen(&out),
        ModelsCommand::Export { model, version, out } => export(config, &codec, &model, version, &out),
        ModelsCommand::Import { file } => import(config, &codec, &file).await,
        ModelsCommand::Prune { model, keep } => prune(config, &codec, model.as_deref(), keep).await,
        ModelsCommand::Bootstrap { force, sign_key } => {
            bootstrap(config, &codec, force, signer(config, sign_key)?).await
        }
    }
}

/// The key that signs what this command writes: `--sign-key`, else `learner.sign-key`, else none.
fn signer(config: &Config, path: Option<PathBuf>) -> anyhow::Result<Option<ed25519_dalek::SigningKey>> {
    let path = path.or_else(|| Some(PathBuf::from(&config.learner.sign_key)).filter(|p| !p.as_os_str().is_empty()));
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading the signing key {}", path.display()))?;
    checkpoint::signing_key_from_hex(&text).map(Some).map_err(anyhow::Error::msg)
}

/// The model registry, read from the models topic to its end.
/// The registry as the models topic holds it now.
pub(crate) fn registry(config: &Config, codec: &Codec) -> anyhow::Result<ModelRegistry> {
    let mut r = ModelRegistry::new();
    for rec in models::read_all(&config.kafka, &config.topics.models, codec)? {
        match rec {
            ModelRecord::Undecodable { offset, error } => eprintln!("vigil: skipping offset {offset}: {error}"),
            other => r.apply_record(other),
        }
    }
    Ok(r)
}

/// `vigil models list`.
fn list(config: &Config, codec: &Codec, model: Option<String>, output: super::Output) -> anyhow::Result<ExitCode> {
    let r = registry(config, codec)?;
    if output == super::Output::Json {
        let rows: Vec<serde_json::Value> = r
            .models()
            .into_iter()
            .filter(|m| model.as_ref().is_none_or(|x| x == m))
            .flat_map(|m| {
                let (champion, challenger) = (r.champion(&m).map(|c| c.version), r.challenger(&m).map(|c| c.version));
                r.versions(&m).into_iter().map(move |cp| json_row(cp, champion, challenger)).collect::<Vec<_>>()
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12} {:>7}  {:<11} {:<10} {:>9}  {:>8} {:>8}  {:<12} reason",
        "model", "version", "status", "role", "bytes", "accuracy", "auc", "sha256"
    );
    for m in r.models().into_iter().filter(|m| model.as_ref().is_none_or(|x| x == m)) {
        let champion = r.champion(&m).map(|c| c.version);
        let challenger = r.challenger(&m).map(|c| c.version);
        for cp in r.versions(&m) {
            let role = if Some(cp.version) == champion {
                "champion"
            } else if Some(cp.version) == challenger {
                "challenger"
            } else {
                ""
            };
            let acc = cp.metrics.as_ref().map(|x| format!("{:.4}", x.accuracy)).unwrap_or_else(|| "-".into());
            let auc = cp.metrics.as_ref().and_then(|x| x.auc).map(|a| format!("{a:.4}")).unwrap_or_else(|| "-".into());
            println!(
                "{:<12} {:>7}  {:<11} {:<10} {:>9}  {:>8} {:>8}  {:<12} {}",
                cp.model,
                cp.version,
                format!("{:?}", cp.status).to_lowercase(),
                role,
                cp.size_bytes,
                acc,
                auc,
                &cp.sha256[..cp.sha256.len().min(12)],
                cp.status_reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One version as `models list --output json` prints it.
fn json_row(cp: &ModelCheckpoint, champion: Option<i64>, challenger: Option<i64>) -> serde_json::Value {
    let role = match Some(cp.version) {
        v if v == champion => "champion",
        v if v == challenger => "challenger",
        _ => "",
    };
    serde_json::json!({
        "model": cp.model, "version": cp.version, "status": format!("{:?}", cp.status).to_lowercase(), "role": role,
        "bytes": cp.size_bytes, "accuracy": cp.metrics.as_ref().map(|x| x.accuracy),
        "auc": cp.metrics.as_ref().and_then(|x| x.auc), "sha256": cp.sha256, "reason": cp.status_reason,
        "updated_at": cp.updated_at, "signer": cp.signer,
    })
}

/// `vigil models show`.
fn show(config: &Config, codec: &Codec, model: &str, version: i64) -> anyhow::Result<ExitCode> {
    let r = registry(config, codec)?;
    let cp = r.get(model, version).with_context(|| format!("{model} v{version} is not in the registry"))?;
    let (value, _) = codec.decode_as_written(&codec.encode_event(cp)?)?;
    let json = vigil_events::json::to_json(&value, vigil_events::json::BytesOut::SummaryOver(64));
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(ExitCode::SUCCESS)
}

/// `vigil models promote`.
async fn promote(
    config: &Config,
    codec: &Codec,
    model: &str,
    version: i64,
    reason: &str,
    key: Option<ed25519_dalek::SigningKey>,
) -> anyhow::Result<ExitCode> {
    let r = registry(config, codec)?;
    let cp = r.get(model, version).with_context(|| format!("{model} v{version} is not in the registry"))?;
    if cp.status == CheckpointStatus::Rejected {
        bail!("{model} v{version} was rejected ({}); register a new version instead", cp.status_reason);
    }
    let mut promoted = transition(cp, CheckpointStatus::Promoted, reason, now_ms());
    sign(&mut promoted, key.as_ref());
    publish(config, codec, &promoted, key.as_ref()).await?;
    champion_holds(config, codec, model, version)?;
    alert(config, codec, AlertKind::ModelPromoted, &promoted, reason).await?;
    println!("{model} v{version} promoted");
    Ok(ExitCode::SUCCESS)
}

/// `vigil models rollback`.
async fn rollback(
    config: &Config,
    codec: &Codec,
    model: &str,
    reason: &str,
    key: Option<ed25519_dalek::SigningKey>,
) -> anyhow::Result<ExitCode> {
    let r = registry(config, codec)?;
    let current = r.champion(model).with_context(|| format!("{model} has no champion"))?;
    let previous = r.previous_champion(model).with_context(|| {
        format!("{model} v{} is its only promoted version: nothing to roll back to", current.version)
    })?;
    let mut rolled = transition(current, CheckpointStatus::RolledBack, reason, now_ms());
    sign(&mut rolled, key.as_ref());
    publish(config, codec, &rolled, key.as_ref()).await?;
    champion_holds(config, codec, model, previous.version)?;
    alert(config, codec, AlertKind::ModelRolledBack, &rolled, reason).await?;
    println!("{model} v{} rolled back; v{} serves again", current.version, previous.version);
    Ok(ExitCode::SUCCESS)
}

/// `vigil models register`.
async fn register(
    config: &Config,
    codec: &Codec,
    onnx: &std::path::Path,
    spec: &std::path::Path,
    promote: bool,
    key: Option<ed25519_dalek::SigningKey>,
    no_validate: bool,
) -> anyhow::Result<ExitCode> {
    let onnx_bytes = std::fs::read(onnx).with_context(|| format!("reading {}", onnx.display()))?;
    let spec_text = std::fs::read_to_string(spec).with_context(|| format!("reading {}", spec.display()))?;
    let parsed = FeatureSpec::parse(&spec_text)?;
    let r = registry(config, codec)?;
    let version = r.next_version(&parsed.model);
    let status = if promote { CheckpointStatus::Promoted } else { CheckpointStatus::Candidate };
    let cp = checkpoint::build(
        NewCheckpoint {
            model: &parsed.model,
            version,
            parent: None,
            onnx: onnx_bytes,
            spec: &spec_text,
            status,
            reason: "registered with vigil models register".into(),
            now_ms: now_ms(),
        },
        key.as_ref(),
    );
    if !no_validate {
        let schema = codec.schema(&parsed.schema)?;
        let runtime = Runtime::global(None).map_err(|e| anyhow::anyhow!(vigil_runtime::error_chain(&e)))?;
        let policy = Policy { trusted_keys: key.iter().map(|k| k.verifying_key()).collect(), ..Policy::default() };
        // An encoder model's encoder and tokenizer are found where the scorer finds them.
        let policy = policy.with_model_dirs(config.scorer.model_dirs.iter().map(PathBuf::from).collect());
        checkpoint::validate(&cp, schema, &policy, &runtime).map_err(anyhow::Error::msg)?;
    }
    publish(config, codec, &cp, key.as_ref()).await?;
    println!("{} v{version} registered as {}", parsed.model, format!("{status:?}").to_lowercase());
    Ok(ExitCode::SUCCESS)
}

/// `vigil models export`.
fn export(
    config: &Config,
    codec: &Codec,
    model: &str,
    version: i64,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let r = registry(config, codec)?;
    let cp = r.get(model, version).with_context(|| format!("{model} v{version} is not in the registry"))?;
    if cp.onnx.is_none() {
        bail!(
            "{model} v{version} refers to its graph by URI ({}); only inline graphs travel",
            cp.onnx_uri.as_deref().unwrap_or("-")
        );
    }
    // Single-object encoding whatever the cluster's framing: the file reads without a registry.
    let plain = Codec::new();
    std::fs::write(out, plain.encode_event(cp)?).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{model} v{version} ({}, sha256 {}) written to {}",
        status_name(cp.status),
        &cp.sha256[..12],
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `vigil models import`.
async fn import(config: &Config, codec: &Codec, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let cp: ModelCheckpoint = Codec::new().decode_event(&bytes).context("the file is not an exported checkpoint")?;
    let r = registry(config, codec)?;
    if let Some(existing) = r.get(&cp.model, cp.version) {
        if existing.sha256 == cp.sha256 {
            println!("{} v{} is already here with the same graph; nothing to do", cp.model, cp.version);
            return Ok(ExitCode::SUCCESS);
        }
        bail!(
            "{} v{} is already here with another graph (sha256 {}); not importing",
            cp.model,
            cp.version,
            &existing.sha256[..12]
        );
    }
    publish(config, codec, &cp, None).await?;
    println!("{} v{} imported as {} (sha256 {})", cp.model, cp.version, status_name(cp.status), &cp.sha256[..12]);
    Ok(ExitCode::SUCCESS)
}

fn status_name(s: CheckpointStatus) -> String {
    format!("{s:?}").to_lowercase()
}

/// `vigil models keygen`.
fn keygen(out: &PathBuf) -> anyhow::Result<ExitCode> {
    let mut seed = [0u8; 32];
    use rand::TryRngCore;
    rand::rngs::OsRng.try_fill_bytes(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    write_secret(out, &hex::encode(seed))?;
    println!("{}", hex::encode(key.verifying_key().to_bytes()));
    eprintln!("secret key written to {}; add the public key above to scorer.trusted-keys", out.display());
    Ok(ExitCode::SUCCESS)
}

/// `vigil models bootstrap`.
async fn bootstrap(
    config: &Config,
    codec: &Codec,
    force: bool,
    key: Option<ed25519_dalek::SigningKey>,
) -> anyhow::Result<ExitCode> {
    let r = registry(config, codec)?;
    for (model, spec, onnx) in crate::commands::bootstrap::models() {
        if !force && !r.versions(model).is_empty() {
            println!("{model}: already has versions; left alone");
            continue;
        }
        let version = r.next_version(model);
        let cp = checkpoint::build(
            NewCheckpoint {
                model,
                version,
                parent: None,
                onnx,
                spec,
                status: CheckpointStatus::Promoted,
                reason: "bootstrap: hand-set weights until the learner publishes better".into(),
                now_ms: now_ms(),
            },
            key.as_ref(),
        );
        publish(config, codec, &cp, key.as_ref()).await?;
        println!("{model} v{version} registered and promoted");
    }
    Ok(ExitCode::SUCCESS)
}

fn write_secret(path: &PathBuf, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// `vigil models prune`.
async fn prune(config: &Config, codec: &Codec, model: Option<&str>, keep: usize) -> anyhow::Result<ExitCode> {
    if keep == 0 {
        bail!("--keep must be at least 1");
    }
    let r = registry(config, codec)?;
    let producer = models::producer(&config.kafka)?;
    for m in r.models().into_iter().filter(|m| model.is_none_or(|x| x == m)) {
        let gone = r.prunable(&m, keep);
        for v in &gone {
            models::tombstone(&producer, &config.topics.models, &m, *v).await?;
        }
        println!("{m}: {} of {} versions deleted {gone:?}", gone.len(), r.versions(&m).len());
    }
    Ok(ExitCode::SUCCESS)
}

fn sign(cp: &mut ModelCheckpoint, key: Option<&ed25519_dalek::SigningKey>) {
    if let Some(k) = key {
        checkpoint::sign(cp, k);
    }
}

/// Publishes `cp`, then reads the registry back: the version must hold exactly what was written
/// (and its signature verify), or the command fails.
async fn publish(
    config: &Config,
    codec: &Codec,
    cp: &ModelCheckpoint,
    key: Option<&ed25519_dalek::SigningKey>,
) -> anyhow::Result<()> {
    let producer = models::producer(&config.kafka)?;
    models::publish(&producer, codec, &config.topics.models, cp).await?;
    let r = registry(config, codec)?;
    let held = r.get(&cp.model, cp.version);
    if held != Some(cp) {
        bail!(
            "{} v{} was published but the registry holds something else for it (a newer record, or one dated in the future)",
            cp.model,
            cp.version
        );
    }
    if let Some(k) = key {
        let signer = checkpoint::verify(held.unwrap_or(cp), &[k.verifying_key()])
            .map_err(|e| anyhow::anyhow!("{} v{} as read back: {e}", cp.model, cp.version))?;
        eprintln!("{} v{} written, read back and verified (signed by {signer})", cp.model, cp.version);
    }
    Ok(())
}

/// Reads the registry back: `version` must be `model`'s champion now (a learner may have promoted
/// another version meanwhile, or a record dated ahead may hold), or the command fails.
fn champion_holds(config: &Config, codec: &Codec, model: &str, version: i64) -> anyhow::Result<()> {
    match registry(config, codec)?.champion(model).map(|c| c.version) {
        Some(v) if v == version => Ok(()),
        now => {
            let now = now.map_or("no version".to_string(), |v| format!("v{v}"));
            bail!("{model} v{version} should be the champion, but the registry holds {now} as champion now")
        }
    }
}

async fn alert(
    config: &Config,
    codec: &Codec,
    kind: AlertKind,
    cp: &ModelCheckpoint,
    reason: &str,
) -> anyhow::Result<()> {
    let alert = Alert {
        alert_id: format!("{kind:?}-{}-{}-{}", cp.model, cp.version, now_ms()).to_lowercase(),
        time: now_ms(),
        kind,
        state: AlertState::Firing,
        severity: Severity::Info,
        model: Some(cp.model.clone()),
        model_version: Some(cp.version),
        feature: None,
        detector: Some("registry".into()),
        statistic: None,
        value: None,
        threshold: None,
        p_value: None,
        window_start: None,
        window_end: None,
        message: format!("{} v{}: {reason}", cp.model, cp.version),
        dedup_key: format!("{kind:?}/{}/{}", cp.model, cp.version).to_lowercase(),
    };
    let producer = models::producer(&config.kafka)?;
    let payload = codec.encode_event(&alert)?;
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&config.topics.alerts)
                .key(alert.dedup_key.as_bytes())
                .payload(&payload[..]),
            std::time::Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}
