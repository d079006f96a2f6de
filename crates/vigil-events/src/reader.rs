//! Reading the fields a consumer wants from an input record, whatever its encoding: Avro with
//! single-object encoding or Confluent framing (the compiled fast path when the schemas allow it,
//! the value-tree decoder otherwise) or a JSON object shaped like the schema. Every service reads its
//! inputs through a [`RecordReader`], so the scorer, the learner and the drift service accept the
//! same records and refuse the same ones, with the same [`CodecError`].

use std::sync::{Arc, Mutex, OnceLock};

use apache_avro::Schema;
use apache_avro::types::Value;

use crate::codec::{Codec, Wanted, WriterId, frame};
use crate::error::CodecError;
use crate::fast::Field;
use crate::json::from_json;

/// How an input topic's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// Avro: single-object encoding or Confluent framing, told apart by the first byte.
    Avro,
    /// One JSON object per record, shaped like the schema.
    Json,
}

/// Reads the wanted fields of records of one reader schema.
#[derive(Debug, Clone)]
pub struct RecordReader {
    schema_name: String,
    schema: &'static Schema,
    encoding: Encoding,
    wanted: Wanted,
    /// Position of each wanted field in the reader schema (for value trees).
    positions: Vec<Option<usize>>,
    /// The fast plan of the first writer schema read, kept for good and read without a lock (most
    /// topics have one writer): the codec's shared lookup per record was a tenth of the scorer's
    /// decoding, and a lock with an `Arc` clone per record another 1 % of its CPU.
    first: Arc<OnceLock<LastPlan>>,
    /// The fast plan of the last other writer schema read, kept while records keep that writer.
    last: Arc<Mutex<Option<LastPlan>>>,
}

/// A writer schema and its fast plan.
type LastPlan = (WriterId, Arc<crate::fast::Plan>);

impl RecordReader {
    /// A reader of `wanted` fields of records of the current schema `schema_name`, encoded as
    /// `encoding`. Fails when the codec does not know the schema.
    pub fn new(
        codec: &Codec,
        schema_name: &str,
        encoding: Encoding,
        wanted: Wanted,
    ) -> Result<RecordReader, CodecError> {
        let schema = codec.schema(schema_name)?;
        let names: Vec<&str> = match schema {
            Schema::Record(r) => r.fields.iter().map(|f| f.name.as_str()).collect(),
            _ => Vec::new(),
        };
        let positions = wanted.names().iter().map(|w| names.iter().position(|n| n == w)).collect();
        let (first, last) = (Arc::new(OnceLock::new()), Arc::new(Mutex::new(None)));
        Ok(RecordReader { schema_name: schema_name.to_string(), schema, encoding, wanted, positions, first, last })
    }

    /// The wanted fields.
    pub fn wanted(&self) -> &Wanted {
        &self.wanted
    }

    /// The reader schema's full name.
    pub fn schema_name(&self) -> &str {
        &self.schema_name
    }

    /// The reader schema.
    pub fn schema(&self) -> &'static Schema {
        self.schema
    }

    /// The encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Reads `payload` and hands its wanted fields (in [`Wanted`] order; absent ones as
    /// [`Field::Null`]) to `f`.
    pub fn read<R>(&self, codec: &Codec, payload: &[u8], f: impl FnOnce(&[Field<'_>]) -> R) -> Result<R, CodecError> {
        match self.encoding {
            Encoding::Avro => {
                let framed = frame(payload)?;
                if let Some((w, plan)) = self.first.get()
                    && *w == framed.writer
                {
                    return self.read_planned(plan, framed.body, f);
                }
                if let Some(plan) = self.plan(codec, payload, framed.writer)? {
                    return self.read_planned(&plan, framed.body, f);
                }
                let value = codec.decode(payload, &self.schema_name)?;
                Ok(f(&self.fields_of(&value)?))
            }
            Encoding::Json => {
                let json: serde_json::Value = serde_json::from_slice(payload).map_err(|e| CodecError::Json {
                    schema: self.schema_name.clone(),
                    path: "$".into(),
                    reason: format!("not a JSON document: {e}"),
                })?;
                let value = from_json(&json, self.schema)?;
                Ok(f(&self.fields_of(&value)?))
            }
        }
    }

    /// The wanted fields of a record's `body`, read with its writer's fast `plan`, handed to `f`.
    fn read_planned<R>(
        &self,
        plan: &crate::fast::Plan,
        body: &[u8],
        f: impl FnOnce(&[Field<'_>]) -> R,
    ) -> Result<R, CodecError> {
        crate::fast::with_fields(self.wanted.len(), |fields| {
            plan.read_into(body, fields)?;
            Ok(f(fields))
        })
    }

    /// The fast plan for `payload`'s writer schema, when it is not the first writer's: the last
    /// one's when the writer is the same, else the codec's (kept as the first writer's plan when
    /// there is none yet, else as the last one's).
    fn plan(
        &self,
        codec: &Codec,
        payload: &[u8],
        writer: WriterId,
    ) -> Result<Option<Arc<crate::fast::Plan>>, CodecError> {
        if let Ok(last) = self.last.lock()
            && let Some((w, plan)) = last.as_ref()
            && *w == writer
        {
            return Ok(Some(plan.clone()));
        }
        let Some((plan, _)) = codec.plan(payload, &self.schema_name, &self.wanted)? else { return Ok(None) };
        if let Err(kept) = self.first.set((writer, plan.clone()))
            && let Ok(mut last) = self.last.lock()
        {
            *last = Some(kept);
        }
        Ok(Some(plan))
    }

    fn fields_of<'v>(&self, value: &'v Value) -> Result<Vec<Field<'v>>, CodecError> {
        let Value::Record(fields) = value else {
            return Err(CodecError::SchemaMismatch {
                schema: self.schema_name.clone(),
                detail: "the value is not a record".into(),
                source: None,
            });
        };
        Ok(self
            .positions
            .iter()
            .map(|p| p.and_then(|p| fields.get(p)).map(|(_, v)| Field::of(v)).unwrap_or(Field::Null))
            .collect())
    }
}

impl<'v> Field<'v> {
    /// A value-tree field as a [`Field`] (timestamps in ms; unions as their branch).
    pub fn of(v: &'v Value) -> Field<'v> {
        match v {
            Value::Null => Field::Null,
            Value::Boolean(b) => Field::Bool(*b),
            Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Field::Int(i64::from(*i)),
            Value::Long(i) | Value::TimestampMillis(i) | Value::LocalTimestampMillis(i) => Field::Int(*i),
            Value::TimestampMicros(i) => Field::Int(*i / 1000),
            Value::Float(f) => Field::Float(f64::from(*f)),
            Value::Double(f) => Field::Float(*f),
            Value::String(s) | Value::Enum(_, s) => Field::Str(s),
            Value::Bytes(b) | Value::Fixed(_, b) => Field::Bytes(b),
            Value::Union(_, inner) => Field::of(inner),
            _ => Field::Other,
        }
    }
}
