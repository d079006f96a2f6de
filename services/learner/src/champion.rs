//! The champion as the learner sees it: its graph on ONNX Runtime and its own featuriser, so that
//! every labelled event is also scored by the version serving now and the candidates are judged
//! against it on the same labels. An encoder champion whose encoder is the trainer's scores the
//! trainer's embedding; one with another encoder embeds with its own.

use vigil_events::{Codec, Encoding, ModelCheckpoint, RecordReader, Wanted};
use vigil_features::spec::Graph;
use vigil_features::{FeatureSpec, Featurizer, Row};
use vigil_models::{Embedder, Runtime, Session};

use crate::trainer::Row as TrainerRow;

/// The champion's version, reader, featuriser and session.
pub struct Champion {
    /// Its version.
    pub version: i64,
    reader: RecordReader,
    featurizer: Featurizer,
    session: Session,
    graph: Graph,
    /// Its own encoder, when it has one that is not the trainer's.
    encoder: Option<Embedder>,
}

/// What the champion is loaded with.
pub struct Load<'a> {
    /// ONNX Runtime.
    pub runtime: &'a Runtime,
    /// The codec.
    pub codec: &'a Codec,
    /// The input's reader schema.
    pub schema: &'a str,
    /// The input's encoding.
    pub encoding: Encoding,
    /// Artifacts (an encoder champion's encoder and tokenizer).
    pub artifacts: &'a vigil_models::artifacts::Artifacts,
    /// The spec the trainer learns with.
    pub trainer_spec: &'a FeatureSpec,
}

impl Champion {
    /// Loads the champion checkpoint `cp`.
    pub fn load(with: &Load<'_>, cp: &ModelCheckpoint) -> Result<Champion, String> {
        let spec = FeatureSpec::parse(&cp.feature_spec).map_err(|e| e.to_string())?;
        let schema = with.codec.schema(with.schema).map_err(|e| e.to_string())?;
        let mut featurizer = Featurizer::new(&spec, schema).map_err(|p| p.join("; "))?;
        let mut encoder = None;
        if let Some(e) = &spec.encoder {
            let artifact = vigil_models::EncoderArtifact::load(e, with.artifacts, with.runtime)?;
            featurizer = featurizer.with_tokenizer(artifact.tokenizer.clone());
            if with.trainer_spec.encoder.as_ref() != Some(e) {
                let cpu = vigil_models::Provider::Cpu;
                encoder = Some(artifact.embedder(with.runtime, cpu, 1).map_err(|e| vigil_runtime::error_chain(&e))?);
            }
        }
        let reader = RecordReader::new(with.codec, with.schema, with.encoding, Wanted::new(featurizer.fields()))
            .map_err(|e| e.to_string())?;
        let onnx = cp.onnx.as_ref().ok_or("the champion carries no ONNX bytes")?;
        let session =
            with.runtime.session(onnx, vigil_models::Provider::Cpu, 1).map_err(|e| vigil_runtime::error_chain(&e))?;
        Ok(Champion { version: cp.version, reader, featurizer, session, graph: spec.graph, encoder })
    }

    /// The champion's input row for a record whose trainer row is `raw` (`None` when its spec cannot
    /// featurise it).
    pub fn row(&mut self, codec: &Codec, payload: &[u8], raw: &TrainerRow) -> Option<Row> {
        let row = self.reader.read(codec, payload, |fields| self.featurizer.row(fields).ok()).ok().flatten()?;
        let Row::Tokens(ids) = row else { return Some(row) };
        match (&mut self.encoder, raw) {
            (Some(own), _) => own.embed_one(&ids).ok().map(Row::Dense),
            (None, TrainerRow::Dense(x)) => Some(Row::Dense(x.iter().map(|v| *v as f32).collect())),
            (None, TrainerRow::Text(..)) => None,
        }
    }

    /// The champion's probability for a row.
    pub fn score(&mut self, row: &Row) -> Option<f64> {
        let p = match row {
            Row::Dense(x) => self.session.dense(&self.graph, x, 1, x.len()),
            Row::Text(i, v) => self.session.text(&self.graph, i, v, 1, i.len()),
            Row::Tokens(_) => return None,
        };
        p.ok().map(|p| f64::from(p.positive(0)))
    }
}
