//! Replay of a CSV dataset in file order as input records plus their labels, through a mapping the
//! user gives: which column is the label (and which value of it is positive), which column holds an
//! id, which columns to leave out. Records are JSON objects (for an input topic with
//! `format = "json"`), or, with the user's Avro schema, records of that schema typed column by
//! column (`vigil_events::json::from_cells`), whose id column is the event id as it is.

use std::path::Path;

use serde_json::{Map, Number, Value as Json};

/// How CSV rows become records and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// The label column.
    pub label_column: String,
    /// The label value that means positive (1.0); when `None`, the label column is a number.
    pub positive: Option<String>,
    /// A column holding a unique id; when `None`, ids are `<prefix>-<row>`.
    pub id_column: Option<String>,
    /// Columns not copied into the record.
    pub drop: Vec<String>,
    /// Prefix of generated ids.
    pub id_prefix: String,
    /// The records' Avro schema, when they are written as Avro.
    pub schema: Option<apache_avro::Schema>,
}

/// One replayed row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The event id (also the record's `event_id` field).
    pub event_id: String,
    /// The record: every kept column, numbers as numbers.
    pub record: Json,
    /// The label.
    pub label: f64,
}

/// Reads `path` and maps every row.
pub fn load(path: &Path, m: &Mapping) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = split_csv(lines.next().ok_or_else(|| format!("{}: empty file", path.display()))?);
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{}: no column `{name}` in {header:?}", path.display()))
    };
    let label_at = find(&m.label_column)?;
    let id_at = m.id_column.as_deref().map(find).transpose()?;
    for d in &m.drop {
        find(d)?;
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let cols = split_csv(line);
        if cols.len() != header.len() {
            return Err(format!(
                "{}: row {} has {} columns, the header {}",
                path.display(),
                n + 1,
                cols.len(),
                header.len()
            ));
        }
        let label = match &m.positive {
            Some(p) => f64::from(u8::from(cols[label_at] == *p)),
            None => cols[label_at].parse().map_err(|_| {
                format!("{}: row {}: label `{}` is not a number", path.display(), n + 1, cols[label_at])
            })?,
        };
        if let Some(schema) = &m.schema {
            let record = vigil_events::json::from_cells(&header, &cols, schema)
                .map_err(|e| format!("{}: row {}: {e}", path.display(), n + 1))?;
            let event_id = match id_at {
                Some(i) => cols[i].clone(),
                None => format!("{}-{n}", m.id_prefix),
            };
            rows.push(Row { event_id, record, label });
            continue;
        }
        let event_id = match id_at {
            Some(i) => format!("{}-{}", m.id_prefix, cols[i]),
            None => format!("{}-{n}", m.id_prefix),
        };
        let mut record = Map::new();
        record.insert("event_id".into(), Json::String(event_id.clone()));
        for (i, (h, v)) in header.iter().zip(&cols).enumerate() {
            if i == label_at || Some(i) == id_at || m.drop.contains(h) {
                continue;
            }
            let value = v
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Json::Number)
                .unwrap_or_else(|| Json::String(v.clone()));
            record.insert(h.clone(), value);
        }
        rows.push(Row { event_id, record: Json::Object(record), label });
    }
    Ok(rows)
}

/// Splits one CSV line (RFC 4180 quotes, no embedded newlines).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_rows_with_quotes_numbers_and_labels() {
        let dir = std::env::temp_dir().join(format!("vigil-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.csv");
        std::fs::write(&p, "\"ID\",\"a\",\"b, c\",\"cls\"\n7,1e+05,\"x, \"\"y\"\"\",UP\n8,0.5,z,DOWN\n").unwrap();
        let m = Mapping {
            label_column: "cls".into(),
            positive: Some("UP".into()),
            id_column: Some("ID".into()),
            drop: vec![],
            id_prefix: "r".into(),
            schema: None,
        };
        let rows = load(&p, &m).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].event_id, "r-7");
        assert_eq!(rows[0].label, 1.0);
        assert_eq!(rows[1].label, 0.0);
        assert_eq!(rows[0].record["a"], 100000.0);
        assert_eq!(rows[0].record["b, c"], "x, \"y\"");
        assert!(rows[0].record.get("cls").is_none() && rows[0].record.get("ID").is_none());
        let bad = Mapping { label_column: "nope".into(), ..m };
        assert!(load(&p, &bad).unwrap_err().contains("no column `nope`"));
    }

    #[test]
    fn replays_the_shared_datasets_when_present() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
        if !data.exists() {
            eprintln!("skipping: {} is absent", data.display());
            return;
        }
        let elec = load(
            &data.join("elec2.csv"),
            &Mapping {
                label_column: "class".into(),
                positive: Some("UP".into()),
                id_column: None,
                drop: vec!["Date".into()],
                id_prefix: "elec2".into(),
                schema: None,
            },
        )
        .unwrap();
        assert_eq!(elec.len(), 45_312);
        assert_eq!(elec.iter().filter(|r| r.label == 1.0).count(), 19_237);
        let credit = load(
            &data.join("credit-default.csv"),
            &Mapping {
                label_column: "default.payment.next.month".into(),
                positive: None,
                id_column: Some("ID".into()),
                drop: vec![],
                id_prefix: "credit".into(),
                schema: None,
            },
        )
        .unwrap();
        assert_eq!(credit.len(), 30_000);
        assert_eq!(credit.iter().filter(|r| r.label == 1.0).count(), 6_636);
        assert_eq!(credit[0].record["LIMIT_BAL"], 20000.0);
    }
}
