//! Encoding and decoding Avro records on the wire.
//!
//! Two framings, told apart by the first byte:
//!
//! - **single-object encoding** (`C3 01`, the writer schema's 8-byte CRC-64-AVRO fingerprint, the
//!   Avro binary body), used when no schema registry is configured; the writer schema is found by
//!   fingerprint among the shipped schemas (current and historical versions);
//! - **Confluent framing** (`00`, a 4-byte big-endian schema id, the body), used when a registry
//!   is configured; ids are learnt from the registry by the caller ([`Codec::add_registry_schema`]),
//!   since this crate does no I/O.
//!
//! Decoding resolves the writer schema to the reader schema the caller names, so records written
//! with an older version of a schema decode with the current one. Resolved readers are cached per
//! (writer, reader) pair; schemas live for the whole process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::ResolvedSchema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CodecError;
use crate::fast::Plan;
use crate::schemas::{self, Fingerprint};

/// Single-object encoding marker.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
/// Length of the single-object header: marker and fingerprint.
pub const SINGLE_OBJECT_HEADER: usize = 10;
/// Confluent framing's magic byte.
pub const CONFLUENT_MAGIC: u8 = 0x00;
/// Length of the Confluent header: magic byte and schema id.
pub const CONFLUENT_HEADER: usize = 5;

/// Upper bound on one allocation while decoding (set once per process).
pub const MAX_ALLOCATION: usize = 80 << 20;

/// How the writer schema of a record is identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriterId {
    /// Single-object encoding.
    Fingerprint(Fingerprint),
    /// Confluent framing.
    RegistryId(u32),
}

/// A record split into its header and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The writer schema's identity.
    pub writer: WriterId,
    /// The Avro binary body.
    pub body: &'a [u8],
}

/// Splits `bytes` into framing and body.
pub fn frame(bytes: &[u8]) -> Result<Frame<'_>, CodecError> {
    match bytes.first() {
        None => Err(CodecError::Truncated { what: "empty record (no framing byte)".into() }),
        Some(&0xC3) => {
            match bytes.get(1) {
                None => return Err(CodecError::Truncated { what: "single-object marker cut after 1 byte".into() }),
                Some(&0x01) => {}
                Some(&other) => return Err(CodecError::BadMagic { found: other, offset: 1 }),
            }
            if bytes.len() < SINGLE_OBJECT_HEADER {
                return Err(CodecError::Truncated {
                    what: format!(
                        "single-object header needs {SINGLE_OBJECT_HEADER} bytes, record has {}",
                        bytes.len()
                    ),
                });
            }
            let mut fp = [0u8; 8];
            fp.copy_from_slice(&bytes[2..SINGLE_OBJECT_HEADER]);
            Ok(Frame { writer: WriterId::Fingerprint(fp), body: &bytes[SINGLE_OBJECT_HEADER..] })
        }
        Some(&CONFLUENT_MAGIC) => {
            if bytes.len() < CONFLUENT_HEADER {
                return Err(CodecError::Truncated {
                    what: format!("Confluent header needs {CONFLUENT_HEADER} bytes, record has {}", bytes.len()),
                });
            }
            let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
            Ok(Frame { writer: WriterId::RegistryId(id), body: &bytes[CONFLUENT_HEADER..] })
        }
        Some(&other) => Err(CodecError::BadMagic { found: other, offset: 0 }),
    }
}

/// The fields a consumer reads, in the order it wants them: what a compiled [`Plan`] is cached
/// under, together with the writer and reader schemas. Build it once per consumer (it hashes the
/// names) and keep it; two consumers asking for the same names share plans, and different names
/// never collide.
#[derive(Debug, Clone)]
pub struct Wanted {
    names: Arc<[String]>,
    hash: u64,
}

impl Wanted {
    /// The fields called `names`, in this order.
    pub fn new<S: AsRef<str>>(names: &[S]) -> Wanted {
        use std::hash::{Hash, Hasher};
        let names: Arc<[String]> = names.iter().map(|n| n.as_ref().to_string()).collect();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        names.hash(&mut h);
        Wanted { names, hash: h.finish() }
    }

    /// The field names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no field is wanted.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl PartialEq for Wanted {
    fn eq(&self, other: &Wanted) -> bool {
        Arc::ptr_eq(&self.names, &other.names) || (self.hash == other.hash && self.names == other.names)
    }
}

impl Eq for Wanted {}

impl std::hash::Hash for Wanted {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Writer, reader fingerprint, wanted fields: everything a plan depends on.
type PlanKey = (WriterId, Fingerprint, Wanted);

/// A fast-path plan and the record body to run it on.
pub type PlanAndBody<'b> = (Arc<Plan>, &'b [u8]);

/// A schema known to the codec.
#[derive(Debug, Clone, Copy)]
struct Known {
    schema: &'static Schema,
    name: &'static str,
    fingerprint: Fingerprint,
    text: &'static str,
}

/// Encodes and decodes Vigil's records; cheap to share (`Arc<Codec>`) between threads.
pub struct Codec {
    /// Writer schemas by fingerprint (shipped, all versions) and by registry id.
    writers: RwLock<HashMap<WriterId, Known>>,
    /// Reader (current) schemas by full name.
    current: RwLock<HashMap<String, Known>>,
    /// Registry ids to encode with, by full name: with an id, records get Confluent framing.
    encode_ids: RwLock<HashMap<String, u32>>,
    readers: RwLock<HashMap<(WriterId, Fingerprint), Arc<GenericDatumReader<'static>>>>,
    plans: RwLock<HashMap<PlanKey, Option<Arc<Plan>>>>,
    writers_cache: RwLock<HashMap<String, Arc<GenericDatumWriter<'static>>>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

impl Codec {
    /// A codec that knows the shipped schemas and encodes with single-object encoding.
    pub fn new() -> Codec {
        // A corrupt length prefix must not make the decoder allocate more than the largest record
        // Kafka will carry (the models topic allows 64 MiB).
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION);
        let mut writers = HashMap::new();
        let mut current = HashMap::new();
        for s in schemas::shipped() {
            let known = Known { schema: &s.schema, name: &s.name, fingerprint: s.fingerprint, text: s.text };
            writers.insert(WriterId::Fingerprint(s.fingerprint), known);
            if s.current {
                current.insert(s.name.clone(), known);
            }
        }
        Codec {
            writers: RwLock::new(writers),
            current: RwLock::new(current),
            encode_ids: RwLock::new(HashMap::new()),
            readers: RwLock::new(HashMap::new()),
            plans: RwLock::new(HashMap::new()),
            writers_cache: RwLock::new(HashMap::new()),
        }
    }

    /// Registers a user schema (e.g. an input record type of the user's own) as the current version
    /// of its name and as a known writer. Returns its full name and fingerprint.
    pub fn add_schema(&self, schema_json: &str) -> Result<(String, Fingerprint), CodecError> {
        let known = leak_schema(schema_json)?;
        write(&self.writers).insert(WriterId::Fingerprint(known.fingerprint), known);
        write(&self.current).insert(known.name.to_string(), known);
        Ok((known.name.to_string(), known.fingerprint))
    }

    /// Registers a writer schema fetched from the registry under `id`.
    pub fn add_registry_schema(&self, id: u32, schema_json: &str) -> Result<String, CodecError> {
        let known = leak_schema(schema_json)?;
        write(&self.writers).insert(WriterId::RegistryId(id), known);
        // The same schema may also arrive with single-object encoding.
        write(&self.writers).entry(WriterId::Fingerprint(known.fingerprint)).or_insert(known);
        Ok(known.name.to_string())
    }

    /// Makes records of `name` encode with Confluent framing and `id` (the id the registry gave
    /// the current schema under its subject).
    pub fn set_encode_id(&self, name: &str, id: u32) {
        write(&self.encode_ids).insert(name.to_string(), id);
    }

    /// Whether a writer schema is known.
    pub fn knows(&self, writer: WriterId) -> bool {
        read(&self.writers).contains_key(&writer)
    }

    /// The current schema called `name`.
    pub fn schema(&self, name: &str) -> Result<&'static Schema, CodecError> {
        self.current_known(name).map(|k| k.schema)
    }

    /// The JSON text of the current schema called `name`.
    pub fn schema_text(&self, name: &str) -> Option<String> {
        self.current_known(name).ok().map(|k| k.text.to_string())
    }

    /// The full names of all current schemas.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = read(&self.current).keys().cloned().collect();
        v.sort();
        v
    }

    fn current_known(&self, name: &str) -> Result<Known, CodecError> {
        read(&self.current).get(name).copied().ok_or_else(|| CodecError::UnknownSchema(name.to_string()))
    }

    fn writer_known(&self, writer: WriterId) -> Result<Known, CodecError> {
        read(&self.writers).get(&writer).copied().ok_or(match writer {
            WriterId::Fingerprint(fp) => CodecError::UnknownFingerprint(fp),
            WriterId::RegistryId(id) => CodecError::UnknownSchemaId(id),
        })
    }

    /// Decodes a framed record and resolves it to the current schema called `reader`.
    pub fn decode(&self, bytes: &[u8], reader: &str) -> Result<Value, CodecError> {
        let frame = frame(bytes)?;
        let reader = self.current_known(reader)?;
        let writer = self.writer_known(frame.writer)?;
        if writer.name != reader.name {
            return Err(CodecError::SchemaMismatch {
                schema: reader.name.to_string(),
                detail: format!("the record was written as {}", writer.name),
                source: None,
            });
        }
        let datum_reader = self.reader_for(frame.writer, writer, reader)?;
        read_body(&datum_reader, frame.body, reader.name)
    }

    /// The fast path: a compiled plan that reads only the `wanted` fields of this record (resolved to
    /// the current schema `reader`), and the record's body to run it on. `Ok(None)` when the schemas
    /// are outside what the fast path handles (decode with [`Codec::decode`] then). Plans are cached
    /// under the writer schema, the reader schema and the wanted names.
    pub fn plan<'b>(
        &self,
        bytes: &'b [u8],
        reader: &str,
        wanted: &Wanted,
    ) -> Result<Option<PlanAndBody<'b>>, CodecError> {
        let frame = frame(bytes)?;
        let reader = self.current_known(reader)?;
        let key = (frame.writer, reader.fingerprint, wanted.clone());
        if let Some(p) = read(&self.plans).get(&key) {
            return Ok(p.clone().map(|p| (p, frame.body)));
        }
        let writer = self.writer_known(frame.writer)?;
        if writer.name != reader.name {
            return Err(CodecError::SchemaMismatch {
                schema: reader.name.to_string(),
                detail: format!("the record was written as {}", writer.name),
                source: None,
            });
        }
        let plan = Plan::new(writer.schema, reader.schema, wanted.names()).map(Arc::new);
        write(&self.plans).insert(key, plan.clone());
        Ok(plan.map(|p| (p, frame.body)))
    }

    /// Decodes a framed record with its own writer schema (no resolution); returns the value and
    /// the schema's full name. What `vigil tail` uses to print any topic.
    pub fn decode_as_written(&self, bytes: &[u8]) -> Result<(Value, &'static str), CodecError> {
        let frame = frame(bytes)?;
        let writer = self.writer_known(frame.writer)?;
        let datum_reader = self.reader_for(frame.writer, writer, writer)?;
        Ok((read_body(&datum_reader, frame.body, writer.name)?, writer.name))
    }

    /// The value of the record's first field when it is a string called `name`, read straight from the
    /// bytes without decoding the rest (every Vigil record starts with `event_id`). `None` when the
    /// writer schema is unknown or starts otherwise.
    pub fn leading_string<'a>(&self, bytes: &'a [u8], name: &str) -> Option<&'a str> {
        let frame = frame(bytes).ok()?;
        let writer = self.writer_known(frame.writer).ok()?;
        let Schema::Record(r) = writer.schema else { return None };
        let first = r.fields.first()?;
        if first.name != name || !matches!(first.schema, Schema::String) {
            return None;
        }
        let (len, used) = read_long(frame.body)?;
        let len = usize::try_from(len).ok()?;
        std::str::from_utf8(frame.body.get(used..used.checked_add(len)?)?).ok()
    }

    /// Decodes a record into a typed event (resolving to the event's current schema).
    pub fn decode_event<T: Event>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let value = self.decode(bytes, T::SCHEMA)?;
        apache_avro::from_value::<T>(&value).map_err(|e| CodecError::SchemaMismatch {
            schema: T::SCHEMA.to_string(),
            detail: "value does not fit the Rust type".into(),
            source: Some(e),
        })
    }

    fn reader_for(
        &self,
        id: WriterId,
        writer: Known,
        reader: Known,
    ) -> Result<Arc<GenericDatumReader<'static>>, CodecError> {
        let key = (id, reader.fingerprint);
        if let Some(r) = read(&self.readers).get(&key) {
            return Ok(r.clone());
        }
        let mismatch = |e: apache_avro::Error| CodecError::SchemaMismatch {
            schema: reader.name.to_string(),
            detail: "writer schema cannot be resolved to the reader schema".into(),
            source: Some(e),
        };
        let built = if writer.fingerprint == reader.fingerprint {
            GenericDatumReader::builder(writer.schema).build().map_err(mismatch)?
        } else {
            GenericDatumReader::builder(writer.schema).reader_schema(reader.schema).build().map_err(mismatch)?
        };
        let built = Arc::new(built);
        write(&self.readers).insert(key, built.clone());
        Ok(built)
    }

    fn writer_for(&self, known: Known) -> Result<Arc<GenericDatumWriter<'static>>, CodecError> {
        if let Some(w) = read(&self.writers_cache).get(known.name) {
            return Ok(w.clone());
        }
        let w = GenericDatumWriter::builder(known.schema).build().map_err(|e| CodecError::SchemaMismatch {
            schema: known.name.to_string(),
            detail: "cannot prepare a writer".into(),
            source: Some(e),
        })?;
        let w = Arc::new(w);
        write(&self.writers_cache).insert(known.name.to_string(), w.clone());
        Ok(w)
    }

    /// Writes the header for records of `known` into `out`.
    fn header(&self, known: Known, out: &mut Vec<u8>) {
        match read(&self.encode_ids).get(known.name) {
            Some(id) => {
                out.push(CONFLUENT_MAGIC);
                out.extend_from_slice(&id.to_be_bytes());
            }
            None => {
                out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
                out.extend_from_slice(&known.fingerprint);
            }
        }
    }

    /// Encodes a generic value with the current schema `name` (validated against it).
    pub fn encode_value(&self, name: &str, value: &Value) -> Result<Vec<u8>, CodecError> {
        let known = self.current_known(name)?;
        let resolved = value.clone().resolve(known.schema).map_err(|e| CodecError::SchemaMismatch {
            schema: name.to_string(),
            detail: "value does not fit the schema".into(),
            source: Some(e),
        })?;
        let mut out = Vec::with_capacity(64);
        self.header(known, &mut out);
        self.writer_for(known)?.write_value_ref(&mut out, &resolved).map_err(|e| CodecError::SchemaMismatch {
            schema: name.to_string(),
            detail: "value does not fit the schema".into(),
            source: Some(e),
        })?;
        Ok(out)
    }

    /// Encodes a typed event with its current schema.
    pub fn encode_event<T: Event>(&self, event: &T) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(128);
        self.encode_event_into(event, &mut out)?;
        Ok(out)
    }

    /// Encodes a typed event into `out` (appending), avoiding an allocation per record.
    pub fn encode_event_into<T: Event>(&self, event: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let known = self.current_known(T::SCHEMA)?;
        self.header(known, out);
        self.writer_for(known)?.write_ser(out, event).map_err(|e| CodecError::SchemaMismatch {
            schema: T::SCHEMA.to_string(),
            detail: "event does not fit its schema".into(),
            source: Some(e),
        })?;
        Ok(())
    }
}

/// Appends an Avro `long` (zig-zag varint).
fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// A [`Score`](crate::events::Score) by reference: what the scorer encodes without copying the
/// event id, model name and source topic into a `Score` first.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct ScoreRef<'a> {
    pub event_id: &'a str,
    pub model: &'a str,
    pub model_version: i64,
    pub variant: crate::events::Variant,
    pub score: f64,
    pub scores: &'a [f64],
    pub predicted_label: f64,
    pub event_time: i64,
    pub scored_at: i64,
    pub source_topic: &'a str,
    pub source_partition: i32,
    pub source_offset: i64,
    /// The A/B test and arm that served the event, during one.
    pub ab: Option<(&'a str, &'a str)>,
}

impl crate::events::Score {
    /// This score by reference.
    pub fn view(&self) -> ScoreRef<'_> {
        ScoreRef {
            event_id: &self.event_id,
            model: &self.model,
            model_version: self.model_version,
            variant: self.variant,
            score: self.score,
            scores: &self.scores,
            predicted_label: self.predicted_label,
            event_time: self.event_time,
            scored_at: self.scored_at,
            source_topic: &self.source_topic,
            source_partition: self.source_partition,
            source_offset: self.source_offset,
            ab: self.experiment_id.as_deref().zip(self.arm.as_deref()),
        }
    }
}

impl Codec {
    /// Encodes a score without the generic serializer (the scorer's hot path): the same bytes as
    /// [`Codec::encode_event`] on the `Score`, written field by field (a property test holds the two
    /// to each other, so a change to `Score.avsc` cannot slip past this).
    pub fn encode_score_into(&self, s: &ScoreRef<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let known = self.current_known(crate::schemas::names::SCORE)?;
        self.header(known, out);
        score_body(s, out);
        Ok(())
    }

    /// The bytes every `Score` record now starts with (the registry's id for it when one is set,
    /// else the single-object magic and fingerprint), for [`Codec::encode_score_with`]: a writer
    /// of many scores looks the schema up once, not per record.
    pub fn score_header(&self) -> Result<Vec<u8>, CodecError> {
        let known = self.current_known(crate::schemas::names::SCORE)?;
        let mut out = Vec::with_capacity(10);
        self.header(known, &mut out);
        Ok(out)
    }

    /// [`Codec::encode_score_into`] after a header from [`Codec::score_header`].
    pub fn encode_score_with(header: &[u8], s: &ScoreRef<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(header);
        score_body(s, out);
    }
}

/// A score's Avro body, field by field.
fn score_body(s: &ScoreRef<'_>, out: &mut Vec<u8>) {
    {
        put_str(out, s.event_id);
        put_str(out, s.model);
        put_long(out, s.model_version);
        put_long(out, if s.variant == crate::events::Variant::Champion { 0 } else { 1 });
        out.extend_from_slice(&s.score.to_le_bytes());
        if !s.scores.is_empty() {
            put_long(out, s.scores.len() as i64);
            for x in s.scores {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        put_long(out, 0);
        out.extend_from_slice(&s.predicted_label.to_le_bytes());
        put_long(out, s.event_time);
        put_long(out, s.scored_at);
        put_str(out, s.source_topic);
        put_long(out, i64::from(s.source_partition));
        put_long(out, s.source_offset);
        match s.ab {
            // Union branch 1 (string) of each nullable field.
            Some((experiment, arm)) => {
                put_long(out, 1);
                put_str(out, experiment);
                put_long(out, 1);
                put_str(out, arm);
            }
            None => out.extend_from_slice(&[0, 0]),
        }
    }
}

/// A Rust type that is one of Vigil's Avro records.
pub trait Event: Serialize + DeserializeOwned {
    /// Full name of its current schema.
    const SCHEMA: &'static str;
}

/// Reads an Avro `long` (zig-zag varint); returns it and the bytes used.
fn read_long(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((((value >> 1) as i64) ^ -((value & 1) as i64), i + 1));
        }
    }
    None
}

fn read_body(reader: &GenericDatumReader<'static>, body: &[u8], schema: &str) -> Result<Value, CodecError> {
    let mut cursor = body;
    let value = reader.read_value(&mut cursor).map_err(|e| classify(e, schema))?;
    if !cursor.is_empty() {
        return Err(CodecError::SchemaMismatch {
            schema: schema.to_string(),
            detail: format!("{} bytes left over after the record", cursor.len()),
            source: None,
        });
    }
    Ok(value)
}

/// An Avro decoding error is a truncation when an I/O error with `UnexpectedEof` is among its causes.
fn classify(e: apache_avro::Error, schema: &str) -> CodecError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::UnexpectedEof
        {
            return CodecError::Truncated { what: format!("body of {schema} ends early") };
        }
        cause = c.source();
    }
    CodecError::SchemaMismatch { schema: schema.to_string(), detail: "body does not decode".into(), source: Some(e) }
}

fn leak_schema(schema_json: &str) -> Result<Known, CodecError> {
    let schema = Schema::parse_str(schema_json).map_err(CodecError::InvalidSchema)?;
    // Check that it resolves on its own before keeping it.
    ResolvedSchema::try_from(&schema).map_err(CodecError::InvalidSchema)?;
    let name = schema.name().map(|n| n.fullname(None)).unwrap_or_else(|| "unnamed".to_string());
    let fingerprint = schemas::fingerprint_json(schema_json).map_err(|e| {
        CodecError::InvalidSchema(apache_avro::Error::new(apache_avro::error::Details::DeserializeValue(e)))
    })?;
    // Schemas are few and live as long as the process; cached readers borrow them.
    let schema: &'static Schema = Box::leak(Box::new(schema));
    let name: &'static str = Box::leak(name.into_boxed_str());
    let text: &'static str = Box::leak(schema_json.to_string().into_boxed_str());
    Ok(Known { schema, name, fingerprint, text })
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}
