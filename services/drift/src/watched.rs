//! One watched model: its input's reader and raw featuriser (laid out by the champion's spec), its
//! [`Monitor`], and how it follows a new champion (a new reference; a new layout restarts the
//! windows).

use std::time::Instant;

use vigil_events::{Codec, Encoding, Field, ModelCheckpoint, RecordReader, Wanted};
use vigil_features::{FeatureSpec, Featurizer, Row};
use vigil_kafka::owned::Record;
use vigil_kafka::{HandlerError, ModelRegistry, now_ms};
use vigil_runtime::config::InputConfig;

use crate::config::DriftConfig;

use crate::monitor::{Evaluation, Layout, Monitor, References};
use crate::surge::Surge;
use crate::telemetry::Streams;

/// The surge watch of an input with a `group-field`: the reader of its id and group fields.
pub struct Groups {
    reader: RecordReader,
    field: String,
    /// The watch.
    pub surge: Surge,
}

impl Groups {
    fn new(model: &str, input: &InputConfig, codec: &Codec, cfg: &DriftConfig) -> Result<Option<Groups>, String> {
        if input.group_field.is_empty() {
            return Ok(None);
        }
        let wanted = Wanted::new(&[input.id_field.as_str(), input.group_field.as_str()]);
        let reader = RecordReader::new(codec, &input.schema, input.format, wanted)
            .map_err(|e| format!("inputs.group-field `{}`: {e}", input.group_field))?;
        Ok(Some(Groups { reader, field: input.group_field.clone(), surge: Surge::new(model, cfg) }))
    }

    /// An input event: its group waits for the champion's score.
    fn event(&mut self, r: &Record<'_>, codec: &Codec) -> Option<Evaluation> {
        let ts = r.timestamp.unwrap_or_else(now_ms);
        let field = &self.field;
        let read = self.reader.read(codec, r.payload.unwrap_or(&[]), |f| {
            let text = |v: &Field<'_>| match *v {
                Field::Str(s) => Some(s.to_string()),
                Field::Int(i) => Some(i.to_string()),
                _ => None,
            };
            Some((text(f.first()?)?, format!("{field}={}", text(f.get(1)?)?)))
        });
        let (id, group) = read.ok().flatten()?;
        self.surge.event(&id, &group, ts)
    }
}

/// One watched model.
pub struct Watched {
    /// Its monitor.
    pub monitor: Monitor,
    /// Input topic.
    pub input: String,
    /// Label topic (empty when none).
    pub labels: String,
    schema: String,
    encoding: Encoding,
    spec_text: String,
    /// Reads the raw featuriser's fields (none for text specs: their events only count, their
    /// scores are compared).
    raw: Option<(RecordReader, Featurizer)>,
    /// When the last report went out.
    pub last_report: Instant,
    /// Its per-record counters.
    pub streams: Streams,
    /// Its surge watch, when the input has a `group-field`.
    pub groups: Option<Groups>,
    /// The surge watch's evaluation that the last event or score completed, if any.
    pub surge: Option<Evaluation>,
}

/// The reader and featuriser of `spec`'s raw rows over the input schema (none for text specs).
fn raw_featurizer(
    spec: &FeatureSpec,
    codec: &Codec,
    schema: &str,
    encoding: Encoding,
) -> Result<Option<(RecordReader, Featurizer)>, String> {
    if !spec.is_tabular() {
        return Ok(None);
    }
    let featurizer =
        Featurizer::new(&spec.raw(), codec.schema(schema).map_err(|e| e.to_string())?).map_err(|p| p.join("; "))?;
    let reader =
        RecordReader::new(codec, schema, encoding, Wanted::new(featurizer.fields())).map_err(|e| e.to_string())?;
    Ok(Some((reader, featurizer)))
}

impl Watched {
    /// Watches `model`'s input `input` from the registry's champion (or the demo's spec).
    pub fn new(
        model: &str,
        input: &InputConfig,
        registry: &ModelRegistry,
        codec: &Codec,
        cfg: &DriftConfig,
        streams: Streams,
    ) -> Result<Watched, HandlerError> {
        let spec = vigil_kafka::inputs::starting_spec(model, registry, input).map_err(HandlerError)?;
        let spec_text = spec.to_toml();
        let raw = raw_featurizer(&spec, codec, &input.schema, input.format).map_err(HandlerError)?;
        let mut w = Watched {
            monitor: Monitor::new(model, Layout::of(&spec), cfg),
            input: input.topic.clone(),
            labels: input.labels.clone(),
            schema: input.schema.clone(),
            encoding: input.format,
            spec_text,
            raw,
            last_report: Instant::now(),
            streams,
            groups: Groups::new(model, input, codec, cfg).map_err(HandlerError)?,
            surge: None,
        };
        w.follow_champion(registry.champion(model), codec, cfg);
        Ok(w)
    }

    /// Takes a new champion's version, and its reference when it carries one; a champion whose spec
    /// lays out features differently starts a new monitor.
    pub fn follow_champion(&mut self, champion: Option<&ModelCheckpoint>, codec: &Codec, cfg: &DriftConfig) {
        let Some(cp) = champion else { return };
        if self.monitor.champion == Some(cp.version) {
            return;
        }
        if cp.feature_spec != self.spec_text
            && let Ok(spec) = FeatureSpec::parse(&cp.feature_spec)
        {
            let layout = Layout::of(&spec);
            if &layout != self.monitor.layout() {
                match raw_featurizer(&spec, codec, &self.schema, self.encoding) {
                    Ok(raw) => {
                        tracing::info!(model = %self.monitor.model, version = cp.version, "new feature layout: windows restart");
                        self.raw = raw;
                        self.monitor = Monitor::new(&self.monitor.model, layout, cfg);
                    }
                    Err(e) => {
                        tracing::warn!(model = %self.monitor.model, version = cp.version, error = e, "cannot featurise with the new champion's spec");
                        return;
                    }
                }
            }
            self.spec_text = cp.feature_spec.clone();
        }
        let r = References::from_checkpoint(cp.version, &cp.reference, self.monitor.layout());
        match &r {
            Some(r) => {
                tracing::info!(model = %self.monitor.model, version = cp.version, features = r.by_feature.len(), "reference from the champion's checkpoint")
            }
            None => {
                tracing::info!(model = %self.monitor.model, version = cp.version, "the champion's checkpoint has no reference: its scores warm up")
            }
        }
        self.monitor.new_champion(cp.version, r);
        // Another model predicts differently: the groups' shares start again with its scores.
        if let Some(g) = &mut self.groups {
            g.surge.new_champion();
        }
    }

    /// An input event: its raw row joins the windows. `Err` (why) when it cannot be read or
    /// featurised (the scorer dead-letters it; here it is only counted).
    pub fn event(&mut self, r: &Record<'_>, codec: &Codec) -> Result<Option<Evaluation>, String> {
        self.surge = self.groups.as_mut().and_then(|g| g.event(r, codec));
        let time = r.timestamp.unwrap_or_else(now_ms);
        let Some((reader, featurizer)) = &self.raw else { return Ok(self.monitor.event(&[], time)) };
        let row = reader.read(codec, r.payload.unwrap_or(&[]), |fields| featurizer.row(fields));
        let x = match row {
            Ok(Ok(Row::Dense(x))) => x,
            Ok(Ok(Row::Text(..) | Row::Tokens(..))) => return Err("a text row from a tabular spec".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(e) => return Err(e.to_string()),
        };
        let values: Vec<f64> = x.iter().map(|v| if v.is_infinite() { f64::NAN } else { f64::from(*v) }).collect();
        Ok(self.monitor.event(&values, time))
    }
}
