//! A sentence encoder as an ONNX graph, built from a BERT checkpoint's safetensors weights (such
//! as sentence-transformers' all-MiniLM-L6-v2): token, position and segment embeddings, then per
//! layer self-attention with the padding mask and a GELU (erf) feed-forward block, each followed by
//! a residual layer norm; mean pooling over the real tokens; L2 normalisation. Batch and sequence
//! length are symbolic. Inputs `input_ids` and `attention_mask` (`int64 [batch, seq]`), output
//! `embedding` (`float [batch, hidden]`). Weights stay as they are (float32); linear layers'
//! `[out, in]` matrices are transposed once for `MatMul`.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};

pub use self::variants::{build_random, random_weights, to_fp16};
use crate::graph::{Attr, Dim, GraphBuilder};

#[path = "encoder_variants.rs"]
mod variants;
use crate::onnx::{ModelProto, data_type};

/// The input of token ids.
pub const INPUT_IDS: &str = "input_ids";
/// The input of the attention mask (1 for a token, 0 for padding).
pub const ATTENTION_MASK: &str = "attention_mask";
/// The output: one L2-normalised embedding per text.
pub const EMBEDDING: &str = "embedding";

/// The shape of a BERT encoder, as its `config.json` gives it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct BertConfig {
    /// Width of every token's vector.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer (dividing `hidden_size`).
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Longest sequence the position embeddings cover.
    pub max_position_embeddings: usize,
    /// Layer norms' epsilon.
    pub layer_norm_eps: f32,
    /// The feed-forward activation (only `gelu`, the exact one, is built).
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// Tokens of the vocabulary (only random weights need it: real ones carry it).
    #[serde(default = "bert_vocab")]
    pub vocab_size: usize,
}

fn bert_vocab() -> usize {
    30_522
}

fn gelu() -> String {
    "gelu".into()
}

/// Why an encoder could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration or the weights are not what a BERT encoder needs.
    #[error("{0}")]
    Invalid(String),
}

/// The encoder of the checkpoint in `dir` (`config.json`, `model.safetensors`) as an ONNX model.
pub fn build_from_dir(dir: &Path) -> Result<ModelProto, EncoderError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| EncoderError::Read { path: path.display().to_string(), source })
    };
    let config: BertConfig = serde_json::from_slice(&read("config.json")?)
        .map_err(|e| EncoderError::Invalid(format!("config.json: {e}")))?;
    let bytes = read("model.safetensors")?;
    let weights =
        SafeTensors::deserialize(&bytes).map_err(|e| EncoderError::Invalid(format!("model.safetensors: {e}")))?;
    build(&config, &weights)
}

/// An encoder and its tokenizer written into a model folder by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// SHA-256 of the encoder graph (`<digest>.onnx`).
    pub artifact: String,
    /// SHA-256 of the tokenizer (`<digest>.json`).
    pub tokenizer: String,
    /// Embedding width.
    pub dim: usize,
}

impl Stored {
    /// The `[encoder]` section of a feature spec naming them, reading `field`.
    pub fn spec_section(&self, field: &str, max_tokens: u32) -> String {
        format!(
            "[encoder]\nfield = \"{field}\"\nartifact = \"{}\"\ntokenizer = \"{}\"\ndim = {}\nmax-tokens = {max_tokens}\n",
            self.artifact, self.tokenizer, self.dim
        )
    }
}

/// Builds the encoder of the checkpoint in `from` and writes it, with the checkpoint's
/// `tokenizer.json`, into the model folder `dir` as `<sha256>.onnx` and `<sha256>.json`.
pub fn store(from: &Path, dir: &Path) -> Result<Stored, EncoderError> {
    let read = |name: &str| {
        let path = from.join(name);
        std::fs::read(&path).map_err(|source| EncoderError::Read { path: path.display().to_string(), source })
    };
    let config: BertConfig = serde_json::from_slice(&read("config.json")?)
        .map_err(|e| EncoderError::Invalid(format!("config.json: {e}")))?;
    let graph = build_from_dir(from)?.to_bytes();
    let tokenizer = read("tokenizer.json")?;
    vigil_features::subword::Subword::from_json(&tokenizer, 8).map_err(|e| EncoderError::Invalid(e.to_string()))?;
    let write = |bytes: &[u8], ext: &str| {
        let digest = crate::checkpoint::sha256_hex(bytes);
        let path = dir.join(format!("{digest}.{ext}"));
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, bytes))
            .map_err(|source| EncoderError::Read { path: path.display().to_string(), source })?;
        Ok::<_, EncoderError>(digest)
    };
    Ok(Stored { artifact: write(&graph, "onnx")?, tokenizer: write(&tokenizer, "json")?, dim: config.hidden_size })
}

/// The encoder described by `config` with `weights` (names as in BERT checkpoints, with or without
/// a `bert.` prefix), as an ONNX model.
pub fn build(config: &BertConfig, weights: &SafeTensors<'_>) -> Result<ModelProto, EncoderError> {
    if config.hidden_act != "gelu" {
        return Err(EncoderError::Invalid(format!("activation {:?}: only the exact gelu is built", config.hidden_act)));
    }
    if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
        return Err(EncoderError::Invalid("attention heads must divide the hidden size".into()));
    }
    let mut e = Encoder { b: GraphBuilder::new("sentence-encoder"), weights, config };
    let mut x = e.embeddings()?;
    let mask = e.b.node("Cast", &[ATTENTION_MASK], &[("to", Attr::Int(i64::from(data_type::FLOAT)))]);
    let bias = e.attention_bias(&mask);
    for layer in 0..config.num_hidden_layers {
        x = e.layer(layer, &x, &bias)?;
    }
    e.pool_and_normalise(&x, &mask);
    let hidden = config.hidden_size as i64;
    e.b.input(INPUT_IDS, data_type::INT64, &[Dim::Symbol("batch"), Dim::Symbol("sequence")])
        .input(ATTENTION_MASK, data_type::INT64, &[Dim::Symbol("batch"), Dim::Symbol("sequence")])
        .output(EMBEDDING, data_type::FLOAT, &[Dim::Symbol("batch"), Dim::Fixed(hidden)])
        .metadata("vigil.family", "sentence-encoder")
        .metadata("vigil.encoder.hidden", &hidden.to_string())
        .metadata("vigil.encoder.max-positions", &config.max_position_embeddings.to_string());
    Ok(e.b.build(1, "BERT sentence encoder: mean pooling, L2-normalised"))
}

struct Encoder<'a> {
    b: GraphBuilder,
    weights: &'a SafeTensors<'a>,
    config: &'a BertConfig,
}

impl Encoder<'_> {
    /// A float tensor of the checkpoint, its shape checked; `transpose` turns `[out, in]` into `[in, out]`.
    fn tensor(&self, name: &str, shape: &[usize], transpose: bool) -> Result<Vec<f32>, EncoderError> {
        let view = ["", "bert."]
            .iter()
            .find_map(|prefix| self.weights.tensor(&format!("{prefix}{name}")).ok())
            .ok_or_else(|| EncoderError::Invalid(format!("no tensor {name} in the weights")))?;
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            return Err(EncoderError::Invalid(format!(
                "{name}: {:?} {:?}, expected F32 {shape:?}",
                view.dtype(),
                view.shape()
            )));
        }
        let values: Vec<f32> =
            view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if !transpose {
            return Ok(values);
        }
        let (rows, cols) = (shape[0], shape[1]);
        let mut t = vec![0f32; values.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = values[r * cols + c];
            }
        }
        Ok(t)
    }

    /// A weight initializer named `name` from the checkpoint.
    fn weight(&mut self, name: &str, shape: &[usize], transpose: bool) -> Result<String, EncoderError> {
        let values = self.tensor(name, shape, transpose)?;
        let dims: Vec<i64> =
            if transpose { vec![shape[1] as i64, shape[0] as i64] } else { shape.iter().map(|d| *d as i64).collect() };
        Ok(self.b.weights(name, &dims, values))
    }

    /// Token + position (the first `sequence` rows) + segment 0 embeddings, layer-normalised.
    fn embeddings(&mut self) -> Result<String, EncoderError> {
        let (h, positions) = (self.config.hidden_size, self.config.max_position_embeddings);
        let vocab = self.vocab_size()?;
        let words = self.weight("embeddings.word_embeddings.weight", &[vocab, h], false)?;
        let table = self.weight("embeddings.position_embeddings.weight", &[positions, h], false)?;
        let segment = self.tensor("embeddings.token_type_embeddings.weight", &[2, h], false)?;
        let segment0 = self.b.weights("segment0", &[h as i64], segment[..h].to_vec());
        let shape = self.b.node("Shape", &[INPUT_IDS], &[]);
        let one = self.b.ints("one", &[], vec![1]);
        let length = self.b.node("Gather", &[&shape, &one], &[("axis", Attr::Int(0))]);
        let axis0 = self.b.ints("axis0", &[1], vec![0]);
        let end = self.b.node("Unsqueeze", &[&length, &axis0], &[]);
        let position = self.b.node("Slice", &[&table, &axis0, &end, &axis0], &[]);
        let token = self.b.node("Gather", &[&words, INPUT_IDS], &[("axis", Attr::Int(0))]);
        let x = self.b.node("Add", &[&token, &position], &[]);
        let x = self.b.node("Add", &[&x, &segment0], &[]);
        self.layer_norm("embeddings.LayerNorm", &x)
    }

    fn vocab_size(&self) -> Result<usize, EncoderError> {
        ["", "bert."]
            .iter()
            .find_map(|p| self.weights.tensor(&format!("{p}embeddings.word_embeddings.weight")).ok())
            .map(|v| v.shape()[0])
            .ok_or_else(|| EncoderError::Invalid("no tensor embeddings.word_embeddings.weight in the weights".into()))
    }

    fn layer_norm(&mut self, prefix: &str, x: &str) -> Result<String, EncoderError> {
        let h = self.config.hidden_size;
        let gamma = self.weight(&format!("{prefix}.weight"), &[h], false)?;
        let beta = self.weight(&format!("{prefix}.bias"), &[h], false)?;
        let eps = self.config.layer_norm_eps;
        Ok(self.b.node(
            "LayerNormalization",
            &[x, &gamma, &beta],
            &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps))],
        ))
    }

    /// `x · Wᵀ + b` of the checkpoint's linear layer `prefix` (`[out, in]`).
    fn dense(&mut self, prefix: &str, x: &str, inputs: usize, outputs: usize) -> Result<String, EncoderError> {
        let w = self.weight(&format!("{prefix}.weight"), &[outputs, inputs], true)?;
        let b = self.weight(&format!("{prefix}.bias"), &[outputs], false)?;
        let product = self.b.node("MatMul", &[x, &w], &[]);
        Ok(self.b.node("Add", &[&product, &b], &[]))
    }

    /// The additive attention bias `[batch, 1, 1, seq]`: 0 for tokens, -1e9 for padding.
    fn attention_bias(&mut self, mask: &str) -> String {
        let one = self.shared_float("one_f", 1.0);
        let big = self.shared_float("minus_big", -1e9);
        let padding = self.b.node("Sub", &[&one, mask], &[]);
        let bias = self.b.node("Mul", &[&padding, &big], &[]);
        let axes = self.b.ints("axes12", &[2], vec![1, 2]);
        self.b.node("Unsqueeze", &[&bias, &axes], &[])
    }

    /// One encoder layer: attention and feed-forward blocks, each residual and layer-normalised.
    fn layer(&mut self, i: usize, x: &str, bias: &str) -> Result<String, EncoderError> {
        let (h, heads, ff) = (self.config.hidden_size, self.config.num_attention_heads, self.config.intermediate_size);
        let p = format!("encoder.layer.{i}");
        let mut split = Vec::new();
        for (part, perm) in [("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])] {
            let t = self.dense(&format!("{p}.attention.self.{part}"), x, h, h)?;
            let shape = self.shared_ints("to_heads", vec![0, 0, heads as i64, (h / heads) as i64]);
            let t = self.b.node("Reshape", &[&t, &shape], &[]);
            split.push(self.b.node("Transpose", &[&t], &[("perm", Attr::Ints(perm.to_vec()))]));
        }
        let scale = self.shared_float("scale", 1.0 / ((h / heads) as f32).sqrt());
        let scores = self.b.node("MatMul", &[&split[0], &split[1]], &[]);
        let scores = self.b.node("Mul", &[&scores, &scale], &[]);
        let scores = self.b.node("Add", &[&scores, bias], &[]);
        let attention = self.b.node("Softmax", &[&scores], &[("axis", Attr::Int(-1))]);
        let context = self.b.node("MatMul", &[&attention, &split[2]], &[]);
        let context = self.b.node("Transpose", &[&context], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
        let shape = self.shared_ints("to_hidden", vec![0, 0, h as i64]);
        let context = self.b.node("Reshape", &[&context, &shape], &[]);
        let out = self.dense(&format!("{p}.attention.output.dense"), &context, h, h)?;
        let x = self.b.node("Add", &[x, &out], &[]);
        let x = self.layer_norm(&format!("{p}.attention.output.LayerNorm"), &x)?;
        let inner = self.dense(&format!("{p}.intermediate.dense"), &x, h, ff)?;
        let inner = self.gelu(&inner);
        let out = self.dense(&format!("{p}.output.dense"), &inner, ff, h)?;
        let x = self.b.node("Add", &[&x, &out], &[]);
        self.layer_norm(&format!("{p}.output.LayerNorm"), &x)
    }

    /// `0.5 · x · (1 + erf(x / √2))`, written as ONNX Runtime's GELU fusion looks for it (a `Div`
    /// by √2, not a `Mul` by its inverse), so that it runs as one fused `Gelu` (3–4% of the
    /// encoder's time on the CPU).
    fn gelu(&mut self, x: &str) -> String {
        let (half, root, one) = (
            self.shared_float("half", 0.5),
            self.shared_float("sqrt2", std::f32::consts::SQRT_2),
            self.shared_float("one_f", 1.0),
        );
        let scaled = self.b.node("Div", &[x, &root], &[]);
        let erf = self.b.node("Erf", &[&scaled], &[]);
        let erf = self.b.node("Add", &[&erf, &one], &[]);
        let half_x = self.b.node("Mul", &[x, &half], &[]);
        self.b.node("Mul", &[&half_x, &erf], &[])
    }

    /// Mean of the real tokens' vectors, divided by its L2 norm, into [`EMBEDDING`].
    fn pool_and_normalise(&mut self, x: &str, mask: &str) {
        let axis2 = self.b.ints("axis2", &[1], vec![2]);
        let axis1 = self.b.ints("axis1", &[1], vec![1]);
        let mask = self.b.node("Unsqueeze", &[mask, &axis2], &[]);
        let masked = self.b.node("Mul", &[x, &mask], &[]);
        let sum = self.b.node("ReduceSum", &[&masked, &axis1], &[("keepdims", Attr::Int(0))]);
        let count = self.b.node("ReduceSum", &[&mask, &axis1], &[("keepdims", Attr::Int(0))]);
        let tiny = self.b.weights("tiny_count", &[], vec![1e-9]);
        let count = self.b.node("Max", &[&count, &tiny], &[]);
        let mean = self.b.node("Div", &[&sum, &count], &[]);
        let norm = self.b.node("ReduceL2", &[&mean], &[("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(1))]);
        let tiny = self.b.weights("tiny_norm", &[], vec![1e-12]);
        let norm = self.b.node("Max", &[&norm, &tiny], &[]);
        self.b.node_into("Div", &[&mean, &norm], EMBEDDING, &[]);
    }

    /// A float scalar initializer added once and shared by every node that names it.
    fn shared_float(&mut self, name: &str, value: f32) -> String {
        if !self.b.has_initializer(name) {
            self.b.weights(name, &[], vec![value]);
        }
        name.to_string()
    }

    /// An int64 vector initializer added once and shared.
    fn shared_ints(&mut self, name: &str, values: Vec<i64>) -> String {
        if !self.b.has_initializer(name) {
            self.b.ints(name, &[values.len() as i64], values);
        }
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    const SHAPE: (usize, usize, usize, usize, usize) = (4, 2, 8, 10, 8); // hidden, heads, ff, vocab, positions

    fn config() -> BertConfig {
        let (hidden, heads, ff, _, positions) = SHAPE;
        BertConfig {
            hidden_size: hidden,
            num_hidden_layers: 1,
            num_attention_heads: heads,
            intermediate_size: ff,
            max_position_embeddings: positions,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
            vocab_size: SHAPE.3,
        }
    }

    /// The tensors of a one-layer BERT of [`SHAPE`].
    fn tensors() -> Vec<(String, Vec<usize>)> {
        super::variants::tensors(&config())
    }

    fn weights(tensors: &[(String, Vec<usize>)]) -> Vec<u8> {
        let data: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
            .iter()
            .map(|(n, s)| {
                let values = (0..s.iter().product::<usize>()).map(|i| (i % 7) as f32 * 0.1 - 0.3);
                (n.clone(), values.flat_map(f32::to_le_bytes).collect(), s.clone())
            })
            .collect();
        let views = data.iter().map(|(n, b, s)| (n.as_str(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()));
        safetensors::serialize(views, None).unwrap()
    }

    fn built(config: &BertConfig, tensors: &[(String, Vec<usize>)]) -> Result<ModelProto, EncoderError> {
        let bytes = weights(tensors);
        build(config, &SafeTensors::deserialize(&bytes).unwrap())
    }

    #[test]
    fn a_small_bert_becomes_a_graph_with_symbolic_batch_and_sequence() {
        let model = built(&config(), &tensors()).unwrap();
        let graph = model.graph.as_ref().unwrap();
        let names = |v: &[crate::onnx::ValueInfoProto]| v.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&graph.input), [INPUT_IDS, ATTENTION_MASK]);
        assert_eq!(names(&graph.output), [EMBEDDING]);
        let ops = |op: &str| graph.node.iter().filter(|n| n.op_type == op).count();
        assert_eq!(ops("LayerNormalization"), 3, "embeddings, attention and feed-forward");
        assert_eq!(ops("Softmax"), 1);
        assert_eq!(ops("Erf"), 1);
        let mut initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let all = initializers.len();
        initializers.sort_unstable();
        initializers.dedup();
        assert_eq!(initializers.len(), all, "every initializer once");
        // The linear layers' [out, in] matrices are stored [in, out] for MatMul.
        let w = graph.initializer.iter().find(|t| t.name == "encoder.layer.0.intermediate.dense.weight").unwrap();
        assert_eq!(w.dims, [SHAPE.0 as i64, SHAPE.2 as i64]);
    }

    #[test]
    fn missing_or_misshapen_weights_and_other_activations_are_refused_by_name() {
        let mut missing = tensors();
        missing.retain(|(n, _)| n != "encoder.layer.0.output.dense.weight");
        let err = built(&config(), &missing).unwrap_err().to_string();
        assert!(err.contains("no tensor encoder.layer.0.output.dense.weight"), "{err}");
        let mut misshapen = tensors();
        misshapen.iter_mut().find(|(n, _)| n == "embeddings.LayerNorm.bias").unwrap().1 = vec![3];
        let err = built(&config(), &misshapen).unwrap_err().to_string();
        assert!(err.contains("embeddings.LayerNorm.bias") && err.contains("[4]"), "{err}");
        let err = built(&BertConfig { hidden_act: "relu".into(), ..config() }, &tensors()).unwrap_err().to_string();
        assert!(err.contains("relu"), "{err}");
        let err = built(&BertConfig { num_attention_heads: 3, ..config() }, &tensors()).unwrap_err().to_string();
        assert!(err.contains("divide"), "{err}");
    }
}
