//! ONNX Runtime, loaded at run time (`ort`'s `load-dynamic`) from the library that `ORT_DYLIB_PATH`
//! or an explicit path names, and sessions on the execution provider the configuration asks for.
//!
//! ONNX Runtime allows one environment per process; [`Runtime::global`] makes it once and hands out
//! clones. A [`Session`] belongs to one worker thread (running needs `&mut`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[cfg(feature = "cuda")]
use ort::ep::{self, ExecutionProvider as _};
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorRef, ValueType};
use vigil_features::spec::{Graph, Post};
use vigil_runtime::error_chain;

/// Which hardware runs inference (`cpu`, `cuda` or `auto` in configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// The CPU execution provider.
    Cpu,
    /// The CUDA execution provider; fails when it cannot be registered.
    Cuda,
    /// CUDA when it registers, otherwise the CPU, with a log line saying which.
    Auto,
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Provider, String> {
        match s {
            "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda),
            "auto" => Ok(Provider::Auto),
            other => Err(format!("`{other}` is not an execution provider (cpu, cuda or auto)")),
        }
    }
}

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No library path was given and `ORT_DYLIB_PATH` is not set.
    #[error(
        "no ONNX Runtime library: set ORT_DYLIB_PATH to libonnxruntime.so (scripts/setup.sh installs it into .venv)"
    )]
    NoLibrary,
    /// The library could not be loaded or has the wrong version.
    #[error("cannot load ONNX Runtime from {path}")]
    Load {
        /// The library path.
        path: PathBuf,
        /// Why.
        #[source]
        source: ort::Error,
    },
    /// The CUDA execution provider was required but is not available.
    #[error("the CUDA execution provider is not available: {reason}")]
    CudaUnavailable {
        /// Why.
        reason: String,
    },
    /// ONNX Runtime refused the model or failed to run it.
    #[error("onnx runtime: {context}")]
    Ort {
        /// What was being done.
        context: &'static str,
        /// The runtime's error.
        #[source]
        source: ort::Error,
    },
    /// The inputs do not fit the model.
    #[error("bad model input: {0}")]
    Input(String),
    /// Loading ONNX Runtime failed (earlier in this process).
    #[error("{0}")]
    Unavailable(String),
}

/// The process's ONNX Runtime environment.
#[derive(Clone)]
pub struct Runtime {
    env: ort::environment::Environment,
    /// The library that was loaded.
    pub library: PathBuf,
}

static GLOBAL: OnceLock<Result<Runtime, String>> = OnceLock::new();

impl Runtime {
    /// Loads ONNX Runtime once per process from `library`, or `ORT_DYLIB_PATH` when `None`.
    /// Later calls return the first result (a process cannot load two runtimes).
    pub fn global(library: Option<&Path>) -> Result<Runtime, RuntimeError> {
        let result = GLOBAL.get_or_init(|| Runtime::load(library).map_err(|e| error_chain(&e)));
        match result {
            Ok(rt) => Ok(rt.clone()),
            Err(text) => Err(RuntimeError::Unavailable(text.clone())),
        }
    }

    fn load(library: Option<&Path>) -> Result<Runtime, RuntimeError> {
        let path = match library {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("ORT_DYLIB_PATH") {
                Some(p) if !p.is_empty() => PathBuf::from(p),
                _ => return Err(RuntimeError::NoLibrary),
            },
        };
        if !path.exists() {
            return Err(RuntimeError::Load {
                source: ort::Error::new(format!("{} does not exist", path.display())),
                path,
            });
        }
        let env = ort::init_from(&path)
            .map_err(ort::Error::wrap)
            .and_then(|b| b.with_name("vigil").build())
            .map_err(|source| RuntimeError::Load { path: path.clone(), source })?;
        tracing::info!(library = %path.display(), "loaded ONNX Runtime");
        Ok(Runtime { env, library: path })
    }

    /// Whether this ONNX Runtime build has the CUDA execution provider.
    pub fn cuda_available(&self) -> bool {
        #[cfg(feature = "cuda")]
        {
            ep::CUDA::is_available().unwrap_or(false)
        }
        #[cfg(not(feature = "cuda"))]
        {
            false
        }
    }

    /// The graph ONNX Runtime runs for `model` on the CPU after its optimisations, serialised to
    /// `path` (tests check which fusions apply).
    #[cfg(test)]
    pub(crate) fn optimized(&self, model: &[u8], path: &Path) -> Result<Vec<u8>, RuntimeError> {
        let ort_err = |context| move |source: ort::Error| RuntimeError::Ort { context, source };
        ort::session::Session::builder(&self.env)
            .map_err(ort_err("creating a session builder"))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| ort_err("setting the optimisation level")(ort::Error::from(e)))?
            .with_optimized_model_path(path)
            .map_err(|e| ort_err("setting the optimised model's path")(ort::Error::from(e)))?
            .commit_from_memory(model)
            .map_err(ort_err("loading the model"))?;
        std::fs::read(path).map_err(|e| RuntimeError::Input(format!("{}: {e}", path.display())))
    }

    /// Creates a session for the serialised model on the chosen provider with `threads` intra-op
    /// threads. Returns the session and the provider it really uses.
    pub fn session(&self, model: &[u8], provider: Provider, threads: usize) -> Result<Session, RuntimeError> {
        let use_cuda = match provider {
            Provider::Cpu => false,
            Provider::Cuda => {
                if !cfg!(feature = "cuda") {
                    return Err(RuntimeError::CudaUnavailable {
                        reason: "this build of Vigil lacks the `cuda` cargo feature".into(),
                    });
                }
                if !self.cuda_available() {
                    return Err(RuntimeError::CudaUnavailable {
                        reason: format!("{} was built without it", self.library.display()),
                    });
                }
                true
            }
            Provider::Auto => {
                let ok = self.cuda_available();
                if !ok {
                    tracing::info!(
                        "execution provider auto: CUDA is not available in this ONNX Runtime; using the CPU"
                    );
                }
                ok
            }
        };
        let ort_err = |context| move |e: ort::Error<_>| RuntimeError::Ort { context, source: ort::Error::from(e) };
        let builder = ort::session::Session::builder(&self.env)
            .map_err(|source| RuntimeError::Ort { context: "creating a session builder", source })?
            .with_intra_threads(threads.max(1))
            .map_err(ort_err("setting intra-op threads"))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(ort_err("setting the optimisation level"))?
            // Idle intra-op threads sleep instead of spinning: a service shares its cores with its
            // Kafka client and handler threads, which a spinning pool starves (ARCHITECTURE.md).
            .with_intra_op_spinning(false)
            .map_err(ort_err("turning intra-op spinning off"))?;
        let (mut builder, on) = with_provider(builder, use_cuda, provider)?;
        let session = builder
            .commit_from_memory(model)
            .map_err(|source| RuntimeError::Ort { context: "loading the model", source })?;
        Ok(Session { inner: session, provider: on })
    }
}

/// Registers CUDA on the builder when asked; returns the builder and the provider in use.
#[cfg(feature = "cuda")]
fn with_provider(
    builder: ort::session::builder::SessionBuilder,
    use_cuda: bool,
    provider: Provider,
) -> Result<(ort::session::builder::SessionBuilder, &'static str), RuntimeError> {
    if !use_cuda {
        return Ok((builder, "cpu"));
    }
    match builder.with_execution_providers([ep::CUDA::default().build().error_on_failure()]) {
        Ok(b) => Ok((b, "cuda")),
        Err(e) if provider == Provider::Auto => {
            tracing::warn!(error = %e, "execution provider auto: CUDA failed to register; using the CPU");
            Ok((e.recover(), "cpu"))
        }
        Err(e) => Err(RuntimeError::CudaUnavailable { reason: e.to_string() }),
    }
}

/// Without the `cuda` feature every session runs on the CPU.
#[cfg(not(feature = "cuda"))]
fn with_provider(
    builder: ort::session::builder::SessionBuilder,
    _use_cuda: bool,
    _provider: Provider,
) -> Result<(ort::session::builder::SessionBuilder, &'static str), RuntimeError> {
    Ok((builder, "cpu"))
}

/// The signature of one model input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name in the graph.
    pub name: String,
    /// Element type as ONNX Runtime names it (`f32`, `i64`, …).
    pub elem: String,
    /// Dimensions; -1 for symbolic ones.
    pub shape: Vec<i64>,
}

/// A loaded model on one provider.
pub struct Session {
    inner: ort::session::Session,
    provider: &'static str,
}

impl Session {
    /// The provider the session runs on: `cpu` or `cuda`.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The token dimension a text graph fixes for its index or value input (one exported with
    /// `[batch, max-tokens]`), if it does.
    fn fixed_text_len(&self, graph: &Graph) -> Option<usize> {
        self.inner.inputs().iter().filter(|i| i.name() == graph.indices || i.name() == graph.values).find_map(|i| {
            match i.dtype() {
                ValueType::Tensor { shape, .. } => shape.get(1).and_then(|d| usize::try_from(*d).ok()),
                _ => None,
            }
        })
    }

    /// Input signatures in graph order.
    pub fn inputs(&self) -> Vec<TensorInfo> {
        self.inner.inputs().iter().map(|o| info(o.name(), o.dtype())).collect()
    }

    /// Output signatures in graph order.
    pub fn outputs(&self) -> Vec<TensorInfo> {
        self.inner.outputs().iter().map(|o| info(o.name(), o.dtype())).collect()
    }

    /// Runs a model with one `[rows, cols]` float input and returns the first output's values
    /// (row-major) and shape. The input slice is handed to ONNX Runtime without a copy.
    pub fn run_f32(&mut self, input: &[f32], rows: usize, cols: usize) -> Result<(Vec<i64>, Vec<f32>), RuntimeError> {
        if rows * cols != input.len() {
            return Err(RuntimeError::Input(format!("{} values do not form a [{rows}, {cols}] tensor", input.len())));
        }
        let tensor = TensorRef::from_array_view(([rows, cols], input))
            .map_err(|source| RuntimeError::Ort { context: "wrapping the input tensor", source })?;
        let outputs = self
            .inner
            .run(ort::inputs![tensor])
            .map_err(|source| RuntimeError::Ort { context: "running the model", source })?;
        let (shape, values) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|source| RuntimeError::Ort { context: "reading the output tensor", source })?;
        Ok((shape.to_vec(), values.to_vec()))
    }

    /// Runs a text model on `[rows, len]` indices and values; returns one score per row.
    pub fn run_text(
        &mut self,
        indices: &[i64],
        values: &[f32],
        rows: usize,
        len: usize,
    ) -> Result<Vec<f32>, RuntimeError> {
        if rows * len != indices.len() || rows * len != values.len() {
            return Err(RuntimeError::Input(format!(
                "{} indices and {} values do not form [{rows}, {len}] tensors",
                indices.len(),
                values.len()
            )));
        }
        let i = TensorRef::from_array_view(([rows, len], indices))
            .map_err(|source| RuntimeError::Ort { context: "wrapping the index tensor", source })?;
        let v = TensorRef::from_array_view(([rows, len], values))
            .map_err(|source| RuntimeError::Ort { context: "wrapping the value tensor", source })?;
        let outputs = self
            .inner
            .run(ort::inputs![crate::families::INDICES => i, crate::families::VALUES => v])
            .map_err(|source| RuntimeError::Ort { context: "running the model", source })?;
        let (_, values) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|source| RuntimeError::Ort { context: "reading the output tensor", source })?;
        Ok(values.to_vec())
    }

    /// Runs a tabular model on `[rows, cols]` features, called as `graph` says; returns each row's
    /// class probabilities. The input slice is handed to ONNX Runtime without a copy.
    pub fn dense(
        &mut self,
        graph: &Graph,
        input: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<Probabilities, RuntimeError> {
        if rows * cols != input.len() {
            return Err(RuntimeError::Input(format!("{} values do not form a [{rows}, {cols}] tensor", input.len())));
        }
        let tensor = TensorRef::from_array_view(([rows, cols], input))
            .map_err(|source| RuntimeError::Ort { context: "wrapping the input tensor", source })?;
        let outputs = self
            .inner
            .run(ort::inputs![graph.input.as_str() => tensor])
            .map_err(|source| RuntimeError::Ort { context: "running the model", source })?;
        probabilities(&outputs, graph, rows)
    }

    /// Runs a text model on `[rows, len]` indices and values, called as `graph` says; returns each
    /// row's class probabilities.
    pub fn text(
        &mut self,
        graph: &Graph,
        indices: &[i64],
        values: &[f32],
        rows: usize,
        len: usize,
    ) -> Result<Probabilities, RuntimeError> {
        if rows * len != indices.len() || rows * len != values.len() {
            return Err(RuntimeError::Input(format!(
                "{} indices and {} values do not form [{rows}, {len}] tensors",
                indices.len(),
                values.len()
            )));
        }
        // Batches come cut to their longest row; a graph whose token dimension is fixed gets its
        // padding back.
        let padded;
        let (indices, values, len) = match self.fixed_text_len(graph) {
            Some(fixed) if fixed > len => {
                padded = pad_rows(indices, values, rows, len, fixed);
                (padded.0.as_slice(), padded.1.as_slice(), fixed)
            }
            _ => (indices, values, len),
        };
        let i = TensorRef::from_array_view(([rows, len], indices))
            .map_err(|source| RuntimeError::Ort { context: "wrapping the index tensor", source })?;
        let v = TensorRef::from_array_view(([rows, len], values))
            .map_err(|source| RuntimeError::Ort { context: "wrapping the value tensor", source })?;
        let outputs = self
            .inner
            .run(ort::inputs![graph.indices.as_str() => i, graph.values.as_str() => v])
            .map_err(|source| RuntimeError::Ort { context: "running the model", source })?;
        probabilities(&outputs, graph, rows)
    }

    /// Runs a sentence encoder on `[rows, cols]` token ids and attention mask; returns the output
    /// `embedding` row-major and its width.
    pub fn embed(
        &mut self,
        ids: &[i64],
        mask: &[i64],
        rows: usize,
        cols: usize,
    ) -> Result<(Vec<f32>, usize), RuntimeError> {
        if rows * cols != ids.len() || ids.len() != mask.len() {
            return Err(RuntimeError::Input(format!("{} ids do not form a [{rows}, {cols}] tensor", ids.len())));
        }
        let i = TensorRef::from_array_view(([rows, cols], ids))
            .map_err(|source| RuntimeError::Ort { context: "wrapping the token ids", source })?;
        let m = TensorRef::from_array_view(([rows, cols], mask))
            .map_err(|source| RuntimeError::Ort { context: "wrapping the attention mask", source })?;
        let outputs = self
            .inner
            .run(ort::inputs![crate::encoder::INPUT_IDS => i, crate::encoder::ATTENTION_MASK => m])
            .map_err(|source| RuntimeError::Ort { context: "running the encoder", source })?;
        let out = outputs
            .get(crate::encoder::EMBEDDING)
            .ok_or_else(|| RuntimeError::Input(format!("the encoder has no output `{}`", crate::encoder::EMBEDDING)))?;
        let (shape, values) = out
            .try_extract_tensor::<f32>()
            .map_err(|source| RuntimeError::Ort { context: "reading the embedding", source })?;
        let dim = match shape.len() {
            2 if shape[0] as usize == rows => usize::try_from(shape[1]).unwrap_or(0),
            _ => 0,
        };
        if dim == 0 || values.len() != rows * dim {
            return Err(RuntimeError::Input(format!("the embedding has shape {:?} for {rows} rows", shape.to_vec())));
        }
        Ok((values.to_vec(), dim))
    }

    /// The underlying `ort` session, for model families with several inputs.
    pub fn ort(&mut self) -> &mut ort::session::Session {
        &mut self.inner
    }
}

/// A batch's class probabilities, row-major `[rows, classes]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probabilities {
    /// Classes per row (1 for a single probability).
    pub classes: usize,
    /// The positive class's column.
    pub positive: usize,
    /// Every row's probabilities.
    pub values: Vec<f32>,
}

impl Probabilities {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.classes.max(1)
    }

    /// The positive class's probability of row `r`.
    pub fn positive(&self, r: usize) -> f32 {
        self.values[r * self.classes + self.positive]
    }

    /// Every class's probability of row `r`.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.classes..(r + 1) * self.classes]
    }

    /// The positive class's probability of every row.
    pub fn positives(&self) -> Vec<f32> {
        (0..self.rows()).map(|r| self.positive(r)).collect()
    }
}

/// Reads the output `graph.output` as `[rows]`, `[rows, 1]` or `[rows, k]` floats and applies the
/// post-processing.
fn probabilities(
    outputs: &ort::session::SessionOutputs<'_>,
    graph: &Graph,
    rows: usize,
) -> Result<Probabilities, RuntimeError> {
    let out = outputs
        .get(graph.output.as_str())
        .ok_or_else(|| RuntimeError::Input(format!("the graph has no output `{}`", graph.output)))?;
    let (shape, values) = out
        .try_extract_tensor::<f32>()
        .map_err(|source| RuntimeError::Ort { context: "reading the output tensor", source })?;
    let classes = match shape.len() {
        1 => 1,
        2 => usize::try_from(shape[1]).unwrap_or(0),
        _ => 0,
    };
    if classes == 0 || values.len() != rows * classes {
        return Err(RuntimeError::Input(format!(
            "output `{}` has shape {:?} for {rows} rows, not [{rows}] or [{rows}, k]",
            graph.output,
            shape.to_vec()
        )));
    }
    let positive = graph.positive(classes);
    if positive >= classes {
        return Err(RuntimeError::Input(format!(
            "output `{}` has {classes} columns; the positive class's column {positive} is not one of them",
            graph.output
        )));
    }
    let mut values = values.to_vec();
    match graph.post {
        Post::None => {}
        Post::Sigmoid => values.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
        Post::Softmax => values.chunks_mut(classes).for_each(softmax),
    }
    Ok(Probabilities { classes, positive, values })
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

/// `[rows, len]` index and value rows padded (index 0, value 0) to `[rows, width]`.
fn pad_rows(indices: &[i64], values: &[f32], rows: usize, len: usize, width: usize) -> (Vec<i64>, Vec<f32>) {
    let (mut i, mut v) = (vec![0i64; rows * width], vec![0f32; rows * width]);
    for r in 0..rows {
        i[r * width..r * width + len].copy_from_slice(&indices[r * len..(r + 1) * len]);
        v[r * width..r * width + len].copy_from_slice(&values[r * len..(r + 1) * len]);
    }
    (i, v)
}

fn info(name: &str, dtype: &ValueType) -> TensorInfo {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => {
            TensorInfo { name: name.to_string(), elem: ty.to_string(), shape: shape.to_vec() }
        }
        other => TensorInfo { name: name.to_string(), elem: other.to_string(), shape: Vec::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::logistic_regression;

    /// The runtime the test set-up installs (`make test` exports ORT_DYLIB_PATH).
    fn runtime() -> Runtime {
        Runtime::global(None).unwrap_or_else(|e| panic!("{}", error_chain(&e)))
    }

    #[test]
    fn logistic_regression_graph_scores_like_the_formula() {
        let w = [0.5f32, -1.25, 2.0];
        let b = 0.1f32;
        let model = logistic_regression(&w, b).to_bytes();
        let mut session = runtime().session(&model, Provider::Cpu, 1).unwrap();
        assert_eq!(session.provider(), "cpu");
        let inputs = session.inputs();
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].name, "features");
        assert_eq!(inputs[0].shape, vec![-1, 3]);
        let rows = [[1.0f32, 2.0, 3.0], [0.0, 0.0, 0.0], [-4.0, 0.5, 1.5], [10.0, -3.0, 0.25]];
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let (shape, out) = session.run_f32(&flat, rows.len(), 3).unwrap();
        assert_eq!(shape, vec![4, 1]);
        for (row, got) in rows.iter().zip(&out) {
            let z: f32 = row.iter().zip(&w).map(|(x, w)| x * w).sum::<f32>() + b;
            let want = 1.0 / (1.0 + (-z).exp());
            assert!((got - want).abs() < 1e-6, "row {row:?}: got {got}, want {want}");
        }
    }

    #[test]
    fn garbage_bytes_are_refused_not_crashed_on() {
        let err = runtime().session(b"not an onnx model", Provider::Cpu, 1).err().expect("must fail");
        assert!(matches!(err, RuntimeError::Ort { context: "loading the model", .. }), "{err}");
    }

    #[test]
    fn wrong_input_size_is_an_error() {
        let model = logistic_regression(&[1.0, 2.0], 0.0).to_bytes();
        let mut session = runtime().session(&model, Provider::Cpu, 1).unwrap();
        assert!(matches!(session.run_f32(&[1.0, 2.0, 3.0], 1, 2), Err(RuntimeError::Input(_))));
        assert!(session.run_f32(&[1.0, 2.0, 3.0], 1, 3).is_err());
    }

    #[test]
    fn cuda_without_the_feature_or_library_is_refused_and_auto_falls_back() {
        let model = logistic_regression(&[1.0], 0.0).to_bytes();
        let rt = runtime();
        if !rt.cuda_available() {
            assert!(matches!(rt.session(&model, Provider::Cuda, 1), Err(RuntimeError::CudaUnavailable { .. })));
            assert_eq!(rt.session(&model, Provider::Auto, 1).unwrap().provider(), "cpu");
        }
    }
}
