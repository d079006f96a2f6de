//! The champion as the learner sees it: its graph on ONNX Runtime and its own featuriser, so that
//! every labelled event is also scored by the version serving now and the candidates are judged
//! against it on the same labels.

use vigil_events::{Codec, Encoding, ModelCheckpoint, RecordReader, Wanted};
use vigil_features::spec::Graph;
use vigil_features::{FeatureSpec, Featurizer, Row};
use vigil_models::{Runtime, Session};

/// The champion's version, reader, featuriser and session.
pub struct Champion {
    /// Its version.
    pub version: i64,
    reader: RecordReader,
    featurizer: Featurizer,
    session: Session,
    graph: Graph,
}

impl Champion {
    /// Loads the champion checkpoint `cp` for records of `schema` encoded as `encoding`.
    pub fn load(
        runtime: &Runtime,
        codec: &Codec,
        cp: &ModelCheckpoint,
        schema: &str,
        encoding: Encoding,
    ) -> Result<Champion, String> {
        let spec = FeatureSpec::parse(&cp.feature_spec).map_err(|e| e.to_string())?;
        let featurizer =
            Featurizer::new(&spec, codec.schema(schema).map_err(|e| e.to_string())?).map_err(|p| p.join("; "))?;
        let reader =
            RecordReader::new(codec, schema, encoding, Wanted::new(featurizer.fields())).map_err(|e| e.to_string())?;
        let onnx = cp.onnx.as_ref().ok_or("the champion carries no ONNX bytes")?;
        let session =
            runtime.session(onnx, vigil_models::Provider::Cpu, 1).map_err(|e| vigil_runtime::error_chain(&e))?;
        Ok(Champion { version: cp.version, reader, featurizer, session, graph: spec.graph })
    }

    /// The champion's input row for a record (`None` when its spec cannot featurise it).
    pub fn row(&self, codec: &Codec, payload: &[u8]) -> Option<Row> {
        self.reader.read(codec, payload, |fields| self.featurizer.row(fields).ok()).ok().flatten()
    }

    /// The champion's probability for a row.
    pub fn score(&mut self, row: &Row) -> Option<f64> {
        let p = match row {
            Row::Dense(x) => self.session.dense(&self.graph, x, 1, x.len()),
            Row::Text(i, v) => self.session.text(&self.graph, i, v, 1, i.len()),
        };
        p.ok().map(|p| f64::from(p.positive(0)))
    }
}
