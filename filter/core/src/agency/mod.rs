//! Tool controls (OWASP LLM06, excessive agency): which tools a model may be
//! offered and may call, and what the arguments of a call may hold.
//!
//! [`ToolsConfig`] is the raw config; [`ToolPolicy::compile`] builds what
//! requests and streams use:
//!
//! * requests: [`ToolPolicy::filter_request`] drops or refuses tool
//!   definitions outside `allow`;
//! * responses: [`ToolPolicy::check_call`] (and [`ToolPolicy::check_input`]
//!   for a custom tool's free-form input) on every call the model makes,
//!   found by [`response_calls`] in a whole body, or held by the stream
//!   scanner ([`crate::sse::StreamScanner::with_tools`]) until the
//!   call's arguments are complete.
//!
//! A call is checked in this order: the name against `allow`
//! (`TOOL_NOT_ALLOWED`), the size against each matching rule's
//! `maxArgsBytes` (`TOOL_ARGS_TOO_LARGE`), the arguments must be a JSON
//! object without duplicate member names, nested at most
//! [`schema::MAX_DEPTH`] deep (`TOOL_ARGS_INVALID`), then per matching rule:
//! its schema (`TOOL_ARGS_INVALID`), then for each string value at any
//! depth its `deny` patterns and presets (`TOOL_ARGS_DENIED`) and its
//! `allowHosts` (`TOOL_URL_NOT_ALLOWED`). Violations name the JSON pointer
//! and the constraint, never the value.

pub mod config;
pub(crate) mod json;
mod presets;
pub mod schema;
mod shapes;
pub mod url;

pub use config::{DenyPreset, ToolDefinitionAction, ToolRuleConfig, ToolsConfig};
pub use shapes::{definition_names, response_calls, ToolCall};

use crate::api::ApiKind;
use crate::config::ConfigError;
use presets::{normalise, Preset};
use regex::{Regex, RegexBuilder};
use schema::{push_token, Schema, MAX_DEPTH};
use serde_json::{Map, Value};
use std::fmt;
use url::{find_urls, host_matches, normalise_entry, WEB_SCHEMES};

/// A call to a tool `allow` does not list.
pub const TOOL_NOT_ALLOWED: &str = "TOOL_NOT_ALLOWED";
/// Arguments that are not a JSON object, or fail the rule's schema.
pub const TOOL_ARGS_INVALID: &str = "TOOL_ARGS_INVALID";
/// A string argument matches a deny pattern or preset.
pub const TOOL_ARGS_DENIED: &str = "TOOL_ARGS_DENIED";
/// A URL argument points to a host outside `allowHosts`.
pub const TOOL_URL_NOT_ALLOWED: &str = "TOOL_URL_NOT_ALLOWED";
/// Arguments larger than `maxArgsBytes`.
pub const TOOL_ARGS_TOO_LARGE: &str = "TOOL_ARGS_TOO_LARGE";

/// Longest tool name kept in a violation (names come from the model).
const MAX_NAME_CHARS: usize = 64;

/// Why a tool call was refused. `detail` names a JSON pointer and the
/// constraint (`/cmd: longer than maxLength 200`), never an argument value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolViolation {
    /// One of the `TOOL_*` constants.
    pub kind: &'static str,
    /// The tool's name (cut to 64 characters).
    pub tool: String,
    /// What refused it: `allow`, `json`, `schema`, `maxArgsBytes`,
    /// `deny[2]`, a preset (`destructiveShell`), `allowHosts`.
    pub rule: String,
    pub detail: String,
}

impl fmt::Display for ToolViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}: {}",
            self.kind, self.tool, self.rule, self.detail
        )
    }
}

/// What [`ToolPolicy::filter_request`] did to a request's tool definitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestTools {
    /// Definitions removed (`onDisallowed: drop`).
    pub dropped: Vec<String>,
    /// Definitions outside `allow` with `onDisallowed: refuse`: the caller
    /// answers 403; the body is unchanged.
    pub refused: Vec<String>,
    /// The body was changed (serialise it again).
    pub changed: bool,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    schema: Option<Schema>,
    deny: Vec<Regex>,
    presets: Vec<Preset>,
    allow_hosts: Option<Vec<String>>,
    max_args_bytes: Option<usize>,
}

/// The compiled tool controls.
#[derive(Debug, Clone)]
pub struct ToolPolicy {
    allow: Option<Vec<String>>,
    on_disallowed: ToolDefinitionAction,
    rules: Vec<Rule>,
}

/// Whether `name` matches `pattern`, where `*` matches any run of
/// characters (none included) and everything else matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if Some(c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
}

fn cut(name: &str) -> String {
    match name.char_indices().nth(MAX_NAME_CHARS) {
        Some((i, _)) => format!("{}…", name.get(..i).unwrap_or_default()),
        None => name.to_owned(),
    }
}

/// Every string value of `v` with its JSON pointer; `Err(pointer)` when `v`
/// nests deeper than [`MAX_DEPTH`].
fn strings<'a>(
    v: &'a Value,
    ptr: &mut String,
    depth: usize,
    out: &mut Vec<(String, &'a str)>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(ptr.clone());
    }
    match v {
        Value::String(s) => out.push((ptr.clone(), s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&i.to_string());
                strings(item, ptr, depth + 1, out)?;
                ptr.truncate(len);
            }
        }
        Value::Object(obj) => {
            for (k, item) in obj {
                let len = ptr.len();
                push_token(ptr, k);
                strings(item, ptr, depth + 1, out)?;
                ptr.truncate(len);
            }
        }
        Value::Number(_) | Value::Bool(_) | Value::Null => {}
    }
    Ok(())
}

fn show(ptr: &str) -> &str {
    if ptr.is_empty() {
        "(root)"
    } else {
        ptr
    }
}

impl ToolPolicy {
    /// Compile `c`; errors name the field below `at` (the config path of
    /// `c`, e.g. `access.tenants.acme.tools`).
    pub fn compile(c: &ToolsConfig, at: &str) -> Result<ToolPolicy, ConfigError> {
        if let Some(allow) = &c.allow {
            for (i, p) in allow.iter().enumerate() {
                if p.is_empty() {
                    return Err(ConfigError::at(
                        format!("{at}.allow[{i}]"),
                        "tool name pattern is empty",
                    ));
                }
            }
        }
        let mut rules = Vec::with_capacity(c.rules.len());
        for (pattern, r) in &c.rules {
            let base = format!("{at}.rules.{pattern}");
            if pattern.is_empty() {
                return Err(ConfigError::at(base, "tool name pattern is empty"));
            }
            let schema = match &r.schema {
                Some(v) => Some(Schema::compile(v).map_err(|(p, reason)| {
                    let path = if p.is_empty() {
                        format!("{base}.schema")
                    } else {
                        format!("{base}.schema.{p}")
                    };
                    ConfigError::at(path, reason)
                })?),
                None => None,
            };
            let mut deny = Vec::with_capacity(r.deny.len());
            for (i, d) in r.deny.iter().enumerate() {
                let re = RegexBuilder::new(d)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| ConfigError::at(format!("{base}.deny[{i}]"), e))?;
                deny.push(re);
            }
            let mut presets: Vec<Preset> = Vec::new();
            for (i, p) in r.deny_presets.iter().enumerate() {
                if presets.iter().any(|x| x.preset == *p) {
                    continue;
                }
                let compiled = Preset::compile(*p)
                    .map_err(|e| ConfigError::at(format!("{base}.denyPresets[{i}]"), e))?;
                presets.push(compiled);
            }
            let allow_hosts = match &r.allow_hosts {
                Some(hosts) => {
                    let mut out = Vec::with_capacity(hosts.len());
                    for (i, h) in hosts.iter().enumerate() {
                        let entry = normalise_entry(h).ok_or_else(|| {
                            ConfigError::at(
                                format!("{base}.allowHosts[{i}]"),
                                "not a host name, an IP address or `*.` and a host name",
                            )
                        })?;
                        out.push(entry);
                    }
                    Some(out)
                }
                None => None,
            };
            if r.max_args_bytes == Some(0) {
                return Err(ConfigError::at(
                    format!("{base}.maxArgsBytes"),
                    "must be at least 1",
                ));
            }
            rules.push(Rule {
                pattern: pattern.clone(),
                schema,
                deny,
                presets,
                allow_hosts,
                max_args_bytes: r.max_args_bytes.map(|m| m as usize),
            });
        }
        Ok(ToolPolicy {
            allow: c.allow.clone(),
            on_disallowed: c.on_disallowed,
            rules,
        })
    }

    /// Whether `allow` lets the model be offered and call `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|a| a.iter().any(|p| glob_match(p, name)))
    }

    /// Check one call whose arguments are JSON text (OpenAI's string, an
    /// Anthropic `input` serialised); an empty string is `{}`.
    pub fn check_call(&self, name: &str, args: &str) -> Result<(), ToolViolation> {
        self.check(name, args, false)
    }

    /// Check one call of a custom tool whose input is free-form text: the
    /// schema validates it as one string, deny patterns and `allowHosts` run
    /// on it.
    pub fn check_input(&self, name: &str, input: &str) -> Result<(), ToolViolation> {
        self.check(name, input, true)
    }

    /// Check every tool call of a non-streamed response body.
    pub fn check_response(&self, api: ApiKind, body: &Value) -> Result<(), ToolViolation> {
        for c in response_calls(api, body) {
            self.check(&c.name, &c.args, c.freeform)?;
        }
        Ok(())
    }

    fn check(&self, name: &str, raw: &str, freeform: bool) -> Result<(), ToolViolation> {
        let violation = |kind: &'static str, rule: &str, detail: String| ToolViolation {
            kind,
            tool: cut(name),
            rule: rule.to_owned(),
            detail,
        };
        if !self.allows(name) {
            return Err(violation(
                TOOL_NOT_ALLOWED,
                "allow",
                "tool not in the allow list".to_owned(),
            ));
        }
        let rules: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| glob_match(&r.pattern, name))
            .collect();
        for r in &rules {
            if let Some(max) = r.max_args_bytes.filter(|m| raw.len() > *m) {
                return Err(violation(
                    TOOL_ARGS_TOO_LARGE,
                    "maxArgsBytes",
                    format!("arguments are {} bytes, over maxArgsBytes {max}", raw.len()),
                ));
            }
        }
        let value = if freeform {
            Value::String(raw.to_owned())
        } else if raw.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            match json::parse(raw) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => {
                    return Err(violation(
                        TOOL_ARGS_INVALID,
                        "json",
                        "(root): arguments are not a JSON object".to_owned(),
                    ))
                }
                Err(e) => {
                    let what = if e.to_string().contains("duplicate member name") {
                        "arguments repeat a member name"
                    } else {
                        "arguments are not valid JSON"
                    };
                    return Err(violation(
                        TOOL_ARGS_INVALID,
                        "json",
                        format!("(root): {what}"),
                    ));
                }
            }
        };
        let mut found = Vec::new();
        if let Err(ptr) = strings(&value, &mut String::new(), 0, &mut found) {
            return Err(violation(
                TOOL_ARGS_INVALID,
                "json",
                format!("{}: nested deeper than {MAX_DEPTH}", show(&ptr)),
            ));
        }
        if rules.is_empty() {
            return Ok(());
        }
        let needs_norm = rules
            .iter()
            .any(|r| !r.deny.is_empty() || !r.presets.is_empty());
        let found: Vec<(String, &str, Option<String>)> = found
            .into_iter()
            .map(|(p, s)| {
                let n = if needs_norm { normalise(s) } else { None };
                (p, s, n)
            })
            .collect();
        for r in rules {
            if let Some(schema) = &r.schema {
                schema
                    .validate(&value)
                    .map_err(|d| violation(TOOL_ARGS_INVALID, "schema", d))?;
            }
            for (ptr, s, norm) in &found {
                let n = norm.as_deref().unwrap_or(s);
                let ptr = show(ptr);
                for (i, re) in r.deny.iter().enumerate() {
                    if re.is_match(s) || re.is_match(n) {
                        let rule = format!("deny[{i}]");
                        let detail = format!("{ptr}: matches {rule}");
                        return Err(violation(TOOL_ARGS_DENIED, &rule, detail));
                    }
                }
                for p in &r.presets {
                    if let Some(what) = p.matches(s, n) {
                        let rule = p.preset.as_str();
                        let detail = format!("{ptr}: matches {rule} ({what})");
                        return Err(violation(TOOL_ARGS_DENIED, rule, detail));
                    }
                }
                if let Some(hosts) = &r.allow_hosts {
                    for u in find_urls(s) {
                        let why = if !WEB_SCHEMES.contains(&u.scheme.as_str()) {
                            "URL scheme not allowed"
                        } else {
                            match &u.host {
                                None => "URL host does not parse",
                                Some(h) if !hosts.iter().any(|e| host_matches(h, e)) => {
                                    "URL host not in allowHosts"
                                }
                                Some(_) => continue,
                            }
                        };
                        let detail = format!("{ptr}: {why}");
                        return Err(violation(TOOL_URL_NOT_ALLOWED, "allowHosts", detail));
                    }
                }
            }
        }
        Ok(())
    }

    /// Apply `allow` to the request's tool definitions (see [`RequestTools`]).
    /// OpenAI Chat `tools[]` (`function.name`) and legacy `functions[]`,
    /// Responses `tools[]` (`name`, or `type` for built-in tools), Anthropic
    /// `tools[]` (`name`). Tool calls already in the history are not checked.
    pub fn filter_request(&self, api: ApiKind, body: &mut Value) -> RequestTools {
        let mut out = RequestTools::default();
        if self.allow.is_none() {
            return out;
        }
        let mut disallowed: Vec<String> = Vec::new();
        for n in definition_names(api, body) {
            if !self.allows(&n) && !disallowed.contains(&n) {
                disallowed.push(n);
            }
        }
        if disallowed.is_empty() {
            return out;
        }
        match self.on_disallowed {
            ToolDefinitionAction::Refuse => out.refused = disallowed,
            ToolDefinitionAction::Drop => {
                let removed = shapes::drop_definitions(api, body, &|n| !self.allows(n));
                for n in removed {
                    if !out.dropped.contains(&n) {
                        out.dropped.push(n);
                    }
                }
                out.changed = !out.dropped.is_empty();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
