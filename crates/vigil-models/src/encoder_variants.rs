//! Variants of the encoder for measuring it where its weights cannot go (a GPU machine with no
//! network and a small transfer limit): the same shape with seeded random weights
//! ([`random_weights`]), and the graph in half precision ([`to_fp16`]).

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use super::{BertConfig, EMBEDDING, EncoderError};
use crate::onnx::{ModelProto, data_type};

/// `TensorProto.DataType` of half-precision floats.
const FLOAT16: i32 = 10;

/// Every tensor of a BERT checkpoint of `config`'s shape, as its weights name them.
pub fn tensors(config: &BertConfig) -> Vec<(String, Vec<usize>)> {
    let (h, ff) = (config.hidden_size, config.intermediate_size);
    let mut t = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![config.vocab_size, h]),
        ("embeddings.position_embeddings.weight".into(), vec![config.max_position_embeddings, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    for l in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        for (name, shape) in [
            ("attention.self.query", vec![h, h]),
            ("attention.self.key", vec![h, h]),
            ("attention.self.value", vec![h, h]),
            ("attention.output.dense", vec![h, h]),
            ("intermediate.dense", vec![ff, h]),
            ("output.dense", vec![h, ff]),
        ] {
            t.push((format!("{p}.{name}.bias"), vec![shape[0]]));
            t.push((format!("{p}.{name}.weight"), shape));
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            t.push((format!("{p}.{norm}.weight"), vec![h]));
            t.push((format!("{p}.{norm}.bias"), vec![h]));
        }
    }
    t
}

/// A safetensors file of `config`'s shape with seeded weights in [-0.05, 0.05) (layer norms'
/// scales 1): what the real encoder computes per token, at the same cost.
pub fn random_weights(config: &BertConfig, seed: u64) -> Result<Vec<u8>, EncoderError> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
    };
    let data: Vec<(String, Vec<u8>, Vec<usize>)> = tensors(config)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let scale = name.ends_with("LayerNorm.weight");
            let bytes = (0..n).flat_map(|_| if scale { 1.0f32 } else { next() }.to_le_bytes()).collect();
            (name, bytes, shape)
        })
        .collect();
    let views = data
        .iter()
        .map(|(n, b, s)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (n.as_str(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EncoderError::Invalid(e.to_string()))?;
    safetensors::serialize(views, None).map_err(|e| EncoderError::Invalid(e.to_string()))
}

/// The encoder of `config`'s shape with [`random_weights`].
pub fn build_random(config: &BertConfig, seed: u64) -> Result<ModelProto, EncoderError> {
    let bytes = random_weights(config, seed)?;
    let weights = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| EncoderError::Invalid(e.to_string()))?;
    super::build(config, &weights)
}

/// The graph in half precision: float weights and constants stored as float16 (clamped to its
/// range, so the attention mask's large negative bias stays finite), casts to float16, and the
/// embedding cast back to float, so callers see the same signature.
pub fn to_fp16(model: &mut ModelProto) {
    let Some(graph) = model.graph.as_mut() else { return };
    for t in graph.initializer.iter_mut().filter(|t| t.data_type == data_type::FLOAT) {
        let values: Vec<f32> = if t.float_data.is_empty() {
            t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        } else {
            std::mem::take(&mut t.float_data)
        };
        t.raw_data = values.iter().flat_map(|v| f16_bits(*v).to_le_bytes()).collect();
        t.data_type = FLOAT16;
    }
    for node in graph.node.iter_mut().filter(|n| n.op_type == "Cast") {
        for a in node.attribute.iter_mut().filter(|a| a.name == "to" && a.i == i64::from(data_type::FLOAT)) {
            a.i = i64::from(FLOAT16);
        }
    }
    let half = format!("{EMBEDDING}_fp16");
    for out in graph.node.iter_mut().flat_map(|n| n.output.iter_mut()).filter(|o| *o == EMBEDDING) {
        *out = half.clone();
    }
    let mut b = crate::graph::GraphBuilder::new("cast");
    b.node_into("Cast", &[&half], EMBEDDING, &[("to", crate::graph::Attr::Int(i64::from(data_type::FLOAT)))]);
    for mut cast in b.build(1, "").graph.map(|g| g.node).unwrap_or_default() {
        cast.name = "cast_embedding_to_float".into();
        graph.node.push(cast);
    }
}

/// The nearest float16 of `x` (round half to even), clamped to ±65504.
fn f16_bits(x: f32) -> u16 {
    let sign = ((x.to_bits() >> 16) & 0x8000) as u16;
    if x.is_nan() {
        return sign | 0x7e00;
    }
    let a = x.abs().min(65_504.0);
    if a < 6.103_515_6e-5 {
        return sign | (a / 5.960_464_5e-8).round_ties_even() as u16;
    }
    let bits = a.to_bits();
    let exp = ((bits >> 23) & 0xff) + 15 - 127;
    let mant = bits & 0x7f_ffff;
    let mut h = (exp << 10) | (mant >> 13);
    let rest = mant & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) {
        h += 1;
    }
    sign | h as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_round_to_the_nearest_and_stay_finite() {
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(-2.0), 0xc000);
        assert_eq!(f16_bits(65504.0), 0x7bff);
        assert_eq!(f16_bits(-1e9), 0xfbff, "clamped, not -inf");
        assert_eq!(f16_bits(0.1), 0x2e66);
        assert_eq!(f16_bits(1e-6), 0x0011, "subnormal");
        assert_eq!(f16_bits(0.0), 0);
    }

    fn small() -> BertConfig {
        BertConfig {
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            max_position_embeddings: 16,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
            vocab_size: 50,
        }
    }

    #[test]
    fn onnx_runtime_fuses_the_encoders_gelu() {
        use prost::Message;
        let model = build_random(&small(), 5).unwrap();
        let path = std::env::temp_dir().join(format!("vigil-optimized-{}.onnx", std::process::id()));
        let optimized = crate::Runtime::global(None).unwrap().optimized(&model.to_bytes(), &path);
        let _ = std::fs::remove_file(&path);
        let optimized = ModelProto::decode(optimized.unwrap().as_slice()).unwrap();
        let ops: Vec<&str> = optimized.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_str()).collect();
        assert!(!ops.contains(&"Erf"), "an unfused GELU is left: {ops:?}");
        assert_eq!(ops.iter().filter(|o| o.contains("Gelu")).count(), 2, "one fused GELU per layer: {ops:?}");
    }

    #[test]
    fn a_random_encoder_in_half_precision_embeds_as_the_full_one_does() {
        let full = build_random(&small(), 3).unwrap();
        let mut half = full.clone();
        to_fp16(&mut half);
        let rt = crate::Runtime::global(None).unwrap();
        let (ids, mask) = (vec![2, 7, 9, 3, 2, 11, 3, 0], vec![1, 1, 1, 1, 1, 1, 1, 0]);
        let embed = |m: &ModelProto| {
            let mut s = rt.session(&m.to_bytes(), crate::Provider::Cpu, 1).unwrap();
            s.embed(&ids, &mask, 2, 4).unwrap().0
        };
        let (a, b) = (embed(&full), embed(&half));
        assert_eq!(a.len(), 64);
        assert!(b.iter().all(|v| v.is_finite()), "the masked token's bias stays finite in float16");
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-2, "float16 embeddings differ by {worst}");
    }
}
