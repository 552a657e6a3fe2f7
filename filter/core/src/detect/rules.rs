//! Curated prompt-injection and jailbreak rules (`rules/injection.json`).
//!
//! Each rule is a regular expression over the normalised view of a text (see
//! [`super::normalize`]: NFKC, lower case, invisibles removed, white space
//! folded to single spaces), tagged with a family, an OWASP LLM Top 10 id, a
//! severity and the languages it covers, and documented by examples that the
//! tests check (every positive fires its rule, no negative fires any rule).
//!
//! # Rule file
//!
//! A JSON array of objects, unknown fields rejected:
//!
//! ```json
//! {"id": "pi.override.ignore-previous", "family": "instruction-override",
//!  "owasp": "LLM01", "severity": "high", "languages": ["en"],
//!  "pattern": "\\bignore (?:all )?previous instructions\\b",
//!  "description": "...",
//!  "examples": {"positive": ["..."], "negative": ["..."]}}
//! ```
//!
//! * `id`: lower-case dotted name (`[a-z0-9-]` segments), unique.
//! * `family`: one of [`RuleFamily`]'s names (`instruction-override`, ...).
//! * `owasp`: `LLM01` to `LLM10`.
//! * `severity`: `low`, `medium`, `high` or `critical` (the finding's score).
//! * `languages`: ISO 639-1 codes from [`LANGUAGES`], or `["*"]` for rules that
//!   do not depend on a natural language (chat-template tokens, shell code).
//! * `pattern`: [`regex`] syntax, matched against the normalised view, so every
//!   literal must be lower case and in normal form (checked), and white space
//!   is a single space. **`\b` and `\B` are ASCII word boundaries** (rewritten
//!   to `(?-u:\b)`): Unicode word boundaries would make the lazy DFA give up on
//!   any non-ASCII text and fall back to a slow engine. Do not put `\b` next to
//!   a non-ASCII letter (`\bübergehe` never matches); rely on the space before it.
//!
//! # Matching
//!
//! All patterns are compiled into one [`RegexSet`], which says in one linear
//! pass which rules match; only those rules' own [`Regex`]es then run to find
//! the spans, which are mapped back to the original text. Work per text is
//! linear in its length, and one text yields at most [`MAX_FINDINGS`] findings
//! ([`MAX_FINDINGS_PER_RULE`] per rule, most severe rules first).

use super::normalize::{is_invisible, Normalized};
use super::{Action, Channel, Detector, Family, Finding, ScanText};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;
use std::collections::HashMap;

/// Finding type of rule matches.
pub const KIND: &str = "PROMPT_INJECTION";

/// At most this many findings per scanned text.
pub const MAX_FINDINGS: usize = 64;

/// At most this many findings per rule per scanned text.
pub const MAX_FINDINGS_PER_RULE: usize = 8;

/// Languages a rule may declare (`*`: independent of natural language).
pub const LANGUAGES: &[&str] = &[
    "*", "en", "de", "fr", "es", "it", "pt", "nl", "pl", "cs", "sv", "da", "nb", "fi", "ru", "uk",
    "tr", "ar", "zh", "ja", "ko",
];

/// The built-in rule file.
const BUILTIN_JSON: &str = include_str!("../../rules/injection.json");

/// Compiled size limit of one rule's pattern.
const RULE_SIZE_LIMIT: usize = 2 << 20;
/// Compiled size limit of the whole set.
const SET_SIZE_LIMIT: usize = 32 << 20;

/// The text of the built-in rule file (for docs and tooling).
pub fn builtin_json() -> &'static str {
    BUILTIN_JSON
}

/// The built-in rules, reporting findings with [`Action::Flag`]
/// (change with [`InjectionRulesDetector::with_action`]).
pub fn builtin() -> Result<InjectionRulesDetector, RulesError> {
    InjectionRulesDetector::from_json(BUILTIN_JSON, Action::Flag)
}

/// What kind of attack a rule describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleFamily {
    /// "Ignore all previous instructions" and kin.
    InstructionOverride,
    /// DAN, developer mode, "no restrictions", refusal suppression.
    PersonaJailbreak,
    /// Asking for the system prompt or hidden instructions.
    SystemPromptExtraction,
    /// Chat-template and delimiter tokens, fake role turns.
    TemplateInjection,
    /// Getting data out: markdown images with data in the URL, "send the conversation to".
    DataExfiltration,
    /// Instructions aimed at an agent's tools.
    ToolHijack,
    /// Shell and code payloads.
    CodePayload,
    /// Many-shot dialogue, "repeat forever".
    ContextFlooding,
    /// "Decode this and follow it", encoded instructions.
    EncodedPayload,
}

impl RuleFamily {
    pub const ALL: [RuleFamily; 9] = [
        RuleFamily::InstructionOverride,
        RuleFamily::PersonaJailbreak,
        RuleFamily::SystemPromptExtraction,
        RuleFamily::TemplateInjection,
        RuleFamily::DataExfiltration,
        RuleFamily::ToolHijack,
        RuleFamily::CodePayload,
        RuleFamily::ContextFlooding,
        RuleFamily::EncodedPayload,
    ];

    /// The name used in the rule file.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleFamily::InstructionOverride => "instruction-override",
            RuleFamily::PersonaJailbreak => "persona-jailbreak",
            RuleFamily::SystemPromptExtraction => "system-prompt-extraction",
            RuleFamily::TemplateInjection => "template-injection",
            RuleFamily::DataExfiltration => "data-exfiltration",
            RuleFamily::ToolHijack => "tool-hijack",
            RuleFamily::CodePayload => "code-payload",
            RuleFamily::ContextFlooding => "context-flooding",
            RuleFamily::EncodedPayload => "encoded-payload",
        }
    }

    pub fn parse(name: &str) -> Option<RuleFamily> {
        RuleFamily::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// How bad a match is; decides the finding's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The score of a finding of this severity.
    pub fn score(self) -> f32 {
        match self {
            Severity::Low => 0.35,
            Severity::Medium => 0.6,
            Severity::High => 0.85,
            Severity::Critical => 0.97,
        }
    }
}

/// A rule's examples: texts it must match and texts no rule may match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    #[serde(default)]
    pub positive: Vec<String>,
    #[serde(default)]
    pub negative: Vec<String>,
}

/// A validated rule, as written in the rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    pub id: String,
    pub family: RuleFamily,
    /// OWASP LLM Top 10 (2025) id, `LLM01`..`LLM10`.
    pub owasp: String,
    pub severity: Severity,
    pub languages: Vec<String>,
    pub pattern: String,
    pub description: String,
    pub examples: Examples,
}

/// A rule file entry as read, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    family: String,
    owasp: String,
    severity: String,
    languages: Vec<String>,
    pattern: String,
    description: String,
    #[serde(default)]
    examples: Examples,
}

/// Why a rule file was rejected. Messages name the rule: `rules[12] (pi.x.y).pattern: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// Not a JSON array.
    #[error("rules: {0}")]
    Json(String),
    #[error("rules: no rules")]
    Empty,
    /// One rule is malformed; `field` is empty when the whole entry is.
    #[error("rules[{index}] ({id}){}: {message}", field_suffix(.field))]
    Invalid {
        index: usize,
        id: String,
        field: String,
        message: String,
    },
    #[error("rules[{index}] ({id}).id: duplicate id, first used by rules[{first}]")]
    DuplicateId {
        index: usize,
        id: String,
        first: usize,
    },
    /// The rules are valid one by one but do not compile together.
    #[error("rules: cannot build the rule set: {0}")]
    Build(String),
}

fn field_suffix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!(".{field}")
    }
}

/// A rule and its compiled pattern.
#[derive(Debug)]
struct Rule {
    info: RuleInfo,
    regex: Regex,
}

/// A rule whose example does not behave (see [`InjectionRulesDetector::check_examples`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExampleFailure {
    /// A positive example does not fire its own rule.
    PositiveMissed { rule: String, example: String },
    /// A negative example of `rule` fires the rules `fired`.
    NegativeFired {
        rule: String,
        example: String,
        fired: Vec<String>,
    },
}

impl std::fmt::Display for ExampleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExampleFailure::PositiveMissed { rule, example } => {
                write!(f, "{rule}: positive example does not fire: {example:?}")
            }
            ExampleFailure::NegativeFired {
                rule,
                example,
                fired,
            } => write!(
                f,
                "{rule}: negative example fires {}: {example:?}",
                fired.join(", ")
            ),
        }
    }
}

/// Detects prompt injection with the curated rules.
#[derive(Debug)]
pub struct InjectionRulesDetector {
    rules: Vec<Rule>,
    set: RegexSet,
    action: Action,
    channels: Vec<Channel>,
}

impl InjectionRulesDetector {
    /// Parse, validate and compile a rule file; findings carry `action`.
    pub fn from_json(json: &str, action: Action) -> Result<Self, RulesError> {
        let entries: Vec<serde_json::Value> =
            serde_json::from_str(json).map_err(|e| RulesError::Json(e.to_string()))?;
        if entries.is_empty() {
            return Err(RulesError::Empty);
        }
        let mut rules = Vec::with_capacity(entries.len());
        let mut prepared = Vec::with_capacity(entries.len());
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let (rule, pattern) = compile_rule(index, entry)?;
            if let Some(&first) = seen.get(&rule.info.id) {
                return Err(RulesError::DuplicateId {
                    index,
                    id: rule.info.id,
                    first,
                });
            }
            seen.insert(rule.info.id.clone(), index);
            rules.push(rule);
            prepared.push(pattern);
        }
        let set = RegexSetBuilder::new(&prepared)
            .size_limit(SET_SIZE_LIMIT)
            .build()
            .map_err(|e| RulesError::Build(regex_error_message(&e)))?;
        Ok(InjectionRulesDetector {
            rules,
            set,
            action,
            channels: Vec::new(),
        })
    }

    /// Report findings with `action` instead.
    pub fn with_action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Scan only text from `channels` (empty: every channel, the default).
    pub fn with_channels(mut self, channels: Vec<Channel>) -> Self {
        self.channels = channels;
        self
    }

    /// The rules, in file order.
    pub fn rules(&self) -> impl ExactSizeIterator<Item = &RuleInfo> {
        self.rules.iter().map(|r| &r.info)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Ids of every rule matching `text` (normalised first), in file order,
    /// without the findings cap. For tooling and tests.
    pub fn matching_rules(&self, text: &str) -> Vec<&str> {
        let view = Normalized::new(text);
        self.set
            .matches(&view.text)
            .iter()
            .filter_map(|i| self.rules.get(i))
            .map(|r| r.info.id.as_str())
            .collect()
    }

    /// Check every rule's examples: each positive must fire its rule, no
    /// negative may fire any rule. Empty when all behave.
    pub fn check_examples(&self) -> Vec<ExampleFailure> {
        let mut failures = Vec::new();
        for rule in &self.rules {
            let id = &rule.info.id;
            for example in &rule.info.examples.positive {
                if !self.matching_rules(example).contains(&id.as_str()) {
                    failures.push(ExampleFailure::PositiveMissed {
                        rule: id.clone(),
                        example: example.clone(),
                    });
                }
            }
            for example in &rule.info.examples.negative {
                let fired = self.matching_rules(example);
                if !fired.is_empty() {
                    failures.push(ExampleFailure::NegativeFired {
                        rule: id.clone(),
                        example: example.clone(),
                        fired: fired.into_iter().map(str::to_string).collect(),
                    });
                }
            }
        }
        failures
    }
}

impl Detector for InjectionRulesDetector {
    fn name(&self) -> &'static str {
        "injection_rules"
    }

    fn applies_to(&self, channel: Channel) -> bool {
        self.channels.is_empty() || self.channels.contains(&channel)
    }

    fn scan(&self, text: &ScanText<'_>, _channel: Channel, out: &mut Vec<Finding>) {
        let view = text.normalized();
        let hay = view.text.as_str();
        if hay.is_empty() {
            return;
        }
        let matches = self.set.matches(hay);
        if !matches.matched_any() {
            return;
        }
        // Most severe rules first, so the cap drops the least important findings.
        let mut fired: Vec<&Rule> = matches.iter().filter_map(|i| self.rules.get(i)).collect();
        fired.sort_by_key(|f| std::cmp::Reverse(f.info.severity));
        let mut budget = MAX_FINDINGS;
        for rule in fired {
            let mut taken = 0;
            for m in rule.regex.find_iter(hay) {
                if taken == MAX_FINDINGS_PER_RULE || budget == 0 {
                    break;
                }
                if m.is_empty() {
                    continue;
                }
                let Some((start, end)) = view.original_span(text.original, m.start(), m.end())
                else {
                    continue;
                };
                out.push(Finding {
                    kind: KIND,
                    family: Family::Injection,
                    rule_id: rule.info.id.clone(),
                    start,
                    end,
                    score: rule.info.severity.score(),
                    action: self.action,
                    source: "pattern",
                });
                taken += 1;
                budget -= 1;
            }
            if budget == 0 {
                break;
            }
        }
    }
}

/// Validate and compile entry `index`; also returns the pattern as given to the set.
fn compile_rule(index: usize, entry: serde_json::Value) -> Result<(Rule, String), RulesError> {
    let shown_id = entry
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();
    let invalid = |field: &str, message: String| RulesError::Invalid {
        index,
        id: shown_id.clone(),
        field: field.to_string(),
        message,
    };
    let raw: RawRule = serde_path_to_error::deserialize(entry).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        invalid(&field, e.into_inner().to_string())
    })?;

    check_id(&raw.id).map_err(|m| invalid("id", m))?;
    let family = RuleFamily::parse(&raw.family).ok_or_else(|| {
        invalid(
            "family",
            format!(
                "unknown family {:?} (expected one of: {})",
                raw.family,
                RuleFamily::ALL.map(RuleFamily::as_str).join(", ")
            ),
        )
    })?;
    let severity = Severity::parse(&raw.severity).ok_or_else(|| {
        invalid(
            "severity",
            format!(
                "unknown severity {:?} (expected one of: low, medium, high, critical)",
                raw.severity
            ),
        )
    })?;
    if !is_owasp_id(&raw.owasp) {
        return Err(invalid(
            "owasp",
            format!(
                "{:?} is not an OWASP LLM Top 10 id (LLM01..LLM10)",
                raw.owasp
            ),
        ));
    }
    if raw.languages.is_empty() {
        return Err(invalid("languages", "no language given".to_string()));
    }
    for (i, lang) in raw.languages.iter().enumerate() {
        if !LANGUAGES.contains(&lang.as_str()) {
            return Err(invalid(
                &format!("languages[{i}]"),
                format!("unknown language {lang:?}"),
            ));
        }
        if lang == "*" && raw.languages.len() > 1 {
            return Err(invalid(
                &format!("languages[{i}]"),
                "\"*\" must be the only language".to_string(),
            ));
        }
        if raw.languages.get(..i).is_some_and(|l| l.contains(lang)) {
            return Err(invalid(
                &format!("languages[{i}]"),
                format!("duplicate language {lang:?}"),
            ));
        }
    }
    if raw.description.trim().is_empty() {
        return Err(invalid("description", "is empty".to_string()));
    }
    let prepared = prepare_pattern(&raw.pattern).map_err(|m| invalid("pattern", m))?;
    let regex = RegexBuilder::new(&prepared)
        .size_limit(RULE_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            // Report the error against the pattern as written, not as rewritten.
            let shown = match Regex::new(&raw.pattern) {
                Err(original) => original,
                Ok(_) => e,
            };
            invalid("pattern", regex_error_message(&shown))
        })?;
    if regex.is_match("") || regex.find_iter("a b").any(|m| m.is_empty()) {
        return Err(invalid("pattern", "matches the empty string".to_string()));
    }
    let info = RuleInfo {
        id: raw.id,
        family,
        owasp: raw.owasp,
        severity,
        languages: raw.languages,
        pattern: raw.pattern,
        description: raw.description,
        examples: raw.examples,
    };
    Ok((Rule { info, regex }, prepared))
}

/// `[a-z0-9-]+` segments joined by dots, at least two.
fn check_id(id: &str) -> Result<(), String> {
    let segments: Vec<&str> = id.split('.').collect();
    let well_formed = segments.len() >= 2
        && segments.iter().all(|s| {
            !s.is_empty()
                && !s.starts_with('-')
                && !s.ends_with('-')
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a dotted lower-case id like \"pi.override.ignore-previous\""
        ))
    }
}

fn is_owasp_id(s: &str) -> bool {
    matches!(s.strip_prefix("LLM"), Some(n) if n.len() == 2 && matches!(n.parse::<u8>(), Ok(1..=10)))
}

/// One-line message of a regex error: `invalid regex: <what>` for syntax errors.
fn regex_error_message(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => {
            // The message spans lines (pattern, caret, `error: ...`); keep the last.
            let what = s
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .map(str::to_string)
                .unwrap_or_else(|| s.split_whitespace().collect::<Vec<_>>().join(" "));
            format!("invalid regex: {what}")
        }
        other => other.to_string(),
    }
}

/// Check that every literal of `pattern` can occur in the normalised view,
/// and rewrite `\b`/`\B` to ASCII word boundaries.
fn prepare_pattern(pattern: &str) -> Result<String, String> {
    if pattern.is_empty() {
        return Err("is empty".to_string());
    }
    if pattern.contains("  ") {
        return Err("two spaces in a row never occur in the view (white space is folded)".into());
    }
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    // Let the regex parser report the dangling backslash.
                    out.push('\\');
                    break;
                };
                match e {
                    'b' | 'B' => {
                        out.push_str("(?-u:\\");
                        out.push(e);
                        out.push(')');
                    }
                    'p' | 'P' | 'x' | 'u' | 'U' => {
                        out.push('\\');
                        out.push(e);
                        if chars.peek() == Some(&'{') {
                            for n in chars.by_ref() {
                                out.push(n);
                                if n == '}' {
                                    break;
                                }
                            }
                        } else {
                            let len = match e {
                                'p' | 'P' => 1,
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            for _ in 0..len {
                                match chars
                                    .next_if(|n| e == 'p' || e == 'P' || n.is_ascii_hexdigit())
                                {
                                    Some(n) => out.push(n),
                                    None => break,
                                }
                            }
                        }
                    }
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '(' if chars.peek() == Some(&'?') => {
                // Flags and group names (`(?i:`, `(?-u:`, `(?P<Name>`) are not literals.
                out.push('(');
                while let Some(n) = chars.next() {
                    out.push(n);
                    if n == '>' || matches!(chars.peek(), Some(':' | ')')) {
                        break;
                    }
                }
            }
            _ => {
                check_literal(c)?;
                out.push(c);
            }
        }
    }
    Ok(out)
}

fn check_literal(c: char) -> Result<(), String> {
    if c.is_whitespace() && c != ' ' {
        return Err(format!(
            "white space {c:?} never occurs in the view (use a single space)"
        ));
    }
    if c.is_uppercase() {
        return Err(format!(
            "upper-case literal {c:?} never matches the lower-case view"
        ));
    }
    if is_invisible(c) {
        return Err(format!(
            "invisible character U+{:04X} is removed from the view",
            c as u32
        ));
    }
    if !c.is_ascii() {
        let mut buf = [0u8; 4];
        let literal: &str = c.encode_utf8(&mut buf);
        let n = Normalized::new(literal).text;
        if n != literal {
            return Err(format!(
                "literal {c:?} is not in the view's normal form (it becomes {n:?})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_word_boundaries_only() {
        assert_eq!(
            prepare_pattern(r"\bab\B\\b\p{L}\x{41}(?P<Name>x)").as_deref(),
            Ok(r"(?-u:\b)ab(?-u:\B)\\b\p{L}\x{41}(?P<Name>x)")
        );
        assert_eq!(prepare_pattern(r"(?i:x)\pL").as_deref(), Ok(r"(?i:x)\pL"));
    }

    #[test]
    fn rejects_literals_the_view_never_has() {
        assert!(prepare_pattern("Ignore").is_err());
        assert!(prepare_pattern("[A-Z]").is_err());
        assert!(prepare_pattern("a\tb").is_err());
        assert!(prepare_pattern("a  b").is_err());
        assert!(prepare_pattern("\u{FB01}le").is_err());
        assert!(prepare_pattern("a\u{200B}b").is_err());
        assert!(prepare_pattern(r"\S\W\D\A").is_ok());
        assert!(prepare_pattern("vorherigen änderungen").is_ok());
    }

    #[test]
    fn owasp_ids() {
        assert!(is_owasp_id("LLM01"));
        assert!(is_owasp_id("LLM10"));
        assert!(!is_owasp_id("LLM11"));
        assert!(!is_owasp_id("LLM00"));
        assert!(!is_owasp_id("llm01"));
        assert!(!is_owasp_id("LLM1"));
    }

    #[test]
    fn ids() {
        assert!(check_id("pi.override.ignore-previous").is_ok());
        assert!(check_id("pi").is_err());
        assert!(check_id("pi..x").is_err());
        assert!(check_id("pi.X").is_err());
        assert!(check_id("pi.-x").is_err());
    }
}
