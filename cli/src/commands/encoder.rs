//! `vigil encoder build`: a sentence encoder's ONNX graph from a BERT checkpoint's files;
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
    /// into `.cache/all-minilm-l6-v2`); prints the file's size and SHA-256.
    Build {
        /// The checkpoint folder.
        #[arg(long)]
        from: PathBuf,
        /// Where to write the ONNX file.
        #[arg(long)]
        out: PathBuf,
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
        EncoderCommand::Build { from, out } => build(&from, &out),
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
