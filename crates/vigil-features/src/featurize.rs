//! Turning decoded records into model inputs with a [`FeatureSpec`]: a dense `f32` row for tabular
//! models, padded (index, value) rows for hashed-text models, padded (token id, mask) rows for
//! encoder models (the encoder, run by the caller, turns them into the head's dense row). Which a
//! model takes is decided here, once: callers ask for a [`Row`] or push into a [`BatchBuilder`] and never look at
//! the spec's kind themselves. Field positions are resolved once against the record schema, so
//! featurising a record does no name lookups.

use apache_avro::Schema;

use std::sync::Arc;

use crate::batch::BatchBuilder;
use crate::spec::{Encoding, FeatureSpec, Missing, Transform};
use crate::subword::Subword;
use crate::text::{bucket, hash_ngrams, hash_str};
pub use vigil_events::fast::Field;

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
    /// A text could not be tokenised, or the encoder's tokenizer is not loaded.
    #[error("text in `{field}`: {why}")]
    Tokens {
        /// The field.
        field: String,
        /// Why.
        why: String,
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
}

impl FeatureError {
    /// A short stable kind for metrics and dead-letter headers.
    pub fn kind(&self) -> &'static str {
        match self {
            FeatureError::Missing(_) => "missing-feature",
            FeatureError::NonFinite { .. } => "non-finite-feature",
            FeatureError::Type { .. } => "feature-type",
            FeatureError::Oversized { .. } => "oversized-text",
            FeatureError::Tokens { .. } => "tokenizer",
        }
    }
}

/// A spec bound to a record schema.
#[derive(Debug, Clone)]
pub struct Featurizer {
    spec: FeatureSpec,
    /// Distinct record fields the spec reads, in first-use order.
    fields: Vec<String>,
    numeric_at: Vec<usize>,
    categorical_at: Vec<usize>,
    /// Each categorical's one-hot values, packed for lookup (empty for a hashed one).
    known: Vec<Known>,
    text_at: Option<usize>,
    width: usize,
    tokenizer: Option<Arc<Subword>>,
}

impl Featurizer {
    /// Binds `spec` to the reader `schema`; every field the spec names must exist in it.
    pub fn new(spec: &FeatureSpec, schema: &Schema) -> Result<Featurizer, Vec<String>> {
        let Schema::Record(r) = schema else { return Err(vec!["the schema is not a record".into()]) };
        let names: Vec<&str> = r.fields.iter().map(|f| f.name.as_str()).collect();
        let mut problems = Vec::new();
        let mut fields: Vec<String> = Vec::new();
        let mut slot = |f: &str, what: &str| -> usize {
            if let Some(i) = fields.iter().position(|x| x == f) {
                return i;
            }
            match names.iter().position(|x| *x == f) {
                Some(_) => {
                    fields.push(f.to_string());
                    fields.len() - 1
                }
                None => {
                    problems.push(format!("{what} field `{f}` is not in the schema ({})", names.join(", ")));
                    0
                }
            }
        };
        let numeric_at = spec.numeric.iter().map(|n| slot(&n.field, "numeric")).collect();
        let categorical_at = spec.categorical.iter().map(|c| slot(&c.field, "categorical")).collect();
        let text_at = match (&spec.text, &spec.encoder) {
            (Some(t), _) => Some(slot(&t.field, "text")),
            (None, Some(e)) => Some(slot(&e.field, "encoder")),
            (None, None) => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let width = spec.width();
        let known = spec.categorical.iter().map(|c| Known::new(&c.values)).collect();
        Ok(Featurizer {
            spec: spec.clone(),
            fields,
            numeric_at,
            categorical_at,
            known,
            text_at,
            width,
            tokenizer: None,
        })
    }

    /// The featuriser with the encoder's tokenizer (an encoder spec tokenises with it; without
    /// one, every record is refused).
    pub fn with_tokenizer(mut self, tokenizer: Arc<Subword>) -> Featurizer {
        self.tokenizer = Some(tokenizer);
        self
    }

    /// The spec.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// The record fields the spec reads; [`Featurizer::dense_from`] and [`Featurizer::text_from`]
    /// take their values in this order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Width of a dense row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Padded length of a text row (hashed n-grams or tokens).
    pub fn text_len(&self) -> usize {
        match (&self.spec.text, &self.spec.encoder) {
            (Some(t), _) => t.max_tokens as usize,
            (None, Some(e)) => e.max_tokens as usize,
            (None, None) => 0,
        }
    }

    /// Whether the model takes text (indices and values, or token ids and a mask) rather than a
    /// dense row.
    pub fn is_text(&self) -> bool {
        !self.spec.is_tabular()
    }

    /// An empty micro-batch of this spec's rows.
    pub fn batch(&self, capacity: usize) -> BatchBuilder {
        if self.is_text() {
            let pad = self.tokenizer.as_ref().map_or(0, |t| t.pad_id());
            BatchBuilder::text_padded(self.text_len(), capacity, pad)
        } else {
            BatchBuilder::dense(self.width(), capacity)
        }
    }

    /// Adds the row of a record given as its [`Featurizer::fields`] values to `batch` (made by
    /// [`Featurizer::batch`]).
    pub fn push(&self, batch: &mut BatchBuilder, id: &str, fields: &[Field<'_>]) -> Result<(), FeatureError> {
        if self.is_text() {
            batch.push_text(id, |i, v| self.text_from(fields, i, v))
        } else {
            batch.push_dense(id, |row| self.dense_from(fields, row))
        }
    }

    /// The row of a record given as its [`Featurizer::fields`] values.
    pub fn row(&self, fields: &[Field<'_>]) -> Result<Row, FeatureError> {
        if self.spec.encoder.is_some() {
            let n = self.text_len();
            let (mut i, mut m) = (vec![0i64; n], vec![0f32; n]);
            let used = self.tokens_from(fields, &mut i, &mut m)?;
            i.truncate(used);
            Ok(Row::Tokens(i))
        } else if self.is_text() {
            let n = self.text_len();
            let (mut i, mut v) = (vec![0i64; n], vec![0f32; n]);
            self.text_from(fields, &mut i, &mut v)?;
            Ok(Row::Text(i, v))
        } else {
            let mut x = vec![0f32; self.width()];
            self.dense_from(fields, &mut x)?;
            Ok(Row::Dense(x))
        }
    }

    /// Writes the dense row of a record given as its [`Featurizer::fields`] values.
    pub fn dense_from(&self, fields: &[Field<'_>], out: &mut [f32]) -> Result<(), FeatureError> {
        out.iter_mut().for_each(|x| *x = 0.0);
        for (k, (n, at)) in self.spec.numeric.iter().zip(&self.numeric_at).enumerate() {
            let raw = number(&n.field, fields[*at], n.transform)?;
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
        let mut buf = String::new();
        for ((c, at), known) in self.spec.categorical.iter().zip(&self.categorical_at).zip(&self.known) {
            let v = category(&c.field, fields[*at], &mut buf)?;
            if v.is_none() && c.missing == Missing::Reject {
                return Err(FeatureError::Missing(c.field.clone()));
            }
            match c.encoding {
                Encoding::OneHot => {
                    let slot = v.and_then(|v| known.position(&c.values, v)).unwrap_or(c.values.len());
                    out[offset + slot] = 1.0;
                    offset += c.values.len() + 1;
                }
                Encoding::Hash => {
                    let b = bucket(hash_str(v.unwrap_or(""), 0), c.buckets);
                    out[offset + b] = 1.0;
                    offset += c.buckets as usize;
                }
            }
        }
        Ok(())
    }

    /// Writes the hashed n-grams of a record given as its [`Featurizer::fields`] values into
    /// `indices` / `values` (length [`Featurizer::text_len`]), padding with index 0 and value 0; for
    /// an encoder spec, its token ids and mask ([`Featurizer::tokens_from`]). Returns the slots used
    /// before the padding.
    pub fn text_from(
        &self,
        fields: &[Field<'_>],
        indices: &mut [i64],
        values: &mut [f32],
    ) -> Result<usize, FeatureError> {
        let Some(t) = &self.spec.text else {
            return self.tokens_from(fields, indices, values);
        };
        let text = self.text_of(fields, &t.field, t.max_chars)?;
        Ok(hash_ngrams(text, t, indices, values))
    }

    /// Writes the token ids of a record's text into `ids` (length [`Featurizer::text_len`]), padded,
    /// and 1 / 0 into `mask`; returns the token count.
    pub fn tokens_from(&self, fields: &[Field<'_>], ids: &mut [i64], mask: &mut [f32]) -> Result<usize, FeatureError> {
        let Some(e) = &self.spec.encoder else {
            return Err(FeatureError::Type { field: String::new(), found: "tabular spec".into(), want: "a text spec" });
        };
        let text = self.text_of(fields, &e.field, e.max_chars)?;
        let Some(tokenizer) = &self.tokenizer else {
            return Err(FeatureError::Tokens {
                field: e.field.clone(),
                why: "the encoder's tokenizer is not loaded".into(),
            });
        };
        tokenizer
            .fill(text, ids, mask)
            .map_err(|why| FeatureError::Tokens { field: e.field.clone(), why: why.to_string() })
    }

    fn text_of<'f>(&self, fields: &[Field<'f>], field: &str, max_chars: u32) -> Result<&'f str, FeatureError> {
        let Some(at) = self.text_at else {
            return Err(FeatureError::Type { field: String::new(), found: "tabular spec".into(), want: "a text spec" });
        };
        let text = match fields[at] {
            Field::Str(s) => s,
            Field::Null => return Err(FeatureError::Missing(field.to_string())),
            other => return Err(type_error(field, other, "a string")),
        };
        // A text of at most `max_chars` bytes has at most as many characters: no need to count.
        let chars = if text.len() <= max_chars as usize { text.len() } else { text.chars().count() };
        if chars > max_chars as usize {
            return Err(FeatureError::Oversized { field: field.to_string(), chars, max: max_chars as usize });
        }
        Ok(text)
    }
}

/// One record's model input.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// A dense row (tabular models).
    Dense(Vec<f32>),
    /// Hashed n-grams: bucket indices and weights, padded with index 0 and weight 0.
    Text(Vec<i64>, Vec<f32>),
    /// An encoder model's token ids (special tokens included, unpadded).
    Tokens(Vec<i64>),
}

fn type_error(field: &str, v: Field<'_>, want: &'static str) -> FeatureError {
    let found = match v {
        Field::Null => "null",
        Field::Bool(_) => "boolean",
        Field::Int(_) => "integer",
        Field::Float(_) => "number",
        Field::Str(_) => "string",
        Field::Bytes(_) => "bytes",
        Field::Other => "a complex type",
    };
    FeatureError::Type { field: field.to_string(), found: found.into(), want }
}

/// A number from a field; `None` for null. Timestamps are numbers (ms) too.
fn number(field: &str, v: Field<'_>, transform: Transform) -> Result<Option<f64>, FeatureError> {
    if transform == Transform::Present {
        return Ok(Some(f64::from(u8::from(!matches!(v, Field::Null)))));
    }
    let x = match v {
        Field::Null => return Ok(None),
        Field::Float(x) => x,
        Field::Int(x) => x as f64,
        Field::Bool(b) => f64::from(u8::from(b)),
        other => return Err(type_error(field, other, "a number, boolean or timestamp")),
    };
    if !x.is_finite() {
        return Err(FeatureError::NonFinite { field: field.to_string(), value: x });
    }
    if matches!(transform, Transform::HourSin | Transform::HourCos) && !matches!(v, Field::Int(_)) {
        return Err(type_error(field, v, "a timestamp (epoch ms)"));
    }
    Ok(Some(x))
}

fn apply(t: Transform, x: f64) -> f64 {
    let hour = || rem_euclid_24(x / 3_600_000.0) * std::f64::consts::TAU / 24.0;
    match t {
        Transform::None | Transform::Present => x,
        Transform::Log1p => x.max(0.0).ln_1p(),
        Transform::HourSin => hour().sin(),
        Transform::HourCos => hour().cos(),
    }
}

/// `q.rem_euclid(24.0)`, the same to the bit, without the `fmod` it calls (a software loop here, a
/// tenth of a transaction's featurising). `q - 24 * trunc(q / 24)` is fmod's exact remainder: the
/// subtraction is exact (its terms are within a factor of two), and `q / 24` is never rounded across
/// an integer k (a double next to 24k is at least an ulp of 24k, 16 or 32 ulps of k, away from it:
/// a 24th of that is more than half an ulp of k). Then, as `rem_euclid` does, 24 is added to a
/// negative remainder.
fn rem_euclid_24(q: f64) -> f64 {
    // Near 2^52 and beyond, and for NaN and infinities, rem_euclid itself.
    if q.is_nan() || q.abs() >= 4.0e15 {
        return q.rem_euclid(24.0);
    }
    let r = q - 24.0 * (q / 24.0).trunc();
    // fmod's zero has the sign of q.
    let r = if r == 0.0 { 0.0f64.copysign(q) } else { r };
    if r < 0.0 { r + 24.0 } else { r }
}

/// A one-hot encoding's known values, packed: a value of at most 8 bytes is found by comparing
/// (bytes, length) as integers, not a string comparison per known value.
#[derive(Debug, Clone)]
struct Known(Vec<(u64, usize)>);

impl Known {
    fn new(values: &[String]) -> Known {
        // A longer value gets a length no short one has.
        Known(values.iter().map(|v| pack(v.as_bytes()).map_or((0, usize::MAX), |p| (p, v.len()))).collect())
    }

    /// The position of `v` in `values` (those `self` was made from).
    fn position(&self, values: &[String], v: &str) -> Option<usize> {
        match pack(v.as_bytes()) {
            Some(p) => self.0.iter().position(|&(q, n)| q == p && n == v.len()),
            None => values.iter().position(|x| x == v),
        }
    }
}

/// Up to 8 bytes as one little-endian integer.
fn pack(bytes: &[u8]) -> Option<u64> {
    (bytes.len() <= 8).then(|| bytes.iter().rev().fold(0u64, |p, &b| (p << 8) | u64::from(b)))
}

/// A category from a field; `None` for null. Non-string categories are written into `buf`.
fn category<'f>(field: &str, v: Field<'f>, buf: &'f mut String) -> Result<Option<&'f str>, FeatureError> {
    use std::fmt::Write;
    Ok(Some(match v {
        Field::Null => return Ok(None),
        Field::Str(s) => s,
        Field::Bool(b) => {
            buf.clear();
            let _ = write!(buf, "{b}");
            buf.as_str()
        }
        Field::Int(i) => {
            buf.clear();
            let _ = write!(buf, "{i}");
            buf.as_str()
        }
        other => return Err(type_error(field, other, "a string, enum, boolean or integer")),
    }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Known, rem_euclid_24};
    use crate::text::bucket;

    proptest! {
        /// The hour of any timestamp (epoch ms, 1700 to 2300, and any double) is `rem_euclid`'s to
        /// the bit.
        #[test]
        fn the_hour_of_day_is_rem_euclids(
            ms in -8_000_000_000_000i64..10_000_000_000_000, q: f64, near in -1e7f64..1e7, k in 0f64..1e6, ulps in -3i32..4,
        ) {
            // Doubles a few ulps from a multiple of 24, where a rounded quotient needs correcting.
            let mut edge = k.abs().round() * 24.0;
            for _ in 0..ulps.abs() {
                edge = if ulps > 0 { edge.next_up() } else { edge.next_down() };
            }
            let h = ms as f64 / 3_600_000.0;
            for q in [h, q, near, edge, -edge] {
                prop_assert_eq!(rem_euclid_24(q).to_bits(), q.rem_euclid(24.0).to_bits(), "{}", q);
            }
        }

        /// The packed lookup finds what a linear search finds: short and long values, repeats, the
        /// empty string, bytes past ASCII.
        #[test]
        fn a_known_value_is_where_a_search_finds_it(
            values in prop::collection::vec("[ab5é]{0,10}", 0..12), v in "[ab5é]{0,10}", h: u64, buckets in 1u32..70,
        ) {
            let known = Known::new(&values);
            prop_assert_eq!(known.position(&values, &v), values.iter().position(|x| *x == v));
            for value in &values {
                prop_assert_eq!(known.position(&values, value), values.iter().position(|x| x == value));
            }
            prop_assert_eq!(bucket(h, buckets), (h % u64::from(buckets)) as usize);
        }
    }
}
