//! Compiling the `pii` detector's configuration.

use super::{ConfigError, PiiActionConfig, PiiConfig};
use crate::detect::pii_detector::{PiiDetector, TypeAction};
use crate::detect::Action;

pub(super) fn compile_pii(i: usize, c: &PiiConfig) -> Result<PiiDetector, ConfigError> {
    use crate::detect::pii::PiiType;
    use crate::redact::{HashKey, Rewrite};
    let at = |field: &str| format!("detectors[{i}].{field}");
    if !c.min_score.is_finite() || !(0.0..=1.0).contains(&c.min_score) {
        return Err(ConfigError::at(at("minScore"), "must be in 0..=1"));
    }
    if !(1..=16).contains(&c.ner_max_windows) {
        return Err(ConfigError::at(
            at("nerMaxWindows"),
            "must be between 1 and 16",
        ));
    }
    let ner_built = cfg!(feature = "ml");
    let wanted: Vec<(PiiType, PiiActionConfig)> = match &c.types {
        Some(map) => {
            let mut v = Vec::with_capacity(map.len());
            for (name, action) in map {
                let t = PiiType::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = PiiType::ALL.iter().map(|t| t.as_str()).collect();
                    ConfigError::at(
                        at(&format!("types.{name}")),
                        format!("unknown type; known types: {}", known.join(", ")),
                    )
                })?;
                v.push((t, *action));
            }
            v
        }
        None => PiiType::ALL
            .iter()
            .filter(|t| ner_built || !t.is_ner())
            .filter(|t| !t.is_ner() || c.ner != Some(false))
            .map(|t| {
                let a = if t.is_secret() {
                    PiiActionConfig::Block
                } else {
                    PiiActionConfig::Mask
                };
                (*t, a)
            })
            .collect(),
    };
    let needs_hash = wanted.iter().any(|(_, a)| *a == PiiActionConfig::Hash);
    if c.hash_key.is_some() {
        // Never a secret in the plugin config (it ends up in Istio resources,
        // Envoy dumps and logs): the key comes from the VM's environment.
        return Err(ConfigError::at(
            at("hashKey"),
            "plaintext secrets are refused: put the key in the VM's environment \
             (vm_config.environment_variables, Istio vmConfig.env) and name it with hashKeyEnv",
        ));
    }
    let key = match &c.hash_key_env {
        Some(var) => Some((
            std::env::var(var).map_err(|_| {
                ConfigError::at(
                    at("hashKeyEnv"),
                    format!("environment variable {var} is not set"),
                )
            })?,
            "hashKeyEnv",
        )),
        None => None,
    };
    let key = match key {
        Some((k, field)) => Some(std::sync::Arc::new(HashKey::new(k.as_bytes()).ok_or_else(
            || {
                ConfigError::at(
                    at(field),
                    format!("must be at least {} bytes", HashKey::MIN_LEN),
                )
            },
        )?)),
        None => None,
    };
    if needs_hash && key.is_none() {
        return Err(ConfigError::at(
            at("hashKey"),
            "the hash action needs hashKeyEnv (the key, from the VM's environment)",
        ));
    }
    let mut actions = Vec::with_capacity(wanted.len());
    for (t, a) in &wanted {
        let (action, rewrite) = match a {
            PiiActionConfig::Allow => continue,
            PiiActionConfig::Flag => (Action::Flag, Rewrite::Mask),
            PiiActionConfig::Mask => (Action::Redact, Rewrite::Mask),
            PiiActionConfig::PartialMask => (Action::Redact, Rewrite::PartialMask),
            PiiActionConfig::Hash => match &key {
                Some(k) => (Action::Redact, Rewrite::Hash(k.clone())),
                None => continue,
            },
            PiiActionConfig::Pseudonymize => (Action::Redact, Rewrite::Pseudonymize),
            PiiActionConfig::Block => (Action::Block, Rewrite::Mask),
        };
        actions.push(TypeAction {
            kind: *t,
            action,
            rewrite,
        });
    }
    let any_ner = actions.iter().any(|a| a.kind.is_ner());
    let use_ner = match c.ner {
        Some(false) => false,
        Some(true) => true,
        None => any_ner && ner_built,
    };
    if use_ner && !ner_built {
        return Err(ConfigError::at(
            at("ner"),
            "this build has no NER model (the model-free build); use the full tollgate.wasm",
        ));
    }
    if any_ner && !use_ner {
        let t = actions
            .iter()
            .find(|a| a.kind.is_ner())
            .map_or("", |a| a.kind.as_str());
        if c.ner == Some(false) {
            return Err(ConfigError::at(
                at(&format!("types.{t}")),
                "needs the NER model, and ner is false",
            ));
        }
        // `ner` absent on the model-free build: the pattern types still apply
        // (one policy for both builds), and the log says what is not detected.
        log::warn!(
            "tollgate: detectors[{i}]: this build has no NER model; PERSON, LOCATION and ORGANIZATION are not detected"
        );
        actions.retain(|a| !a.kind.is_ner());
    }
    let detector = PiiDetector::new(
        &c.id,
        actions,
        c.min_score,
        c.channels.clone(),
        (c.requests, c.responses),
    )
    .map_err(|e| ConfigError::at(at("types"), format!("built-in patterns: {e}")))?
    .with_on_error(c.on_error);
    if !use_ner {
        return Ok(detector);
    }
    #[cfg(feature = "ml")]
    {
        let model = crate::detect::ner::NerModel::builtin()
            .map_err(|e| ConfigError::at(at("ner"), format!("built-in model: {e}")))?;
        Ok(
            detector.with_ner(Box::new(crate::detect::pii_detector::ModelNer {
                model,
                max_windows: c.ner_max_windows,
            })),
        )
    }
    #[cfg(not(feature = "ml"))]
    Err(ConfigError::at(at("ner"), "this build has no NER model"))
}
