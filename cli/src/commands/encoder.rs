//! `vigil encoder build`: a sentence encoder's ONNX graph from a BERT checkpoint's files.

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
}

/// Runs an encoder subcommand.
pub fn run(cmd: EncoderCommand) -> anyhow::Result<ExitCode> {
    let EncoderCommand::Build { from, out } = cmd;
    let model = vigil_models::encoder::build_from_dir(&from)?;
    let bytes = model.to_bytes();
    std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    let digest = vigil_models::checkpoint::sha256_hex(&bytes);
    println!("{}: {} bytes, sha256 {digest}", out.display(), bytes.len());
    Ok(ExitCode::SUCCESS)
}
