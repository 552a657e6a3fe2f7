//! envoyproxy/ratelimit's YAML configuration: raw serde types, then `compile()`
//! into the descriptor trees the service walks.
//!
//! ```yaml
//! domain: tollgate
//! descriptors:
//!   - key: tenant            # no value: any value, each value counted apart
//!     rate_limit: {unit: minute, requests_per_unit: 100}
//!     descriptors:
//!       - key: agent
//!         value: bot-1       # this value only ("bot-*" would match by prefix)
//!         rate_limit: {unit: minute, requests_per_unit: 5}
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::rate_limit_response::rate_limit::Unit;

/// One configuration file: one domain and its descriptor tree.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    pub domain: String,
    #[serde(default)]
    pub descriptors: Vec<DescriptorConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptorConfig {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub descriptors: Vec<DescriptorConfig>,
    #[serde(default)]
    pub shadow_mode: bool,
    /// Accepted for compatibility; this service keeps no per-descriptor metrics.
    #[serde(default)]
    pub detailed_metric: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub requests_per_unit: Option<u32>,
    #[serde(default)]
    pub unlimited: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// What a descriptor node does when a request's descriptor ends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `rate_limit: {unlimited: true}`: always OK, never counted.
    Unlimited,
    Limited {
        name: String,
        requests_per_unit: u32,
        unit: Unit,
    },
}

impl Rule {
    /// The window length in seconds, as envoyproxy/ratelimit's `UnitToDivider`.
    pub fn window_seconds(unit: Unit) -> u64 {
        match unit {
            Unit::Second | Unit::Unknown => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
            Unit::Week => 7 * 86_400,
            Unit::Month => 30 * 86_400,
            Unit::Year => 365 * 86_400,
        }
    }
}

/// A compiled descriptor node.
#[derive(Debug, Default)]
pub struct Node {
    /// The limitador namespace of this node's counters: the domain and the path
    /// of `key` / `key=value` from the root, so counters stay with their node
    /// when the file is reordered.
    pub namespace: String,
    pub rule: Option<Rule>,
    pub shadow_mode: bool,
    pub children: Children,
}

/// The children of a node, looked up as envoyproxy/ratelimit does: the exact
/// `key=value` first, then a value ending in `*` by prefix, then the key alone.
#[derive(Debug, Default)]
pub struct Children {
    exact: HashMap<(String, String), Node>,
    prefix: Vec<(String, String, Node)>,
    any: HashMap<String, Node>,
}

impl Children {
    pub fn find(&self, key: &str, value: &str) -> Option<&Node> {
        if let Some(node) = self.exact.get(&(key.to_string(), value.to_string())) {
            return Some(node);
        }
        if let Some((_, _, node)) = self
            .prefix
            .iter()
            .find(|(k, prefix, _)| k == key && value.starts_with(prefix.as_str()))
        {
            return Some(node);
        }
        self.any.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefix.is_empty() && self.any.is_empty()
    }
}

/// All the configured domains.
#[derive(Debug, Default)]
pub struct Limits {
    pub domains: HashMap<String, Children>,
}

impl Limits {
    /// Reads and compiles every file; a domain may be defined only once.
    pub fn load(paths: &[PathBuf]) -> Result<Self, ConfigError> {
        let mut limits = Limits::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            limits.add_yaml(path, &text)?;
        }
        Ok(limits)
    }

    /// Parses and compiles one file's text (`path` only names it in errors).
    pub fn add_yaml(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let raw: DomainConfig = serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        if raw.domain.is_empty() {
            return Err(invalid("domain", "must not be empty".into()));
        }
        if self.domains.contains_key(&raw.domain) {
            return Err(invalid(
                "domain",
                format!("{:?} is already defined by another file", raw.domain),
            ));
        }
        let mut segments = vec![raw.domain.clone()];
        let children = compile_level(&raw.descriptors, "descriptors", &mut segments)
            .map_err(|(field, message)| invalid(&field, message))?;
        self.domains.insert(raw.domain, children);
        Ok(())
    }

    /// Every node that counts, for registering its limit with limitador.
    pub fn limited_nodes(&self) -> Vec<&Node> {
        fn walk<'a>(children: &'a Children, out: &mut Vec<&'a Node>) {
            let nodes = children
                .exact
                .values()
                .chain(children.prefix.iter().map(|(_, _, n)| n))
                .chain(children.any.values());
            for node in nodes {
                if matches!(node.rule, Some(Rule::Limited { .. })) {
                    out.push(node);
                }
                walk(&node.children, out);
            }
        }
        let mut out = Vec::new();
        for children in self.domains.values() {
            walk(children, &mut out);
        }
        out
    }

    /// The node whose rule applies to a request descriptor, as envoyproxy/ratelimit
    /// decides: walk the tree entry by entry; the rule applies only when the
    /// descriptor's last entry lands on a node that has one (a descriptor with more
    /// or fewer entries than the configured path gets no limit).
    pub fn lookup<'a>(&'a self, domain: &str, entries: &[(&str, &str)]) -> Option<&'a Node> {
        let mut level = self.domains.get(domain)?;
        let mut found = None;
        for (i, (key, value)) in entries.iter().enumerate() {
            let node = level.find(key, value)?;
            if node.rule.is_some() && i + 1 == entries.len() {
                found = Some(node);
            }
            if node.children.is_empty() {
                break;
            }
            level = &node.children;
        }
        found
    }
}

type FieldError = (String, String);

fn compile_level(
    descriptors: &[DescriptorConfig],
    field: &str,
    segments: &mut Vec<String>,
) -> Result<Children, FieldError> {
    let mut children = Children::default();
    for (i, raw) in descriptors.iter().enumerate() {
        let here = format!("{field}[{i}]");
        if raw.key.is_empty() {
            return Err((format!("{here}.key"), "must not be empty".into()));
        }
        let segment = match &raw.value {
            Some(value) => format!("{}={value}", raw.key),
            None => raw.key.clone(),
        };
        segments.push(segment);
        let node = Node {
            namespace: serde_json::to_string(&segments).unwrap_or_default(),
            rule: compile_rule(raw.rate_limit.as_ref(), &here)?,
            shadow_mode: raw.shadow_mode,
            children: compile_level(&raw.descriptors, &format!("{here}.descriptors"), segments)?,
        };
        segments.pop();
        let duplicate = || {
            (
                format!("{here}.key"),
                format!(
                    "duplicate descriptor {:?}{}",
                    raw.key,
                    raw.value
                        .as_ref()
                        .map(|v| format!(" with value {v:?}"))
                        .unwrap_or_default()
                ),
            )
        };
        match &raw.value {
            None => {
                if children.any.insert(raw.key.clone(), node).is_some() {
                    return Err(duplicate());
                }
            }
            Some(value) if value.ends_with('*') => {
                let prefix = value.trim_end_matches('*').to_string();
                if children
                    .prefix
                    .iter()
                    .any(|(k, p, _)| *k == raw.key && *p == prefix)
                {
                    return Err(duplicate());
                }
                children.prefix.push((raw.key.clone(), prefix, node));
            }
            Some(value) => {
                if children
                    .exact
                    .insert((raw.key.clone(), value.clone()), node)
                    .is_some()
                {
                    return Err(duplicate());
                }
            }
        }
    }
    // The longest prefix first, so `bot-1*` wins over `bot-*`.
    children
        .prefix
        .sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    Ok(children)
}

fn compile_rule(raw: Option<&RateLimitConfig>, here: &str) -> Result<Option<Rule>, FieldError> {
    let Some(raw) = raw else { return Ok(None) };
    let field = format!("{here}.rate_limit");
    if raw.unlimited {
        if raw.unit.is_some() || raw.requests_per_unit.is_some() {
            return Err((
                field,
                "unlimited: true takes neither unit nor requests_per_unit".into(),
            ));
        }
        return Ok(Some(Rule::Unlimited));
    }
    let unit = match raw.unit.as_deref() {
        None => return Err((format!("{field}.unit"), "missing".into())),
        Some(unit) => parse_unit(unit).ok_or_else(|| {
            (
                format!("{field}.unit"),
                format!("unknown unit {unit:?} (second, minute, hour, day, week, month, year)"),
            )
        })?,
    };
    let requests_per_unit = raw
        .requests_per_unit
        .ok_or_else(|| (format!("{field}.requests_per_unit"), "missing".to_string()))?;
    Ok(Some(Rule::Limited {
        name: raw.name.clone().unwrap_or_default(),
        requests_per_unit,
        unit,
    }))
}

fn parse_unit(unit: &str) -> Option<Unit> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "second" => Unit::Second,
        "minute" => Unit::Minute,
        "hour" => Unit::Hour,
        "day" => Unit::Day,
        "week" => Unit::Week,
        "month" => Unit::Month,
        "year" => Unit::Year,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(yaml: &str) -> Result<Limits, ConfigError> {
        let mut limits = Limits::default();
        limits.add_yaml(Path::new("test.yaml"), yaml)?;
        Ok(limits)
    }

    const TREE: &str = r#"
domain: d
descriptors:
  - key: tenant
    rate_limit: {unit: minute, requests_per_unit: 10}
    descriptors:
      - key: agent
        value: bot-1
        rate_limit: {unit: Minute, requests_per_unit: 5}
      - key: agent
        value: "bot-*"
        rate_limit: {unit: hour, requests_per_unit: 7}
      - key: agent
        rate_limit: {unlimited: true}
  - key: path
    descriptors:
      - key: method
        rate_limit: {unit: second, requests_per_unit: 1}
"#;

    fn rpu(node: Option<&Node>) -> Option<u32> {
        match node?.rule.as_ref()? {
            Rule::Limited {
                requests_per_unit, ..
            } => Some(*requests_per_unit),
            Rule::Unlimited => Some(u32::MAX),
        }
    }

    #[test]
    fn walks_like_envoyproxy_ratelimit() {
        let l = limits(TREE).unwrap();
        assert_eq!(rpu(l.lookup("d", &[("tenant", "acme")])), Some(10));
        assert_eq!(
            rpu(l.lookup("d", &[("tenant", "acme"), ("agent", "bot-1")])),
            Some(5)
        );
        assert_eq!(
            rpu(l.lookup("d", &[("tenant", "acme"), ("agent", "bot-2")])),
            Some(7)
        );
        assert_eq!(
            rpu(l.lookup("d", &[("tenant", "acme"), ("agent", "x")])),
            Some(u32::MAX)
        );
        // A path node without a limit, or a descriptor longer than the tree: none.
        assert_eq!(rpu(l.lookup("d", &[("path", "/")])), None);
        assert_eq!(
            rpu(l.lookup("d", &[("path", "/"), ("method", "GET")])),
            Some(1)
        );
        assert_eq!(
            rpu(l.lookup("d", &[("path", "/"), ("method", "GET"), ("x", "y")])),
            None
        );
        assert_eq!(rpu(l.lookup("d", &[("other", "1")])), None);
        assert_eq!(rpu(l.lookup("nope", &[("tenant", "acme")])), None);
        assert_eq!(l.limited_nodes().len(), 4);
    }

    #[test]
    fn the_example_config_loads() {
        let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/example.yaml"));
        let l = Limits::load(&[path]).unwrap();
        assert_eq!(
            rpu(l.lookup("tollgate", &[("tenant", "a"), ("agent", "batch-7")])),
            Some(50)
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = limits("domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("descriptors[0].rate_limit.unit: unknown unit"),
            "{err}"
        );
        let err = limits("domain: d\ndescriptors:\n  - key: a\n  - key: a\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("descriptors[1].key: duplicate"), "{err}");
        let err = limits("domain: d\ndescriptors:\n  - key: a\n    replaces: []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("replaces"), "{err}");
        let err = limits("domain: ''\n").unwrap_err().to_string();
        assert!(err.contains("domain: must not be empty"), "{err}");
    }
}
