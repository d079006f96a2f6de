//! `vigil encoder build`: a sentence encoder's ONNX graph from a BERT checkpoint's files, written
//! to a file or into a model folder as artifacts named by digest with the spec section naming them;
//! `vigil encoder tokenize`: texts to token ids as the scorer will tokenise them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

/// What `vigil encoder` does.
#[derive(Debug, Subcommand)]
pub enum EncoderCommand {
    /// Build the encoder graph (BERT layers, mean pooling, L2 normalisation) from a checkpoint folder
    /// holding `config.json` and `model.safetensors` (such as all-MiniLM-L6-v2, fetched by the set-up
    /// into `.cache/all-minilm-l6-v2`); prints the file's size and SHA-256. With `--store`, writes
    /// the graph and the checkpoint's `tokenizer.json` into a model folder (`scorer.model-dirs`,
    /// `learner.model-dirs`) as `<sha256>.onnx` and `<sha256>.json`, and prints the `[encoder]`
    /// section of a feature spec that names them.
    Build {
        /// The checkpoint folder.
        #[arg(long)]
        from: PathBuf,
        /// Where to write the ONNX file.
        #[arg(long, required_unless_present = "store", conflicts_with = "store")]
        out: Option<PathBuf>,
        /// A model folder to store the encoder and its tokenizer in, by digest.
        #[arg(long)]
        store: Option<PathBuf>,
        /// The record field the printed spec section reads.
        #[arg(long, default_value = "text")]
        field: String,
        /// Tokens per text at most in the printed spec section.
        #[arg(long, default_value_t = 128)]
        max_tokens: u32,
        /// Seeded random weights of the checkpoint's shape (only its `config.json` is read): the
        /// encoder's cost without its weights, for machines they cannot be carried to.
        #[arg(long, conflicts_with = "store")]
        random_weights: bool,
        /// Half precision: float16 weights and arithmetic, the embedding cast back to float.
        #[arg(long, conflicts_with = "store")]
        fp16: bool,
    },
    /// Measures an encoder graph: texts/s at each batch size (random token ids, every row
    /// `--seq` tokens long) on a provider, and with `--parity` the largest difference of its
    /// embeddings from the CPU's. One JSON object per line.
    Bench {
        /// The encoder graph.
        #[arg(long)]
        graph: PathBuf,
        /// cpu, cuda or auto.
        #[arg(long, default_value = "cpu")]
        provider: vigil_models::Provider,
        /// Rows per run.
        #[arg(long, value_delimiter = ',', default_value = "64,256,1024")]
        batches: Vec<usize>,
        /// Tokens per row.
        #[arg(long, default_value_t = 128)]
        seq: usize,
        /// Seconds of runs per batch size (after one warm-up run).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Intra-op threads (CPU); 0: one per core.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Also compare 64 rows' embeddings with the CPU provider's (this graph or `--reference`).
        #[arg(long)]
        parity: bool,
        /// The graph the CPU runs for `--parity` (e.g. the FP32 graph when `--graph` is FP16).
        #[arg(long)]
        reference: Option<PathBuf>,
    },
    /// Tokenise texts with the checkpoint's `tokenizer.json` as the scorer does: JSON strings on
    /// standard input, one per line; their token ids (special tokens included) as JSON arrays out.
    Tokenize {
        /// The checkpoint folder.
        #[arg(long)]
        from: PathBuf,
        /// Tokens per text at most, special tokens included.
        #[arg(long, default_value_t = 256)]
        max_tokens: usize,
    },
}

/// Runs an encoder subcommand.
pub fn run(cmd: EncoderCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EncoderCommand::Build { from, out: Some(out), random_weights, fp16, .. } => {
            build(&from, &out, random_weights, fp16)
        }
        EncoderCommand::Bench { graph, provider, batches, seq, seconds, threads, parity, reference } => {
            let reference = parity.then(|| reference.unwrap_or_else(|| graph.clone()));
            bench(&graph, provider, &batches, seq, seconds, threads, reference.as_deref())
        }
        EncoderCommand::Build { from, store: Some(dir), field, max_tokens, .. } => {
            store(&from, &dir, &field, max_tokens)
        }
        EncoderCommand::Build { .. } => anyhow::bail!("give --out or --store"),
        EncoderCommand::Tokenize { from, max_tokens } => tokenize(&from, max_tokens),
    }
}

fn tokenize(from: &std::path::Path, max_tokens: usize) -> anyhow::Result<ExitCode> {
    use std::io::{BufRead, Write};
    let path = from.join("tokenizer.json");
    let json = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let tokenizer = vigil_features::subword::Subword::from_json(&json, max_tokens)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let text: String =
            serde_json::from_str(&line?).with_context(|| format!("line {}: not a JSON string", n + 1))?;
        writeln!(out, "{}", serde_json::to_string(&tokenizer.ids(&text)?)?)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn build(from: &std::path::Path, out: &std::path::Path, random: bool, fp16: bool) -> anyhow::Result<ExitCode> {
    use vigil_models::encoder;
    let mut model = if random {
        let config: encoder::BertConfig =
            serde_json::from_slice(&std::fs::read(from.join("config.json")).context("reading config.json")?)?;
        encoder::build_random(&config, 7)?
    } else {
        encoder::build_from_dir(from)?
    };
    if fp16 {
        encoder::to_fp16(&mut model);
    }
    let bytes = model.to_bytes();
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    let digest = vigil_models::checkpoint::sha256_hex(&bytes);
    println!("{}: {} bytes, sha256 {digest}", out.display(), bytes.len());
    Ok(ExitCode::SUCCESS)
}

fn store(from: &std::path::Path, dir: &std::path::Path, field: &str, max_tokens: u32) -> anyhow::Result<ExitCode> {
    let stored = vigil_models::encoder::store(from, dir)?;
    eprintln!("{}: {}.onnx and {}.json", dir.display(), stored.artifact, stored.tokenizer);
    print!("{}", stored.spec_section(field, max_tokens));
    Ok(ExitCode::SUCCESS)
}

/// Token ids and mask of `rows` rows of `seq` seeded random tokens.
fn random_tokens(rows: usize, seq: usize) -> (Vec<i64>, Vec<i64>) {
    let ids = (0..rows * seq).map(|i| 1000 + ((i as i64).wrapping_mul(2_654_435_761) % 20_000).abs()).collect();
    (ids, vec![1; rows * seq])
}

fn bench(
    graph: &std::path::Path,
    provider: vigil_models::Provider,
    batches: &[usize],
    seq: usize,
    seconds: f64,
    threads: usize,
    reference: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let runtime = vigil_models::Runtime::global(None).map_err(|e| anyhow::anyhow!(vigil_runtime::error_chain(&e)))?;
    let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
    let bytes = std::fs::read(graph).with_context(|| format!("reading {}", graph.display()))?;
    let mut session = runtime.session(&bytes, provider, threads)?;
    let on = session.provider();
    for &rows in batches {
        let (ids, mask) = random_tokens(rows, seq);
        session.embed(&ids, &mask, rows, seq)?;
        let (started, mut runs) = (std::time::Instant::now(), 0u64);
        while runs == 0 || started.elapsed().as_secs_f64() < seconds {
            session.embed(&ids, &mask, rows, seq)?;
            runs += 1;
        }
        let rate = (runs as usize * rows) as f64 / started.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({"provider": on, "batch": rows, "seq": seq, "runs": runs, "texts_per_s": rate})
        );
    }
    if let Some(reference) = reference {
        let (ids, mask) = random_tokens(64, seq);
        let (mine, _) = session.embed(&ids, &mask, 64, seq)?;
        let bytes = std::fs::read(reference).with_context(|| format!("reading {}", reference.display()))?;
        let mut cpu = runtime.session(&bytes, vigil_models::Provider::Cpu, threads)?;
        let (theirs, _) = cpu.embed(&ids, &mask, 64, seq)?;
        let max = mine.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        println!(
            "{}",
            serde_json::json!({"parity": "cpu", "provider": on, "rows": 64, "seq": seq, "max_abs_difference": max})
        );
    }
    Ok(ExitCode::SUCCESS)
}
