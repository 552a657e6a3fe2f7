//! The deny list: configured phrases matched case-insensitively after Unicode
//! normalisation (see [`super::normalize`]).

use super::normalize::normalize_phrase;
use super::{Action, Channel, Detector, Family, Finding, ScanText};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use std::collections::HashSet;

/// Finding type of deny-list matches.
pub const KIND: &str = "DENY_LIST";

#[derive(Debug)]
pub struct DenyListDetector {
    rule_id: String,
    matcher: AhoCorasick,
    action: Action,
    channels: Vec<Channel>,
    /// Also scan responses (an echoed jailbreak phrase, mid-stream too).
    responses: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DenyListError {
    #[error("phrase {0} is empty after normalisation")]
    EmptyPhrase(usize),
    #[error("cannot build the matcher: {0}")]
    Build(String),
}

impl DenyListDetector {
    /// `channels` empty means every channel.
    pub fn new(
        id: &str,
        phrases: &[String],
        action: Action,
        channels: Vec<Channel>,
    ) -> Result<Self, DenyListError> {
        let mut normalized = Vec::with_capacity(phrases.len());
        for (i, p) in phrases.iter().enumerate() {
            let n = normalize_phrase(p);
            if n.is_empty() {
                return Err(DenyListError::EmptyPhrase(i));
            }
            normalized.push(n);
        }
        // The normalised view is lower case already, as are the phrases: an
        // exact DFA (with its literal prefilter) is the fastest matcher.
        let matcher = AhoCorasickBuilder::new()
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::LeftmostLongest)
            .build(&normalized)
            .map_err(|e| DenyListError::Build(e.to_string()))?;
        Ok(DenyListDetector {
            rule_id: format!("deny-list.{id}"),
            matcher,
            action,
            channels,
            responses: false,
        })
    }

    /// Scan response bodies and streams too.
    pub fn with_responses(mut self, on: bool) -> Self {
        self.responses = on;
        self
    }
}

impl Detector for DenyListDetector {
    fn name(&self) -> &'static str {
        "deny_list"
    }

    fn applies_to(&self, channel: Channel) -> bool {
        self.channels.is_empty() || self.channels.contains(&channel)
    }

    fn applies_to_direction(&self, dir: crate::api::Direction) -> bool {
        dir == crate::api::Direction::Request || self.responses
    }

    fn scan(&self, text: &ScanText<'_>, _channel: Channel, out: &mut Vec<Finding>) {
        // The same span found in several views counts once. A set, not a
        // search of the findings so far: a body of one short phrase repeated
        // has a match every few bytes, and a linear search per match would
        // make the scan quadratic in the body size.
        let mut seen: HashSet<(usize, usize)> = HashSet::new();
        for view in text.views() {
            for m in self.matcher.find_iter(view.text) {
                let Some((start, end)) = view.original_span(m.start(), m.end()) else {
                    continue;
                };
                if !seen.insert((start, end)) {
                    continue;
                }
                out.push(Finding {
                    kind: KIND,
                    family: Family::Injection,
                    rule_id: self.rule_id.clone(),
                    start,
                    end,
                    score: 1.0,
                    action: self.action,
                    source: "pattern",
                    rewrite: crate::redact::Rewrite::Mask,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> DenyListDetector {
        let phrases = vec![
            "Ignore all previous instructions".to_string(),
            "developer mode".to_string(),
        ];
        match DenyListDetector::new("t", &phrases, Action::Block, vec![]) {
            Ok(d) => d,
            Err(e) => unreachable!("{e}"),
        }
    }

    fn spans(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        detector().scan(&ScanText::new(text), Channel::User, &mut out);
        out.iter().map(|f| &text[f.start..f.end]).collect()
    }

    #[test]
    fn matches_case_insensitively() {
        assert_eq!(
            spans("please IGNORE ALL previous instructions now"),
            vec!["IGNORE ALL previous instructions"]
        );
    }

    #[test]
    fn matches_after_normalisation() {
        let text = "ｉｇｎｏｒｅ  all\u{200B} previous\ninstructions";
        assert_eq!(
            spans(text),
            vec!["ｉｇｎｏｒｅ  all\u{200B} previous\ninstructions"]
        );
        assert_eq!(
            spans("enable Developer\u{00A0}Mode"),
            vec!["Developer\u{00A0}Mode"]
        );
    }

    #[test]
    fn benign_text_has_no_findings() {
        assert!(spans("Please summarise the previous instructions manual.").is_empty());
        assert!(spans("").is_empty());
    }

    #[test]
    fn empty_phrase_is_rejected() {
        let r = DenyListDetector::new("t", &["  \u{200B} ".to_string()], Action::Block, vec![]);
        assert!(matches!(r, Err(DenyListError::EmptyPhrase(0))));
    }
}
