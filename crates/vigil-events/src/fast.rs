//! The hot path's decoder: reads only the fields a consumer wants straight from the Avro body, as
//! borrowed [`Field`]s, without building `apache-avro`'s value tree (which allocates a `String` per
//! field name and value). A [`Plan`] is compiled once per (writer schema, reader schema, wanted
//! fields): it walks the writer's fields in order, keeps the wanted ones and skips the rest; a wanted
//! field the writer does not have takes the reader schema's default (schema resolution for records
//! written with an older version).
//!
//! Schemas with named references (`Schema::Ref`) or defaults other than null, booleans, numbers and
//! strings get no plan; callers fall back to [`crate::Codec::decode`]. The codec's tests check that
//! both paths agree.

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;

use crate::error::CodecError;

/// Runs `f` on `n` null fields: on the stack for up to 48 (the usual few dozen fields of a record,
/// read for every record), on the heap beyond.
pub fn with_fields<'a, R>(n: usize, f: impl FnOnce(&mut [Field<'a>]) -> R) -> R {
    let mut stack = [Field::Null; 48];
    if n <= stack.len() { f(&mut stack[..n]) } else { f(&mut vec![Field::Null; n]) }
}

/// One decoded field, borrowed from the record's bytes where it can be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    /// Null (or a null union branch).
    Null,
    /// A boolean.
    Bool(bool),
    /// An int, long, timestamp-millis or date.
    Int(i64),
    /// A float or double.
    Float(f64),
    /// A string or enum symbol.
    Str(&'a str),
    /// Bytes or fixed.
    Bytes(&'a [u8]),
    /// A value of a type the plan does not expose (arrays, maps, records).
    Other,
}

#[derive(Debug, Clone)]
enum Kind {
    Null,
    Bool,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    Str,
    Enum(Vec<String>),
    Fixed(usize),
    Union(Vec<Kind>),
    Array(Box<Kind>),
    Map(Box<Kind>),
    Record(Vec<Kind>),
}

#[derive(Debug, Clone)]
enum Owned {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A compiled reader for one (writer, reader, wanted fields) combination.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Per writer field: its kind and, if wanted, the output slot.
    steps: Vec<(Kind, Option<usize>)>,
    /// Wanted fields the writer lacks: slot and the reader's default.
    defaults: Vec<(usize, Owned)>,
    slots: usize,
}

fn kind(s: &Schema) -> Option<Kind> {
    Some(match s {
        Schema::Null => Kind::Null,
        Schema::Boolean => Kind::Bool,
        Schema::Int | Schema::Date | Schema::TimeMillis => Kind::Int,
        Schema::Long | Schema::TimestampMillis | Schema::LocalTimestampMillis | Schema::TimeMicros => Kind::Long,
        Schema::Float => Kind::Float,
        Schema::Double => Kind::Double,
        Schema::Bytes => Kind::Bytes,
        Schema::String | Schema::Uuid(_) => Kind::Str,
        Schema::Enum(e) => Kind::Enum(e.symbols.clone()),
        Schema::Fixed(f) => Kind::Fixed(f.size),
        Schema::Union(u) => Kind::Union(u.variants().iter().map(kind).collect::<Option<Vec<_>>>()?),
        Schema::Array(a) => Kind::Array(Box::new(kind(&a.items)?)),
        Schema::Map(m) => Kind::Map(Box::new(kind(&m.types)?)),
        Schema::Record(r) => Kind::Record(r.fields.iter().map(|f| kind(&f.schema)).collect::<Option<Vec<_>>>()?),
        _ => return None,
    })
}

fn owned_default(v: &serde_json::Value) -> Option<Owned> {
    Some(match v {
        serde_json::Value::Null => Owned::Null,
        serde_json::Value::Bool(b) => Owned::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Owned::Int(i),
            None => Owned::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => Owned::Str(s.clone()),
        _ => return None,
    })
}

impl Plan {
    /// Compiles a plan; `None` when the schemas use what the fast path does not handle.
    pub fn new<S: AsRef<str>>(writer: &Schema, reader: &Schema, wanted: &[S]) -> Option<Plan> {
        let (Schema::Record(w), Schema::Record(r)) = (writer, reader) else { return None };
        let slot = |name: &str| wanted.iter().position(|x| x.as_ref() == name);
        let mut steps = Vec::with_capacity(w.fields.len());
        for f in &w.fields {
            let s = slot(&f.name);
            // A wanted field whose writer type the reader's does not take plainly: the value-tree
            // decoder resolves it (or says why it cannot).
            if s.is_some() && !field(r, &f.name).is_some_and(|rf| plainly_readable(&f.schema, &rf.schema)) {
                return None;
            }
            steps.push((kind(&f.schema)?, s));
        }
        let mut defaults = Vec::new();
        for (i, name) in wanted.iter().map(AsRef::as_ref).enumerate() {
            if w.fields.iter().any(|f| f.name == name) {
                continue;
            }
            let rf = field(r, name)?;
            defaults.push((i, owned_default(rf.default.as_ref()?)?));
        }
        Some(Plan { steps, defaults, slots: wanted.len() })
    }

    /// Reads the wanted fields of one record body into `out` (cleared first, one entry per wanted
    /// field, in the order they were asked for).
    pub fn read<'a>(&'a self, body: &'a [u8], out: &mut Vec<Field<'a>>) -> Result<(), CodecError> {
        out.clear();
        out.resize(self.slots, Field::Null);
        self.read_into(body, out)
    }

    /// [`Plan::read`] into a slice of exactly one entry per wanted field (a caller's stack).
    pub fn read_into<'a>(&'a self, body: &'a [u8], out: &mut [Field<'a>]) -> Result<(), CodecError> {
        assert_eq!(out.len(), self.slots, "one entry per wanted field");
        for (slot, d) in &self.defaults {
            out[*slot] = match d {
                Owned::Null => Field::Null,
                Owned::Bool(b) => Field::Bool(*b),
                Owned::Int(i) => Field::Int(*i),
                Owned::Float(f) => Field::Float(*f),
                Owned::Str(s) => Field::Str(s),
            };
        }
        let mut cur = Cursor { bytes: body, at: 0 };
        for (k, slot) in &self.steps {
            match slot {
                Some(s) => cur.read(k, &mut out[*s])?,
                None => cur.skip(k)?,
            }
        }
        if cur.at != body.len() {
            return Err(CodecError::SchemaMismatch {
                schema: String::new(),
                detail: format!("{} bytes left over after the record", body.len() - cur.at),
                source: None,
            });
        }
        Ok(())
    }
}

/// Whether a value written as `w` reads as `r` with no more than the promotions the fast path does
/// on its own (numbers widen; a union's non-null branch is the value; strings, bytes and enums
/// read as text or bytes).
fn plainly_readable(w: &Schema, r: &Schema) -> bool {
    fn class(s: &Schema) -> Option<u8> {
        Some(match s {
            Schema::Null => 0,
            Schema::Boolean => 1,
            Schema::Int | Schema::Long | Schema::Date | Schema::TimeMillis | Schema::TimestampMillis => 2,
            Schema::TimeMicros | Schema::TimestampMicros | Schema::LocalTimestampMillis => 2,
            Schema::Float | Schema::Double => 3,
            Schema::String | Schema::Uuid(_) | Schema::Enum(_) => 4,
            Schema::Bytes | Schema::Fixed(_) => 5,
            _ => return None,
        })
    }
    fn branches(s: &Schema) -> Vec<&Schema> {
        match s {
            Schema::Union(u) => u.variants().iter().filter(|v| !matches!(v, Schema::Null)).collect(),
            other => vec![other],
        }
    }
    let readable: Vec<Option<u8>> = branches(r).into_iter().map(class).collect();
    branches(w).into_iter().map(class).all(|c| match c {
        None => false,
        // An int reads as a float or double too.
        Some(2) => readable.iter().any(|r| matches!(r, Some(2 | 3))),
        c => readable.contains(&c),
    })
}

fn field<'r>(r: &'r RecordSchema, name: &str) -> Option<&'r apache_avro::schema::RecordField> {
    r.fields.iter().find(|f| f.name == name)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// Why a body could not be read: small, so that the hot path's results travel in registers; made a
/// [`CodecError`] once, when a record fails.
#[derive(Debug, Clone, Copy)]
enum Bad {
    Truncated,
    LongVarint,
    NegativeLength(i64),
    /// A string field's bytes are not UTF-8 from this offset in the string on.
    NotUtf8(usize),
    EnumIndex(i64),
    UnionBranch(i64),
}

impl From<Bad> for CodecError {
    fn from(bad: Bad) -> CodecError {
        let detail = match bad {
            Bad::Truncated => return CodecError::Truncated { what: "record body ends early".into() },
            Bad::LongVarint => "varint longer than 10 bytes".to_string(),
            Bad::NegativeLength(n) => format!("negative length {n}"),
            Bad::NotUtf8(at) => format!("a string is not UTF-8 (from its byte {at} on)"),
            Bad::EnumIndex(i) => format!("enum index {i} out of range"),
            Bad::UnionBranch(i) => format!("union branch {i} out of range"),
        };
        CodecError::SchemaMismatch { schema: String::new(), detail, source: None }
    }
}

impl<'a> Cursor<'a> {
    #[inline]
    fn long(&mut self) -> Result<i64, Bad> {
        // One byte: a small number or a short string's length, most of a record's varints.
        let first = *self.bytes.get(self.at).ok_or(Bad::Truncated)?;
        self.at += 1;
        let mut value = u64::from(first & 0x7f);
        if first & 0x80 != 0 {
            value = self.long_rest(value)?;
        }
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    /// The varint's bytes after the first, whose 7 bits are `value`.
    fn long_rest(&mut self, mut value: u64) -> Result<u64, Bad> {
        for i in 1..10 {
            let b = *self.bytes.get(self.at).ok_or(Bad::Truncated)?;
            self.at += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Bad::LongVarint)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        let end = self.at.checked_add(n).ok_or(Bad::Truncated)?;
        let s = self.bytes.get(self.at..end).ok_or(Bad::Truncated)?;
        self.at = end;
        Ok(s)
    }

    #[inline]
    fn len(&mut self) -> Result<usize, Bad> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| Bad::NegativeLength(n))
    }

    /// Reads a value of kind `k` into `out`.
    #[inline]
    fn read(&mut self, k: &'a Kind, out: &mut Field<'a>) -> Result<(), Bad> {
        *out = match k {
            Kind::Null => Field::Null,
            Kind::Bool => Field::Bool(self.take(1)?[0] != 0),
            Kind::Int | Kind::Long => Field::Int(self.long()?),
            Kind::Float => {
                let b = self.take(4)?;
                Field::Float(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            Kind::Double => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Field::Float(f64::from_le_bytes(a))
            }
            Kind::Bytes => {
                let n = self.len()?;
                Field::Bytes(self.take(n)?)
            }
            Kind::Str => {
                let n = self.len()?;
                let b = self.take(n)?;
                Field::Str(std::str::from_utf8(b).map_err(|e| Bad::NotUtf8(e.valid_up_to()))?)
            }
            Kind::Enum(symbols) => {
                let i = self.long()?;
                Field::Str(usize::try_from(i).ok().and_then(|i| symbols.get(i)).ok_or(Bad::EnumIndex(i))?)
            }
            Kind::Fixed(n) => Field::Bytes(self.take(*n)?),
            Kind::Union(variants) => {
                let v = self.branch(variants)?;
                return self.read_branch(v, out);
            }
            Kind::Array(_) | Kind::Map(_) | Kind::Record(_) => {
                self.skip(k)?;
                Field::Other
            }
        };
        Ok(())
    }

    /// [`Cursor::read`] of a union's branch, out of line (the recursion would keep the hot path
    /// from being inlined).
    #[inline(never)]
    fn read_branch(&mut self, k: &'a Kind, out: &mut Field<'a>) -> Result<(), Bad> {
        self.read(k, out)
    }

    /// The branch a union value was written with.
    #[inline]
    fn branch(&mut self, variants: &'a [Kind]) -> Result<&'a Kind, Bad> {
        let i = self.long()?;
        usize::try_from(i).ok().and_then(|i| variants.get(i)).ok_or(Bad::UnionBranch(i))
    }

    /// Moves over a value nobody reads: its bounds are checked, its text is not (an unread field's
    /// UTF-8 is not this reader's business, and checking it was most of a record's string work).
    fn skip(&mut self, k: &'a Kind) -> Result<(), Bad> {
        match k {
            Kind::Null => {}
            Kind::Bool => _ = self.take(1)?,
            Kind::Int | Kind::Long | Kind::Enum(_) => _ = self.long()?,
            Kind::Float => _ = self.take(4)?,
            Kind::Double => _ = self.take(8)?,
            Kind::Bytes | Kind::Str => {
                let n = self.len()?;
                self.take(n)?;
            }
            Kind::Fixed(n) => _ = self.take(*n)?,
            Kind::Union(variants) => {
                let v = self.branch(variants)?;
                self.skip(v)?;
            }
            Kind::Array(item) | Kind::Map(item) => {
                let is_map = matches!(k, Kind::Map(_));
                loop {
                    let mut n = self.long()?;
                    if n == 0 {
                        break;
                    }
                    if n < 0 {
                        n = -n;
                        self.long()?; // block size in bytes
                    }
                    for _ in 0..n {
                        if is_map {
                            let klen = self.len()?;
                            self.take(klen)?;
                        }
                        self.skip(item)?;
                    }
                }
            }
            Kind::Record(fields) => {
                for f in fields {
                    self.skip(f)?;
                }
            }
        }
        Ok(())
    }
}
