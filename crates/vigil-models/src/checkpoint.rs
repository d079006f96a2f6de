//! Checkpoints: building a `ModelCheckpoint` (SHA-256, size, optional ed25519 signature) and
//! validating one before it may serve: size limit, checksum, signature, the feature spec, static
//! checks of the graph ([`crate::inspect`]), the graph's input / output signature against the spec
//! (with a symbolic batch dimension), and probe batches of several sizes whose outputs must be
//! finite probabilities. A checkpoint that fails is refused with the reason; nothing of it serves.
//!
//! **The signature covers the whole record** ([`digest`]): the graph (through its SHA-256 and the
//! bytes themselves), the spec, the metrics and threshold, model, version, status, lineage, offsets,
//! references and the learner's state — everything but the signature, the signer and the free-text
//! status reason. A transition (promotion, rollback) is a new record and is signed anew.
//!
//! Reasons never carry a file path, a hash or an operating system's error text: they end up in
//! alerts anyone may read; the details go to the log.

use apache_avro::Schema;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use vigil_events::{CheckpointStatus, ModelCheckpoint};
use vigil_features::{FeatureSpec, Featurizer};

use crate::runtime::{Provider, Runtime, TensorInfo};

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What goes into a new checkpoint.
#[derive(Debug, Clone)]
pub struct NewCheckpoint<'a> {
    /// Model name.
    pub model: &'a str,
    /// Version.
    pub version: i64,
    /// Version it was trained from.
    pub parent: Option<i64>,
    /// The ONNX bytes.
    pub onnx: Vec<u8>,
    /// The feature spec (TOML).
    pub spec: &'a str,
    /// Initial status.
    pub status: CheckpointStatus,
    /// Why.
    pub reason: String,
    /// Creation time (epoch ms).
    pub now_ms: i64,
}

/// Builds a checkpoint record (without metrics, offsets or reference statistics, which the learner
/// adds and then signs), signed when a key is given.
pub fn build(new: NewCheckpoint<'_>, key: Option<&SigningKey>) -> ModelCheckpoint {
    let digest = Sha256::digest(&new.onnx);
    let mut cp = ModelCheckpoint {
        model: new.model.to_string(),
        version: new.version,
        parent_version: new.parent,
        created_at: new.now_ms,
        updated_at: new.now_ms,
        status: new.status,
        status_reason: new.reason,
        sha256: hex::encode(digest),
        size_bytes: new.onnx.len() as i64,
        onnx: Some(new.onnx),
        onnx_uri: None,
        feature_spec: new.spec.to_string(),
        metrics: None,
        offsets: Vec::new(),
        reference: Vec::new(),
        learner_state: None,
        signature: None,
        signer: None,
    };
    if let Some(k) = key {
        sign(&mut cp, k);
    }
    cp
}

/// What a signature covers: the SHA-256 of the record's Avro encoding (single-object, current
/// schema) with the signature, the signer and the status reason left empty.
pub fn digest(cp: &ModelCheckpoint) -> [u8; 32] {
    let covered = ModelCheckpoint { signature: None, signer: None, status_reason: String::new(), ..cp.clone() };
    let bytes = vigil_events::Codec::new().encode_event(&covered).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

/// Signs the whole record (call after every field is set; a later change needs a new signature).
pub fn sign(cp: &mut ModelCheckpoint, key: &SigningKey) {
    cp.signature = Some(key.sign(&digest(cp)).to_bytes().to_vec());
    cp.signer = Some(key_id(&key.verifying_key()));
}

/// A public key's short id (what `signer` holds).
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(key.to_bytes())[..16].to_string()
}

/// Whether the record is signed by one of `keys`: `Ok` naming the signer, or why not.
pub fn verify(cp: &ModelCheckpoint, keys: &[VerifyingKey]) -> Result<String, String> {
    let sig = cp.signature.as_deref().ok_or("the checkpoint is not signed")?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| "a signature is 64 bytes")?;
    let sig = Signature::from_bytes(&sig);
    let d = digest(cp);
    keys.iter()
        .find(|k| k.verify(&d, &sig).is_ok())
        .map(key_id)
        .ok_or_else(|| "the signature does not verify with any trusted key".to_string())
}

/// Parses a hex ed25519 secret key (32 bytes, 64 hex digits).
pub fn signing_key_from_hex(text: &str) -> Result<SigningKey, String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("signing key is not hex: {e}"))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| "a signing key is 32 bytes (64 hex digits)".to_string())?;
    Ok(SigningKey::from_bytes(&arr))
}

/// Parses a hex ed25519 public key.
pub fn verifying_key_from_hex(text: &str) -> Result<VerifyingKey, String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("public key is not hex: {e}"))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| "a public key is 32 bytes (64 hex digits)".to_string())?;
    VerifyingKey::from_bytes(&arr).map_err(|e| format!("not an ed25519 public key: {e}"))
}

/// Rules a checkpoint must pass.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Largest ONNX model accepted.
    pub max_bytes: usize,
    /// Refuse unsigned checkpoints.
    pub require_signature: bool,
    /// Keys whose signatures are accepted.
    pub trusted_keys: Vec<VerifyingKey>,
    /// Folders a checkpoint's `file://` graph may be read from (none: no URI is followed).
    pub model_dirs: Vec<std::path::PathBuf>,
    /// Artifacts (sentence encoders, tokenizers) named by digest, found in the model folders.
    pub artifacts: std::sync::Arc<crate::artifacts::Artifacts>,
}

impl Policy {
    /// The policy reading graphs and artifacts from `model_dirs`.
    pub fn with_model_dirs(self, model_dirs: Vec<std::path::PathBuf>) -> Policy {
        let artifacts = std::sync::Arc::new(crate::artifacts::Artifacts::new(model_dirs.clone()));
        Policy { model_dirs, artifacts, ..self }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_bytes: 64 << 20,
            require_signature: false,
            trusted_keys: Vec::new(),
            model_dirs: Vec::new(),
            artifacts: Default::default(),
        }
    }
}

/// Batch sizes the probe runs: a graph must take any batch, not only one size.
pub const PROBE_ROWS: [usize; 3] = [1, 4, 37];

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{model} v{version} refused: {reason}")]
pub struct Rejection {
    /// Model.
    pub model: String,
    /// Version.
    pub version: i64,
    /// Which check failed (`size`, `checksum`, `signature`, `threshold`, `spec`, `encoder`,
    /// `graph`, `signature-mismatch`, `probe`, `load`, `time`).
    pub check: &'static str,
    /// Why, for people.
    pub reason: String,
}

/// A checkpoint that passed validation.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The record.
    pub checkpoint: ModelCheckpoint,
    /// The ONNX bytes.
    pub onnx: std::sync::Arc<Vec<u8>>,
    /// Its feature spec.
    pub spec: FeatureSpec,
    /// The spec bound to the input schema (with the encoder's tokenizer, for an encoder model).
    pub featurizer: Featurizer,
    /// The sentence encoder in front of the graph, for an encoder model.
    pub encoder: Option<crate::embed::EncoderArtifact>,
}

/// Validates `cp` for serving records of `schema` on `runtime`.
pub fn validate(
    cp: &ModelCheckpoint,
    schema: &Schema,
    policy: &Policy,
    runtime: &Runtime,
) -> Result<Validated, Rejection> {
    let reject =
        |check: &'static str, reason: String| Rejection { model: cp.model.clone(), version: cp.version, check, reason };
    let onnx = match (&cp.onnx, &cp.onnx_uri) {
        (Some(b), _) => b.clone(),
        (None, Some(uri)) => {
            read_model_file(uri, &policy.model_dirs, policy.max_bytes).map_err(|e| reject("load", e))?
        }
        (None, None) => return Err(reject("load", "the checkpoint carries neither ONNX bytes nor a URI".into())),
    };
    if onnx.len() > policy.max_bytes {
        return Err(reject("size", format!("{} bytes, more than the {} allowed", onnx.len(), policy.max_bytes)));
    }
    if cp.size_bytes != onnx.len() as i64 {
        return Err(reject("size", format!("size_bytes says {}, the model has {}", cp.size_bytes, onnx.len())));
    }
    if sha256_hex(&onnx) != cp.sha256.to_ascii_lowercase() {
        return Err(reject("checksum", "the graph's SHA-256 is not the one the checkpoint records".into()));
    }
    match verify(cp, &policy.trusted_keys) {
        Ok(_) => {}
        Err(_) if cp.signature.is_none() && !policy.require_signature => {}
        Err(e) if cp.signature.is_none() => {
            return Err(reject("signature", format!("{e}, and signatures are required")));
        }
        Err(e) => return Err(reject("signature", e)),
    }
    if let Some(t) = cp.metrics.as_ref().map(|m| m.threshold)
        && !(t > 0.0 && t < 1.0)
    {
        return Err(reject("threshold", format!("decision threshold {t} is not in (0, 1)")));
    }
    let spec = FeatureSpec::parse(&cp.feature_spec).map_err(|e| reject("spec", e.to_string()))?;
    if spec.model != cp.model {
        return Err(reject("spec", format!("the spec is for model `{}`", spec.model)));
    }
    let mut featurizer = Featurizer::new(&spec, schema).map_err(|p| reject("spec", p.join("; ")))?;
    let encoder = match &spec.encoder {
        Some(e) => {
            let artifact =
                crate::embed::EncoderArtifact::load(e, &policy.artifacts, runtime).map_err(|e| reject("encoder", e))?;
            featurizer = featurizer.with_tokenizer(artifact.tokenizer.clone());
            Some(artifact)
        }
        None => None,
    };
    crate::inspect::inspect(&onnx).map_err(|e| reject("graph", e))?;
    let mut session =
        runtime.session(&onnx, Provider::Cpu, 1).map_err(|e| reject("load", vigil_runtime::error_chain(&e)))?;
    check_signature(&spec, &session.inputs(), &session.outputs()).map_err(|e| reject("signature-mismatch", e))?;
    for rows in PROBE_ROWS {
        probe(&spec, &featurizer, &mut session, rows).map_err(|e| reject("probe", e))?;
    }
    Ok(Validated { checkpoint: cp.clone(), onnx: std::sync::Arc::new(onnx), spec, featurizer, encoder })
}

/// Reads a `file://` graph: only a regular file inside one of `dirs`, and at most `max` bytes (a
/// larger one, a device or a pipe is refused without reading it whole). The reason given back names
/// neither the path nor the system's error; the log has them.
fn read_model_file(uri: &str, dirs: &[std::path::PathBuf], max: usize) -> Result<Vec<u8>, String> {
    let path = uri.strip_prefix("file://").ok_or_else(|| "only file:// URIs are followed".to_string())?;
    read_file_in(std::path::Path::new(path), dirs, max)
}

/// Reads `path` if it is a regular file inside one of `dirs` of at most `max` bytes.
pub(crate) fn read_file_in(path: &std::path::Path, dirs: &[std::path::PathBuf], max: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let refuse = |why: &str, detail: String| {
        tracing::warn!(path = %path.display(), detail, "refusing a model file");
        why.to_string()
    };
    let real = std::fs::canonicalize(path).map_err(|e| refuse("the graph file cannot be read", e.to_string()))?;
    let allowed = dirs.iter().filter_map(|d| std::fs::canonicalize(d).ok()).any(|d| real.starts_with(&d));
    if !allowed {
        return Err(refuse(
            "the graph file is outside the folders models may be read from (scorer.model-dirs)",
            String::new(),
        ));
    }
    let meta = std::fs::metadata(&real).map_err(|e| refuse("the graph file cannot be read", e.to_string()))?;
    if !meta.is_file() {
        return Err(refuse("the graph is not a regular file", format!("{:?}", meta.file_type())));
    }
    let file = std::fs::File::open(&real).map_err(|e| refuse("the graph file cannot be read", e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse("the graph file cannot be read", e.to_string()))?;
    if bytes.len() > max {
        return Err(format!("the graph file holds more than the {max} bytes allowed"));
    }
    Ok(bytes)
}

/// The graph's inputs and output must be what the spec feeds it and reads from it (`[graph]`).
pub fn check_signature(spec: &FeatureSpec, inputs: &[TensorInfo], outputs: &[TensorInfo]) -> Result<(), String> {
    let g = &spec.graph;
    let want: Vec<(&str, &str, i64)> = match &spec.text {
        Some(t) => vec![(g.indices.as_str(), "i64", -2), (g.values.as_str(), "f32", i64::from(t.max_tokens))],
        None => vec![(g.input.as_str(), "f32", spec.width() as i64)],
    };
    if inputs.len() != want.len() {
        return Err(format!(
            "the graph has inputs {:?}, the spec feeds {:?}",
            inputs.iter().map(|i| &i.name).collect::<Vec<_>>(),
            want.iter().map(|w| w.0).collect::<Vec<_>>()
        ));
    }
    for (name, elem, width) in want {
        let Some(i) = inputs.iter().find(|i| i.name == name) else {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "the graph has no input `{name}` (it has {names:?}; name yours in the spec's [graph])"
            ));
        };
        if i.elem != elem {
            return Err(format!("input `{name}` is {}, not {elem}", i.elem));
        }
        if i.shape.len() != 2 {
            return Err(format!("input `{name}` has shape {:?}, not [batch, n]", i.shape));
        }
        if i.shape[0] >= 0 {
            return Err(format!(
                "input `{name}` takes batches of {} rows only: its batch dimension must be symbolic",
                i.shape[0]
            ));
        }
        let fixed = i.shape[1];
        if width >= 0 && fixed >= 0 && fixed != width {
            return Err(format!("input `{name}` has {fixed} columns, the spec gives {width}"));
        }
    }
    let Some(o) = outputs.iter().find(|o| o.name == g.output) else {
        let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
        return Err(format!(
            "the graph has no output `{}` (it has {names:?}; name yours in the spec's [graph])",
            g.output
        ));
    };
    let classes = match o.shape.as_slice() {
        [_] => Some(1),
        [_, k] if *k > 0 => Some(*k as usize),
        [_, _] => None,
        _ => return Err(format!("output `{}` has shape {:?}, not [batch] or [batch, k]", o.name, o.shape)),
    };
    if o.elem != "f32" {
        return Err(format!("output `{}` is {}, not float probabilities", o.name, o.elem));
    }
    if let Some(k) = classes
        && g.positive(k) >= k
    {
        return Err(format!(
            "output `{}` has {k} columns; positive-column {} is not one of them",
            o.name,
            g.positive(k)
        ));
    }
    Ok(())
}

/// Runs a batch of `rows` made-up rows through the session; every probability must be finite and
/// in [0, 1].
fn probe(spec: &FeatureSpec, f: &Featurizer, session: &mut crate::runtime::Session, rows: usize) -> Result<(), String> {
    let probabilities = if let Some(t) = &spec.text {
        let len = f.text_len();
        let mut idx = vec![0i64; rows * len];
        let mut val = vec![0f32; rows * len];
        for r in 0..rows {
            for k in 0..len.min(8 * (r % 5)) {
                idx[r * len + k] = ((k * 7919 + r * 104_729) % t.buckets as usize) as i64;
                val[r * len + k] = 0.25;
            }
        }
        session.text(&spec.graph, &idx, &val, rows, len)
    } else {
        let d = f.width();
        let mut x = vec![0f32; rows * d];
        for (i, v) in x.iter_mut().enumerate() {
            *v = match (i / d) % 4 {
                0 => 0.0,
                1 => 1.0,
                2 => -1.0,
                _ => ((i % 7) as f32 - 3.0) * 0.5,
            };
        }
        session.dense(&spec.graph, &x, rows, d)
    }
    .map_err(|e| vigil_runtime::error_chain(&e))?;
    if probabilities.rows() != rows {
        return Err(format!("{rows} rows gave {} rows of probabilities", probabilities.rows()));
    }
    if let Some(bad) = probabilities.values.iter().find(|s| !(s.is_finite() && (0.0..=1.0).contains(*s))) {
        return Err(format!("a probe row scored {bad}, not a probability"));
    }
    Ok(())
}
