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
//! A literal prefilter comes first: from each pattern the loader derives its
//! *anchors*, a few sets of literals such that every match contains a literal
//! of each set (see [`RuleInfo::anchors`]: for the "ignore previous
//! instructions" rule, a verb, a "previous" word and an "instructions" word).
//! One Aho-Corasick pass over the view finds which literals occur, and only the
//! rules whose every set is met (and rules without anchors) run their own
//! [`Regex`]; the spans they find are mapped back to the original text. Work per text is linear in its length, and one text
//! yields at most [`MAX_FINDINGS`] findings ([`MAX_FINDINGS_PER_RULE`] per
//! rule, most severe rules first).
//!
//! Why not one [`regex::RegexSet`]: with a hundred patterns full of word
//! alternations and gaps, its lazy DFA meets a new state almost every byte of
//! text it has not seen before; on varied chat text that cost 3–20 ms per 4 KB
//! (it is fast only when the same text is scanned again).

use super::normalize::{is_invisible, Normalized};
use super::{Action, Channel, Detector, Family, Finding, ScanText};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexBuilder};
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
    /// Derived from `pattern` (the prefilter's keys): every match contains a
    /// literal of each of these sets. Empty when no literals of at least
    /// [`MIN_ANCHOR_LEN`] bytes could be derived: the rule then runs on every text.
    pub anchors: Vec<Vec<String>>,
}

/// Shortest literal the prefilter keys on, in bytes.
pub const MIN_ANCHOR_LEN: usize = literals::MIN_ANCHOR;

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
    /// The rules are valid one by one but the prefilter cannot be built.
    #[error("rules: cannot build the literal prefilter: {0}")]
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
    /// Finds the anchors of every rule; `None` when no rule has anchors.
    prefilter: Option<AhoCorasick>,
    /// For each prefilter pattern, the (rule, bit of its anchor set) it meets.
    anchor_rules: Vec<Vec<(usize, u32)>>,
    /// For each rule, the bits of all its anchor sets (0: no anchors).
    full_masks: Vec<u32>,
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
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let rule = compile_rule(index, entry)?;
            if let Some(&first) = seen.get(&rule.info.id) {
                return Err(RulesError::DuplicateId {
                    index,
                    id: rule.info.id,
                    first,
                });
            }
            seen.insert(rule.info.id.clone(), index);
            rules.push(rule);
        }
        // One prefilter pattern per distinct literal, mapped to the anchor
        // sets (one bit each per rule) it belongs to.
        let mut anchors: Vec<&str> = Vec::new();
        let mut anchor_rules: Vec<Vec<(usize, u32)>> = Vec::new();
        let mut anchor_index: HashMap<&str, usize> = HashMap::new();
        let mut full_masks = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            let mut full = 0u32;
            for (set, literals) in rule.info.anchors.iter().enumerate().take(32) {
                let bit = 1u32 << set;
                full |= bit;
                for literal in literals {
                    let at = *anchor_index.entry(literal.as_str()).or_insert_with(|| {
                        anchors.push(literal.as_str());
                        anchor_rules.push(Vec::new());
                        anchors.len() - 1
                    });
                    if let Some(list) = anchor_rules.get_mut(at) {
                        list.push((i, bit));
                    }
                }
            }
            full_masks.push(full);
        }
        let prefilter = if anchors.is_empty() {
            None
        } else {
            // Overlapping search needs standard match semantics; the view and
            // the anchors are lower case already.
            Some(
                AhoCorasickBuilder::new()
                    .kind(Some(AhoCorasickKind::DFA))
                    .match_kind(MatchKind::Standard)
                    .build(&anchors)
                    .map_err(|e| RulesError::Build(e.to_string()))?,
            )
        };
        Ok(InjectionRulesDetector {
            rules,
            prefilter,
            anchor_rules,
            full_masks,
            action,
            channels: Vec::new(),
        })
    }

    /// The rules that may match `view`: those with a literal of each of
    /// their anchor sets in it and those without anchors, in file order.
    fn candidates(&self, view: &str) -> Vec<&Rule> {
        let mut met = vec![0u32; self.rules.len()];
        if let Some(ac) = &self.prefilter {
            for m in ac.find_overlapping_iter(view) {
                for &(i, bit) in self
                    .anchor_rules
                    .get(m.pattern().as_usize())
                    .into_iter()
                    .flatten()
                {
                    if let Some(mask) = met.get_mut(i) {
                        *mask |= bit;
                    }
                }
            }
        }
        self.rules
            .iter()
            .zip(met)
            .zip(&self.full_masks)
            .filter_map(|((rule, met), &full)| (met == full).then_some(rule))
            .collect()
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
        self.candidates(&view.text)
            .into_iter()
            .filter(|r| r.regex.is_match(&view.text))
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
        let mut fired = self.candidates(hay);
        if fired.is_empty() {
            return;
        }
        // Most severe rules first, so the cap drops the least important findings.
        fired.sort_by_key(|r| std::cmp::Reverse(r.info.severity));
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

/// Validate and compile entry `index`.
fn compile_rule(index: usize, entry: serde_json::Value) -> Result<Rule, RulesError> {
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
    let anchors = literals::required(&raw.pattern);
    let info = RuleInfo {
        id: raw.id,
        family,
        owasp: raw.owasp,
        severity,
        languages: raw.languages,
        pattern: raw.pattern,
        description: raw.description,
        examples: raw.examples,
        anchors,
    };
    Ok(Rule { info, regex })
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

/// Required-literal analysis of a pattern: a small parser for the regex
/// syntax, conservative where it is unsure (it then reports nothing and the
/// rule runs on every text).
mod literals {
    use std::collections::BTreeSet;
    use std::iter::Peekable;
    use std::str::Chars;

    /// Shortest literal worth prefiltering on, in bytes.
    pub const MIN_ANCHOR: usize = 3;
    /// Most strings a literal set may hold before it is cut.
    const MAX_SET: usize = 16;
    /// Most required sets kept per pattern.
    const MAX_REQUIRED: usize = 2;
    /// Literals this long are selective enough; among such sets fewer strings win.
    const GOOD_ENOUGH: usize = 6;

    /// Words so common in any text that a literal made of them filters nothing.
    const COMMON: &[&str] = &[
        "a",
        "about",
        "all",
        "an",
        "and",
        "answer",
        "any",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "end",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "new",
        "no",
        "not",
        "now",
        "of",
        "old",
        "on",
        "or",
        "our",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "use",
        "was",
        "we",
        "what",
        "when",
        "will",
        "with",
        "you",
        "your",
        "you are",
        "is a",
        "are a",
        "as a",
        "is the",
        "to the",
        "for the",
        "the following",
        "following",
    ];

    /// Whether `literal`, without surrounding spaces and punctuation, is a common word.
    fn is_common(literal: &str) -> bool {
        let core = literal.trim_matches(|c: char| !c.is_alphanumeric());
        COMMON.contains(&core)
    }
    /// Most strings the union of an alternation's branches may hold.
    const MAX_UNION: usize = 48;

    type Set = BTreeSet<String>;

    /// What a piece of a pattern says about the text it matches.
    #[derive(Clone, Debug)]
    struct Lits {
        /// It matches exactly one of these strings (`None`: not a small set).
        exact: Option<Set>,
        /// Every match contains a string of each of these sets.
        required: Vec<Set>,
    }

    impl Lits {
        fn exact(set: Set) -> Lits {
            Lits {
                exact: Some(set),
                required: Vec::new(),
            }
        }

        fn char(c: char) -> Lits {
            Lits::exact(Set::from([c.to_string()]))
        }

        /// Zero-width: assertions and flag groups.
        fn empty() -> Lits {
            Lits::exact(Set::from([String::new()]))
        }

        fn unknown() -> Lits {
            Lits {
                exact: None,
                required: Vec::new(),
            }
        }

        /// Every set of which a match contains a string, the exact set included.
        fn all_required(&self) -> Vec<Set> {
            let mut all = self.required.clone();
            all.extend(self.exact.clone().filter(usable));
            all
        }

        /// The most selective required set.
        fn best(&self) -> Option<Set> {
            self.all_required()
                .into_iter()
                .fold(None, |best, set| better(best, Some(set)))
        }
    }

    fn usable(set: &Set) -> bool {
        !set.is_empty() && set.iter().all(|s| !s.is_empty())
    }

    /// A set is as selective as its shortest string.
    fn quality(set: &Set) -> usize {
        set.iter().map(String::len).min().unwrap_or(0)
    }

    fn better(a: Option<Set>, b: Option<Set>) -> Option<Set> {
        match (a, b) {
            (Some(a), Some(b)) => {
                let (qa, qb) = (quality(&a), quality(&b));
                if qb > qa || (qb == qa && b.len() < a.len()) {
                    Some(b)
                } else {
                    Some(a)
                }
            }
            (a, None) => a,
            (None, b) => b,
        }
    }

    /// Every string of `a` followed by every string of `b`, if not too many.
    fn cross(a: &Set, b: &Set) -> Option<Set> {
        if a.len().saturating_mul(b.len()) > MAX_SET {
            return None;
        }
        let mut out = Set::new();
        for x in a {
            for y in b {
                out.insert(format!("{x}{y}"));
            }
        }
        Some(out)
    }

    /// Sets of literals such that every match of `pattern` contains a literal
    /// of each set (at most [`MAX_REQUIRED`], most selective first, every
    /// literal at least [`MIN_ANCHOR`] bytes). Empty if none is known or the
    /// syntax is not understood.
    pub fn required(pattern: &str) -> Vec<Vec<String>> {
        let mut p = Parser {
            chars: pattern.chars().peekable(),
        };
        let Ok(lits) = p.alternation() else {
            return Vec::new();
        };
        if p.chars.next().is_some() {
            return Vec::new();
        }
        // Sets of common words cost the prefilter many matches and filter
        // little: keep the few most selective of the others.
        let mut sets: Vec<Set> = lits
            .all_required()
            .into_iter()
            .filter(|s| quality(s) >= MIN_ANCHOR && !s.iter().any(|l| is_common(l)))
            .collect();
        sets.sort_by(|a, b| {
            let rank = |s: &Set| (quality(s).min(GOOD_ENOUGH), std::cmp::Reverse(s.len()));
            rank(b).cmp(&rank(a))
        });
        sets.dedup();
        sets.truncate(MAX_REQUIRED);
        sets.into_iter().map(|s| s.into_iter().collect()).collect()
    }

    struct Parser<'a> {
        chars: Peekable<Chars<'a>>,
    }

    /// `Err(())`: syntax the analysis does not handle.
    type Parsed<T> = Result<T, ()>;

    impl Parser<'_> {
        fn alternation(&mut self) -> Parsed<Lits> {
            let mut branches = vec![self.concat()?];
            while self.chars.next_if_eq(&'|').is_some() {
                branches.push(self.concat()?);
            }
            if branches.len() == 1 {
                return branches.pop().ok_or(());
            }
            let exact = branches.iter().try_fold(Set::new(), |mut acc, b| {
                acc.extend(b.exact.iter().flatten().cloned());
                (b.exact.is_some() && acc.len() <= MAX_SET).then_some(acc)
            });
            // Some branch matches: the union of the branches' best sets is required.
            let union = branches.iter().try_fold(Set::new(), |mut acc, b| {
                acc.extend(b.best()?);
                (acc.len() <= MAX_UNION).then_some(acc)
            });
            Ok(Lits {
                exact,
                required: union.into_iter().collect(),
            })
        }

        fn concat(&mut self) -> Parsed<Lits> {
            // `run`: the exact strings of the items since the last inexact one.
            let mut whole = Some(Set::from([String::new()]));
            let mut run = Set::from([String::new()]);
            let mut required: Vec<Set> = Vec::new();
            while !matches!(self.chars.peek(), None | Some('|') | Some(')')) {
                let item = self.repeat()?;
                match &item.exact {
                    Some(exact) => {
                        whole = whole.and_then(|w| cross(&w, exact));
                        match cross(&run, exact) {
                            Some(longer) => run = longer,
                            None => {
                                let done = std::mem::replace(&mut run, exact.clone());
                                required.extend(Some(done).filter(usable));
                            }
                        }
                    }
                    None => {
                        whole = None;
                        let done = std::mem::replace(&mut run, Set::from([String::new()]));
                        required.extend(Some(done).filter(usable));
                        required.extend(item.required.iter().cloned());
                    }
                }
            }
            required.extend(Some(run).filter(usable));
            Ok(Lits {
                exact: whole,
                required,
            })
        }

        fn repeat(&mut self) -> Parsed<Lits> {
            let atom = self.atom()?;
            let (min, max) = match self.chars.peek() {
                Some('?') => (0, Some(1)),
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('{') => (0, Some(0)),
                _ => return Ok(atom),
            };
            let (min, max) = if self.chars.next() == Some('{') {
                self.counted()?
            } else {
                (min, max)
            };
            // A lazy quantifier matches the same texts.
            self.chars.next_if_eq(&'?');
            Ok(match (min, max) {
                (0, Some(1)) => Lits {
                    exact: atom.exact.map(|mut e| {
                        e.insert(String::new());
                        e
                    }),
                    required: Vec::new(),
                },
                (0, _) => Lits::unknown(),
                (n, Some(m)) if n == m && n <= 4 => {
                    let exact = atom
                        .exact
                        .as_ref()
                        .and_then(|e| (1..n).try_fold(e.clone(), |acc, _| cross(&acc, e)));
                    Lits {
                        exact,
                        required: atom.all_required(),
                    }
                }
                _ => Lits {
                    exact: None,
                    required: atom.all_required(),
                },
            })
        }

        /// `{n}`, `{n,}` or `{n,m}` after the `{`.
        fn counted(&mut self) -> Parsed<(u32, Option<u32>)> {
            let min = self.number()?;
            match self.chars.next() {
                Some('}') => Ok((min, Some(min))),
                Some(',') if self.chars.next_if_eq(&'}').is_some() => Ok((min, None)),
                Some(',') => {
                    let max = self.number()?;
                    (self.chars.next() == Some('}'))
                        .then_some((min, Some(max)))
                        .ok_or(())
                }
                _ => Err(()),
            }
        }

        fn number(&mut self) -> Parsed<u32> {
            let mut n: u32 = 0;
            let mut digits = 0;
            while let Some(d) = self.chars.peek().and_then(|c| c.to_digit(10)) {
                self.chars.next();
                n = n.checked_mul(10).and_then(|n| n.checked_add(d)).ok_or(())?;
                digits += 1;
            }
            if digits == 0 {
                Err(())
            } else {
                Ok(n)
            }
        }

        fn atom(&mut self) -> Parsed<Lits> {
            match self.chars.next().ok_or(())? {
                '(' => self.group(),
                '[' => Ok(match self.class()? {
                    Some(chars) => Lits::exact(chars.into_iter().map(String::from).collect()),
                    None => Lits::unknown(),
                }),
                '\\' => self.escape(),
                '.' => Ok(Lits::unknown()),
                '^' | '$' => Ok(Lits::empty()),
                '*' | '+' | '?' | '{' | ')' | '|' => Err(()),
                c => Ok(Lits::char(c)),
            }
        }

        fn group(&mut self) -> Parsed<Lits> {
            if self.chars.next_if_eq(&'?').is_some() {
                if matches!(self.chars.peek(), Some('P') | Some('<')) {
                    // Named group: skip the name.
                    self.chars.next_if_eq(&'P');
                    if self.chars.next() != Some('<') {
                        return Err(());
                    }
                    while self.chars.next().ok_or(())? != '>' {}
                } else {
                    let mut flags = String::new();
                    loop {
                        match self.chars.next().ok_or(())? {
                            ':' => break,
                            ')' if flags.contains(['i', 'x']) => return Err(()),
                            ')' => return Ok(Lits::empty()),
                            f => flags.push(f),
                        }
                    }
                    // Case-insensitive or verbose groups are beyond this analysis.
                    if flags.contains(['i', 'x']) {
                        return Err(());
                    }
                }
            }
            let inner = self.alternation()?;
            if self.chars.next() != Some(')') {
                return Err(());
            }
            Ok(inner)
        }

        fn escape(&mut self) -> Parsed<Lits> {
            let e = self.chars.next().ok_or(())?;
            Ok(match e {
                'b' | 'B' if self.chars.peek() == Some(&'{') => {
                    self.skip_braced()?;
                    Lits::empty()
                }
                'b' | 'B' | 'A' | 'z' | '<' | '>' => Lits::empty(),
                'd' | 'D' | 's' | 'S' | 'w' | 'W' => Lits::unknown(),
                'p' | 'P' => {
                    if self.chars.peek() == Some(&'{') {
                        self.skip_braced()?;
                    } else {
                        self.chars.next().ok_or(())?;
                    }
                    Lits::unknown()
                }
                'x' | 'u' | 'U' => Lits::char(self.hex(e)?),
                c => Lits::char(self.simple_escape(c)?),
            })
        }

        /// The character of a one-letter escape (`\n`, `\.`, ...).
        fn simple_escape(&mut self, c: char) -> Parsed<char> {
            match c {
                'n' => Ok('\n'),
                't' => Ok('\t'),
                'r' => Ok('\r'),
                'f' => Ok('\x0c'),
                'v' => Ok('\x0b'),
                'a' => Ok('\x07'),
                c if c.is_ascii_alphanumeric() => Err(()),
                c => Ok(c),
            }
        }

        fn skip_braced(&mut self) -> Parsed<()> {
            while self.chars.next().ok_or(())? != '}' {}
            Ok(())
        }

        /// The character of `\x..`, `\x{...}`, `\u....`, `\U........`.
        fn hex(&mut self, kind: char) -> Parsed<char> {
            let mut digits = String::new();
            if self.chars.next_if_eq(&'{').is_some() {
                loop {
                    match self.chars.next().ok_or(())? {
                        '}' => break,
                        d => digits.push(d),
                    }
                }
            } else {
                let len = match kind {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                for _ in 0..len {
                    digits.push(self.chars.next().ok_or(())?);
                }
            }
            u32::from_str_radix(&digits, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or(())
        }

        /// A bracketed class after the `[`: its characters if it is a small
        /// positive set, `None` otherwise.
        fn class(&mut self) -> Parsed<Option<Vec<char>>> {
            let mut small = self.chars.next_if_eq(&'^').is_none();
            let mut items: Vec<char> = Vec::new();
            let mut first = true;
            loop {
                let c = self.chars.next().ok_or(())?;
                if c == ']' && !first {
                    break;
                }
                first = false;
                let start = match c {
                    '[' => {
                        self.skip_nested_class()?;
                        small = false;
                        continue;
                    }
                    '\\' => match self.class_escape()? {
                        Some(c) => c,
                        None => {
                            small = false;
                            continue;
                        }
                    },
                    '&' | '~' if self.chars.peek() == Some(&c) => return Err(()),
                    c => c,
                };
                let mut ahead = self.chars.clone();
                if ahead.next() == Some('-') && !matches!(ahead.peek(), Some(']') | None) {
                    self.chars.next();
                    let end = match self.chars.next().ok_or(())? {
                        '\\' => self.class_escape()?.ok_or(())?,
                        '[' | '-' => return Err(()),
                        e => e,
                    };
                    let (a, b) = (start as u32, end as u32);
                    if b < a {
                        return Err(());
                    }
                    if b - a > 8 {
                        small = false;
                    } else {
                        items.extend((a..=b).filter_map(char::from_u32));
                    }
                    continue;
                }
                items.push(start);
            }
            items.sort_unstable();
            items.dedup();
            Ok((small && !items.is_empty() && items.len() <= 8).then_some(items))
        }

        /// An escape inside a class: its character, or `None` for a class escape.
        fn class_escape(&mut self) -> Parsed<Option<char>> {
            let e = self.chars.next().ok_or(())?;
            match e {
                'd' | 'D' | 's' | 'S' | 'w' | 'W' => Ok(None),
                'p' | 'P' => {
                    if self.chars.peek() == Some(&'{') {
                        self.skip_braced()?;
                    } else {
                        self.chars.next().ok_or(())?;
                    }
                    Ok(None)
                }
                'x' | 'u' | 'U' => self.hex(e).map(Some),
                c => self.simple_escape(c).map(Some),
            }
        }

        /// Skip a nested class or `[:name:]` after its `[`.
        fn skip_nested_class(&mut self) -> Parsed<()> {
            let mut depth = 1;
            let mut first = true;
            while depth > 0 {
                match self.chars.next().ok_or(())? {
                    '\\' => {
                        self.chars.next().ok_or(())?;
                    }
                    '[' => depth += 1,
                    ']' if !first => depth -= 1,
                    _ => {}
                }
                first = false;
            }
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::required;

        fn req(p: &str) -> Vec<Vec<String>> {
            required(p)
        }

        fn v(sets: &[&[&str]]) -> Vec<Vec<String>> {
            sets.iter()
                .map(|set| set.iter().map(|s| s.to_string()).collect())
                .collect()
        }

        #[test]
        fn literal_runs_and_options() {
            assert_eq!(
                req(r"\bignore (?:all )?previous instructions\b"),
                v(&[&[
                    "ignore all previous instructions",
                    "ignore previous instructions"
                ]])
            );
            assert_eq!(
                req(r"<\|im_(?:start|end)\|>"),
                v(&[&["<|im_end|>", "<|im_start|>"]])
            );
            assert_eq!(req(r"\[/?inst\]"), v(&[&["[/inst]", "[inst]"]]));
        }

        #[test]
        fn gaps_give_several_required_sets() {
            assert_eq!(
                req(r"(?:foo|bar)[^.]{0,80}bazooka"),
                v(&[&["bazooka"], &["bar", "foo"]])
            );
            assert_eq!(
                req(r"\bdecode\b.*\bfollow\b"),
                v(&[&["decode"], &["follow"]])
            );
            assert_eq!(req(r"(?:abc|de).*wxyz+"), v(&[&["wxy"]]));
        }

        #[test]
        fn alternation_needs_every_branch() {
            assert_eq!(req(r"foo|bar.*qux"), v(&[&["bar", "foo"]]));
            assert!(req(r"foo|.*").is_empty());
            assert!(req(r"fooo|x").is_empty());
        }

        #[test]
        fn repetitions_and_classes() {
            assert_eq!(req(r"(?:user: .*?){8}"), v(&[&["user: "]]));
            assert!(req(r"(?:abc)*").is_empty());
            assert_eq!(req(r"a(?:bc){2}"), v(&[&["abcbc"]]));
            assert_eq!(req(r"x[a-c]yz"), v(&[&["xayz", "xbyz", "xcyz"]]));
            assert!(req(r"x[a-z]yz").is_empty());
            assert_eq!(req(r"[^a]bcd"), v(&[&["bcd"]]));
            assert_eq!(req(r"ab['’]?cd"), v(&[&["ab'cd", "abcd", "ab’cd"]]));
        }

        #[test]
        fn unsupported_syntax_gives_nothing() {
            assert!(req(r"(?i)ignore").is_empty());
            assert!(req(r"(?i:ignore)").is_empty());
            assert!(req(r"(ignore").is_empty());
            assert!(req(r"\qignore").is_empty());
        }
    }
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
