//! The Avro schemas shipped in `schemas/` (compiled in), current and historical versions.
//!
//! Current schemas are the reader schemas Vigil decodes with and the writer schemas it encodes with.
//! Historical versions (`schemas/history/`) are kept so that records written with them are still
//! recognised by their fingerprint and resolved to the current version (BACKWARD_TRANSITIVE).

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::Schema;
use serde_json::Value as Json;

/// The eight bytes of a schema's CRC-64-AVRO (Rabin) fingerprint, little-endian, as single-object
/// encoding writes them; `fastavro.schema.fingerprint` returns the same bytes as hex.
pub type Fingerprint = [u8; 8];

/// A schema shipped with Vigil.
#[derive(Debug)]
pub struct Shipped {
    /// Full name, e.g. `dev.vigil.events.Score`.
    pub name: String,
    /// Version number: 1 for the first, counting up; the current one has the highest.
    pub version: u32,
    /// Whether this is the current version.
    pub current: bool,
    /// The parsed schema.
    pub schema: Schema,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// The schema's JSON text as shipped.
    pub text: &'static str,
}

/// (file, version, current, text) of every shipped schema.
const FILES: &[(&str, u32, bool, &str)] = &[
    ("Score.avsc", 3, true, include_str!("../../../schemas/Score.avsc")),
    ("history/Score.v2.avsc", 2, false, include_str!("../../../schemas/history/Score.v2.avsc")),
    ("history/Score.v1.avsc", 1, false, include_str!("../../../schemas/history/Score.v1.avsc")),
    ("Label.avsc", 2, true, include_str!("../../../schemas/Label.avsc")),
    ("history/Label.v1.avsc", 1, false, include_str!("../../../schemas/history/Label.v1.avsc")),
    ("ModelCheckpoint.avsc", 1, true, include_str!("../../../schemas/ModelCheckpoint.avsc")),
    ("Alert.avsc", 3, true, include_str!("../../../schemas/Alert.avsc")),
    ("history/Alert.v2.avsc", 2, false, include_str!("../../../schemas/history/Alert.v2.avsc")),
    ("history/Alert.v1.avsc", 1, false, include_str!("../../../schemas/history/Alert.v1.avsc")),
    ("DriftReport.avsc", 1, true, include_str!("../../../schemas/DriftReport.avsc")),
    ("Transaction.avsc", 2, true, include_str!("../../../schemas/Transaction.avsc")),
    ("history/Transaction.v1.avsc", 1, false, include_str!("../../../schemas/history/Transaction.v1.avsc")),
    ("TextEvent.avsc", 1, true, include_str!("../../../schemas/TextEvent.avsc")),
    ("Experiment.avsc", 1, true, include_str!("../../../schemas/Experiment.avsc")),
];

/// Full names of Vigil's own event schemas.
pub mod names {
    /// `Score`.
    pub const SCORE: &str = "dev.vigil.events.Score";
    /// `Label`.
    pub const LABEL: &str = "dev.vigil.events.Label";
    /// `ModelCheckpoint`.
    pub const MODEL_CHECKPOINT: &str = "dev.vigil.events.ModelCheckpoint";
    /// `Alert`.
    pub const ALERT: &str = "dev.vigil.events.Alert";
    /// `DriftReport`.
    pub const DRIFT_REPORT: &str = "dev.vigil.events.DriftReport";
    /// `Experiment`.
    pub const EXPERIMENT: &str = "dev.vigil.events.Experiment";
    /// The demo's card `Transaction`.
    pub const TRANSACTION: &str = "dev.vigil.demo.Transaction";
    /// The demo's `TextEvent`.
    pub const TEXT_EVENT: &str = "dev.vigil.demo.TextEvent";
}

/// Every shipped schema, parsed once. The parsed schemas live for the whole process (they are
/// referenced by cached readers).
pub fn shipped() -> &'static [Shipped] {
    static ALL: OnceLock<Vec<Shipped>> = OnceLock::new();
    ALL.get_or_init(|| {
        FILES
            .iter()
            .map(|(file, version, current, text)| {
                // The shipped files are checked by this crate's tests; a parse failure is a build defect.
                let schema = Schema::parse_str(text).unwrap_or_else(|e| panic!("schemas/{file} does not parse: {e}"));
                let name = schema.name().map(|n| n.fullname(None)).unwrap_or_default();
                let fingerprint = fingerprint_json(text).unwrap_or_else(|e| panic!("schemas/{file}: {e}"));
                Shipped { name, version: *version, current: *current, schema, fingerprint, text }
            })
            .collect()
    })
}

/// The current shipped schema called `name`.
pub fn current(name: &str) -> Option<&'static Shipped> {
    static BY_NAME: OnceLock<HashMap<&'static str, &'static Shipped>> = OnceLock::new();
    BY_NAME
        .get_or_init(|| shipped().iter().filter(|s| s.current).map(|s| (s.name.as_str(), s)).collect())
        .get(name)
        .copied()
}

/// The fingerprint of a schema given as JSON text: CRC-64-AVRO of its Parsing Canonical Form.
///
/// The canonical form is computed here, per the Avro specification, rather than taken from
/// `apache-avro`: its 0.22 release keeps logical types as `{"type":"long"}` where the specification,
/// Java, fastavro and every other implementation reduce them to `"long"` (apache/avro-rs#61), which
/// would give our timestamped schemas fingerprints no other client recognises.
pub fn fingerprint_json(schema_json: &str) -> Result<Fingerprint, String> {
    let json: Json = serde_json::from_str(schema_json).map_err(|e| format!("schema is not JSON: {e}"))?;
    Ok(rabin(canonical_form(&json).as_bytes()))
}

/// The Parsing Canonical Form of a schema (Avro specification, "Parsing Canonical Form for Schemas").
pub fn canonical_form(schema: &Json) -> String {
    let mut out = String::new();
    pcf(schema, None, &mut out);
    out
}

const PRIMITIVES: &[&str] = &["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

fn quoted(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\"")));
}

fn fullname(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        _ if name.contains('.') => name.to_string(),
        Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

fn pcf(schema: &Json, ns: Option<&str>, out: &mut String) {
    match schema {
        Json::String(s) if PRIMITIVES.contains(&s.as_str()) => quoted(s, out),
        Json::String(s) => quoted(&fullname(s, ns), out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                pcf(item, ns, out);
            }
            out.push(']');
        }
        Json::Object(o) => {
            let ty = match o.get("type") {
                Some(Json::String(t)) => t.as_str(),
                Some(nested) => return pcf(nested, ns, out),
                None => return out.push_str("null"),
            };
            match ty {
                "record" | "error" | "enum" | "fixed" => {
                    let name = o.get("name").and_then(Json::as_str).unwrap_or_default();
                    let own_ns = o.get("namespace").and_then(Json::as_str).or(ns);
                    let full = fullname(name, own_ns);
                    let inner_ns = full.rsplit_once('.').map(|(n, _)| n);
                    out.push_str("{\"name\":");
                    quoted(&full, out);
                    out.push_str(",\"type\":");
                    quoted(if ty == "error" { "record" } else { ty }, out);
                    match ty {
                        "enum" => {
                            out.push_str(",\"symbols\":[");
                            let symbols = o.get("symbols").and_then(Json::as_array).cloned().unwrap_or_default();
                            for (i, sym) in symbols.iter().enumerate() {
                                if i > 0 {
                                    out.push(',');
                                }
                                quoted(sym.as_str().unwrap_or_default(), out);
                            }
                            out.push(']');
                        }
                        "fixed" => {
                            out.push_str(",\"size\":");
                            out.push_str(&o.get("size").and_then(Json::as_u64).unwrap_or(0).to_string());
                        }
                        _ => {
                            out.push_str(",\"fields\":[");
                            let fields = o.get("fields").and_then(Json::as_array).cloned().unwrap_or_default();
                            for (i, f) in fields.iter().enumerate() {
                                if i > 0 {
                                    out.push(',');
                                }
                                out.push_str("{\"name\":");
                                quoted(f.get("name").and_then(Json::as_str).unwrap_or_default(), out);
                                out.push_str(",\"type\":");
                                pcf(f.get("type").unwrap_or(&Json::Null), inner_ns, out);
                                out.push('}');
                            }
                            out.push(']');
                        }
                    }
                    out.push('}');
                }
                "array" => {
                    out.push_str("{\"type\":\"array\",\"items\":");
                    pcf(o.get("items").unwrap_or(&Json::Null), ns, out);
                    out.push('}');
                }
                "map" => {
                    out.push_str("{\"type\":\"map\",\"values\":");
                    pcf(o.get("values").unwrap_or(&Json::Null), ns, out);
                    out.push('}');
                }
                other => pcf(&Json::String(other.to_string()), ns, out),
            }
        }
        other => out.push_str(&other.to_string()),
    }
}

/// CRC-64-AVRO (Rabin) fingerprint, little-endian, as the Avro specification defines it.
pub fn rabin(bytes: &[u8]) -> Fingerprint {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    static TABLE: OnceLock<[u64; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut fp = i as u64;
            for _ in 0..8 {
                fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            }
            *slot = fp;
        }
        t
    });
    let mut fp = EMPTY;
    for &b in bytes {
        fp = (fp >> 8) ^ table[((fp ^ u64::from(b)) & 0xff) as usize];
    }
    fp.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_schema_parses_and_has_a_unique_fingerprint() {
        let all = shipped();
        assert_eq!(all.len(), FILES.len());
        let mut seen = std::collections::HashSet::new();
        for s in all {
            assert!(!s.name.is_empty());
            assert!(seen.insert(s.fingerprint), "duplicate fingerprint for {}", s.name);
        }
        for name in [
            names::SCORE,
            names::LABEL,
            names::MODEL_CHECKPOINT,
            names::ALERT,
            names::DRIFT_REPORT,
            names::TRANSACTION,
            names::TEXT_EVENT,
        ] {
            assert!(current(name).is_some(), "{name} is not shipped");
        }
    }

    #[test]
    fn every_field_of_a_current_schema_is_documented() {
        for s in shipped().iter().filter(|s| s.current) {
            let json: serde_json::Value = serde_json::from_str(s.text).unwrap();
            let mut undocumented = Vec::new();
            walk_fields(&json, &mut undocumented);
            assert!(undocumented.is_empty(), "{}: fields without doc: {undocumented:?}", s.name);
        }
    }

    fn walk_fields(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(o) => {
                if o.get("type").and_then(|t| t.as_str()) == Some("record") {
                    // Small helper records (TopicOffset) document themselves at record level.
                    let record_doc = o.contains_key("doc");
                    for f in o.get("fields").and_then(|f| f.as_array()).into_iter().flatten() {
                        if f.get("doc").is_none() && !record_doc {
                            out.push(f["name"].as_str().unwrap_or("?").to_string());
                        }
                        walk_fields(&f["type"], out);
                    }
                } else {
                    for val in o.values() {
                        walk_fields(val, out);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk_fields(x, out)),
            _ => {}
        }
    }

    #[test]
    fn fingerprints_follow_the_specification() {
        // Without logical types the canonical form agrees with apache-avro's.
        let plain = r#"{"type":"record","name":"test","fields":[{"name":"a","type":"long","doc":"x"},{"name":"b","type":"string"}]}"#;
        let parsed = Schema::parse_str(plain).unwrap();
        let theirs = parsed.fingerprint::<apache_avro::rabin::Rabin>().bytes;
        assert_eq!(fingerprint_json(plain).unwrap().to_vec(), theirs);
        assert_eq!(fingerprint_json(plain).unwrap(), [232, 198, 194, 12, 97, 95, 44, 71]);
        // The specification's example value for "int" (as serde_avro_fast documents it).
        assert_eq!(crate::error::hex(&rabin(b"\"int\"")), "8f5c393f1ad57572");
        // Logical types reduce to their primitive.
        let ts = r#"{"type":"record","name":"r","namespace":"n","fields":[{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}]}"#;
        assert_eq!(
            canonical_form(&serde_json::from_str(ts).unwrap()),
            r#"{"name":"n.r","type":"record","fields":[{"name":"t","type":"long"},{"name":"e","type":{"name":"n.E","type":"enum","symbols":["A"]}}]}"#
        );
    }

    #[test]
    fn versions_count_up_and_one_is_current_per_name() {
        let mut by_name: HashMap<&str, Vec<&Shipped>> = HashMap::new();
        for s in shipped() {
            by_name.entry(&s.name).or_default().push(s);
        }
        for (name, versions) in by_name {
            let max = versions.iter().map(|s| s.version).max().unwrap();
            let current: Vec<_> = versions.iter().filter(|s| s.current).collect();
            assert_eq!(current.len(), 1, "{name}");
            assert_eq!(current[0].version, max, "{name}: the current version must be the newest");
        }
    }
}
