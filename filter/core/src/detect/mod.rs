//! Detection: the [`Detector`] trait, findings, and the detectors themselves.
//!
//! A detector looks at one piece of text (a message, a tool argument string, a
//! tool result) and appends [`Finding`]s whose byte spans index into that text.
//! Later issues add the injection rules, the model, PII patterns and NER here.

pub mod consumption;
pub mod denylist;
pub mod injection;
pub mod leak;
#[cfg(feature = "ml")]
#[cfg(feature = "ml")]
pub mod names;
#[cfg(feature = "ml")]
pub mod ner;
pub mod ngram;
pub mod normalize;
pub mod output;
pub mod pii;
pub mod pii_detector;
pub mod rules;
#[cfg(feature = "ml")]
pub mod tiny;
pub mod views;

pub use denylist::DenyListDetector;

use normalize::Normalized;
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;

/// Where a piece of text came from. Detectors may weigh channels differently
/// (an instruction inside a tool result is more suspicious than in a user turn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum Channel {
    #[default]
    User,
    System,
    Assistant,
    Tool,
    Document,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::User => "user",
            Channel::System => "system",
            Channel::Assistant => "assistant",
            Channel::Tool => "tool",
            Channel::Document => "document",
        }
    }
}

/// What the policy does about a finding. Ordered by severity: the decision for
/// a request is the most severe action of all its findings.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum Action {
    #[default]
    Allow,
    Flag,
    Redact,
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Flag => "flag",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }
}

/// The family a finding belongs to: decides where it is reported
/// (`injection` or `pii` in the scan output) and which metric counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Prompt injection, jailbreaks and policy phrases (the deny list).
    Injection,
    /// Personal data and secrets.
    Pii,
    /// Unsafe markup in model output: exfiltration images and links, HTML,
    /// script URLs (OWASP LLM05, improper output handling).
    Output,
}

/// One thing a detector found. `start..end` are byte offsets into the text the
/// detector was given (always on UTF-8 character boundaries).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Upper-case type name, e.g. `DENY_LIST`, `EMAIL`.
    pub kind: &'static str,
    pub family: Family,
    /// The rule that fired, e.g. `deny-list.jailbreak-phrases`.
    pub rule_id: String,
    pub start: usize,
    pub end: usize,
    /// Confidence in 0..=1.
    pub score: f32,
    /// What the policy says to do about it.
    pub action: Action,
    /// `pattern` or `ner` (how the span was found).
    pub source: &'static str,
    /// How a redacted span is rewritten (for `action: redact`).
    pub rewrite: crate::redact::Rewrite,
}

/// One text under scan, with its views computed once and shared by every
/// detector (normalising is the costly part of matching).
pub struct ScanText<'a> {
    pub original: &'a str,
    normalized: OnceCell<Normalized>,
    derived: OnceCell<Vec<views::DerivedView>>,
}

impl<'a> ScanText<'a> {
    pub fn new(original: &'a str) -> Self {
        ScanText {
            original,
            normalized: OnceCell::new(),
            derived: OnceCell::new(),
        }
    }

    /// The normalised view (built on first use).
    pub fn normalized(&self) -> &Normalized {
        self.normalized
            .get_or_init(|| Normalized::new(self.original))
    }

    /// Every view: the normalised one, then the derived ones (leetspeak,
    /// collapsed letters, decoded payloads, rot13), built on first use.
    pub fn views(&self) -> impl Iterator<Item = views::ViewRef<'_>> {
        let base = self.normalized();
        let derived = self
            .derived
            .get_or_init(|| views::derive(self.original, base));
        views::views(self.original, base, derived)
    }
}

/// A detector scans one piece of text and appends its findings.
pub trait Detector: Send + Sync {
    /// Stable identifier used in logs and metrics (`deny_list`, ...).
    fn name(&self) -> &'static str;
    /// Whether this detector applies to text from `channel`.
    fn applies_to(&self, channel: Channel) -> bool;
    /// Scan `text` and push findings whose spans index into `text.original`.
    fn scan(&self, text: &ScanText<'_>, channel: Channel, out: &mut Vec<Finding>);
    /// [`Detector::scan`] for a streamed response's text, run again on each
    /// hold-back window as it grows: detectors too slow for that (a model)
    /// skip their costly part here.
    fn scan_stream(&self, text: &ScanText<'_>, channel: Channel, out: &mut Vec<Finding>) {
        self.scan(text, channel, out);
    }
    /// Whether this detector scans request or response bodies (default: requests only).
    fn applies_to_direction(&self, dir: crate::api::Direction) -> bool {
        dir == crate::api::Direction::Request
    }
    /// The injection score of `text` (0..1) even when below every threshold,
    /// for detectors that compute one (reported by `tollgate scan`).
    fn injection_score(&self, _text: &ScanText<'_>, _channel: Channel) -> Option<f32> {
        None
    }
    /// Time this detector may spend on one request (microseconds), and what
    /// happens when it runs over: `None` means no budget.
    fn budget(&self) -> Option<(u64, OnTimeout)> {
        None
    }
    /// [`Detector::scan`], reporting a failure of the detector (a model that
    /// could not run): the findings pushed so far stand, and the request
    /// gets [`Detector::on_error`].
    fn scan_checked(
        &self,
        text: &ScanText<'_>,
        channel: Channel,
        out: &mut Vec<Finding>,
    ) -> Result<(), DetectorError> {
        self.scan(text, channel, out);
        Ok(())
    }
    /// What a request gets when this detector fails.
    fn on_error(&self) -> OnTimeout {
        OnTimeout::Allow
    }
}

/// A detector could not complete its check (the message never holds scanned text).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DetectorError(pub String);

/// What a detector that runs out of its time budget means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum OnTimeout {
    /// Forward the request, marked `x-tollgate-degraded: <detector>` and counted.
    #[default]
    Allow,
    /// Refuse the request (503 in the API's error shape).
    Block,
}
