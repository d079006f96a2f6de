//! Running a sentence encoder in front of a head: the encoder and tokenizer an `[encoder]` spec
//! names by digest, read from the model folders and checked once per digest ([`EncoderArtifact`]),
//! and [`Embedder`], which embeds padded token rows on an ONNX Runtime session, regrouping them by
//! length so that the encoder runs on little padding.

use std::sync::Arc;

use vigil_features::spec::Encoder;
use vigil_features::subword::Subword;

use crate::artifacts::Artifacts;
use crate::encoder::{ATTENTION_MASK, EMBEDDING, INPUT_IDS};
use crate::runtime::{Provider, Runtime, RuntimeError, Session};

/// Most rows the encoder runs at once.
pub const ENCODER_ROWS: usize = 64;

/// A checked encoder and its tokenizer.
#[derive(Debug, Clone)]
pub struct EncoderArtifact {
    /// The encoder graph's SHA-256.
    pub digest: String,
    /// Its ONNX bytes.
    pub onnx: Arc<Vec<u8>>,
    /// The tokenizer, truncating as the spec says.
    pub tokenizer: Arc<Subword>,
    /// Embedding width.
    pub dim: usize,
}

impl EncoderArtifact {
    /// Reads the encoder and tokenizer `spec` names from `artifacts` and checks them: the tokenizer
    /// loads; the encoder passes `inspect`, takes `input_ids` and `attention_mask`, gives
    /// `embedding` of `spec.dim` columns, and embeds probe rows into finite vectors (the graph's
    /// checks run once per digest and width).
    pub fn load(spec: &Encoder, artifacts: &Artifacts, runtime: &Runtime) -> Result<EncoderArtifact, String> {
        let json = artifacts.get(&spec.tokenizer).map_err(|e| format!("tokenizer: {e}"))?;
        let tokenizer = Subword::from_json(&json, spec.max_tokens as usize).map_err(|e| e.to_string())?;
        let onnx = artifacts.get(&spec.artifact).map_err(|e| format!("encoder: {e}"))?;
        let dim = spec.dim as usize;
        let checked = format!("{}/{dim}", spec.artifact);
        if !artifacts.was_checked(&checked) {
            check(&onnx, dim, &tokenizer, runtime)?;
            artifacts.mark_checked(&checked);
        }
        Ok(EncoderArtifact { digest: spec.artifact.clone(), onnx, tokenizer: Arc::new(tokenizer), dim })
    }

    /// An embedder on `provider`.
    pub fn embedder(&self, runtime: &Runtime, provider: Provider, threads: usize) -> Result<Embedder, RuntimeError> {
        Ok(Embedder { session: runtime.session(&self.onnx, provider, threads)?, dim: self.dim })
    }
}

fn check(onnx: &[u8], dim: usize, tokenizer: &Subword, runtime: &Runtime) -> Result<(), String> {
    crate::inspect::inspect(onnx)?;
    let session = runtime.session(onnx, Provider::Cpu, 1).map_err(|e| vigil_runtime::error_chain(&e))?;
    let inputs = session.inputs();
    for name in [INPUT_IDS, ATTENTION_MASK] {
        match inputs.iter().find(|i| i.name == name) {
            Some(i) if i.elem == "i64" && i.shape.len() == 2 && i.shape[0] < 0 && i.shape[1] < 0 => {}
            Some(i) => return Err(format!("input `{name}` is {} {:?}, not int64 [batch, sequence]", i.elem, i.shape)),
            None => return Err(format!("the encoder has no input `{name}`")),
        }
    }
    if inputs.len() != 2 {
        return Err(format!("the encoder takes {} inputs, not `{INPUT_IDS}` and `{ATTENTION_MASK}`", inputs.len()));
    }
    match session.outputs().iter().find(|o| o.name == EMBEDDING) {
        Some(o) if o.elem == "f32" && o.shape.len() == 2 && (o.shape[1] < 0 || o.shape[1] as usize == dim) => {}
        Some(o) => return Err(format!("output `{EMBEDDING}` is {} {:?}, not float [batch, {dim}]", o.elem, o.shape)),
        None => return Err(format!("the encoder has no output `{EMBEDDING}`")),
    }
    let mut embedder = Embedder { session, dim };
    let texts = ["", "a probe", "a longer probe of the encoder, with words it may not know: zxqv"];
    let len = tokenizer.max_tokens();
    let (mut ids, mut mask) = (vec![0i64; texts.len() * len], vec![0f32; texts.len() * len]);
    for (r, t) in texts.iter().enumerate() {
        tokenizer
            .fill(t, &mut ids[r * len..(r + 1) * len], &mut mask[r * len..(r + 1) * len])
            .map_err(|e| e.to_string())?;
    }
    let out = embedder.embed(&ids, &mask, texts.len(), len).map_err(|e| vigil_runtime::error_chain(&e))?;
    if out.iter().any(|v| !v.is_finite()) {
        return Err("the encoder gave a probe text a non-finite embedding".into());
    }
    Ok(())
}

/// An encoder on one ONNX Runtime session.
pub struct Embedder {
    session: Session,
    dim: usize,
}

impl Embedder {
    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embeds `rows` token rows, each `len` ids padded at the end and a mask of 1.0 for a token and
    /// 0.0 for padding (a token batch of the featuriser); returns `[rows, dim]` row-major. Rows are
    /// run shortest first, at most [`ENCODER_ROWS`] at a time, each group padded to its longest.
    pub fn embed(&mut self, ids: &[i64], mask: &[f32], rows: usize, len: usize) -> Result<Vec<f32>, RuntimeError> {
        if len == 0 || ids.len() != rows * len || mask.len() != ids.len() {
            return Err(RuntimeError::Input(format!("{} token ids do not form [{rows}, {len}] rows", ids.len())));
        }
        let lengths: Vec<usize> =
            (0..rows).map(|r| mask[r * len..(r + 1) * len].iter().filter(|m| **m > 0.0).count().max(1)).collect();
        let mut order: Vec<usize> = (0..rows).collect();
        order.sort_by_key(|r| (lengths[*r], *r));
        let mut out = vec![0f32; rows * self.dim];
        for group in order.chunks(ENCODER_ROWS) {
            let cols = group.iter().map(|r| lengths[*r]).max().unwrap_or(1);
            let (mut gi, mut gm) = (Vec::with_capacity(group.len() * cols), Vec::with_capacity(group.len() * cols));
            for r in group {
                gi.extend_from_slice(&ids[r * len..r * len + cols]);
                gm.extend(mask[r * len..r * len + cols].iter().map(|m| i64::from(*m > 0.0)));
            }
            let (values, dim) = self.session.embed(&gi, &gm, group.len(), cols)?;
            if dim != self.dim {
                return Err(RuntimeError::Input(format!("the encoder gave {dim} columns, the spec says {}", self.dim)));
            }
            for (k, r) in group.iter().enumerate() {
                out[r * dim..(r + 1) * dim].copy_from_slice(&values[k * dim..(k + 1) * dim]);
            }
        }
        Ok(out)
    }

    /// Embeds one text's token ids (unpadded).
    pub fn embed_one(&mut self, ids: &[i64]) -> Result<Vec<f32>, RuntimeError> {
        let mask = vec![1.0f32; ids.len()];
        self.embed(ids, &mask, 1, ids.len())
    }
}
