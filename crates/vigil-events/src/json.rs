//! JSON records ↔ Avro values, guided by a schema.
//!
//! Input (`vigil produce`, JSON input topics) accepts what people write by hand: a plain value for
//! a union (`"device_id": "d1"` or `null`) as well as Avro's JSON encoding (`{"string": "d1"}`),
//! missing fields that have a default, integers for doubles, enum symbols as strings, and `bytes` as
//! Avro's JSON encoding (one character U+0000..U+00FF per byte). Output (`vigil tail`) writes plain
//! JSON: unions as their value, enums as strings, timestamps as epoch milliseconds, bytes as Avro's
//! JSON encoding or as a short summary when long.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, RecordSchema, ResolvedSchema, UnionSchema};
use apache_avro::types::Value;
use serde_json::{Map, Value as Json};

use crate::error::CodecError;

/// How `bytes` values are written to JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BytesOut {
    /// Avro's JSON encoding of the whole value.
    Full,
    /// Values longer than this many bytes become `"<N bytes>"`.
    SummaryOver(usize),
}

/// Converts a JSON record to an Avro value of `schema` (a record schema of the codec).
pub fn from_json(json: &Json, schema: &Schema) -> Result<Value, CodecError> {
    let resolved = ResolvedSchema::try_from(schema).map_err(CodecError::InvalidSchema)?;
    let names: HashMap<Name, &Schema> = resolved.get_names().iter().map(|(k, v)| (k.clone(), *v)).collect();
    let top = schema.name().map(|n| n.fullname(None)).unwrap_or_default();
    let ctx = Ctx { names: &names, top: &top };
    ctx.convert(json, schema, &mut "$".to_string())
}

struct Ctx<'a> {
    names: &'a HashMap<Name, &'a Schema>,
    top: &'a str,
}

impl Ctx<'_> {
    fn err(&self, path: &str, reason: impl Into<String>) -> CodecError {
        CodecError::Json { schema: self.top.to_string(), path: path.to_string(), reason: reason.into() }
    }

    fn convert(&self, json: &Json, schema: &Schema, path: &mut String) -> Result<Value, CodecError> {
        match schema {
            Schema::Ref { name } => match self.names.get(name) {
                Some(s) => self.convert(json, s, path),
                None => Err(self.err(path, format!("schema refers to unknown type {name}"))),
            },
            Schema::Null => match json {
                Json::Null => Ok(Value::Null),
                other => Err(self.err(path, format!("expected null, found {}", kind(other)))),
            },
            Schema::Boolean => json.as_bool().map(Value::Boolean).ok_or_else(|| self.expected(path, "a boolean", json)),
            Schema::Int => self.int(json, path).map(Value::Int),
            Schema::Long => self.long(json, path).map(Value::Long),
            Schema::TimestampMillis => self.long(json, path).map(Value::TimestampMillis),
            Schema::TimestampMicros => self.long(json, path).map(Value::TimestampMicros),
            Schema::Date => self.int(json, path).map(Value::Date),
            Schema::Float => {
                json.as_f64().map(|f| Value::Float(f as f32)).ok_or_else(|| self.expected(path, "a number", json))
            }
            Schema::Double => json.as_f64().map(Value::Double).ok_or_else(|| self.expected(path, "a number", json)),
            Schema::String | Schema::Uuid(_) => {
                json.as_str().map(|s| Value::String(s.to_string())).ok_or_else(|| self.expected(path, "a string", json))
            }
            Schema::Bytes => match json {
                Json::String(s) => avro_json_bytes(s).map(Value::Bytes).map_err(|r| self.err(path, r)),
                other => Err(self.expected(path, "a string of bytes (Avro JSON encoding)", other)),
            },
            Schema::Enum(e) => match json.as_str() {
                Some(sym) => match e.symbols.iter().position(|s| s == sym) {
                    Some(i) => Ok(Value::Enum(i as u32, sym.to_string())),
                    None => Err(self.err(path, format!("`{sym}` is not one of {}", e.symbols.join(", ")))),
                },
                None => Err(self.expected(path, "an enum symbol", json)),
            },
            Schema::Array(a) => match json {
                Json::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("[{i}]"));
                        out.push(self.convert(item, &a.items, path)?);
                        path.truncate(len);
                    }
                    Ok(Value::Array(out))
                }
                other => Err(self.expected(path, "an array", other)),
            },
            Schema::Map(m) => match json {
                Json::Object(o) => {
                    let mut out = HashMap::with_capacity(o.len());
                    for (k, v) in o {
                        let len = path.len();
                        path.push_str(&format!(".{k}"));
                        out.insert(k.clone(), self.convert(v, &m.types, path)?);
                        path.truncate(len);
                    }
                    Ok(Value::Map(out))
                }
                other => Err(self.expected(path, "an object", other)),
            },
            Schema::Union(u) => self.union(json, u, path),
            Schema::Record(r) => self.record(json, r, path),
            other => Err(self.err(path, format!("schema type {other:?} is not supported in JSON input"))),
        }
    }

    fn record(&self, json: &Json, r: &RecordSchema, path: &mut String) -> Result<Value, CodecError> {
        let Json::Object(obj) = json else { return Err(self.expected(path, "an object", json)) };
        if let Some(unknown) = obj.keys().find(|k| !r.fields.iter().any(|f| &f.name == *k)) {
            return Err(self.err(path, format!("unknown field `{unknown}`")));
        }
        let mut fields = Vec::with_capacity(r.fields.len());
        for f in &r.fields {
            let len = path.len();
            path.push('.');
            path.push_str(&f.name);
            let value = match obj.get(&f.name) {
                Some(v) => self.convert(v, &f.schema, path)?,
                None => match &f.default {
                    Some(d) => self.convert(d, &f.schema, path)?,
                    None => return Err(self.err(path, "missing field without a default")),
                },
            };
            path.truncate(len);
            fields.push((f.name.clone(), value));
        }
        Ok(Value::Record(fields))
    }

    fn union(&self, json: &Json, u: &UnionSchema, path: &mut String) -> Result<Value, CodecError> {
        let variants = u.variants();
        if json.is_null()
            && let Some(i) = variants.iter().position(|s| matches!(s, Schema::Null))
        {
            return Ok(Value::Union(i as u32, Box::new(Value::Null)));
        }
        // Avro's JSON encoding: {"<type name>": value}.
        if let Json::Object(o) = json
            && o.len() == 1
        {
            let (tag, inner) = o.iter().next().map(|(k, v)| (k.as_str(), v)).unwrap_or(("", json));
            if let Some(i) = variants.iter().position(|s| type_name(s) == tag) {
                let v = self.convert(inner, &variants[i], path)?;
                return Ok(Value::Union(i as u32, Box::new(v)));
            }
        }
        let mut last = None;
        for (i, s) in variants.iter().enumerate() {
            if matches!(s, Schema::Null) {
                continue;
            }
            match self.convert(json, s, path) {
                Ok(v) => return Ok(Value::Union(i as u32, Box::new(v))),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| self.expected(path, "a value of the union", json)))
    }

    fn int(&self, json: &Json, path: &str) -> Result<i32, CodecError> {
        json.as_i64().and_then(|v| i32::try_from(v).ok()).ok_or_else(|| self.expected(path, "a 32-bit integer", json))
    }

    fn long(&self, json: &Json, path: &str) -> Result<i64, CodecError> {
        json.as_i64().ok_or_else(|| self.expected(path, "an integer", json))
    }

    fn expected(&self, path: &str, what: &str, found: &Json) -> CodecError {
        self.err(path, format!("expected {what}, found {}", kind(found)))
    }
}

fn type_name(s: &Schema) -> String {
    match s {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int | Schema::Date => "int".into(),
        Schema::Long | Schema::TimestampMillis | Schema::TimestampMicros => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes => "bytes".into(),
        Schema::String | Schema::Uuid(_) => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        other => other.name().map(|n| n.fullname(None)).unwrap_or_default(),
    }
}

fn kind(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Avro's JSON encoding of bytes: each character is one byte (U+0000..U+00FF).
fn avro_json_bytes(s: &str) -> Result<Vec<u8>, String> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("character {c:?} is not a byte (U+0000..U+00FF)")))
        .collect()
}

/// Converts an Avro value to plain JSON (see the module docs).
pub fn to_json(value: &Value, bytes: BytesOut) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Json::from(*i),
        Value::Long(l)
        | Value::TimestampMillis(l)
        | Value::TimestampMicros(l)
        | Value::TimestampNanos(l)
        | Value::LocalTimestampMillis(l)
        | Value::LocalTimestampMicros(l)
        | Value::LocalTimestampNanos(l)
        | Value::TimeMicros(l) => Json::from(*l),
        Value::Float(f) => serde_json::Number::from_f64(f64::from(*f)).map(Json::Number).unwrap_or(Json::Null),
        Value::Double(f) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Uuid(u) => Json::String(u.to_string()),
        Value::Bytes(b) | Value::Fixed(_, b) => match bytes {
            BytesOut::SummaryOver(n) if b.len() > n => Json::String(format!("<{} bytes>", b.len())),
            _ => Json::String(b.iter().map(|&x| char::from(x)).collect()),
        },
        Value::Union(_, inner) => to_json(inner, bytes),
        Value::Array(items) => Json::Array(items.iter().map(|v| to_json(v, bytes)).collect()),
        Value::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Json::Object(keys.into_iter().map(|k| (k.clone(), to_json(&m[k], bytes))).collect::<Map<_, _>>())
        }
        Value::Record(fields) => {
            Json::Object(fields.iter().map(|(k, v)| (k.clone(), to_json(v, bytes))).collect::<Map<_, _>>())
        }
        other => Json::String(format!("{other:?}")),
    }
}

/// A JSON record of `schema` (a record schema) from a table row's text cells, typed by the schema:
/// a column named like a field gives its value (numbers, booleans — `true`/`false`/`1`/`0` — and
/// strings as the field's type asks; an empty cell is null where the field may be null, and absent
/// otherwise, so that its default applies); columns the schema does not name are left out. Convert
/// the result with [`from_json`], which checks it against the schema.
pub fn from_cells(header: &[String], cells: &[String], schema: &Schema) -> Result<Json, CodecError> {
    let Schema::Record(r) = schema else {
        return Err(CodecError::Json { schema: String::new(), path: "$".into(), reason: "not a record schema".into() });
    };
    let top = schema.name().map(|n| n.fullname(None)).unwrap_or_default();
    let mut out = Map::new();
    for f in &r.fields {
        let Some(cell) = header.iter().position(|h| h == &f.name).and_then(|i| cells.get(i)) else { continue };
        let cell = cell.trim();
        let (nullable, ty) = match &f.schema {
            Schema::Union(u) => (
                u.variants().iter().any(|s| matches!(s, Schema::Null)),
                u.variants().iter().find(|s| !matches!(s, Schema::Null)).unwrap_or(&Schema::Null),
            ),
            other => (false, other),
        };
        if cell.is_empty() && !matches!(ty, Schema::String | Schema::Uuid(_)) {
            if nullable {
                out.insert(f.name.clone(), Json::Null);
            }
            continue;
        }
        let value = typed_cell(cell, ty).ok_or_else(|| CodecError::Json {
            schema: top.clone(),
            path: format!("$.{}", f.name),
            reason: format!("`{cell}` is not a {}", type_word(ty)),
        })?;
        out.insert(f.name.clone(), value);
    }
    Ok(Json::Object(out))
}

fn typed_cell(cell: &str, ty: &Schema) -> Option<Json> {
    Some(match ty {
        Schema::Int | Schema::Long | Schema::Date | Schema::TimestampMillis | Schema::TimestampMicros => {
            match cell.parse::<i64>() {
                Ok(i) => Json::from(i),
                // Integral values written as decimals (`3.0`, `1e3`) are integers too.
                Err(_) => cell
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| Json::from(f as i64))?,
            }
        }
        Schema::Float | Schema::Double => Json::from(cell.parse::<f64>().ok()?),
        Schema::Boolean => match cell.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Json::Bool(true),
            "false" | "0" | "no" => Json::Bool(false),
            _ => return None,
        },
        _ => Json::String(cell.to_string()),
    })
}

fn type_word(ty: &Schema) -> &'static str {
    match ty {
        Schema::Int | Schema::Long | Schema::Date | Schema::TimestampMillis | Schema::TimestampMicros => "whole number",
        Schema::Float | Schema::Double => "number",
        Schema::Boolean => "boolean",
        _ => "value of its field's type",
    }
}
