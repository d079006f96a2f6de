//! Records from a file — CSV with a header row, or JSON lines — as JSON objects typed by an Avro
//! schema (ready for `from_json`), each with the row's raw columns beside it (for a label column the
//! schema does not hold). What `vigil produce --file` and `vigil spec infer --file` read.

use std::path::Path;

use anyhow::Context;
use apache_avro::Schema;
use serde_json::{Map, Value as Json};
use vigil_events::json::from_cells;

/// One row of a file.
pub struct Row {
    /// Its line (1-based, the header being line 1 of a CSV).
    pub line: usize,
    /// The record, typed by the schema (columns it does not name left out).
    pub record: Result<Json, String>,
    /// Every column as written (CSV cells as strings).
    pub raw: Map<String, Json>,
}

/// Reads every row of `path` (`.csv`, else JSON lines; `-` is standard input, JSON lines).
pub fn read(path: &Path, schema: &Schema) -> anyhow::Result<Vec<Row>> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        return read_csv(path, schema);
    }
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parsed = serde_json::from_str::<Json>(line).map_err(|e| format!("not JSON: {e}"));
        let raw = match &parsed {
            Ok(Json::Object(o)) => o.clone(),
            _ => Map::new(),
        };
        let record = parsed.and_then(|j| if j.is_object() { Ok(j) } else { Err("not a JSON object".into()) });
        rows.push(Row { line: i + 1, record, raw });
    }
    Ok(rows)
}

fn read_csv(path: &Path, schema: &Schema) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let cells: Vec<String> = match record {
            Ok(r) => r.iter().map(str::to_string).collect(),
            Err(e) => {
                rows.push(Row { line, record: Err(e.to_string()), raw: Map::new() });
                continue;
            }
        };
        let raw = header.iter().cloned().zip(cells.iter().map(|c| Json::String(c.clone()))).collect();
        let record = from_cells(&header, &cells, schema).map_err(|e| e.to_string());
        rows.push(Row { line, record, raw });
    }
    Ok(rows)
}

/// A label from a raw column: a number (0 / 1), `true` / `false`, or the `positive` value.
pub fn label(raw: &Map<String, Json>, column: &str, positive: Option<&str>) -> Result<f64, String> {
    let v = raw.get(column).ok_or_else(|| format!("no column `{column}`"))?;
    let text = match v {
        Json::String(s) => s.trim().to_string(),
        Json::Bool(b) => return Ok(f64::from(u8::from(*b))),
        Json::Number(n) => n.to_string(),
        other => return Err(format!("label `{other}` is not a value")),
    };
    if let Some(p) = positive {
        return Ok(f64::from(u8::from(text == p)));
    }
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(1.0),
        "false" | "no" => Ok(0.0),
        t => t.parse::<f64>().map_err(|_| format!("label `{text}` is not a number (pass --positive)")),
    }
}

/// A schema from `--schema`: a `.avsc` file, or the full name of one the codec knows.
pub fn schema_arg(codec: &vigil_events::Codec, arg: &str) -> anyhow::Result<String> {
    if arg.ends_with(".avsc") || Path::new(arg).is_file() {
        let text = std::fs::read_to_string(arg).with_context(|| format!("reading {arg}"))?;
        let (name, _) = codec.add_schema(&text)?;
        return Ok(name);
    }
    codec.schema(arg)?;
    Ok(arg.to_string())
}
