//! The inputs' reader schemas, known before any record is read: one Vigil ships (by full name), a
//! user's `.avsc` file (`schema-file`, any namespace), or the latest version of a registry subject
//! (`schema-subject`). Every service (and the CLI) calls [`load_schemas`] at start, so they all read
//! an input with the same schema; records written with an older compatible version resolve to it.

use vigil_events::Codec;
use vigil_runtime::config::{InputConfig, SchemaRegistryConfig};

use crate::schema_registry::Registry;

/// Loads every input's reader schema into `codec` and writes its full name into `schema` where a
/// file or a subject gave it. Every problem is returned at once.
pub async fn load_schemas(
    codec: &Codec,
    inputs: &mut [InputConfig],
    registry: &SchemaRegistryConfig,
) -> Result<(), Vec<String>> {
    let client = Registry::from_config(registry).map_err(|e| vec![vigil_runtime::error_chain(&e)])?;
    let mut problems = Vec::new();
    for (i, input) in inputs.iter_mut().enumerate() {
        if let Err(why) = load_one(codec, input, client.as_ref()).await {
            problems.push(format!("inputs[{i}] ({}): {why}", input.topic));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

async fn load_one(codec: &Codec, input: &mut InputConfig, registry: Option<&Registry>) -> Result<(), String> {
    let loaded = if !input.schema_file.is_empty() {
        let text = std::fs::read_to_string(&input.schema_file)
            .map_err(|e| format!("cannot read schema-file {}: {e}", input.schema_file))?;
        let (name, _) = codec.add_schema(&text).map_err(|e| format!("schema-file {}: {e}", input.schema_file))?;
        Some(name)
    } else if !input.schema_subject.is_empty() {
        let registry = registry.ok_or("schema-subject needs schema-registry.url")?;
        let (id, text) = registry.latest(&input.schema_subject).await.map_err(|e| vigil_runtime::error_chain(&e))?;
        let (name, _) = codec.add_schema(&text).map_err(|e| format!("subject {}: {e}", input.schema_subject))?;
        codec.add_registry_schema(id, &text).map_err(|e| format!("subject {}: {e}", input.schema_subject))?;
        tracing::info!(topic = %input.topic, subject = %input.schema_subject, id, schema = name, "reader schema from the registry");
        Some(name)
    } else {
        None
    };
    match loaded {
        Some(name) if !input.schema.is_empty() && input.schema != name => {
            Err(format!("the schema holds {name}, but schema names {}", input.schema))
        }
        Some(name) => {
            input.schema = name;
            Ok(())
        }
        None => codec.schema(&input.schema).map(|_| ()).map_err(|_| {
            format!("{} is not a schema Vigil ships: give its schema-file or schema-subject", input.schema)
        }),
    }
}

/// The feature spec a model starts from before it has learnt anything: its champion's, else the
/// spec file its input names (`inputs[].spec`, for a model created from nothing), else the demo's
/// (for the demo's `fraud` and `sentiment`).
pub fn starting_spec(
    model: &str,
    registry: &crate::ModelRegistry,
    input: &InputConfig,
) -> Result<vigil_features::FeatureSpec, String> {
    let text = if let Some(c) = registry.champion(model) {
        c.feature_spec.clone()
    } else if !input.spec.is_empty() {
        std::fs::read_to_string(&input.spec).map_err(|e| format!("{model}: cannot read spec {}: {e}", input.spec))?
    } else {
        vigil_features::demo_spec(model)
            .ok_or_else(|| format!("{model}: no champion yet, and its input names no spec file (inputs[].spec)"))?
            .to_string()
    };
    let spec = vigil_features::FeatureSpec::parse(&text).map_err(|e| format!("{model}: {e}"))?;
    if spec.model != model {
        return Err(format!("{model}: the spec is for model `{}`", spec.model));
    }
    Ok(spec)
}
