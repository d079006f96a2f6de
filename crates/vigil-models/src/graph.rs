//! A small builder for ONNX graphs: named inputs and outputs with symbolic batch dimensions,
//! initializers from Rust vectors, and nodes of the default domain. Model families use it to export
//! exactly the graph the scorer runs.

use crate::onnx::{
    AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto, attribute_type,
    data_type,
};

/// A tensor dimension in a graph signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A symbolic size (e.g. `batch`), fixed at run time.
    Symbol(&'static str),
}

/// An attribute value of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// One integer.
    Int(i64),
    /// One float.
    Float(f32),
    /// Several integers.
    Ints(Vec<i64>),
    /// Several floats.
    Floats(Vec<f32>),
    /// One string.
    Str(String),
    /// Several strings.
    Strings(Vec<String>),
}

/// The ONNX-ML operator domain (tree ensembles) and the opset Vigil's graphs import from it.
pub const ML_DOMAIN: &str = "ai.onnx.ml";
/// `ai.onnx.ml` opset 3: `TreeEnsembleRegressor` with float thresholds.
pub const ML_OPSET: i64 = 3;

/// Builds a [`ModelProto`].
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    metadata: Vec<StringStringEntryProto>,
    counter: usize,
}

impl GraphBuilder {
    /// A new graph called `name`.
    pub fn new(name: &str) -> GraphBuilder {
        GraphBuilder { graph: GraphProto { name: name.to_string(), ..Default::default() }, ..Default::default() }
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem_type: i32, dims: &[Dim]) -> &mut Self {
        self.graph.input.push(value_info(name, elem_type, dims));
        self
    }

    /// Declares a graph output.
    pub fn output(&mut self, name: &str, elem_type: i32, dims: &[Dim]) -> &mut Self {
        self.graph.output.push(value_info(name, elem_type, dims));
        self
    }

    /// Adds a float initializer (a constant weight tensor) and returns its name.
    pub fn weights(&mut self, name: &str, dims: &[i64], values: Vec<f32>) -> String {
        debug_assert_eq!(dims.iter().product::<i64>() as usize, values.len());
        self.graph.initializer.push(TensorProto {
            name: name.to_string(),
            dims: dims.to_vec(),
            data_type: data_type::FLOAT,
            float_data: values,
            ..Default::default()
        });
        name.to_string()
    }

    /// Adds an int64 initializer and returns its name.
    pub fn ints(&mut self, name: &str, dims: &[i64], values: Vec<i64>) -> String {
        self.graph.initializer.push(TensorProto {
            name: name.to_string(),
            dims: dims.to_vec(),
            data_type: data_type::INT64,
            int64_data: values,
            ..Default::default()
        });
        name.to_string()
    }

    /// Whether an initializer called `name` was added.
    pub fn has_initializer(&self, name: &str) -> bool {
        self.graph.initializer.iter().any(|t| t.name == name)
    }

    /// Adds a node with one output named after it, and returns that output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.counter += 1;
        let out = format!("{}_{}", op.to_ascii_lowercase(), self.counter);
        self.node_into(op, inputs, &out, attrs);
        out
    }

    /// Adds a node of the `ai.onnx.ml` domain (the graph then imports its opset); returns its output.
    pub fn ml_node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        let out = self.node(op, inputs, attrs);
        if let Some(n) = self.graph.node.last_mut() {
            n.domain = ML_DOMAIN.to_string();
        }
        out
    }

    /// Adds a node writing to the given output name (e.g. a graph output).
    pub fn node_into(&mut self, op: &str, inputs: &[&str], output: &str, attrs: &[(&str, Attr)]) {
        self.counter += 1;
        self.graph.node.push(NodeProto {
            name: format!("{op}_{}", self.counter),
            op_type: op.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            attribute: attrs.iter().map(|(n, a)| attribute(n, a)).collect(),
            ..Default::default()
        });
    }

    /// Adds a metadata entry (stored in the model, readable by any ONNX tool).
    pub fn metadata(&mut self, key: &str, value: &str) -> &mut Self {
        self.metadata.push(StringStringEntryProto { key: key.to_string(), value: value.to_string() });
        self
    }

    /// Finishes the model.
    pub fn build(self, model_version: i64, doc: &str) -> ModelProto {
        let mut opset_import = vec![OperatorSetIdProto { domain: String::new(), version: crate::onnx::OPSET }];
        if self.graph.node.iter().any(|n| n.domain == ML_DOMAIN) {
            opset_import.push(OperatorSetIdProto { domain: ML_DOMAIN.into(), version: ML_OPSET });
        }
        ModelProto {
            ir_version: crate::onnx::IR_VERSION,
            opset_import,
            producer_name: "vigil".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            domain: "dev.vigil".into(),
            model_version,
            doc_string: doc.to_string(),
            graph: Some(self.graph),
            metadata_props: self.metadata,
        }
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => DimensionValue::DimValue(*n),
                Dim::Symbol(s) => DimensionValue::DimParam((*s).to_string()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto { elem_type, shape: Some(TensorShapeProto { dim }) }),
        }),
        doc_string: String::new(),
    }
}

fn attribute(name: &str, a: &Attr) -> AttributeProto {
    let mut p = AttributeProto { name: name.to_string(), ..Default::default() };
    match a {
        Attr::Int(i) => {
            p.r#type = attribute_type::INT;
            p.i = *i;
        }
        Attr::Float(f) => {
            p.r#type = attribute_type::FLOAT;
            p.f = *f;
        }
        Attr::Ints(v) => {
            p.r#type = attribute_type::INTS;
            p.ints = v.clone();
        }
        Attr::Floats(v) => {
            p.r#type = attribute_type::FLOATS;
            p.floats = v.clone();
        }
        Attr::Str(v) => {
            p.r#type = attribute_type::STRING;
            p.s = v.as_bytes().to_vec();
        }
        Attr::Strings(v) => {
            p.r#type = attribute_type::STRINGS;
            p.strings = v.iter().map(|s| s.as_bytes().to_vec()).collect();
        }
    }
    p
}

/// A logistic regression `p = sigmoid(x · w + b)` over `[batch, d]` float features, output
/// `[batch, 1]`. The smallest useful graph; model families build richer ones.
pub fn logistic_regression(weights: &[f32], bias: f32) -> ModelProto {
    let d = weights.len() as i64;
    let mut g = GraphBuilder::new("logistic_regression");
    g.input("features", data_type::FLOAT, &[Dim::Symbol("batch"), Dim::Fixed(d)]);
    g.output("score", data_type::FLOAT, &[Dim::Symbol("batch"), Dim::Fixed(1)]);
    let w = g.weights("w", &[d, 1], weights.to_vec());
    let b = g.weights("b", &[1], vec![bias]);
    let logits = g.node("MatMul", &["features", &w], &[]);
    let z = g.node("Add", &[&logits, &b], &[]);
    g.node_into("Sigmoid", &[&z], "score", &[]);
    g.build(1, "logistic regression: sigmoid(features . w + b)")
}
