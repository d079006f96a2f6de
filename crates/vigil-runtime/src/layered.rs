//! Layered configuration loading: built-in defaults, then a TOML file, then `VIGIL_*` environment
//! variables, with every problem reported at once.
//!
//! The loader is generic over the configuration type. It serialises `T::default()` into a TOML table
//! (the defaults layer), merges the file and the environment over it, and deserialises the result
//! with serde (`deny_unknown_fields` on every section). When that fails, it finds *every* offending
//! key by trying each key the user set on its own over the defaults: serde stops at the first error,
//! this does not. Cross-field rules run afterwards through [`Layered::validate`].
//!
//! Environment variables map onto keys as `VIGIL_<SECTION>__<KEY>`: `__` separates levels,
//! single `_` become `-` (kebab-case keys), e.g. `VIGIL_KAFKA__BOOTSTRAP_SERVERS`. Inside a free-form
//! table such as `kafka.properties` (librdkafka settings) single `_` become `.` instead, e.g.
//! `VIGIL_KAFKA__PROPERTIES__SASL_MECHANISM`. Variables without `__` (`VIGIL_CONFIG`, `VIGIL_CACHE`, …)
//! belong to the scripts, not to the configuration.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// A configuration type that can be loaded in layers.
pub trait Layered: Default + Serialize + DeserializeOwned {
    /// For each array of tables (by dotted path), one element that deserialises on its own: keys of
    /// the user's elements are checked one by one over it.
    fn array_templates() -> Vec<(&'static str, Value)> {
        Vec::new()
    }

    /// Dotted paths of tables whose keys are free (passed through, e.g. librdkafka properties).
    fn free_tables() -> &'static [&'static str] {
        &[]
    }

    /// Cross-field rules, checked once the configuration deserialised; every problem is returned.
    fn validate(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    File(PathBuf),
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "in {}", p.display()),
            Origin::Env(v) => write!(f, "from {v}"),
        }
    }
}

/// Every problem found while loading a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// One line per problem, each naming the key and where it was set.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({} problem", self.problems.len())?;
        if self.problems.len() != 1 {
            write!(f, "s")?;
        }
        write!(f, ")")?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// One key the user set, with its path and origin.
struct Leaf {
    path: Vec<String>,
    origin: Origin,
    value: Value,
}

/// Loads `T` from its defaults, an optional TOML file and environment variables (`VIGIL_*`).
///
/// `env` is passed in (rather than read here) so that tests and callers decide what the process
/// environment is.
pub fn load<T: Layered>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let defaults = match Value::try_from(T::default()) {
        Ok(Value::Table(t)) => t,
        Ok(_) | Err(_) => {
            return Err(ConfigError {
                problems: vec!["built-in defaults do not serialise to a table (a bug in Vigil)".into()],
            });
        }
    };
    let mut problems = Vec::new();
    let mut merged = defaults.clone();
    let mut leaves = Vec::new();

    if let Some(path) = file {
        match std::fs::read_to_string(path) {
            Ok(text) => match text.parse::<Table>() {
                Ok(table) => {
                    let origin = Origin::File(path.to_path_buf());
                    collect_leaves::<T>(&table, &defaults, &mut Vec::new(), &origin, &mut leaves);
                    merge(&mut merged, table);
                }
                Err(e) => problems.push(format!("{}: not valid TOML: {}", path.display(), one_line(&e))),
            },
            Err(e) => problems.push(format!("{}: cannot read the file: {e}", path.display())),
        }
    }

    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("VIGIL_") else { continue };
        if !rest.contains("__") {
            continue;
        }
        match env_path::<T>(rest) {
            Some(path) => {
                let value = env_value(&defaults, &path, &raw);
                set_path(&mut merged, &path, value.clone());
                let mut single = Table::new();
                set_path(&mut single, &path, value);
                collect_leaves::<T>(&single, &defaults, &mut Vec::new(), &Origin::Env(name.clone()), &mut leaves);
            }
            None => problems.push(format!("{name}: not a configuration key (empty level)")),
        }
    }

    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }

    match Value::Table(merged.clone()).try_into::<T>() {
        Ok(config) => {
            let problems = config.validate();
            if problems.is_empty() { Ok(config) } else { Err(ConfigError { problems }) }
        }
        Err(whole) => {
            let (mut problems, good) = isolate::<T>(&defaults, &leaves);
            if problems.is_empty() {
                problems.push(one_line(&whole));
            }
            // Cross-field rules too, over the keys that were fine on their own, so that one run
            // reports every problem.
            let mut partial = defaults.clone();
            for leaf in good {
                apply_leaf(&mut partial, leaf, &T::array_templates());
            }
            if let Ok(config) = Value::Table(partial).try_into::<T>() {
                problems.extend(config.validate());
            }
            Err(ConfigError { problems })
        }
    }
}

/// Reads the process environment's `VIGIL_*` variables.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars().filter(|(k, _)| k.starts_with("VIGIL_")).collect()
}

/// Tries each key the user set on its own over the defaults and reports those that fail.
fn isolate<'l, T: Layered>(defaults: &Table, leaves: &'l [Leaf]) -> (Vec<String>, Vec<&'l Leaf>) {
    let templates = T::array_templates();
    let mut problems = Vec::new();
    let mut good = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for leaf in leaves {
        let dotted = leaf.path.join(".");
        let mut candidate = defaults.clone();
        if let Some((array_path, index, key_path)) = split_array_leaf(&leaf.path, &templates) {
            let Some((_, template)) = templates.iter().find(|(p, _)| *p == array_path) else { continue };
            let mut element = template.clone();
            if let Value::Table(element) = &mut element {
                set_path(element, &key_path, leaf.value.clone());
            }
            set_path(&mut candidate, &split(array_path), Value::Array(vec![element]));
            let label = format!("{array_path}[{index}].{}", key_path.join("."));
            match Value::Table(candidate).try_into::<T>() {
                Err(e) => {
                    if seen.insert((label.clone(), leaf.origin.to_string())) {
                        problems.push(describe(&label, &leaf.origin, &e));
                    }
                }
                Ok(_) => good.push(leaf),
            }
            continue;
        }
        set_path(&mut candidate, &leaf.path, leaf.value.clone());
        match Value::Table(candidate).try_into::<T>() {
            Err(e) => {
                if seen.insert((dotted.clone(), leaf.origin.to_string())) {
                    problems.push(describe(&dotted, &leaf.origin, &e));
                }
            }
            Ok(_) => good.push(leaf),
        }
    }
    (problems, good)
}

/// Sets one good leaf in `table`; leaves inside arrays of tables are kept only when the whole
/// element is (the element is rebuilt from its template).
fn apply_leaf(table: &mut Table, leaf: &Leaf, templates: &[(&'static str, Value)]) {
    if let Some((array_path, index, key_path)) = split_array_leaf(&leaf.path, templates) {
        let path = split(array_path);
        let template = templates.iter().find(|(p, _)| *p == array_path).map(|(_, t)| t.clone());
        let Some(template) = template else { return };
        let mut items = match get_path(table, &path) {
            Some(Value::Array(a)) if a.len() > index => a.clone(),
            Some(Value::Array(a)) => {
                let mut a = a.clone();
                a.resize(index + 1, template.clone());
                a
            }
            _ => vec![template.clone(); index + 1],
        };
        if let Value::Table(element) = &mut items[index] {
            set_path(element, &key_path, leaf.value.clone());
        }
        set_path(table, &path, Value::Array(items));
    } else {
        set_path(table, &leaf.path, leaf.value.clone());
    }
}

fn describe(path: &str, origin: &Origin, e: &toml::de::Error) -> String {
    if is_secret(path) {
        format!("{path} ({origin}): invalid value (not shown: the key holds a secret)")
    } else {
        format!("{path} ({origin}): {}", one_line(e))
    }
}

/// Whether a key holds a secret whose value must never be printed.
pub fn is_secret(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    ["password", "secret", "token", "jaas", "ssl.key.pem", "ssl.keystore", "private"].iter().any(|s| p.contains(s))
}

fn one_line(e: &impl fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Walks a user layer and records every key it sets (tables of known sections are descended into;
/// arrays of tables with a template are descended into per element).
fn collect_leaves<T: Layered>(
    layer: &Table,
    defaults: &Table,
    prefix: &mut Vec<String>,
    origin: &Origin,
    out: &mut Vec<Leaf>,
) {
    let templates = T::array_templates();
    for (key, value) in layer {
        prefix.push(key.clone());
        let dotted = prefix.join(".");
        let known_table = matches!(get_path(defaults, prefix), Some(Value::Table(_)));
        let is_free = T::free_tables().contains(&dotted.as_str());
        match value {
            Value::Table(inner) if known_table || is_free => {
                collect_leaves::<T>(inner, defaults, prefix, origin, out);
            }
            Value::Array(items) if templates.iter().any(|(p, _)| *p == dotted) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Table(t) => {
                            for (k, v) in t {
                                let path = [prefix.clone(), vec![format!("#{i}"), k.clone()]].concat();
                                record(out, path, origin, v.clone());
                            }
                        }
                        other => {
                            let path = [prefix.clone(), vec![format!("#{i}")]].concat();
                            record(out, path, origin, other.clone());
                        }
                    }
                }
            }
            _ => record(out, prefix.clone(), origin, value.clone()),
        }
        prefix.pop();
    }
}

fn record(out: &mut Vec<Leaf>, path: Vec<String>, origin: &Origin, value: Value) {
    out.push(Leaf { path, origin: origin.clone(), value });
}

/// For a leaf inside an array of tables (`inputs.#2.topic`), the array's path, the index and the
/// key path inside the element.
fn split_array_leaf<'a>(
    path: &[String],
    templates: &'a [(&'static str, Value)],
) -> Option<(&'a str, usize, Vec<String>)> {
    let pos = path.iter().position(|p| p.starts_with('#'))?;
    let array_path = path[..pos].join(".");
    let (name, _) = templates.iter().find(|(p, _)| *p == array_path)?;
    let index = path[pos][1..].parse().ok()?;
    let rest: Vec<String> = path[pos + 1..].to_vec();
    if rest.is_empty() {
        // A non-table element: report it against the array itself.
        return Some((name, index, vec!["<element>".into()]));
    }
    Some((name, index, rest))
}

fn split(dotted: &str) -> Vec<String> {
    dotted.split('.').map(str::to_owned).collect()
}

/// Maps `KAFKA__BOOTSTRAP_SERVERS` to `["kafka", "bootstrap-servers"]`.
fn env_path<T: Layered>(rest: &str) -> Option<Vec<String>> {
    let mut path = Vec::new();
    for part in rest.split("__") {
        if part.is_empty() {
            return None;
        }
        let lower = part.to_ascii_lowercase();
        let parent = path.join(".");
        let key =
            if T::free_tables().contains(&parent.as_str()) { lower.replace('_', ".") } else { lower.replace('_', "-") };
        path.push(key);
    }
    Some(path)
}

/// Interprets an environment value by the type of the default at the same path: strings stay
/// strings, everything else is parsed as a TOML value (falling back to a string, which then fails
/// deserialisation with a clear message).
fn env_value(defaults: &Table, path: &[String], raw: &str) -> Value {
    match get_path(defaults, path) {
        Some(Value::String(_)) | None => Value::String(raw.to_owned()),
        Some(_) => format!("v = {raw}")
            .parse::<Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| Value::String(raw.to_owned())),
    }
}

fn get_path<'a>(table: &'a Table, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = table.get(first)?;
    if rest.is_empty() {
        return Some(v);
    }
    match v {
        Value::Table(t) => get_path(t, rest),
        _ => None,
    }
}

fn set_path(table: &mut Table, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return;
    }
    let entry = table.entry(first.clone()).or_insert_with(|| Value::Table(Table::new()));
    if !entry.is_table() {
        *entry = Value::Table(Table::new());
    }
    if let Value::Table(inner) = entry {
        set_path(inner, rest, value);
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
    struct Demo {
        net: Net,
        items: Vec<Item>,
        props: BTreeMap<String, String>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
    struct Net {
        host: String,
        port: u16,
        mode: Mode,
    }

    #[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    enum Mode {
        Fast,
        Safe,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
    struct Item {
        name: String,
        size: u32,
    }

    impl Default for Net {
        fn default() -> Self {
            Net { host: "localhost".into(), port: 80, mode: Mode::Safe }
        }
    }
    impl Default for Item {
        fn default() -> Self {
            Item { name: "x".into(), size: 1 }
        }
    }
    impl Default for Demo {
        fn default() -> Self {
            Demo { net: Net::default(), items: vec![Item::default()], props: BTreeMap::new() }
        }
    }
    impl Layered for Demo {
        fn array_templates() -> Vec<(&'static str, Value)> {
            vec![("items", Value::try_from(Item::default()).unwrap())]
        }
        fn free_tables() -> &'static [&'static str] {
            &["props"]
        }
        fn validate(&self) -> Vec<String> {
            if self.net.port == 0 { vec!["net.port: must not be 0".into()] } else { vec![] }
        }
    }

    fn file(text: &str) -> tempfile_lite::TempFile {
        tempfile_lite::TempFile::new(text)
    }

    mod tempfile_lite {
        pub struct TempFile(pub std::path::PathBuf);
        impl TempFile {
            pub fn new(text: &str) -> Self {
                let p = std::env::temp_dir().join(format!(
                    "vigil-layered-{}-{}.toml",
                    std::process::id(),
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                ));
                std::fs::write(&p, text).unwrap();
                TempFile(p)
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_load_without_sources() {
        let d: Demo = load(None, Vec::new()).unwrap();
        assert_eq!(d, Demo::default());
    }

    #[test]
    fn file_then_env_override_in_order() {
        let f = file("[net]\nhost = \"a\"\nport = 81\n[props]\n\"sasl.mechanism\" = \"PLAIN\"\n");
        let env = vec![
            ("VIGIL_NET__PORT".to_string(), "82".to_string()),
            ("VIGIL_PROPS__SSL_CA_LOCATION".to_string(), "/ca.pem".to_string()),
            ("VIGIL_CACHE".to_string(), "/ignored".to_string()),
        ];
        let d: Demo = load(Some(&f.0), env).unwrap();
        assert_eq!(d.net.host, "a");
        assert_eq!(d.net.port, 82);
        assert_eq!(d.props.get("sasl.mechanism").map(String::as_str), Some("PLAIN"));
        assert_eq!(d.props.get("ssl.ca.location").map(String::as_str), Some("/ca.pem"));
    }

    #[test]
    fn every_problem_is_listed_with_its_origin() {
        let f = file(
            "[net]\nhots = \"a\"\nport = \"eighty\"\nmode = \"turbo\"\n[[items]]\nname = 3\nsize = -1\n[nope]\nx = 1\n",
        );
        let env =
            vec![("VIGIL_NET__HOST".to_string(), "ok".to_string()), ("VIGIL_NET__PORT".to_string(), "x".to_string())];
        let err = load::<Demo>(Some(&f.0), env).unwrap_err();
        let text = err.to_string();
        for needle in ["net.hots", "net.port", "net.mode", "items[0].name", "items[0].size", "nope", "VIGIL_NET__PORT"]
        {
            assert!(text.contains(needle), "missing {needle} in:\n{text}");
        }
        assert!(!text.contains("net.host ("), "a valid key was reported:\n{text}");
        assert!(err.problems.len() >= 7, "{text}");
    }

    #[test]
    fn cross_field_rules_are_reported_beside_type_errors() {
        let env = vec![("VIGIL_NET__PORT".into(), "0".into()), ("VIGIL_NET__MODE".into(), "warp".into())];
        let err = load::<Demo>(None, env).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.problems.iter().any(|p| p.contains("net.mode")), "{err}");
        assert!(err.problems.iter().any(|p| p == "net.port: must not be 0"), "{err}");
    }

    #[test]
    fn validation_runs_after_deserialisation() {
        let err = load::<Demo>(None, vec![("VIGIL_NET__PORT".into(), "0".into())]).unwrap_err();
        assert_eq!(err.problems, vec!["net.port: must not be 0".to_string()]);
    }

    #[test]
    fn invalid_toml_is_reported() {
        let f = file("[net\nport = 1");
        let err = load::<Demo>(Some(&f.0), Vec::new()).unwrap_err();
        assert!(err.problems[0].contains("not valid TOML"), "{err}");
    }

    #[test]
    fn secrets_are_not_echoed() {
        assert!(is_secret("kafka.sasl-password"));
        assert!(is_secret("kafka.properties.sasl.jaas.config"));
        assert!(!is_secret("kafka.bootstrap-servers"));
    }
}
