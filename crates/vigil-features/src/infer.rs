//! A feature spec inferred from a sample of records (the "data preparation" step of automated ML),
//! written as commented TOML that says why each field became what it is:
//!
//! - the label, identifiers (a name like `id` / `*_id` with mostly distinct values, or any string
//!   that is nearly unique) and time columns (timestamps, dates, `*_time` / `*_at` longs) are left
//!   out;
//! - booleans and numbers are numeric features, standardised with the sample's mean and standard
//!   deviation; a non-negative number with a heavy right tail is log-transformed first; integers with
//!   a handful of values are categories instead; constant fields are left out;
//! - strings and enums are one-hot categories when they have few values, hashed into buckets when
//!   they have many; free text (several words per value) is left out of a tabular model, or becomes
//!   the hashed-text input when it is the only feature;
//! - missing values are imputed at the mean (numbers) or go to the "other" slot (categories).
//!
//! Pure: the caller reads the sample (a CSV or JSON-lines file, or a topic) into Avro values.

use std::collections::HashMap;
use std::fmt::Write;

use apache_avro::Schema;
use apache_avro::types::Value;

use crate::spec::{Categorical, Encoding, FeatureSpec, Graph, Missing, Numeric, Text, Transform};
use vigil_events::Field;

/// What the caller knows about the sample.
#[derive(Debug, Clone, Default)]
pub struct InferOptions {
    /// The model's name.
    pub model: String,
    /// The label column (otherwise a field named like one: `label`, `target`, `class`, …).
    pub label: Option<String>,
    /// More fields to leave out.
    pub leave_out: Vec<String>,
    /// Where the sample came from, for the header comment.
    pub source: String,
}

/// The spec, and its TOML with a comment per decision.
#[derive(Debug, Clone)]
pub struct Inferred {
    /// The spec.
    pub spec: FeatureSpec,
    /// Commented TOML that parses to `spec`.
    pub toml: String,
}

/// Integers with at most this many distinct values are categories.
const FEW_INTEGERS: usize = 12;
/// Strings with at most this many distinct values are one-hot; more are hashed.
const FEW_STRINGS: usize = 30;
/// A field whose values are at least this share distinct is an identifier (when named like one).
const ID_DISTINCT: f64 = 0.9;
/// A string field whose values are at least this share distinct is an identifier whatever its name.
const UNIQUE: f64 = 0.98;
/// Skewness beyond which a non-negative number is log-transformed.
const HEAVY_TAIL: f64 = 1.0;
/// Mean words per value from which a string is free text.
const TEXT_WORDS: f64 = 4.0;
/// Distinct values remembered per field.
const DISTINCT_CAP: usize = 100_000;

/// Infers a spec for records of `schema` from `rows` (decoded records of that schema).
pub fn infer(schema: &Schema, rows: &[Value], opts: &InferOptions) -> Result<Inferred, String> {
    let Schema::Record(r) = schema else { return Err("the schema is not a record".into()) };
    if rows.is_empty() {
        return Err("the sample is empty".into());
    }
    let full_name = schema.name().map(|n| n.fullname(None)).unwrap_or_default();
    let label = opts.label.clone().or_else(|| {
        r.fields.iter().map(|f| f.name.clone()).find(|n| LABEL_NAMES.contains(&n.to_ascii_lowercase().as_str()))
    });
    let mut columns: Vec<Column> = r.fields.iter().map(|f| Column::new(&f.name, &f.schema)).collect();
    for row in rows {
        let Value::Record(fields) = row else { continue };
        for (c, (_, v)) in columns.iter_mut().zip(fields) {
            c.add(Field::of(v));
        }
    }
    let mut decided: Vec<Decision> = Vec::new();
    for c in &columns {
        let left_out = if label.as_deref() == Some(c.name.as_str()) {
            Some("the label: what the model predicts".to_string())
        } else if opts.leave_out.contains(&c.name) {
            Some("left out as asked".to_string())
        } else {
            None
        };
        decided.push(match left_out {
            Some(why) => Decision::Out(c.name.clone(), why),
            None => c.decide(rows.len()),
        });
    }
    let spec = assemble(&opts.model, &full_name, &mut decided);
    let problems = spec.validate();
    if !problems.is_empty() {
        return Err(format!("no usable features in the sample: {}", problems.join("; ")));
    }
    let toml = render(&spec, &decided, rows.len(), opts, label.as_deref());
    Ok(Inferred { spec, toml })
}

/// Names a label column usually has.
const LABEL_NAMES: &[&str] = &["label", "target", "class", "y", "is_fraud", "fraud", "default", "churn", "outcome"];

/// What became of a field.
#[derive(Debug, Clone)]
enum Decision {
    Numeric(Numeric, String),
    Categorical(Categorical, String),
    Text(Text, String),
    Out(String, String),
}

/// What a sample says of one field.
struct Column {
    name: String,
    kind: Kind,
    nulls: usize,
    numbers: Vec<f64>,
    integral: bool,
    counts: HashMap<String, usize>,
    words: usize,
    strings: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Number,
    Boolean,
    Time,
    Text,
    Other,
}

fn kind_of(name: &str, schema: &Schema) -> Kind {
    let lower = name.to_ascii_lowercase();
    let timeish = lower.contains("time") || lower.contains("date") || lower.ends_with("_at") || lower.ends_with("_ts");
    match schema {
        Schema::Union(u) => {
            u.variants().iter().find(|s| !matches!(s, Schema::Null)).map_or(Kind::Other, |s| kind_of(name, s))
        }
        Schema::TimestampMillis | Schema::TimestampMicros | Schema::Date | Schema::LocalTimestampMillis => Kind::Time,
        Schema::Long if timeish => Kind::Time,
        Schema::Int | Schema::Long | Schema::Float | Schema::Double => Kind::Number,
        Schema::Boolean => Kind::Boolean,
        Schema::String | Schema::Enum(_) | Schema::Uuid(_) => Kind::Text,
        _ => Kind::Other,
    }
}

impl Column {
    fn new(name: &str, schema: &Schema) -> Column {
        Column {
            name: name.to_string(),
            kind: kind_of(name, schema),
            nulls: 0,
            numbers: Vec::new(),
            integral: true,
            counts: HashMap::new(),
            words: 0,
            strings: 0,
        }
    }

    fn count(&mut self, key: String) {
        if self.counts.len() < DISTINCT_CAP || self.counts.contains_key(&key) {
            *self.counts.entry(key).or_default() += 1;
        }
    }

    fn add(&mut self, v: Field<'_>) {
        match v {
            Field::Null => self.nulls += 1,
            Field::Int(i) => {
                self.numbers.push(i as f64);
                self.count(i.to_string());
            }
            Field::Float(f) if f.is_finite() => {
                self.integral &= f.fract() == 0.0;
                self.numbers.push(f);
                if self.counts.len() <= FEW_INTEGERS {
                    self.count(f.to_string());
                }
            }
            Field::Bool(b) => self.numbers.push(f64::from(u8::from(b))),
            Field::Str(s) => {
                self.strings += 1;
                self.words += s.split_whitespace().count();
                self.count(s.to_string());
            }
            _ => {}
        }
    }

    fn distinct_share(&self, rows: usize) -> f64 {
        self.counts.len() as f64 / rows.max(1) as f64
    }

    /// `id`, `loan_id`, `loanId`, `LoanID`.
    fn id_named(&self) -> bool {
        let n = &self.name;
        n.eq_ignore_ascii_case("id")
            || n.to_ascii_lowercase().ends_with("_id")
            || n.ends_with("Id")
            || n.ends_with("ID")
    }

    fn missing_note(&self, rows: usize) -> String {
        match self.nulls {
            0 => String::new(),
            n => format!("; {:.1}% missing", 100.0 * n as f64 / rows as f64),
        }
    }

    /// The decision for a field that is neither the label nor left out by the caller.
    fn decide(&self, rows: usize) -> Decision {
        let out = |why: String| Decision::Out(self.name.clone(), why);
        if self.id_named() && self.distinct_share(rows) >= ID_DISTINCT {
            return out(format!("an identifier: {} distinct values in {rows} records", self.counts.len()));
        }
        match self.kind {
            Kind::Time => out("a time: windows of minutes always differ from any reference (add hour-sin / hour-cos by hand for daily cycles)".into()),
            Kind::Other => out("a type Vigil does not featurise (bytes, arrays, maps, records)".into()),
            Kind::Boolean => self.numeric(Transform::None, rows, "a boolean (0 / 1)".into()),
            Kind::Number if self.integral && self.counts.len() <= FEW_INTEGERS && self.counts.len() > 1 => {
                let why = format!("an integer with {} values: categories", self.counts.len());
                self.categorical(rows, why)
            }
            Kind::Number => self.number(rows),
            Kind::Text => self.text(rows),
        }
    }

    fn number(&self, rows: usize) -> Decision {
        let s = Stats::of(&self.numbers);
        if s.n == 0 || s.std == 0.0 {
            return Decision::Out(self.name.clone(), "constant in the sample".into());
        }
        if s.min >= 0.0 && s.skew > HEAVY_TAIL {
            let why = format!("a number with a heavy right tail (skewness {:.1}, max {}): log1p", s.skew, short(s.max));
            return self.numeric(Transform::Log1p, rows, why);
        }
        let why = format!("a number (skewness {:.1}, range {} .. {})", s.skew, short(s.min), short(s.max));
        self.numeric(Transform::None, rows, why)
    }

    fn numeric(&self, transform: Transform, rows: usize, why: String) -> Decision {
        let values: Vec<f64> =
            self.numbers.iter().map(|x| if transform == Transform::Log1p { x.max(0.0).ln_1p() } else { *x }).collect();
        let s = Stats::of(&values);
        let n = Numeric {
            field: self.name.clone(),
            name: None,
            transform,
            mean: round(s.mean),
            std: round(if s.std > 0.0 { s.std } else { 1.0 }),
            clip: Some(6.0),
            missing: Missing::Impute,
            impute: None,
        };
        let imputed = if self.nulls > 0 { ", imputed at the mean" } else { "" };
        Decision::Numeric(n, format!("{why}{}{imputed}; mean and std from the sample", self.missing_note(rows)))
    }

    fn categorical(&self, rows: usize, why: String) -> Decision {
        let mut values: Vec<(&String, &usize)> = self.counts.iter().collect();
        values.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let c = Categorical {
            field: self.name.clone(),
            encoding: Encoding::OneHot,
            values: values.iter().map(|(v, _)| (*v).clone()).collect(),
            buckets: 0,
            missing: Missing::Impute,
        };
        let other = if self.nulls > 0 { ", missing goes to the other slot" } else { "" };
        Decision::Categorical(c, format!("{why}{}{other}", self.missing_note(rows)))
    }

    fn text(&self, rows: usize) -> Decision {
        let distinct = self.counts.len();
        let words = self.words as f64 / self.strings.max(1) as f64;
        if words >= TEXT_WORDS {
            let t = Text {
                field: self.name.clone(),
                buckets: 1 << 18,
                word_ngrams: [1, 2],
                char_ngrams: [3, 4],
                max_tokens: 256,
                max_chars: 5000,
                lowercase: true,
            };
            return Decision::Text(
                t,
                format!("free text ({words:.1} words per value): hashed word and character n-grams"),
            );
        }
        if self.distinct_share(rows) >= UNIQUE {
            return Decision::Out(
                self.name.clone(),
                format!("nearly unique ({distinct} distinct in {rows}): an identifier"),
            );
        }
        if distinct <= FEW_STRINGS {
            return self.categorical(rows, format!("a string with {distinct} values: one-hot"));
        }
        let buckets = (2 * distinct).next_power_of_two().clamp(32, 4096) as u32;
        let c = Categorical {
            field: self.name.clone(),
            encoding: Encoding::Hash,
            values: Vec::new(),
            buckets,
            missing: Missing::Impute,
        };
        let why = format!("a string with {distinct} values: hashed into {buckets} buckets{}", self.missing_note(rows));
        Decision::Categorical(c, why)
    }
}

/// Mean, standard deviation (population), skewness, range.
struct Stats {
    n: usize,
    mean: f64,
    std: f64,
    skew: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(xs: &[f64]) -> Stats {
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n.max(1) as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n.max(1) as f64;
        let std = var.sqrt();
        let skew = if std > 0.0 { xs.iter().map(|x| ((x - mean) / std).powi(3)).sum::<f64>() / n as f64 } else { 0.0 };
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Stats { n, mean, std, skew, min, max }
    }
}

fn round(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 6 - x.abs().log10().ceil() as i32;
    let f = 10f64.powi(digits.clamp(0, 12));
    (x * f).round() / f
}

fn short(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x:.3}") }
}

/// The spec from the decisions: tabular features, or the text input when free text is the only
/// feature (a spec cannot mix them; other free text is then left out).
fn assemble(model: &str, schema: &str, decided: &mut [Decision]) -> FeatureSpec {
    let tabular = decided.iter().any(|d| matches!(d, Decision::Numeric(..) | Decision::Categorical(..)));
    let mut spec = FeatureSpec {
        model: model.to_string(),
        schema: schema.to_string(),
        numeric: Vec::new(),
        categorical: Vec::new(),
        text: None,
        encoder: None,
        graph: Graph::default(),
    };
    for d in decided.iter_mut() {
        match d {
            Decision::Numeric(n, _) => spec.numeric.push(n.clone()),
            Decision::Categorical(c, _) => spec.categorical.push(c.clone()),
            Decision::Text(t, _) if !tabular && spec.text.is_none() => spec.text = Some(t.clone()),
            Decision::Text(t, why) => {
                let reason = if tabular {
                    format!("{why}; left out: a spec cannot mix text with tabular features yet")
                } else {
                    format!("{why}; left out: a text model takes one text field")
                };
                *d = Decision::Out(t.field.clone(), reason);
            }
            Decision::Out(..) => {}
        }
    }
    spec
}

/// The commented TOML of the spec.
fn render(spec: &FeatureSpec, decided: &[Decision], rows: usize, opts: &InferOptions, label: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Feature spec of `{}` inferred by `vigil spec infer` from {rows} records", spec.model);
    if !opts.source.is_empty() {
        let _ = writeln!(out, "# of {}.", opts.source);
    }
    let _ =
        writeln!(out, "# Each feature says why it is what it is; edit freely (`vigil spec columns` lists the model's");
    let _ = writeln!(out, "# input columns in order). Label: {}.", label.unwrap_or("none found (pass --label)"));
    let _ = writeln!(out, "\nmodel = {:?}\nschema = {:?}", spec.model, spec.schema);
    for d in decided {
        let (table, body, why) = match d {
            Decision::Numeric(n, why) => ("[[numeric]]", toml::to_string(n), why),
            Decision::Categorical(c, why) => ("[[categorical]]", toml::to_string(c), why),
            Decision::Text(t, why) => ("[text]", toml::to_string(t), why),
            Decision::Out(..) => continue,
        };
        let _ = write!(out, "\n# {why}\n{table}\n{}", body.unwrap_or_default());
    }
    let left: Vec<&Decision> = decided.iter().filter(|d| matches!(d, Decision::Out(..))).collect();
    if !left.is_empty() {
        let _ = writeln!(out, "\n# Left out:");
        for d in left {
            if let Decision::Out(name, why) = d {
                let _ = writeln!(out, "#   {name}: {why}");
            }
        }
    }
    out
}
