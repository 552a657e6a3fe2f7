//! Limits and budgets through Envoy's global rate-limit service
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`), so any
//! standard service (envoyproxy/ratelimit, Limitador) backed by Redis counts.
//!
//! The numbers (5 requests a minute, 2 USD a day) live in the service's
//! configuration; the filter names the caller ([`Identity`]), builds one
//! descriptor per configured limit (`[("kind", "requests"), ("tenant",
//! "acme"), ("agent", "bot-1")]`) and says how much the request charges:
//! 1 request, its tokens, or its cost in micro-USD. The service has no "check
//! only" (an unset or zero `hits_addend` counts 1), so tokens and cost are
//! reserved before the upstream call (prompt tokens plus `max_tokens`) and
//! settled after the response: what the real usage adds beyond the
//! reservation is charged then. `hits_addend` is unsigned, so a reservation
//! larger than the usage cannot be given back through the standard API; the
//! flow counts it (`tollgate_ratelimit_unsettled_tokens`).

pub mod proto;

use crate::config::{
    ApiKeyConfig, ConfigError, Dimension, FailureMode, IdentityConfig, IdentitySourceConfig,
    LimitKind, MidStream, RateLimitConfig, UnknownIdentity,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The gRPC service and method the filter calls.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const METHOD: &str = "ShouldRateLimit";

/// One descriptor: its (key, value) entries in order.
pub type Descriptor = Vec<(String, String)>;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub tenant: String,
    pub team: Option<String>,
    pub agent: Option<String>,
    /// The caller's role (for `access` profiles).
    pub role: Option<String>,
}

/// Where identity values come from (compiled [`IdentityConfig`]).
#[derive(Debug, Clone)]
pub struct IdentityPolicy {
    pub tenant: Vec<IdentitySourceConfig>,
    pub team: Vec<IdentitySourceConfig>,
    pub agent: Vec<IdentitySourceConfig>,
    pub role: Vec<IdentitySourceConfig>,
    api_keys: Vec<([u8; 32], Identity)>,
    pub unknown: UnknownIdentity,
}

/// Longest identity value taken from a request (longer ones are refused as unknown).
pub const MAX_IDENTITY_LEN: usize = 128;

impl IdentityPolicy {
    pub fn compile(c: &IdentityConfig) -> Result<IdentityPolicy, ConfigError> {
        let mut api_keys = Vec::with_capacity(c.api_keys.len());
        for (i, k) in c.api_keys.iter().enumerate() {
            api_keys.push((parse_sha256(i, k)?, identity_of(k)));
        }
        if let UnknownIdentity::DefaultTenant(t) = &c.unknown {
            if !valid_value(t) {
                return Err(ConfigError::at(
                    "identity.unknown.defaultTenant",
                    "must be 1-128 printable ASCII characters",
                ));
            }
        }
        Ok(IdentityPolicy {
            tenant: c.tenant.clone(),
            team: c.team.clone(),
            agent: c.agent.clone(),
            role: c.role.clone(),
            api_keys,
            unknown: c.unknown.clone(),
        })
    }

    /// The caller of a request, from its bearer key, headers and metadata;
    /// `None` when the tenant is unknown and the policy refuses such requests.
    pub fn resolve(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        metadata: &dyn Fn(&[String]) -> Option<String>,
    ) -> Option<Identity> {
        if !self.api_keys.is_empty() {
            if let Some(key) = bearer_key(header) {
                let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
                // Every entry is compared, each in constant time.
                let mut found: Option<&Identity> = None;
                for (hash, id) in &self.api_keys {
                    if ct_eq(hash, &digest) {
                        found = Some(id);
                    }
                }
                if let Some(id) = found {
                    return Some(id.clone());
                }
            }
        }
        let pick = |sources: &[IdentitySourceConfig]| {
            sources.iter().find_map(|s| {
                let v = match s {
                    IdentitySourceConfig::Header(h) => header(&h.to_ascii_lowercase()),
                    IdentitySourceConfig::Metadata(path) => metadata(path),
                };
                v.map(|v| v.trim().to_string()).filter(|v| valid_value(v))
            })
        };
        let tenant = match (pick(&self.tenant), &self.unknown) {
            (Some(t), _) => t,
            (None, UnknownIdentity::DefaultTenant(t)) => t.clone(),
            (None, UnknownIdentity::Reject) => return None,
        };
        Some(Identity {
            tenant,
            team: pick(&self.team),
            agent: pick(&self.agent),
            role: pick(&self.role),
        })
    }
}

fn identity_of(k: &ApiKeyConfig) -> Identity {
    Identity {
        tenant: k.tenant.clone(),
        team: k.team.clone(),
        agent: k.agent.clone(),
        role: k.role.clone(),
    }
}

fn parse_sha256(i: usize, k: &ApiKeyConfig) -> Result<[u8; 32], ConfigError> {
    let at = || format!("identity.apiKeys[{i}].sha256");
    let hex = k.sha256.trim();
    if hex.len() != 64 {
        return Err(ConfigError::at(
            at(),
            "must be 64 hex digits (SHA-256 of the key)",
        ));
    }
    let mut out = [0u8; 32];
    for (n, slot) in out.iter_mut().enumerate() {
        let byte = hex
            .get(2 * n..2 * n + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| ConfigError::at(at(), "must be 64 hex digits (SHA-256 of the key)"))?;
        *slot = byte;
    }
    for (field, v) in [
        ("tenant", Some(&k.tenant)),
        ("team", k.team.as_ref()),
        ("agent", k.agent.as_ref()),
        ("role", k.role.as_ref()),
    ] {
        if let Some(v) = v {
            if !valid_value(v) {
                return Err(ConfigError::at(
                    format!("identity.apiKeys[{i}].{field}"),
                    "must be 1-128 printable ASCII characters",
                ));
            }
        }
    }
    Ok(out)
}

/// The key of `authorization: Bearer <key>`, else `x-api-key`.
pub(crate) fn bearer_key(header: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(a) = header("authorization") {
        let a = a.trim();
        if let Some(k) = a
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("bearer "))
            .and(a.get(7..))
        {
            return Some(k.trim().to_string());
        }
    }
    header("x-api-key").map(|k| k.trim().to_string())
}

/// Equal in time independent of where the bytes differ.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

fn valid_value(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_IDENTITY_LEN && v.bytes().all(|b| b.is_ascii_graphic())
}

/// A price: micro-USD per token (= USD per million tokens).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cached_input: f64,
}

/// One compiled limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub name: String,
    pub kind: LimitKind,
    pub per: Vec<Dimension>,
    pub entries: Vec<(String, String)>,
    pub soft: Option<f64>,
    pub failure_mode: FailureMode,
}

/// The compiled [`RateLimitConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitPolicy {
    pub cluster: String,
    pub domain: String,
    pub timeout_ms: u64,
    pub limits: Vec<Limit>,
    pub prices: BTreeMap<String, Price>,
    pub default_max_tokens: u64,
    pub mid_stream: MidStream,
}

impl RateLimitPolicy {
    pub fn compile(c: &RateLimitConfig) -> Result<RateLimitPolicy, ConfigError> {
        if c.cluster.trim().is_empty() {
            return Err(ConfigError::at("rateLimit.cluster", "must not be empty"));
        }
        if c.domain.trim().is_empty() {
            return Err(ConfigError::at("rateLimit.domain", "must not be empty"));
        }
        let timeout_us = crate::config::parse_duration_us(&c.timeout)
            .map_err(|e| ConfigError::at("rateLimit.timeout", e))?;
        if !(1_000..=10_000_000).contains(&timeout_us) {
            return Err(ConfigError::at(
                "rateLimit.timeout",
                "must be between 1ms and 10s",
            ));
        }
        if c.limits.is_empty() {
            return Err(ConfigError::at("rateLimit.limits", "must not be empty"));
        }
        let mut limits = Vec::with_capacity(c.limits.len());
        for (i, l) in c.limits.iter().enumerate() {
            let at = |f: &str| format!("rateLimit.limits[{i}].{f}");
            let name_ok = !l.name.is_empty()
                && l.name.len() <= 64
                && l.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok || limits.iter().any(|x: &Limit| x.name == l.name) {
                return Err(ConfigError::at(
                    at("name"),
                    "must be unique, 1-64 letters, digits, '-' or '_'",
                ));
            }
            if l.per.is_empty()
                || !l.per.contains(&Dimension::Tenant) && !l.per.contains(&Dimension::Model)
            {
                return Err(ConfigError::at(
                    at("per"),
                    "must name the tenant (or the model)",
                ));
            }
            if let Some(s) = l.soft {
                if !(s > 0.0 && s < 1.0) {
                    return Err(ConfigError::at(
                        at("soft"),
                        "must be between 0 and 1 (exclusive)",
                    ));
                }
            }
            limits.push(Limit {
                name: l.name.clone(),
                kind: l.kind,
                per: l.per.clone(),
                entries: l
                    .entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                soft: l.soft,
                failure_mode: l.failure_mode.unwrap_or(c.failure_mode),
            });
        }
        let mut prices = BTreeMap::new();
        for (model, p) in &c.prices {
            let ok = |v: f64| v.is_finite() && v >= 0.0;
            let cached = p.cached_input.unwrap_or(p.input);
            if !ok(p.input) || !ok(p.output) || !ok(cached) {
                return Err(ConfigError::at(
                    format!("rateLimit.prices.{model}"),
                    "prices must be finite and not negative",
                ));
            }
            prices.insert(
                model.clone(),
                Price {
                    input: p.input,
                    output: p.output,
                    cached_input: cached,
                },
            );
        }
        if limits.iter().any(|l| l.kind == LimitKind::Cost) && prices.is_empty() {
            return Err(ConfigError::at(
                "rateLimit.prices",
                "cost limits need a price table",
            ));
        }
        Ok(RateLimitPolicy {
            cluster: c.cluster.clone(),
            domain: c.domain.clone(),
            timeout_ms: timeout_us / 1000,
            limits,
            prices,
            default_max_tokens: u64::from(c.default_max_tokens),
            mid_stream: c.mid_stream,
        })
    }

    /// The price of `model` (an exact entry, else `*`).
    pub fn price(&self, model: &str) -> Option<Price> {
        self.prices
            .get(model)
            .or_else(|| self.prices.get("*"))
            .copied()
    }

    /// The descriptor of `limit` for this caller and model; `None` when a
    /// dimension it needs is unknown (that limit does not apply).
    pub fn descriptor(&self, limit: &Limit, who: &Identity, model: &str) -> Option<Descriptor> {
        let mut d = vec![("kind".to_string(), limit.kind.as_str().to_string())];
        for dim in &limit.per {
            let (k, v) = match dim {
                Dimension::Tenant => ("tenant", Some(who.tenant.as_str())),
                Dimension::Team => ("team", who.team.as_deref()),
                Dimension::Agent => ("agent", who.agent.as_deref()),
                Dimension::Model => ("model", Some(model).filter(|m| valid_value(m))),
            };
            d.push((k.to_string(), v?.to_string()));
        }
        d.extend(limit.entries.iter().cloned());
        Some(d)
    }
}

/// What a request charges: tokens and micro-USD (requests charge 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Charge {
    pub tokens: u64,
    pub cost_micros: u64,
}

impl Charge {
    pub fn amount(&self, kind: LimitKind) -> u64 {
        match kind {
            LimitKind::Requests => 1,
            LimitKind::Tokens => self.tokens,
            LimitKind::Cost => self.cost_micros,
        }
    }
}

/// The charge of `input` and `output` tokens at `price` (rounded up).
pub fn cost_micros(price: Option<Price>, input: u64, output: u64) -> u64 {
    let Some(p) = price else { return 0 };
    let c = input as f64 * p.input + output as f64 * p.output;
    if c.is_finite() && c > 0.0 {
        c.ceil() as u64
    } else {
        0
    }
}

/// The verdict on one limit.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitStatus {
    pub name: String,
    pub kind: LimitKind,
    pub over: bool,
    /// `requests_per_unit` and the window in seconds, when the service said.
    pub limit: Option<(u32, u64)>,
    pub remaining: u32,
    pub reset_seconds: Option<u64>,
    /// Below the soft threshold.
    pub soft: bool,
}

/// The IETF `RateLimit-Policy` and `RateLimit` header values of `statuses`
/// (draft-ietf-httpapi-ratelimit-headers): `"name";q=5;w=60` and
/// `"name";r=2;t=38`.
pub fn headers(statuses: &[LimitStatus]) -> Vec<(&'static str, String)> {
    let mut policy = Vec::new();
    let mut now = Vec::new();
    for s in statuses {
        if let Some((q, w)) = s.limit {
            policy.push(format!("\"{}\";q={q};w={w}", s.name));
            let mut v = format!("\"{}\";r={}", s.name, s.remaining);
            if let Some(t) = s.reset_seconds {
                v.push_str(&format!(";t={t}"));
            }
            now.push(v);
        }
    }
    let mut out = Vec::new();
    if !policy.is_empty() {
        out.push(("ratelimit-policy", policy.join(", ")));
        out.push(("ratelimit", now.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests;
