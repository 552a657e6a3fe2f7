//! Plugin configuration: the raw serde types ([`PluginConfig`]) and their
//! compiled form ([`Policy`]), built once per VM in `on_configure`.
//!
//! JSON, camelCase, unknown fields rejected. Every error names the field:
//! `config.detectors[0].phrases[2]: phrase is empty after normalisation`.

mod access;
mod output;
mod pii;
mod raw;

pub use access::*;
pub use output::OutputConfig;
pub use raw::*;

use crate::api::ApiKind;
use crate::detect::injection::{ChannelThresholds, InjectionDetector, Thresholds};
use crate::detect::{DenyListDetector, Detector};
use std::fmt;

/// The schema version this build understands.
pub const SCHEMA_VERSION: u32 = 1;

/// The default policy: the one the demo runs and `tollgate scan` uses without `--config`.
pub const DEFAULT_POLICY_JSON: &str = include_str!("../../default-policy.json");

/// The default policy without its injection detector (tests of the deny lists,
/// whose findings the injection detector would add to).
#[cfg(test)]
pub(crate) fn default_deny_lists_only_json() -> String {
    let mut v: serde_json::Value = serde_json::from_str(DEFAULT_POLICY_JSON).unwrap_or_default();
    if let Some(d) = v["detectors"].as_array_mut() {
        d.retain(|x| x["type"] != "injection");
    }
    v.to_string()
}

/// A configuration error, naming the field and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("config{}: {reason}", display_path(.path))]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `detectors[0].phrases`; empty for the root.
    pub path: String,
    pub reason: String,
}

fn display_path(path: &str) -> String {
    if path.is_empty() || path == "." || path == "?" {
        String::new()
    } else if path.starts_with('[') {
        path.to_string()
    } else {
        format!(".{path}")
    }
}

impl ConfigError {
    pub(crate) fn at(path: impl Into<String>, reason: impl fmt::Display) -> Self {
        ConfigError {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

/// A route override: requests whose path starts with `pathPrefix` speak `api`.
#[derive(Debug, Clone)]
pub struct Route {
    pub path_prefix: String,
    pub api: ApiKind,
}

/// The compiled policy every request of a VM uses.
pub struct Policy {
    pub max_body_bytes: usize,
    pub malformed_json: MalformedJson,
    pub unknown_json: UnknownJson,
    pub routes: Vec<Route>,
    pub detectors: Vec<Box<dyn Detector>>,
    pub expose_findings: bool,
    pub responses: Responses,
    /// Who is calling (when limits are configured).
    pub identity: Option<crate::ratelimit::IdentityPolicy>,
    /// Limits and budgets through the rate-limit service.
    pub rate_limit: Option<crate::ratelimit::RateLimitPolicy>,
    /// Trace export (one span per exchange).
    pub traces: Option<crate::telemetry::TracePolicy>,
    /// Audit lines in Envoy's log.
    pub audit_log: bool,
    /// Per-tenant anomaly detection.
    pub anomaly: Option<crate::anomaly::AnomalyPolicy>,
    /// Hold the request headers until the body is checked (see [`PluginConfig::pause_at_headers`]).
    pub pause_at_headers: bool,
    /// The detectors' ids, in order.
    pub detector_ids: Vec<String>,
    /// Per-tenant and per-role profiles.
    pub access: Option<crate::access::AccessPolicy>,
    /// The module's sha256 as the deployment pinned it.
    pub module_sha256: Option<String>,
    /// `testOnly.trapOnHeader`, lower-cased: the plugin aborts the VM on a
    /// request with this header (fault tests only).
    pub trap_on_header: Option<String>,
}

/// Compiled [`ResponsesConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct Responses {
    pub identity_encoding: bool,
    pub hold_back_bytes: usize,
    pub max_hold_bytes: usize,
    pub max_tool_args_bytes: usize,
    pub stream_usage: bool,
}

impl Default for Responses {
    fn default() -> Self {
        Responses::from(&ResponsesConfig::default())
    }
}

impl From<&ResponsesConfig> for Responses {
    fn from(c: &ResponsesConfig) -> Self {
        Responses {
            identity_encoding: c.identity_encoding,
            hold_back_bytes: c.hold_back_bytes as usize,
            max_hold_bytes: c.max_hold_bytes as usize,
            max_tool_args_bytes: c.max_tool_args_bytes as usize,
            stream_usage: c.stream_usage,
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("malformed_json", &self.malformed_json)
            .field("unknown_json", &self.unknown_json)
            .field("routes", &self.routes)
            .field("responses", &self.responses)
            .field(
                "detectors",
                &self.detectors.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Policy {
    /// Parse and compile a JSON configuration. An empty configuration (Envoy
    /// passes none when the filter has no `configuration`) is the default policy.
    pub fn from_json(bytes: &[u8]) -> Result<Policy, ConfigError> {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Policy::default_policy();
        }
        PluginConfig::from_json(bytes)?.compile()
    }

    /// The default policy (see [`DEFAULT_POLICY_JSON`]).
    pub fn default_policy() -> Result<Policy, ConfigError> {
        PluginConfig::from_json(DEFAULT_POLICY_JSON.as_bytes())?.compile()
    }

    /// Whether any detector scans response bodies.
    pub fn scans_responses(&self) -> bool {
        self.detectors
            .iter()
            .any(|d| d.applies_to_direction(crate::api::Direction::Response))
    }

    /// The API a request path speaks: the first matching route override, else by path.
    pub fn api_for_path(&self, path: &str) -> ApiKind {
        self.routes
            .iter()
            .find(|r| path.starts_with(&r.path_prefix))
            .map(|r| r.api)
            .unwrap_or_else(|| ApiKind::for_path(path))
    }
}

impl PluginConfig {
    fn compile_responses(&self) -> Result<Responses, ConfigError> {
        let r = &self.responses;
        if r.max_hold_bytes == 0 || r.max_hold_bytes > 1 << 20 {
            return Err(ConfigError::at(
                "responses.maxHoldBytes",
                "must be between 1 and 1048576",
            ));
        }
        if r.hold_back_bytes > r.max_hold_bytes {
            return Err(ConfigError::at(
                "responses.holdBackBytes",
                "must not exceed responses.maxHoldBytes",
            ));
        }
        if r.max_tool_args_bytes == 0 {
            return Err(ConfigError::at(
                "responses.maxToolArgsBytes",
                "must be at least 1",
            ));
        }
        let mut out = Responses::from(r);
        // Never more than a whole body.
        out.max_tool_args_bytes = out
            .max_tool_args_bytes
            .min(usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX));
        Ok(out)
    }

    /// Parse, naming the field of any error.
    pub fn from_json(bytes: &[u8]) -> Result<PluginConfig, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let mut path = e.path().to_string();
            let mut reason = e.into_inner().to_string();
            // A nested path reported by a hand-written variant deserializer.
            if let Some(rest) = reason.strip_prefix(raw::NESTED_PATH_MARK) {
                if let Some((inner, msg)) = rest.split_once(raw::NESTED_PATH_MARK) {
                    path = if inner.starts_with('[') {
                        format!("{path}{inner}")
                    } else {
                        format!("{path}.{inner}")
                    };
                    reason = msg.to_string();
                }
            }
            ConfigError::at(path, reason)
        })
    }

    /// Check the semantics and build what requests use.
    pub fn compile(&self) -> Result<Policy, ConfigError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(ConfigError::at(
                "schemaVersion",
                format!(
                    "unsupported version {}, this build reads {SCHEMA_VERSION}",
                    self.schema_version
                ),
            ));
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > MAX_BODY_LIMIT {
            return Err(ConfigError::at(
                "maxBodyBytes",
                format!("must be between 1 and {MAX_BODY_LIMIT}"),
            ));
        }
        let mut routes = Vec::with_capacity(self.routes.len());
        for (i, r) in self.routes.iter().enumerate() {
            if !r.path_prefix.starts_with('/') {
                return Err(ConfigError::at(
                    format!("routes[{i}].pathPrefix"),
                    "must start with '/'",
                ));
            }
            routes.push(Route {
                path_prefix: r.path_prefix.clone(),
                api: r.api,
            });
        }
        let mut detectors: Vec<Box<dyn Detector>> = Vec::with_capacity(self.detectors.len());
        let mut ids: Vec<&str> = Vec::new();
        for (i, d) in self.detectors.iter().enumerate() {
            let id = match d {
                DetectorConfig::DenyList(c) => &c.id,
                DetectorConfig::Injection(c) => &c.id,
                DetectorConfig::Pii(c) => &c.id,
                DetectorConfig::Output(c) => &c.id,
            };
            if id.is_empty()
                || !id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                return Err(ConfigError::at(
                    format!("detectors[{i}].id"),
                    "must be non-empty and use only letters, digits, '-' and '_'",
                ));
            }
            if ids.contains(&id.as_str()) {
                return Err(ConfigError::at(
                    format!("detectors[{i}].id"),
                    format!("duplicate detector id {id:?}"),
                ));
            }
            ids.push(id);
            match d {
                DetectorConfig::Injection(c) => {
                    detectors.push(Box::new(compile_injection(i, c)?));
                }
                DetectorConfig::Pii(c) => {
                    detectors.push(Box::new(pii::compile_pii(i, c)?));
                }
                DetectorConfig::Output(c) => {
                    detectors.push(Box::new(output::compile_output(i, c)?));
                }
                DetectorConfig::DenyList(c) => {
                    let at = |field: &str| format!("detectors[{i}].{field}");
                    if c.phrases.is_empty() {
                        return Err(ConfigError::at(at("phrases"), "must not be empty"));
                    }
                    if c.phrases.len() > MAX_PHRASES {
                        return Err(ConfigError::at(
                            at("phrases"),
                            format!("at most {MAX_PHRASES} phrases"),
                        ));
                    }
                    let det =
                        DenyListDetector::new(&c.id, &c.phrases, c.action, c.channels.clone())
                            .map_err(|e| match e {
                                crate::detect::denylist::DenyListError::EmptyPhrase(p) => {
                                    ConfigError::at(
                                        format!("detectors[{i}].phrases[{p}]"),
                                        "phrase is empty after normalisation",
                                    )
                                }
                                other => ConfigError::at(at("phrases"), other),
                            })?;
                    detectors.push(Box::new(det.with_responses(c.responses)));
                }
            }
        }
        let detector_ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let access = self
            .access
            .as_ref()
            .map(|a| crate::access::AccessPolicy::compile(a, &detector_ids))
            .transpose()?;
        let module_sha256 = match &self.module_sha256 {
            None => None,
            Some(h) => {
                let h = h.trim().to_ascii_lowercase();
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ConfigError::at("moduleSha256", "must be 64 hex digits"));
                }
                Some(h)
            }
        };
        let trap_on_header = match self
            .test_only
            .as_ref()
            .and_then(|t| t.trap_on_header.as_ref())
        {
            None => None,
            Some(h) => {
                let h = h.trim().to_ascii_lowercase();
                if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(ConfigError::at(
                        "testOnly.trapOnHeader",
                        "must be a header name ([A-Za-z0-9-]+)",
                    ));
                }
                Some(h)
            }
        };
        Ok(Policy {
            module_sha256,
            trap_on_header,
            detector_ids,
            access,
            max_body_bytes: self.max_body_bytes as usize,
            malformed_json: self.malformed_json,
            unknown_json: self.unknown_json,
            routes,
            detectors,
            expose_findings: self.expose_findings,
            responses: self.compile_responses()?,
            identity: match (
                &self.identity,
                self.rate_limit.is_some() || self.access.is_some(),
            ) {
                (Some(c), _) => Some(crate::ratelimit::IdentityPolicy::compile(c)?),
                // Limits and profiles need a caller: the default sources (x-tenant-id, ...).
                (None, true) => Some(crate::ratelimit::IdentityPolicy::compile(
                    &IdentityConfig::default(),
                )?),
                (None, false) => None,
            },
            rate_limit: self
                .rate_limit
                .as_ref()
                .map(crate::ratelimit::RateLimitPolicy::compile)
                .transpose()?,
            traces: self
                .traces
                .as_ref()
                .map(crate::telemetry::TracePolicy::compile)
                .transpose()?,
            audit_log: self.audit.log,
            pause_at_headers: self.pause_at_headers,
            anomaly: self
                .anomaly
                .as_ref()
                .map(|c| {
                    crate::anomaly::AnomalyPolicy::from_config(c)
                        .map_err(|e| ConfigError::at(format!("anomaly.{}", e.field), e.reason))
                })
                .transpose()?,
        })
    }
}

fn compile_injection(i: usize, c: &InjectionConfig) -> Result<InjectionDetector, ConfigError> {
    let at = |field: &str| format!("detectors[{i}].{field}");
    let ch = &c.channels;
    let mut thresholds = ChannelThresholds {
        user: None,
        system: None,
        assistant: None,
        tool: None,
        document: None,
    };
    for (name, t, slot) in [
        ("user", ch.user, &mut thresholds.user),
        ("system", ch.system, &mut thresholds.system),
        ("assistant", ch.assistant, &mut thresholds.assistant),
        ("tool", ch.tool, &mut thresholds.tool),
        ("document", ch.document, &mut thresholds.document),
    ] {
        let ok = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        if !ok(t.flag) || !ok(t.block) || t.flag > t.block {
            return Err(ConfigError::at(
                at(&format!("channels.{name}")),
                "flag and block must be in 0..=1 with flag <= block",
            ));
        }
        if t.enabled {
            *slot = Some(Thresholds {
                flag: t.flag,
                block: t.block,
            });
        }
    }
    let rules: Option<Box<dyn Detector>> = if c.rules {
        let r = crate::detect::rules::builtin()
            .map_err(|e| ConfigError::at(at("rules"), format!("built-in rules: {e}")))?;
        Some(Box::new(r))
    } else {
        None
    };
    let model = if c.model {
        Some(
            crate::detect::ngram::builtin()
                .map_err(|e| ConfigError::at(at("model"), format!("built-in model: {e}")))?,
        )
    } else {
        None
    };
    if rules.is_none() && model.is_none() {
        return Err(ConfigError::at(at("rules"), "rules and model are both off"));
    }
    if !(1..=8).contains(&c.max_windows) {
        return Err(ConfigError::at(at("maxWindows"), "must be between 1 and 8"));
    }
    let second_stage = c.second_stage.unwrap_or(cfg!(feature = "ml"));
    if second_stage && model.is_none() {
        return Err(ConfigError::at(
            at("secondStage"),
            "the second stage needs the n-gram model (model: true)",
        ));
    }
    let budget = match &c.time_budget {
        None => None,
        Some(d) => Some((
            parse_duration_us(d).map_err(|e| ConfigError::at(at("timeBudget"), e))?,
            c.on_timeout,
        )),
    };
    let detector = InjectionDetector::new(&c.id, rules, model, thresholds)
        .with_budget(budget)
        .with_on_error(c.on_error)
        .with_responses(c.responses);
    if !second_stage {
        return Ok(detector);
    }
    #[cfg(feature = "ml")]
    {
        let tiny = crate::detect::tiny::builtin()
            .map_err(|e| ConfigError::at(at("secondStage"), format!("built-in model: {e}")))?;
        Ok(detector.with_tiny(tiny, c.max_windows))
    }
    #[cfg(not(feature = "ml"))]
    Err(ConfigError::at(
        at("secondStage"),
        "this build has no second-stage model (the model-free build); use the full tollgate.wasm",
    ))
}

/// `"250ms"`, `"800us"`, `"1s"` to microseconds.
pub fn parse_duration_us(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like \"5ms\""))?;
    let scale = match unit {
        "us" | "µs" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        _ => return Err(format!("{s:?}: the unit must be us, ms or s")),
    };
    n.checked_mul(scale)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?} must be above zero and fit in 64 bits"))
}

/// Upper bound on `maxBodyBytes` (64 MiB): every byte is held in the VM.
pub const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;
/// Upper bound on phrases per deny list.
pub const MAX_PHRASES: usize = 10_000;

/// Compiled policies for the unit tests of the modules that run them.
#[cfg(test)]
pub(crate) mod test_support {
    use super::Policy;
    use std::rc::Rc;

    pub(crate) fn policy(json: &str) -> Rc<Policy> {
        match Policy::from_json(json.as_bytes()) {
            Ok(p) => Rc::new(p),
            Err(e) => unreachable!("{e}"),
        }
    }

    /// Put the test HMAC keys in the environment (once, before any test reads it).
    pub(crate) fn set_test_hash_key() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::env::set_var("TOLLGATE_TEST_HASH_KEY", "0123456789abcdef0123");
            std::env::set_var("TOLLGATE_TEST_SHORT_KEY", "short");
        });
    }

    pub(crate) fn default_policy() -> Rc<Policy> {
        match Policy::default_policy() {
            Ok(p) => Rc::new(p),
            Err(e) => unreachable!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests;
