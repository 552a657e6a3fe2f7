//! With the `tokenizer` feature: OpenAI's BPE vocabularies, taken from the
//! `tiktoken-rs` crate (MIT, which embeds OpenAI's published `.tiktoken` files),
//! written to `OUT_DIR` in the compact form `tokens::bpe` reads: for each rank
//! from 0 in order, one length byte and the token's bytes. cl100k_base is
//! 744 KB that way, o200k_base 1.6 MB (the base64 text files are 1.7 and 3.6 MB).
//! Nothing is downloaded; the crate's own checksum in Cargo.lock pins the data.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "tokenizer")]
    vocab::write_all()?;
    model_sums()?;
    Ok(())
}

/// The sha256 of each model file `include_bytes!` embeds, as
/// `TOLLGATE_SHA256_<NAME>` for `build::artifacts` (the supply-chain record
/// of what this module carries; `make model-check` checks the same files
/// against the models' SHA256SUMS).
fn model_sums() -> Result<(), Box<dyn std::error::Error>> {
    use sha2::{Digest, Sha256};
    for (name, path) in [
        ("NGRAM", "../../models/injection/ngram.tgng"),
        ("TINY_ONNX", "../../models/injection/tiny/model.onnx"),
        (
            "TINY_TOKENIZER",
            "../../models/injection/tiny/tokenizer.json",
        ),
        ("TINY_COMBINE", "../../models/injection/tiny/combine.json"),
        ("NER_ONNX", "../../models/pii/ner/model.onnx"),
        ("NER_TOKENIZER", "../../models/pii/ner/tokenizer.json"),
        ("NER_LABELS", "../../models/pii/ner/labels.json"),
    ] {
        println!("cargo::rerun-if-changed={path}");
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!("cargo::rustc-env=TOLLGATE_SHA256_{name}={hex}");
    }
    Ok(())
}

#[cfg(feature = "tokenizer")]
mod vocab {
    use std::error::Error;
    use std::path::PathBuf;

    use tiktoken_rs::CoreBPE;

    pub fn write_all() -> Result<(), Box<dyn Error>> {
        let out = PathBuf::from(std::env::var("OUT_DIR")?);
        // The token counts are part of the format: `tokens::bpe` checks them.
        write(
            &tiktoken_rs::cl100k_base()?,
            100_256,
            &out.join("cl100k_base.bpe"),
        )?;
        write(
            &tiktoken_rs::o200k_base()?,
            199_998,
            &out.join("o200k_base.bpe"),
        )?;
        Ok(())
    }

    /// Ranks are dense from 0 to `expected - 1` (special tokens come after a gap
    /// and are not part of ordinary text).
    fn write(bpe: &CoreBPE, expected: u32, path: &PathBuf) -> Result<(), Box<dyn Error>> {
        let mut data = Vec::new();
        let mut rank = 0u32;
        while let Ok(bytes) = bpe.decode_bytes(&[rank]) {
            let len = u8::try_from(bytes.len())
                .ok()
                .filter(|&l| l > 0)
                .ok_or_else(|| {
                    format!("{}: token {rank} is {} bytes", path.display(), bytes.len())
                })?;
            data.push(len);
            data.extend_from_slice(&bytes);
            rank += 1;
        }
        if rank != expected {
            return Err(format!("{}: {rank} tokens, expected {expected}", path.display()).into());
        }
        std::fs::write(path, data)?;
        Ok(())
    }
}
