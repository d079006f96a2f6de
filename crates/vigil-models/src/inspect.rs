//! Static checks of a graph before ONNX Runtime loads it: a hostile graph must not make the scorer
//! allocate without bound or loop forever just by being loaded or probed. Control flow (`Loop`,
//! `Scan`, `If`) and random generators are refused; operators that allocate a tensor of a shape
//! given as a constant (`ConstantOfShape`, `Expand`, `Tile`, `Range`) are refused when that shape
//! holds more than [`MAX_ELEMENTS`] values.

use std::collections::HashMap;

use prost::Message;

use crate::onnx::{ModelProto, NodeProto, TensorProto, data_type};

/// Most values a constant-shaped tensor may hold (256 MiB of floats).
pub const MAX_ELEMENTS: i64 = 1 << 26;

/// Operators a served graph may not use.
const REFUSED: &[&str] = &[
    "Loop",
    "Scan",
    "If",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
];

/// Every problem found, for people (no graph bytes or paths in them).
pub fn inspect(bytes: &[u8]) -> Result<(), String> {
    let model = ModelProto::decode(bytes).map_err(|_| "not an ONNX model".to_string())?;
    let graph = model.graph.ok_or("the model has no graph")?;
    let mut constants: HashMap<&str, Vec<i64>> = HashMap::new();
    for t in &graph.initializer {
        if let Some(v) = ints(t) {
            constants.insert(t.name.as_str(), v);
        }
    }
    for node in &graph.node {
        if node.op_type == "Constant"
            && let Some(v) = node.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref()).and_then(ints)
            && let Some(out) = node.output.first()
        {
            constants.insert(out.as_str(), v);
        }
    }
    for node in &graph.node {
        check_node(node, &constants)?;
    }
    Ok(())
}

fn check_node(node: &NodeProto, constants: &HashMap<&str, Vec<i64>>) -> Result<(), String> {
    if REFUSED.contains(&node.op_type.as_str()) {
        return Err(format!("the graph uses {}, which a served model may not", node.op_type));
    }
    let shape_input = match node.op_type.as_str() {
        "ConstantOfShape" => 0,
        "Expand" | "Tile" => 1,
        "Range" => return check_range(node, constants),
        _ => return Ok(()),
    };
    let Some(shape) = node.input.get(shape_input).and_then(|i| constants.get(i.as_str())) else { return Ok(()) };
    let elements = shape.iter().try_fold(1i64, |acc, d| acc.checked_mul((*d).max(0)));
    match elements {
        Some(n) if n <= MAX_ELEMENTS => Ok(()),
        _ => Err(format!("{} would make a tensor of {shape:?}: more than {MAX_ELEMENTS} values", node.op_type)),
    }
}

fn check_range(node: &NodeProto, constants: &HashMap<&str, Vec<i64>>) -> Result<(), String> {
    let arg = |i: usize| node.input.get(i).and_then(|n| constants.get(n.as_str())).and_then(|v| v.first().copied());
    if let (Some(start), Some(limit), Some(delta)) = (arg(0), arg(1), arg(2))
        && delta != 0
        && (limit.saturating_sub(start) / delta).abs() > MAX_ELEMENTS
    {
        return Err(format!("Range from {start} to {limit} by {delta}: more than {MAX_ELEMENTS} values"));
    }
    Ok(())
}

/// The integer values of a small constant tensor.
fn ints(t: &TensorProto) -> Option<Vec<i64>> {
    match t.data_type {
        data_type::INT64 if !t.int64_data.is_empty() => Some(t.int64_data.clone()),
        data_type::INT64 if t.raw_data.len().is_multiple_of(8) && t.raw_data.len() <= 64 * 8 => Some(
            t.raw_data
                .chunks(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        data_type::INT32 if !t.int32_data.is_empty() => Some(t.int32_data.iter().map(|v| i64::from(*v)).collect()),
        _ => None,
    }
}
