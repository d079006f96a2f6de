//! The feature spec: how a record's fields become a model's inputs. Written once in TOML, stored
//! inside every checkpoint, and used by the scorer, the learner and the drift detector alike, so that
//! training and serving cannot skew.
//!
//! ```toml
//! model = "fraud"
//! schema = "dev.vigil.demo.Transaction"
//!
//! [[numeric]]
//! field = "amount"
//! transform = "log1p"        # none | log1p | present | hour-sin | hour-cos (of a timestamp-millis field)
//! mean = 3.6                 # standardisation after the transform: (x - mean) / std
//! std = 1.1
//! clip = 6.0                 # optional: clip the standardised value to ±clip
//! missing = "impute"         # impute (use `impute`, default the mean) | reject
//!
//! [[categorical]]
//! field = "channel"
//! encoding = "one-hot"       # one-hot (with `values`, plus one slot for anything else) | hash (`buckets`)
//! values = ["pos", "contactless", "ecommerce", "atm", "moto"]
//!
//! [text]                     # hashed n-grams, for text models (instead of numeric/categorical)
//! field = "text"
//! buckets = 262144
//! word-ngrams = [1, 2]
//! char-ngrams = [3, 4]       # optional, [0, 0] for none
//! max-tokens = 256           # padded length of the index / value tensors
//! max-chars = 5000           # longer texts are refused (dead-lettered)
//!
//! [encoder]                  # a sentence encoder + a head, for text models (instead of the above)
//! field = "text"
//! artifact = "5f0c…"         # SHA-256 of the encoder's ONNX graph (`vigil encoder build --store`)
//! tokenizer = "9a1b…"        # SHA-256 of its tokenizer.json; both files live in the model folders
//! dim = 384                  # embedding width: the head's input columns
//! max-tokens = 128           # truncation, special tokens included
//! max-chars = 5000           # longer texts are refused (dead-lettered)
//!
//! [graph]                    # optional: how a graph exported elsewhere is called (defaults: Vigil's own)
//! input = "float_input"      # the dense input (skl2onnx: float_input or X); default features
//! output = "probabilities"   # the output holding the probability; default score
//! positive-column = 1        # its column of the positive class; default 0 for [N, 1], 1 for [N, k]
//! post = "none"              # none (probabilities) | sigmoid (logits) | softmax (per-class logits)
//! ```
//!
//! Non-finite numbers (NaN, ±inf) are always refused: a model must not silently score on them.

use serde::{Deserialize, Serialize};

/// A feature spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FeatureSpec {
    /// The model this spec feeds.
    pub model: String,
    /// Full name of the record schema it reads.
    pub schema: String,
    /// Numeric features, in input order.
    #[serde(default)]
    pub numeric: Vec<Numeric>,
    /// Categorical features, after the numeric ones.
    #[serde(default)]
    pub categorical: Vec<Categorical>,
    /// Hashed text features (text models).
    #[serde(default)]
    pub text: Option<Text>,
    /// A sentence encoder whose embedding feeds the model (a head): transformer text models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<Encoder>,
    /// How the model's graph is called (Vigil's own names unless the graph was exported elsewhere).
    #[serde(default, skip_serializing_if = "Graph::is_default")]
    pub graph: Graph,
}

/// The names a model's ONNX graph uses and how its output becomes a probability: Vigil's own graphs
/// take `features` (or `indices` and `values`) and give `score` `[N, 1]`; a graph exported by
/// skl2onnx or onnxmltools takes `float_input` and gives `probabilities` `[N, 2]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Graph {
    /// The dense input of a tabular model.
    pub input: String,
    /// The index input of a text model.
    pub indices: String,
    /// The value input of a text model.
    pub values: String,
    /// The output holding the probabilities (`[N]`, `[N, 1]` or `[N, k]`).
    pub output: String,
    /// The positive class's column of a `[N, k]` output (default: 0 for one column, else 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positive_column: Option<u32>,
    /// What turns the output into probabilities.
    pub post: Post,
}

/// Post-processing of a graph's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Post {
    /// The output is already probabilities.
    #[default]
    None,
    /// Logits: the logistic function of each value.
    Sigmoid,
    /// Per-class logits: the softmax of each row.
    Softmax,
}

impl Default for Graph {
    fn default() -> Self {
        Graph {
            input: "features".into(),
            indices: "indices".into(),
            values: "values".into(),
            output: "score".into(),
            positive_column: None,
            post: Post::None,
        }
    }
}

impl Graph {
    /// Whether these are Vigil's own names (then the spec's TOML leaves the section out).
    pub fn is_default(&self) -> bool {
        *self == Graph::default()
    }

    /// The positive class's column of an output with `classes` columns.
    pub fn positive(&self, classes: usize) -> usize {
        match self.positive_column {
            Some(c) => c as usize,
            None if classes > 1 => 1,
            None => 0,
        }
    }
}

/// A numeric feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Numeric {
    /// Record field (numbers, booleans as 0/1, timestamps).
    pub field: String,
    /// Feature name, when one field gives several features (default: the field).
    #[serde(default)]
    pub name: Option<String>,
    /// Transform before standardisation.
    #[serde(default)]
    pub transform: Transform,
    /// Mean subtracted after the transform.
    #[serde(default)]
    pub mean: f64,
    /// Standard deviation divided by (must be positive).
    #[serde(default = "one")]
    pub std: f64,
    /// Clip the standardised value to ±clip.
    #[serde(default)]
    pub clip: Option<f64>,
    /// What a missing (null) value does.
    #[serde(default)]
    pub missing: Missing,
    /// The transformed value used for a missing one (default: `mean`, i.e. 0 after standardising).
    #[serde(default)]
    pub impute: Option<f64>,
}

fn one() -> f64 {
    1.0
}

/// Numeric transforms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    /// The value as is.
    #[default]
    None,
    /// `ln(1 + max(x, 0))`, for heavy-tailed amounts.
    Log1p,
    /// `sin(2π · hour / 24)` of a timestamp (UTC), for daily cycles.
    HourSin,
    /// `cos(2π · hour / 24)` of a timestamp (UTC).
    HourCos,
    /// 1 when the field has a value (of any type), 0 when it is null.
    Present,
}

/// Missing-value policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missing {
    /// Use the imputed value.
    #[default]
    Impute,
    /// Refuse the record (dead letter).
    Reject,
}

/// A categorical feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Categorical {
    /// Record field (strings, enums, booleans, integers).
    pub field: String,
    /// How categories become inputs.
    pub encoding: Encoding,
    /// One-hot: the known values (anything else, and missing, goes to one extra slot).
    #[serde(default)]
    pub values: Vec<String>,
    /// Hash: number of buckets.
    #[serde(default)]
    pub buckets: u32,
    /// What a missing value does (impute: the "other" slot / bucket of the empty string).
    #[serde(default)]
    pub missing: Missing,
}

/// Categorical encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// One input per known value plus one for the rest.
    OneHot,
    /// Feature hashing into `buckets` inputs.
    Hash,
}

/// Hashed n-gram text features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Text {
    /// Record field (a string).
    pub field: String,
    /// Hash buckets (rows of the weight table).
    pub buckets: u32,
    /// Word n-gram sizes, inclusive range.
    #[serde(default = "words")]
    pub word_ngrams: [u32; 2],
    /// Character n-gram sizes (within words), inclusive range; `[0, 0]` for none.
    #[serde(default)]
    pub char_ngrams: [u32; 2],
    /// Padded length of the index / value tensors; more n-grams are truncated.
    #[serde(default = "max_tokens")]
    pub max_tokens: u32,
    /// Longer texts are refused.
    #[serde(default = "max_chars")]
    pub max_chars: u32,
    /// Lower-case before tokenising.
    #[serde(default = "yes")]
    pub lowercase: bool,
}

/// A sentence encoder in front of the model: the text is tokenised with the tokenizer, the encoder
/// (a frozen ONNX graph stored once, by digest, in the services' model folders) embeds it, and the
/// model's own graph, a small head, takes the embedding as its dense input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Encoder {
    /// Record field (a string).
    pub field: String,
    /// Lower-case hex SHA-256 of the encoder's ONNX graph.
    pub artifact: String,
    /// Lower-case hex SHA-256 of its `tokenizer.json`.
    pub tokenizer: String,
    /// Width of the embedding (the head's input columns).
    pub dim: u32,
    /// Tokens per text at most, special tokens included.
    #[serde(default = "encoder_tokens")]
    pub max_tokens: u32,
    /// Longer texts are refused.
    #[serde(default = "max_chars")]
    pub max_chars: u32,
}

fn encoder_tokens() -> u32 {
    128
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn words() -> [u32; 2] {
    [1, 2]
}
fn max_tokens() -> u32 {
    256
}
fn max_chars() -> u32 {
    5000
}
fn yes() -> bool {
    true
}

/// Most numeric plus categorical features of a spec.
pub const MAX_FEATURES: usize = 10_000;
/// Most known values of a one-hot feature.
pub const MAX_ONE_HOT: usize = 10_000;
/// Most buckets of a hashed categorical feature.
pub const MAX_CATEGORY_BUCKETS: u32 = 1 << 16;
/// Most buckets of a hashed text feature (the weight table of a text model).
pub const MAX_TEXT_BUCKETS: u32 = 1 << 24;
/// Most (index, value) pairs of a text row.
pub const MAX_TOKENS: u32 = 4096;
/// Longest text accepted, in characters.
pub const MAX_CHARS: u32 = 1_000_000;
/// Widest embedding of an encoder.
pub const MAX_EMBEDDING: u32 = 8192;

/// Every problem of a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid feature spec: {}", .problems.join("; "))]
pub struct SpecError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl FeatureSpec {
    /// Parses and validates a spec.
    pub fn parse(text: &str) -> Result<FeatureSpec, SpecError> {
        let spec: FeatureSpec = toml::from_str(text).map_err(|e| SpecError {
            problems: vec![e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")],
        })?;
        let problems = spec.validate();
        if problems.is_empty() { Ok(spec) } else { Err(SpecError { problems }) }
    }

    /// The spec as TOML (what checkpoints carry).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Every rule the spec breaks.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.model.is_empty() {
            p.push("model: must name the model".into());
        }
        if self.schema.is_empty() {
            p.push("schema: must name the record schema".into());
        }
        let tabular = !(self.numeric.is_empty() && self.categorical.is_empty());
        if !tabular && self.text.is_none() && self.encoder.is_none() {
            p.push("no features: give [[numeric]], [[categorical]], [text] or [encoder]".into());
        }
        if self.text.is_some() && tabular {
            p.push("a text model takes only [text] (tabular and text features cannot be mixed yet)".into());
        }
        if self.encoder.is_some() && (tabular || self.text.is_some()) {
            p.push("an encoder model takes only [encoder] (no other features beside it yet)".into());
        }
        if let Some(e) = &self.encoder {
            p.extend(encoder_problems(e));
        }
        let mut names = std::collections::HashSet::new();
        for (i, n) in self.numeric.iter().enumerate() {
            if n.field.is_empty() {
                p.push(format!("numeric[{i}].field: must not be empty"));
            }
            if !names.insert(n.feature_name().to_string()) {
                p.push(format!("numeric[{i}]: feature `{}` appears twice (give a distinct `name`)", n.feature_name()));
            }
            if !(n.std.is_finite() && n.std > 0.0) {
                p.push(format!("numeric[{i}].std: must be positive, not {}", n.std));
            }
            if !n.mean.is_finite() {
                p.push(format!("numeric[{i}].mean: must be finite"));
            }
            if n.clip.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
                p.push(format!("numeric[{i}].clip: must be positive"));
            }
            if n.impute.is_some_and(|v| !v.is_finite()) {
                p.push(format!("numeric[{i}].impute: must be finite"));
            }
        }
        for (i, c) in self.categorical.iter().enumerate() {
            if c.field.is_empty() {
                p.push(format!("categorical[{i}].field: must not be empty"));
            }
            if !names.insert(c.field.clone()) {
                p.push(format!("categorical[{i}]: feature `{}` appears twice", c.field));
            }
            match c.encoding {
                Encoding::OneHot if c.values.is_empty() => {
                    p.push(format!("categorical[{i}].values: one-hot needs the known values"))
                }
                Encoding::Hash if c.buckets == 0 => p.push(format!("categorical[{i}].buckets: hash needs buckets > 0")),
                _ => {}
            }
        }
        p.extend(self.size_problems());
        let g = &self.graph;
        for (key, name) in [("input", &g.input), ("indices", &g.indices), ("values", &g.values), ("output", &g.output)]
        {
            if name.trim().is_empty() {
                p.push(format!("graph.{key}: must name a tensor of the graph"));
            }
        }
        if let Some(t) = &self.text {
            if t.field.is_empty() {
                p.push("text.field: must not be empty".into());
            }
            if t.buckets < 2 {
                p.push("text.buckets: must be at least 2".into());
            }
            if t.word_ngrams[0] > t.word_ngrams[1] || t.char_ngrams[0] > t.char_ngrams[1] {
                p.push("text: n-gram ranges are [min, max]".into());
            }
            if t.word_ngrams[0] == 0 && t.char_ngrams[1] == 0 {
                p.push("text: enable word or character n-grams".into());
            }
            if t.max_tokens == 0 || t.max_chars == 0 {
                p.push("text: max-tokens and max-chars must be positive".into());
            }
        }
        p
    }

    /// Sizes that would make a model or its probe allocate without bound (a spec can arrive from
    /// anyone who can write to the models topic).
    fn size_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.numeric.len() + self.categorical.len() > MAX_FEATURES {
            p.push(format!("at most {MAX_FEATURES} features"));
        }
        for (i, c) in self.categorical.iter().enumerate() {
            if c.values.len() > MAX_ONE_HOT {
                p.push(format!("categorical[{i}].values: at most {MAX_ONE_HOT} values"));
            }
            if c.buckets > MAX_CATEGORY_BUCKETS {
                p.push(format!("categorical[{i}].buckets: at most {MAX_CATEGORY_BUCKETS}"));
            }
        }
        if let Some(t) = &self.text {
            if t.buckets > MAX_TEXT_BUCKETS {
                p.push(format!("text.buckets: at most {MAX_TEXT_BUCKETS}"));
            }
            if t.max_tokens > MAX_TOKENS {
                p.push(format!("text.max-tokens: at most {MAX_TOKENS}"));
            }
            if t.max_chars > MAX_CHARS {
                p.push(format!("text.max-chars: at most {MAX_CHARS}"));
            }
            if t.word_ngrams[1] > 8 || t.char_ngrams[1] > 16 {
                p.push("text: n-grams of at most 8 words and 16 characters".into());
            }
        }
        p
    }

    /// Width of the dense feature vector of a tabular spec (of the embedding, for an encoder model).
    pub fn width(&self) -> usize {
        if let Some(e) = &self.encoder {
            return e.dim as usize;
        }
        self.numeric.len()
            + self
                .categorical
                .iter()
                .map(|c| match c.encoding {
                    Encoding::OneHot => c.values.len() + 1,
                    Encoding::Hash => c.buckets as usize,
                })
                .sum::<usize>()
    }

    /// Names of the dense inputs, in order (`amount`, `channel=pos`, `channel=<other>`, `mcc#3`, …).
    pub fn input_names(&self) -> Vec<String> {
        let mut out: Vec<String> = self.numeric.iter().map(|n| n.feature_name().to_string()).collect();
        for c in &self.categorical {
            match c.encoding {
                Encoding::OneHot => {
                    out.extend(c.values.iter().map(|v| format!("{}={v}", c.field)));
                    out.push(format!("{}=<other>", c.field));
                }
                Encoding::Hash => out.extend((0..c.buckets).map(|b| format!("{}#{b}", c.field))),
            }
        }
        out
    }

    /// Whether this is a hashed-text model.
    pub fn is_text(&self) -> bool {
        self.text.is_some()
    }

    /// Whether features come from the record's fields one by one (not from a whole text).
    pub fn is_tabular(&self) -> bool {
        self.text.is_none() && self.encoder.is_none()
    }

    /// The spec with standardisation and clipping removed: transformed but unscaled values, what the
    /// learner learns from (it standardises online itself) and what drift detection compares. A
    /// missing value without an explicit `impute` comes out as +inf (`f32::MAX` rounds up), which
    /// callers read as "missing".
    pub fn raw(&self) -> FeatureSpec {
        let mut raw = self.clone();
        for n in &mut raw.numeric {
            n.mean = 0.0;
            n.std = 1.0;
            n.clip = None;
            if n.impute.is_none() {
                n.impute = Some(f64::MAX);
            }
        }
        raw
    }
}

fn encoder_problems(e: &Encoder) -> Vec<String> {
    let mut p = Vec::new();
    if e.field.is_empty() {
        p.push("encoder.field: must not be empty".into());
    }
    for (key, digest) in [("artifact", &e.artifact), ("tokenizer", &e.tokenizer)] {
        if !is_digest(digest) {
            p.push(format!("encoder.{key}: a lower-case hex SHA-256 (64 digits)"));
        }
    }
    if e.dim == 0 || e.dim > MAX_EMBEDDING {
        p.push(format!("encoder.dim: between 1 and {MAX_EMBEDDING}"));
    }
    if e.max_tokens < 2 || e.max_tokens > 512 {
        p.push("encoder.max-tokens: between 2 and 512".into());
    }
    if e.max_chars == 0 || e.max_chars > MAX_CHARS {
        p.push(format!("encoder.max-chars: between 1 and {MAX_CHARS}"));
    }
    p
}

impl Numeric {
    /// The feature's name.
    pub fn feature_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.field)
    }
}
