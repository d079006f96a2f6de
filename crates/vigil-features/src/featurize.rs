//! Turning decoded records into model inputs with a [`FeatureSpec`]: a dense `f32` row for tabular
//! models, padded (index, value) rows for hashed-text models. Field positions are resolved once
//! against the record schema, so featurising a record does no name lookups.

use apache_avro::Schema;
use apache_avro::types::Value;

use crate::spec::{Encoding, FeatureSpec, Missing, Transform};
use crate::text::{hash_ngrams, hash_str};

/// Why a record cannot be featurised; the record is dead-lettered with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    /// A required field is null or absent.
    #[error("field `{0}` is missing")]
    Missing(String),
    /// A number is NaN or infinite.
    #[error("field `{field}` is not finite ({value})")]
    NonFinite {
        /// The field.
        field: String,
        /// Its value.
        value: f64,
    },
    /// A field has a type the feature cannot use.
    #[error("field `{field}` has type {found}, the feature needs {want}")]
    Type {
        /// The field.
        field: String,
        /// What was found.
        found: String,
        /// What is needed.
        want: &'static str,
    },
    /// A text is longer than the spec allows.
    #[error("text in `{field}` has {chars} characters, more than the {max} allowed")]
    Oversized {
        /// The field.
        field: String,
        /// Its length.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// The value is not a record.
    #[error("the value is not a record")]
    NotARecord,
}

impl FeatureError {
    /// A short stable kind for metrics and dead-letter headers.
    pub fn kind(&self) -> &'static str {
        match self {
            FeatureError::Missing(_) => "missing-feature",
            FeatureError::NonFinite { .. } => "non-finite-feature",
            FeatureError::Type { .. } => "feature-type",
            FeatureError::Oversized { .. } => "oversized-text",
            FeatureError::NotARecord => "not-a-record",
        }
    }
}

/// A spec bound to a record schema.
#[derive(Debug, Clone)]
pub struct Featurizer {
    spec: FeatureSpec,
    numeric_at: Vec<usize>,
    categorical_at: Vec<usize>,
    text_at: Option<usize>,
    width: usize,
}

/// Field positions of a record schema by name.
fn positions(schema: &Schema) -> Result<Vec<String>, String> {
    match schema {
        Schema::Record(r) => Ok(r.fields.iter().map(|f| f.name.clone()).collect()),
        _ => Err("the schema is not a record".into()),
    }
}

impl Featurizer {
    /// Binds `spec` to the reader `schema`; every field the spec names must exist in it.
    pub fn new(spec: &FeatureSpec, schema: &Schema) -> Result<Featurizer, Vec<String>> {
        let fields = positions(schema).map_err(|e| vec![e])?;
        let mut problems = Vec::new();
        let mut find = |f: &str, what: &str| match fields.iter().position(|x| x == f) {
            Some(i) => i,
            None => {
                problems.push(format!("{what} field `{f}` is not in the schema ({})", fields.join(", ")));
                0
            }
        };
        let numeric_at = spec.numeric.iter().map(|n| find(&n.field, "numeric")).collect();
        let categorical_at = spec.categorical.iter().map(|c| find(&c.field, "categorical")).collect();
        let text_at = spec.text.as_ref().map(|t| find(&t.field, "text"));
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Featurizer { spec: spec.clone(), numeric_at, categorical_at, text_at, width: spec.width() })
    }

    /// The spec.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Width of a dense row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Padded length of a text row.
    pub fn text_len(&self) -> usize {
        self.spec.text.as_ref().map(|t| t.max_tokens as usize).unwrap_or(0)
    }

    /// Writes a record's dense row into `out` (length [`Featurizer::width`]).
    pub fn dense(&self, record: &Value, out: &mut [f32]) -> Result<(), FeatureError> {
        let fields = record_fields(record)?;
        out.iter_mut().for_each(|x| *x = 0.0);
        for (k, (n, at)) in self.spec.numeric.iter().zip(&self.numeric_at).enumerate() {
            let raw = number(&n.field, &fields[*at].1, n.transform)?;
            let transformed = match raw {
                Some(x) => apply(n.transform, x),
                None => match n.missing {
                    Missing::Reject => return Err(FeatureError::Missing(n.field.clone())),
                    Missing::Impute => n.impute.unwrap_or(n.mean),
                },
            };
            let mut z = (transformed - n.mean) / n.std;
            if let Some(c) = n.clip {
                z = z.clamp(-c, c);
            }
            out[k] = z as f32;
        }
        let mut offset = self.spec.numeric.len();
        for (c, at) in self.spec.categorical.iter().zip(&self.categorical_at) {
            let v = category(&c.field, &fields[*at].1)?;
            let v = match (v, c.missing) {
                (Some(v), _) => Some(v),
                (None, Missing::Reject) => return Err(FeatureError::Missing(c.field.clone())),
                (None, Missing::Impute) => None,
            };
            match c.encoding {
                Encoding::OneHot => {
                    let slot =
                        v.as_deref().and_then(|v| c.values.iter().position(|x| x == v)).unwrap_or(c.values.len());
                    out[offset + slot] = 1.0;
                    offset += c.values.len() + 1;
                }
                Encoding::Hash => {
                    let b = (hash_str(v.as_deref().unwrap_or(""), 0) % u64::from(c.buckets)) as usize;
                    out[offset + b] = 1.0;
                    offset += c.buckets as usize;
                }
            }
        }
        Ok(())
    }

    /// Writes a record's hashed n-grams into `indices` / `values` (length [`Featurizer::text_len`]),
    /// padding with index 0 and value 0.
    pub fn text(&self, record: &Value, indices: &mut [i64], values: &mut [f32]) -> Result<(), FeatureError> {
        let (Some(t), Some(at)) = (&self.spec.text, self.text_at) else {
            return Err(FeatureError::Type { field: String::new(), found: "tabular spec".into(), want: "a text spec" });
        };
        let fields = record_fields(record)?;
        let text = match unwrap_union(&fields[at].1) {
            Value::String(s) => s.as_str(),
            Value::Null => return Err(FeatureError::Missing(t.field.clone())),
            other => return Err(type_error(&t.field, other, "a string")),
        };
        let chars = text.chars().count();
        if chars > t.max_chars as usize {
            return Err(FeatureError::Oversized { field: t.field.clone(), chars, max: t.max_chars as usize });
        }
        hash_ngrams(text, t, indices, values);
        Ok(())
    }
}

fn record_fields(v: &Value) -> Result<&[(String, Value)], FeatureError> {
    match v {
        Value::Record(f) => Ok(f),
        _ => Err(FeatureError::NotARecord),
    }
}

fn unwrap_union(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

fn type_error(field: &str, v: &Value, want: &'static str) -> FeatureError {
    let found = format!("{:?}", apache_avro::schema::SchemaKind::from(v)).to_lowercase();
    FeatureError::Type { field: field.to_string(), found, want }
}

/// A number from a field; `None` for null. Timestamps are numbers (ms) too.
fn number(field: &str, v: &Value, transform: Transform) -> Result<Option<f64>, FeatureError> {
    if transform == Transform::Present {
        return Ok(Some(f64::from(u8::from(!matches!(unwrap_union(v), Value::Null)))));
    }
    let x = match unwrap_union(v) {
        Value::Null => return Ok(None),
        Value::Double(x) => *x,
        Value::Float(x) => f64::from(*x),
        Value::Int(x) => f64::from(*x),
        Value::Long(x) | Value::TimestampMillis(x) => *x as f64,
        Value::TimestampMicros(x) => *x as f64 / 1000.0,
        Value::Boolean(b) => f64::from(u8::from(*b)),
        other => return Err(type_error(field, other, "a number, boolean or timestamp")),
    };
    if !x.is_finite() {
        return Err(FeatureError::NonFinite { field: field.to_string(), value: x });
    }
    if matches!(transform, Transform::HourSin | Transform::HourCos)
        && !matches!(unwrap_union(v), Value::TimestampMillis(_) | Value::TimestampMicros(_) | Value::Long(_))
    {
        return Err(type_error(field, unwrap_union(v), "a timestamp (epoch ms)"));
    }
    Ok(Some(x))
}

fn apply(t: Transform, x: f64) -> f64 {
    let hour = || ((x / 3_600_000.0).rem_euclid(24.0)) * std::f64::consts::TAU / 24.0;
    match t {
        Transform::None | Transform::Present => x,
        Transform::Log1p => x.max(0.0).ln_1p(),
        Transform::HourSin => hour().sin(),
        Transform::HourCos => hour().cos(),
    }
}

/// A category from a field; `None` for null.
fn category(field: &str, v: &Value) -> Result<Option<String>, FeatureError> {
    Ok(Some(match unwrap_union(v) {
        Value::Null => return Ok(None),
        Value::String(s) | Value::Enum(_, s) => s.clone(),
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Long(i) => i.to_string(),
        other => return Err(type_error(field, other, "a string, enum, boolean or integer")),
    }))
}
