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
        EncoderCommand::Build { from, out: Some(out), .. } => build(&from, &out),
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

fn build(from: &std::path::Path, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let model = vigil_models::encoder::build_from_dir(from)?;
    let bytes = model.to_bytes();
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    let digest = vigil_models::checkpoint::sha256_hex(&bytes);
    println!("{}: {} bytes, sha256 {digest}", out.display(), bytes.len());
    Ok(ExitCode::SUCCESS)
}

fn store(from: &std::path::Path, dir: &std::path::Path, field: &str, max_tokens: u32) -> anyhow::Result<ExitCode> {
    let model = vigil_models::encoder::build_from_dir(from)?;
    let config: vigil_models::encoder::BertConfig =
        serde_json::from_slice(&std::fs::read(from.join("config.json")).context("reading config.json")?)?;
    let dim = config.hidden_size;
    let bytes = model.to_bytes();
    let tokenizer = std::fs::read(from.join("tokenizer.json")).context("reading the checkpoint's tokenizer.json")?;
    vigil_features::subword::Subword::from_json(&tokenizer, max_tokens as usize)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut digests = Vec::new();
    for (bytes, ext) in [(&bytes, "onnx"), (&tokenizer, "json")] {
        let digest = vigil_models::checkpoint::sha256_hex(bytes);
        let path = dir.join(format!("{digest}.{ext}"));
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("{}: {} bytes", path.display(), bytes.len());
        digests.push(digest);
    }
    println!(
        "[encoder]\nfield = \"{field}\"\nartifact = \"{}\"\ntokenizer = \"{}\"\ndim = {dim}\nmax-tokens = {max_tokens}",
        digests[0], digests[1]
    );
    Ok(ExitCode::SUCCESS)
}
