//! Per-tenant access policy (RBAC): the profile a request runs under, made
//! of up to four levels (default, tenant, role, the tenant's role), each
//! compiled once at load. A request's [`Profile`] is the chain of its
//! levels; a field comes from the last level that sets it, so resolving one
//! costs a few pointer copies.
//!
//! Shadow mode: a decision the profile puts in shadow is made and recorded
//! (audit line, span attribute, metric) but not enforced.

use crate::api::ApiKind;
use crate::config::{
    AccessConfig, CapMode, ConfigError, FlagOrBlock, FloodingConfig, ProfileConfig,
    SystemPromptConfig,
};
use crate::detect::{Action, Finding};
use std::collections::BTreeMap;
use std::sync::Arc;

#[cfg(test)]
mod tests;

/// Most tenants and roles an access policy may name.
pub const MAX_TENANTS: usize = 10_000;
pub const MAX_ROLES: usize = 256;

/// One compiled level of a profile (a field `None` inherits).
#[derive(Debug, Default)]
pub struct Level {
    /// `default`, `tenant:acme`, `role:analyst`, `tenant:acme/role:analyst`.
    pub name: String,
    endpoints: Option<Vec<Endpoint>>,
    models: Option<Vec<String>>,
    max_tokens: Option<u64>,
    max_tokens_mode: Option<CapMode>,
    max_prompt_chars: Option<u64>,
    max_prompt_tokens: Option<u64>,
    max_messages: Option<u64>,
    tools: Option<Arc<crate::agency::ToolPolicy>>,
    /// Per detector index: runs.
    detectors: Option<Vec<bool>>,
    actions: Vec<(String, Action)>,
    shadow: Option<bool>,
    shadow_rules: Option<Vec<String>>,
    system_prompt: Option<SystemPrompt>,
    flooding: Option<Flooding>,
}

#[derive(Debug, Clone, PartialEq)]
enum Endpoint {
    Api(ApiKind),
    Path(String),
}

/// Compiled [`SystemPromptConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemPrompt {
    pub canary: bool,
    pub leak_threshold: f32,
    pub ngram: usize,
    pub leak_run_words: usize,
    pub action: Action,
}

/// Compiled [`FloodingConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flooding {
    pub min_words: usize,
    pub max_top_share: f32,
    pub min_distinct: f32,
    pub action: Action,
    pub output_loops: bool,
}

/// Levels by role name.
type Roles = BTreeMap<String, Arc<Level>>;

/// The compiled `access` block.
#[derive(Debug)]
pub struct AccessPolicy {
    default: Arc<Level>,
    roles: Roles,
    tenants: BTreeMap<String, (Arc<Level>, Roles)>,
}

/// The profile one request runs under: its levels, most general first.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    chain: Vec<Arc<Level>>,
}

fn flag_or_block(a: FlagOrBlock) -> Action {
    match a {
        FlagOrBlock::Flag => Action::Flag,
        FlagOrBlock::Block => Action::Block,
    }
}

/// `*` matches any run of characters (also none); everything else is literal.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|c| *c == b'*')
}

fn api_named(name: &str) -> Option<ApiKind> {
    [
        ApiKind::OpenaiChat,
        ApiKind::OpenaiResponses,
        ApiKind::OpenaiCompletions,
        ApiKind::OpenaiEmbeddings,
        ApiKind::AnthropicMessages,
        ApiKind::UnknownJson,
    ]
    .into_iter()
    .find(|k| k.as_str() == name)
}

fn check_patterns(at: &str, list: &[String]) -> Result<(), ConfigError> {
    for (i, p) in list.iter().enumerate() {
        if p.is_empty() || p.len() > 256 || p.chars().any(char::is_control) {
            return Err(ConfigError::at(
                format!("{at}[{i}]"),
                "must be 1-256 characters without control characters",
            ));
        }
    }
    Ok(())
}

impl Level {
    fn compile(
        name: String,
        c: &ProfileConfig,
        at: &str,
        detector_ids: &[String],
    ) -> Result<Level, ConfigError> {
        let endpoints = match &c.endpoints {
            None => None,
            Some(list) => {
                check_patterns(&format!("{at}.endpoints"), list)?;
                let mut out = Vec::with_capacity(list.len());
                for (i, e) in list.iter().enumerate() {
                    if e.starts_with('/') {
                        out.push(Endpoint::Path(e.clone()));
                    } else if let Some(k) = api_named(e) {
                        out.push(Endpoint::Api(k));
                    } else {
                        return Err(ConfigError::at(
                            format!("{at}.endpoints[{i}]"),
                            format!("{e:?} is neither an API name (openaiChat, openaiResponses, openaiCompletions, openaiEmbeddings, anthropicMessages, unknownJson) nor a path starting with '/'"),
                        ));
                    }
                }
                Some(out)
            }
        };
        if let Some(m) = &c.models {
            check_patterns(&format!("{at}.models"), m)?;
        }
        for (field, v) in [
            ("maxTokens", c.max_tokens),
            ("maxPromptChars", c.max_prompt_chars),
            ("maxPromptTokens", c.max_prompt_tokens),
            ("maxMessages", c.max_messages),
        ] {
            if v == Some(0) {
                return Err(ConfigError::at(
                    format!("{at}.{field}"),
                    "must be at least 1",
                ));
            }
        }
        let detectors = match &c.detectors {
            None => None,
            Some(ids) => {
                let mut on = vec![false; detector_ids.len()];
                for (i, id) in ids.iter().enumerate() {
                    match detector_ids.iter().position(|d| d == id) {
                        Some(p) => {
                            if let Some(slot) = on.get_mut(p) {
                                *slot = true;
                            }
                        }
                        None => {
                            return Err(ConfigError::at(
                                format!("{at}.detectors[{i}]"),
                                format!("no detector has the id {id:?}"),
                            ))
                        }
                    }
                }
                Some(on)
            }
        };
        let mut actions = Vec::new();
        if let Some(map) = &c.actions {
            for (k, a) in map {
                if k.is_empty() || k.len() > 256 {
                    return Err(ConfigError::at(
                        format!("{at}.actions"),
                        "keys must be 1-256 characters",
                    ));
                }
                actions.push((k.clone(), *a));
            }
        }
        if let Some(r) = &c.shadow_rules {
            check_patterns(&format!("{at}.shadowRules"), r)?;
        }
        let system_prompt = c
            .system_prompt
            .as_ref()
            .map(|s| compile_system_prompt(s, &format!("{at}.systemPrompt")))
            .transpose()?;
        let flooding = c
            .flooding
            .as_ref()
            .map(|f| compile_flooding(f, &format!("{at}.flooding")))
            .transpose()?;
        let tools = c
            .tools
            .as_ref()
            .map(|t| crate::agency::ToolPolicy::compile(t, &format!("{at}.tools")).map(Arc::new))
            .transpose()?;
        Ok(Level {
            tools,
            name,
            endpoints,
            models: c.models.clone(),
            max_tokens: c.max_tokens,
            max_tokens_mode: c.max_tokens_mode,
            max_prompt_chars: c.max_prompt_chars,
            max_prompt_tokens: c.max_prompt_tokens,
            max_messages: c.max_messages,
            detectors,
            actions,
            shadow: c.shadow,
            shadow_rules: c.shadow_rules.clone(),
            system_prompt,
            flooding,
        })
    }
}

fn compile_system_prompt(s: &SystemPromptConfig, at: &str) -> Result<SystemPrompt, ConfigError> {
    if !(s.leak_threshold.is_finite() && (0.0..=1.0).contains(&s.leak_threshold)) {
        return Err(ConfigError::at(
            format!("{at}.leakThreshold"),
            "must be in 0..=1",
        ));
    }
    if !(2..=32).contains(&s.ngram) {
        return Err(ConfigError::at(format!("{at}.ngram"), "must be 2..=32"));
    }
    if s.leak_run_words != 0 && s.leak_run_words < s.ngram {
        return Err(ConfigError::at(
            format!("{at}.leakRunWords"),
            "must be 0 or at least ngram",
        ));
    }
    Ok(SystemPrompt {
        canary: s.canary,
        leak_threshold: s.leak_threshold,
        ngram: s.ngram,
        leak_run_words: s.leak_run_words,
        action: flag_or_block(s.action),
    })
}

fn compile_flooding(f: &FloodingConfig, at: &str) -> Result<Flooding, ConfigError> {
    for (field, v) in [
        ("maxTopShare", f.max_top_share),
        ("minDistinct", f.min_distinct),
    ] {
        if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
            return Err(ConfigError::at(format!("{at}.{field}"), "must be in 0..=1"));
        }
    }
    if f.min_words < 8 {
        return Err(ConfigError::at(
            format!("{at}.minWords"),
            "must be at least 8",
        ));
    }
    Ok(Flooding {
        min_words: f.min_words,
        max_top_share: f.max_top_share,
        min_distinct: f.min_distinct,
        action: flag_or_block(f.action),
        output_loops: f.output_loops,
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

impl AccessPolicy {
    /// Compile every level; `detector_ids` are the policy's detectors in order.
    pub fn compile(c: &AccessConfig, detector_ids: &[String]) -> Result<AccessPolicy, ConfigError> {
        if c.tenants.len() > MAX_TENANTS {
            return Err(ConfigError::at(
                "access.tenants",
                format!("at most {MAX_TENANTS} tenants"),
            ));
        }
        if !c.default.roles.is_empty() {
            return Err(ConfigError::at(
                "access.default.roles",
                "roles belong in access.roles or in a tenant",
            ));
        }
        let default = Arc::new(Level::compile(
            "default".into(),
            &c.default,
            "access.default",
            detector_ids,
        )?);
        let roles = compile_roles(&c.roles, "access.roles", "", detector_ids)?;
        let mut tenants = BTreeMap::new();
        for (name, t) in &c.tenants {
            let at = format!("access.tenants.{name}");
            if !valid_name(name) {
                return Err(ConfigError::at(
                    at,
                    "tenant names must be 1-128 printable ASCII characters",
                ));
            }
            let level = Level::compile(format!("tenant:{name}"), t, &at, detector_ids)?;
            let own = compile_roles(
                &t.roles,
                &format!("{at}.roles"),
                &format!("tenant:{name}/"),
                detector_ids,
            )?;
            tenants.insert(name.clone(), (Arc::new(level), own));
        }
        Ok(AccessPolicy {
            default,
            roles,
            tenants,
        })
    }

    /// The profile of a request of `tenant` (none without identity) in `role`.
    pub fn profile(&self, tenant: Option<&str>, role: Option<&str>) -> Profile {
        let mut chain = vec![self.default.clone()];
        let t = tenant.and_then(|t| self.tenants.get(t));
        if let Some((level, _)) = t {
            chain.push(level.clone());
        }
        if let Some(r) = role {
            if let Some(level) = self.roles.get(r) {
                chain.push(level.clone());
            }
            if let Some(level) = t.and_then(|(_, own)| own.get(r)) {
                chain.push(level.clone());
            }
        }
        Profile { chain }
    }
}

fn compile_roles(
    roles: &BTreeMap<String, ProfileConfig>,
    at: &str,
    prefix: &str,
    detector_ids: &[String],
) -> Result<Roles, ConfigError> {
    if roles.len() > MAX_ROLES {
        return Err(ConfigError::at(at, format!("at most {MAX_ROLES} roles")));
    }
    let mut out = BTreeMap::new();
    for (name, r) in roles {
        let here = format!("{at}.{name}");
        if !valid_name(name) {
            return Err(ConfigError::at(
                here,
                "role names must be 1-128 printable ASCII characters",
            ));
        }
        if !r.roles.is_empty() {
            return Err(ConfigError::at(
                format!("{here}.roles"),
                "a role has no roles of its own",
            ));
        }
        let level = Level::compile(format!("{prefix}role:{name}"), r, &here, detector_ids)?;
        out.insert(name.clone(), Arc::new(level));
    }
    Ok(out)
}

/// An access decision on a request (or a response check of the profile).
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// `MODEL_NOT_ALLOWED`, `ENDPOINT_NOT_ALLOWED`, `MAX_TOKENS`, ...
    pub kind: &'static str,
    /// For the client: says what is allowed, never echoes request content
    /// beyond the model or endpoint name.
    pub message: String,
}

impl Profile {
    fn last<T>(&self, f: impl Fn(&Level) -> Option<&T>) -> Option<&T> {
        self.chain.iter().rev().find_map(|l| f(l))
    }

    /// The most specific level's name (for traces and audit lines).
    pub fn name(&self) -> &str {
        self.chain.last().map_or("default", |l| l.name.as_str())
    }

    /// Whether the profile restricts or changes anything at all.
    pub fn is_empty(&self) -> bool {
        self.chain.iter().all(|l| {
            l.endpoints.is_none()
                && l.models.is_none()
                && l.max_tokens.is_none()
                && l.max_prompt_chars.is_none()
                && l.max_prompt_tokens.is_none()
                && l.max_messages.is_none()
                && l.tools.is_none()
                && l.detectors.is_none()
                && l.actions.is_empty()
                && l.system_prompt.is_none()
                && l.flooding.is_none()
        })
    }

    /// The endpoint check at the request headers.
    pub fn check_endpoint(&self, api: ApiKind, path: &str) -> Result<(), Violation> {
        let Some(list) = self.last(|l| l.endpoints.as_ref()) else {
            return Ok(());
        };
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let ok = list.iter().any(|e| match e {
            Endpoint::Api(k) => *k == api,
            Endpoint::Path(p) => glob(p, path),
        });
        if ok {
            return Ok(());
        }
        Err(Violation {
            kind: "ENDPOINT_NOT_ALLOWED",
            message: format!(
                "this endpoint ({}) is not allowed for the caller",
                api.as_str()
            ),
        })
    }

    /// The model check.
    pub fn check_model(&self, model: Option<&str>) -> Result<(), Violation> {
        let (Some(list), Some(model)) = (self.last(|l| l.models.as_ref()), model) else {
            return Ok(());
        };
        if list.iter().any(|p| glob(p, model)) {
            return Ok(());
        }
        let shown: String = model.chars().take(64).collect();
        Err(Violation {
            kind: "MODEL_NOT_ALLOWED",
            message: format!("the model {shown:?} is not allowed for the caller"),
        })
    }

    /// The output cap and what happens over it.
    pub fn max_tokens(&self) -> Option<(u64, CapMode)> {
        let cap = *self.last(|l| l.max_tokens.as_ref())?;
        let mode = self
            .last(|l| l.max_tokens_mode.as_ref())
            .copied()
            .unwrap_or_default();
        Some((cap, mode))
    }

    pub fn max_prompt_chars(&self) -> Option<u64> {
        self.last(|l| l.max_prompt_chars.as_ref()).copied()
    }

    pub fn max_prompt_tokens(&self) -> Option<u64> {
        self.last(|l| l.max_prompt_tokens.as_ref()).copied()
    }

    pub fn max_messages(&self) -> Option<u64> {
        self.last(|l| l.max_messages.as_ref()).copied()
    }

    /// The tool policy, when the profile has one.
    pub fn tools(&self) -> Option<Arc<crate::agency::ToolPolicy>> {
        self.last(|l| l.tools.as_ref()).cloned()
    }

    pub fn system_prompt(&self) -> Option<SystemPrompt> {
        self.last(|l| l.system_prompt.as_ref()).copied()
    }

    pub fn flooding(&self) -> Option<Flooding> {
        self.last(|l| l.flooding.as_ref()).copied()
    }

    /// Whether detector `index` runs for this profile.
    pub fn runs(&self, index: usize) -> bool {
        self.last(|l| l.detectors.as_ref())
            .is_none_or(|on| on.get(index).copied().unwrap_or(false))
    }

    /// Whether a decision named by any of `keys` (a finding's type, rule
    /// and detector id, or an access decision's kind) is only recorded.
    pub fn shadowed(&self, keys: &[&str]) -> bool {
        if self.last(|l| l.shadow.as_ref()).copied().unwrap_or(false) {
            return true;
        }
        self.last(|l| l.shadow_rules.as_ref())
            .is_some_and(|rules| rules.iter().any(|r| keys.iter().any(|k| glob(r, k))))
    }

    /// The action override for a finding: its rule id first, then its
    /// type, then its detector id; later levels first.
    pub fn action_for(&self, detector_id: &str, f: &Finding) -> Option<Action> {
        for key in [f.rule_id.as_str(), f.kind, detector_id] {
            for l in self.chain.iter().rev() {
                if let Some((_, a)) = l.actions.iter().find(|(p, _)| glob(p, key)) {
                    return Some(*a);
                }
            }
        }
        None
    }

    /// Apply the profile to one finding of detector `detector_id`: the
    /// action override, then shadow. `true` when the finding is shadowed
    /// (its `action` is what would have been done).
    pub fn adjust(&self, detector_id: &str, f: &mut Finding) -> bool {
        if let Some(a) = self.action_for(detector_id, f) {
            f.action = a;
        }
        f.action != Action::Allow && self.shadowed(&[f.kind, f.rule_id.as_str(), detector_id])
    }

    /// Apply the profile ([`Profile::adjust`]) to the findings detector
    /// `detector_id` just added to `findings` (those from index `from` on):
    /// the ones it shadows are taken out and returned, the ones it allows
    /// dropped, the rest kept in order.
    pub fn apply(
        &self,
        detector_id: &str,
        findings: &mut Vec<Finding>,
        from: usize,
    ) -> Vec<Finding> {
        let mut shadowed = Vec::new();
        for mut f in findings.split_off(from.min(findings.len())) {
            if self.adjust(detector_id, &mut f) {
                shadowed.push(f);
            } else if f.action != Action::Allow {
                findings.push(f);
            }
        }
        shadowed
    }
}

/// What the response is checked against for system prompt leakage (LLM07).
pub struct LeakCheck {
    /// The canary token added to the request's system prompt.
    pub canary: Option<String>,
    /// The request's system prompt as word n-grams.
    pub index: Option<crate::detect::leak::PromptIndex>,
    pub threshold: f32,
    pub run_words: usize,
    pub action: Action,
    /// The Responses API echoes `instructions` in its answers: the value
    /// before the canary was added, put back there so the client never
    /// sees the canary (`Null` when the request had none).
    pub instructions: Option<serde_json::Value>,
}

/// `value`'s `instructions` (at `value` or `value.response`) put back to
/// `original` where it holds `token`; `true` when something changed.
pub fn unecho_instructions(
    value: &mut serde_json::Value,
    token: &str,
    original: &serde_json::Value,
) -> bool {
    let mut changed = false;
    let holds = |v: &serde_json::Value| {
        v.get("instructions")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|s| s.contains(token))
    };
    if let Some(inner) = value.get_mut("response").filter(|r| holds(r)) {
        if let Some(o) = inner.as_object_mut() {
            o.insert("instructions".into(), original.clone());
            changed = true;
        }
    }
    if holds(value) {
        if let Some(o) = value.as_object_mut() {
            o.insert("instructions".into(), original.clone());
            changed = true;
        }
    }
    changed
}

impl LeakCheck {
    /// The kind of leak `text` (a whole answer) shows, if any.
    pub fn check(&self, text: &str) -> Option<&'static str> {
        if let Some(token) = &self.canary {
            if crate::detect::leak::find_canary(text, token).is_some() {
                return Some("CANARY_LEAK");
            }
        }
        let index = self.index.as_ref()?;
        self.leaked(crate::detect::leak::overlap(index, text))
    }

    /// Whether an overlap with the system prompt is a leak.
    pub fn leaked(&self, o: crate::detect::leak::Overlap) -> Option<&'static str> {
        let by_share = self.threshold > 0.0 && o.coverage >= self.threshold;
        let by_run = self.run_words > 0 && o.longest_run >= self.run_words;
        (by_share || by_run).then_some("SYSTEM_PROMPT_LEAK")
    }
}
