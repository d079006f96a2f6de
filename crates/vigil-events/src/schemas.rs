//! The Avro schemas shipped in `schemas/` (compiled in), current and historical versions.
//!
//! Current schemas are the reader schemas Vigil decodes with and the writer schemas it encodes with.
//! Historical versions (`schemas/history/`) are kept so that records written with them are still
//! recognised by their fingerprint and resolved to the current version (BACKWARD_TRANSITIVE).

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;

/// The eight bytes of a schema's CRC-64-AVRO (Rabin) fingerprint, in the order single-object
/// encoding writes them (as `apache-avro` computes them; `fastavro.schema.fingerprint` returns the same
/// bytes as hex).
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
    ("Score.avsc", 2, true, include_str!("../../../schemas/Score.avsc")),
    ("history/Score.v1.avsc", 1, false, include_str!("../../../schemas/history/Score.v1.avsc")),
    ("Label.avsc", 2, true, include_str!("../../../schemas/Label.avsc")),
    ("history/Label.v1.avsc", 1, false, include_str!("../../../schemas/history/Label.v1.avsc")),
    ("ModelCheckpoint.avsc", 1, true, include_str!("../../../schemas/ModelCheckpoint.avsc")),
    ("Alert.avsc", 1, true, include_str!("../../../schemas/Alert.avsc")),
    ("DriftReport.avsc", 1, true, include_str!("../../../schemas/DriftReport.avsc")),
    ("Transaction.avsc", 2, true, include_str!("../../../schemas/Transaction.avsc")),
    ("history/Transaction.v1.avsc", 1, false, include_str!("../../../schemas/history/Transaction.v1.avsc")),
    ("TextEvent.avsc", 1, true, include_str!("../../../schemas/TextEvent.avsc")),
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
                let fingerprint = fingerprint(&schema);
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

/// The fingerprint of `schema` (CRC-64-AVRO of its parsing canonical form).
pub fn fingerprint(schema: &Schema) -> Fingerprint {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    out
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
                        if !f.get("doc").is_some() && !record_doc {
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
