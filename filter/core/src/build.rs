//! What this build carries (OWASP LLM03, supply chain): the sha256 of every
//! model file embedded in the module, computed when it was built, and the
//! sha256 of the module itself as the deployment pinned it (`moduleSha256`:
//! Istio's WasmPlugin `sha256`, Envoy's `remote.sha256`; a module cannot
//! hash itself). Exposed in the `config_loaded` audit line, the trace
//! resource, every span (`tollgate.module.sha256`) and one counter per
//! artifact (`tollgate.build.<artifact>.sha256.<hex>`).

/// One embedded artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Artifact {
    pub name: &'static str,
    pub sha256: &'static str,
}

/// The model files this build embeds (the model-free build carries only the n-gram model).
pub fn artifacts() -> Vec<Artifact> {
    let mut out = vec![Artifact {
        name: "injection_ngram",
        sha256: env!("TOLLGATE_SHA256_NGRAM"),
    }];
    if cfg!(feature = "ml") {
        out.extend([
            Artifact {
                name: "injection_tiny_onnx",
                sha256: env!("TOLLGATE_SHA256_TINY_ONNX"),
            },
            Artifact {
                name: "injection_tiny_tokenizer",
                sha256: env!("TOLLGATE_SHA256_TINY_TOKENIZER"),
            },
            Artifact {
                name: "injection_tiny_combine",
                sha256: env!("TOLLGATE_SHA256_TINY_COMBINE"),
            },
            Artifact {
                name: "pii_ner_onnx",
                sha256: env!("TOLLGATE_SHA256_NER_ONNX"),
            },
            Artifact {
                name: "pii_ner_tokenizer",
                sha256: env!("TOLLGATE_SHA256_NER_TOKENIZER"),
            },
            Artifact {
                name: "pii_ner_labels",
                sha256: env!("TOLLGATE_SHA256_NER_LABELS"),
            },
        ]);
    }
    out
}

/// Artifacts as `name=sha256` pairs, the module first when it is known.
pub fn summary(module_sha256: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(m) = module_sha256 {
        out.push(("module".to_string(), m.to_string()));
    }
    out.extend(
        artifacts()
            .into_iter()
            .map(|a| (a.name.to_string(), a.sha256.to_string())),
    );
    out
}

/// The counter that records one artifact: `tollgate.build.<name>.sha256.<hex>`.
pub fn metric_name(name: &str, sha256: &str) -> String {
    format!("tollgate.build.{name}.sha256.{sha256}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sums_match_the_files() {
        use sha2::{Digest, Sha256};
        let root = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/injection/ngram.tgng"
        );
        let bytes = std::fs::read(root).unwrap_or_default();
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(artifacts()[0].sha256, hex);
        assert!(artifacts()
            .iter()
            .all(|a| a.sha256.len() == 64 && a.sha256.bytes().all(|b| b.is_ascii_hexdigit())));
        let s = summary(Some("ab"));
        assert_eq!(s[0], ("module".to_string(), "ab".to_string()));
    }
}
