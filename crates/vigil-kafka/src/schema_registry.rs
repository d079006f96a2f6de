//! The Confluent-compatible schema registry, when one is configured: registers Vigil's schemas under
//! `<topic>-value` subjects so that records are written with Confluent framing, and fetches writer
//! schemas by id for records that arrive with ids the codec does not know yet. The HTTP protocol is
//! `schema_registry_converter`'s; framing and decoding stay in `vigil-events`.

use std::time::Duration;

use schema_registry_converter::async_impl::schema_registry::{SrSettings, get_schema_by_id, post_schema};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use vigil_events::{Codec, CodecError};
use vigil_runtime::config::SchemaRegistryConfig;

/// Errors talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with an error or could not be reached.
    #[error("schema registry: {what}: {detail}")]
    Call {
        /// What was being done.
        what: String,
        /// The client's description (never includes credentials).
        detail: String,
        /// Whether trying again may help.
        retriable: bool,
    },
    /// The registry returned a schema the codec cannot use.
    #[error("schema registry returned an unusable schema for id {id}")]
    Schema {
        /// The id.
        id: u32,
        /// Why.
        #[source]
        source: CodecError,
    },
}

fn call_error(what: String, e: SRCError) -> RegistryError {
    let detail = match &e.cause {
        Some(cause) => format!("{}: {cause}", e.error),
        None => e.error.clone(),
    };
    RegistryError::Call { what, detail, retriable: e.retriable }
}

/// A registry client.
pub struct Registry {
    settings: SrSettings,
    url: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Registry {
    /// A client for the configured registry, or `None` when no URL is configured.
    pub fn from_config(c: &SchemaRegistryConfig) -> Result<Option<Registry>, RegistryError> {
        if c.url.is_empty() {
            return Ok(None);
        }
        let mut builder = SrSettings::new_builder(c.url.clone());
        builder.set_timeout(Duration::from_secs(10));
        if !c.username.is_empty() {
            let password = (!c.password.is_empty()).then_some(c.password.expose());
            builder.set_basic_authorization(&c.username, password);
        }
        let settings = builder.build().map_err(|e| call_error("configuring the client".into(), e))?;
        Ok(Some(Registry { settings, url: c.url.clone() }))
    }

    /// Registers the codec's current schema `name` under `<topic>-value` and makes the codec encode
    /// records of that schema with Confluent framing and the returned id.
    pub async fn register(&self, codec: &Codec, topic: &str, name: &str) -> Result<u32, RegistryError> {
        let text = schema_text(name).ok_or_else(|| RegistryError::Call {
            what: format!("registering {name}"),
            detail: "not a shipped schema".into(),
            retriable: false,
        })?;
        let subject = format!("{topic}-value");
        let supplied = SuppliedSchema::new(Some(name.to_string()), SchemaType::Avro, text.to_string());
        let registered = post_schema(&self.settings, subject.clone(), supplied)
            .await
            .map_err(|e| call_error(format!("registering {name} under {subject}"), e))?;
        codec.set_encode_id(name, registered.id);
        codec
            .add_registry_schema(registered.id, text)
            .map_err(|source| RegistryError::Schema { id: registered.id, source })?;
        tracing::info!(subject, id = registered.id, "registered schema");
        Ok(registered.id)
    }

    /// Fetches the writer schema with `id` into the codec.
    pub async fn fetch(&self, codec: &Codec, id: u32) -> Result<String, RegistryError> {
        let registered = get_schema_by_id(id, &self.settings)
            .await
            .map_err(|e| call_error(format!("fetching schema id {id}"), e))?;
        codec.add_registry_schema(id, &registered.schema).map_err(|source| RegistryError::Schema { id, source })
    }
}

fn schema_text(name: &str) -> Option<&'static str> {
    vigil_events::schemas::current(name).map(|s| s.text)
}
