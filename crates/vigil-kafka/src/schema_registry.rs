//! The Confluent-compatible schema registry, when one is configured (a Confluent Schema Registry, or
//! Apicurio Registry's `/apis/ccompat/v7` API): registers schemas under `<topic>-value` subjects —
//! with BACKWARD compatibility set on the subject and checked before the new version goes in — so
//! that records are written with Confluent framing; fetches a subject's latest version as an input's
//! reader schema; and fetches writer schemas by id for records that arrive with ids the codec does
//! not know yet ([`Resolver`] does it once per id for the services' loops). The HTTP protocol is
//! `schema_registry_converter`'s, and `reqwest`'s for the compatibility calls it lacks; framing and
//! decoding stay in `vigil-events`.

use std::time::Duration;

use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_schema_by_id, get_schema_by_subject_and_version, post_schema,
};
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
    /// The new schema is not backward compatible with the subject's latest version.
    #[error("schema registry: the schema is not BACKWARD compatible with the latest version of {subject}")]
    Incompatible {
        /// The subject.
        subject: String,
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
    http: reqwest::Client,
    auth: Option<(String, Option<String>)>,
    /// Ids whose fetch failed, and when (retried after [`RETRY_FAILED`]).
    failed: std::sync::Mutex<std::collections::HashMap<u32, std::time::Instant>>,
}

/// How long a failed lookup of an id is not tried again.
const RETRY_FAILED: Duration = Duration::from_secs(10);

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
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| {
            RegistryError::Call { what: "configuring the client".into(), detail: e.to_string(), retriable: false }
        })?;
        let auth = (!c.username.is_empty())
            .then(|| (c.username.clone(), (!c.password.is_empty()).then(|| c.password.expose().to_string())));
        let url = c.url.trim_end_matches('/').to_string();
        Ok(Some(Registry { settings, url, http, auth, failed: Default::default() }))
    }

    /// Registers `text` as a new version of `subject`: sets the subject's compatibility to BACKWARD,
    /// refuses a schema that is not backward compatible with the latest version, and returns the id.
    pub async fn register_text(&self, subject: &str, text: &str) -> Result<u32, RegistryError> {
        let what = |w: &str| format!("{w} {subject}");
        self.call(reqwest::Method::PUT, &format!("config/{subject}"), serde_json::json!({"compatibility": "BACKWARD"}))
            .await
            .map_err(|detail| RegistryError::Call {
                what: what("setting BACKWARD compatibility of"),
                detail,
                retriable: true,
            })?;
        let check = self
            .call(
                reqwest::Method::POST,
                &format!("compatibility/subjects/{subject}/versions/latest"),
                serde_json::json!({"schema": text}),
            )
            .await;
        match check {
            Ok(v) if v.get("is_compatible").and_then(serde_json::Value::as_bool) == Some(false) => {
                return Err(RegistryError::Incompatible { subject: subject.to_string() });
            }
            // A subject without versions yet answers 404: anything is compatible with nothing.
            Ok(_) | Err(_) => {}
        }
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, text.to_string());
        let registered = post_schema(&self.settings, subject.to_string(), supplied)
            .await
            .map_err(|e| call_error(what("registering a version of"), e))?;
        Ok(registered.id)
    }

    /// The latest version of `subject`: its id and schema text.
    pub async fn latest(&self, subject: &str) -> Result<(u32, String), RegistryError> {
        let r = get_schema_by_subject_and_version(&self.settings, subject, None)
            .await
            .map_err(|e| call_error(format!("reading the latest version of {subject}"), e))?;
        Ok((r.id, r.schema))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let mut req = self
            .http
            .request(method, format!("{}/{path}", self.url))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .body(body.to_string());
        if let Some((user, password)) = &self.auth {
            req = req.basic_auth(user, password.as_ref());
        }
        let response = req.send().await.map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.without_url().to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))
    }

    /// Registers the codec's current schema `name` under `<topic>-value` (BACKWARD compatible) and
    /// makes the codec encode records of that schema with Confluent framing and the returned id.
    pub async fn register(&self, codec: &Codec, topic: &str, name: &str) -> Result<u32, RegistryError> {
        let text = codec.schema_text(name).ok_or_else(|| RegistryError::Call {
            what: format!("registering {name}"),
            detail: "the codec does not know this schema".into(),
            retriable: false,
        })?;
        let subject = format!("{topic}-value");
        let id = self.register_text(&subject, &text).await?;
        codec.set_encode_id(name, id);
        codec.add_registry_schema(id, &text).map_err(|source| RegistryError::Schema { id, source })?;
        tracing::info!(subject, id, "registered schema");
        Ok(id)
    }

    /// Makes sure the codec knows the writer schema of `payload` when it names one by registry id:
    /// fetches it once (a failed lookup is not tried again for 10 s; records meanwhile fail to
    /// decode with the unknown id, which callers count or dead-letter).
    pub async fn resolve(&self, codec: &Codec, payload: &[u8]) {
        let Ok(frame) = vigil_events::frame(payload) else { return };
        let vigil_events::WriterId::RegistryId(id) = frame.writer else { return };
        if codec.knows(frame.writer) {
            return;
        }
        let recently = |f: &std::collections::HashMap<u32, std::time::Instant>| {
            f.get(&id).is_some_and(|at| at.elapsed() < RETRY_FAILED)
        };
        if self.failed.lock().map(|f| recently(&f)).unwrap_or(false) {
            return;
        }
        match self.fetch(codec, id).await {
            Ok(name) => tracing::info!(id, schema = name, "fetched a writer schema from the registry"),
            Err(e) => {
                tracing::warn!(id, error = %vigil_runtime::error_chain(&e), "cannot fetch a writer schema");
                if let Ok(mut f) = self.failed.lock() {
                    f.insert(id, std::time::Instant::now());
                }
            }
        }
    }

    /// Fetches the writer schema with `id` into the codec.
    pub async fn fetch(&self, codec: &Codec, id: u32) -> Result<String, RegistryError> {
        let registered = get_schema_by_id(id, &self.settings)
            .await
            .map_err(|e| call_error(format!("fetching schema id {id}"), e))?;
        codec.add_registry_schema(id, &registered.schema).map_err(|source| RegistryError::Schema { id, source })
    }
}

/// [`Registry::resolve`] for the blocking loops of the learner and the drift service. Without a
/// registry every unknown id stays unknown.
pub struct Resolver {
    registry: Option<Registry>,
    handle: tokio::runtime::Handle,
}

impl Resolver {
    /// A resolver over the configured registry (if any), running its calls on `handle`.
    pub fn new(config: &SchemaRegistryConfig, handle: tokio::runtime::Handle) -> Result<Resolver, RegistryError> {
        Ok(Resolver { registry: Registry::from_config(config)?, handle })
    }

    /// See [`Registry::resolve`] (call from a blocking thread).
    pub fn prepare(&mut self, codec: &Codec, payload: &[u8]) {
        if let Some(registry) = &self.registry {
            self.handle.block_on(registry.resolve(codec, payload));
        }
    }
}
