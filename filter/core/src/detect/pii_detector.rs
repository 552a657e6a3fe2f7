//! The PII and secrets detector: validated patterns ([`super::pii`]) and, in
//! the full build, the NER model for names, places and organisations, with
//! one action per type (allow, flag, mask, partial mask, keyed hash,
//! reversible pseudonym, block).

use super::pii::{PiiMatch, PiiPatterns, PiiType};
use super::{Action, Channel, Detector, DetectorError, Family, Finding, OnTimeout, ScanText};
use crate::api::Direction;
use crate::redact::Rewrite;

/// What one type gets.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeAction {
    pub kind: PiiType,
    pub action: Action,
    pub rewrite: Rewrite,
}

/// A span the NER stage found: type, byte span, score.
pub type NerHit = (PiiType, usize, usize, f32);

/// The NER stage (the full build's model, or a test double): spans of
/// PERSON, LOCATION and ORGANIZATION in a text, on word boundaries.
pub trait NerStage: Send + Sync {
    /// A cheap check: `false` when the text cannot hold a name (the model is skipped).
    fn worth_running(&self, text: &str) -> bool;
    fn spans(&self, text: &str) -> Result<Vec<NerHit>, String>;
}

/// The full build's NER model as a [`NerStage`].
#[cfg(feature = "ml")]
pub struct ModelNer {
    pub model: super::ner::NerModel,
    /// Windows of [`super::ner::MAX_TOKENS`] tokens looked at per text at most.
    pub max_windows: usize,
}

#[cfg(feature = "ml")]
impl NerStage for ModelNer {
    fn worth_running(&self, text: &str) -> bool {
        super::ner::worth_running(text)
    }

    fn spans(&self, text: &str) -> Result<Vec<NerHit>, String> {
        let spans = self
            .model
            .spans(text, self.max_windows)
            .map_err(|e| e.to_string())?;
        Ok(spans
            .into_iter()
            .filter_map(|s| PiiType::parse(s.label).map(|t| (t, s.start, s.end, s.score)))
            .collect())
    }
}

pub struct PiiDetector {
    id: String,
    patterns: PiiPatterns,
    /// Indexed by position in `PiiType::ALL`; `None` = not detected.
    actions: Vec<Option<TypeAction>>,
    min_score: f32,
    channels: Vec<Channel>,
    requests: bool,
    responses: bool,
    ner: Option<Box<dyn NerStage>>,
    on_error: OnTimeout,
}

impl std::fmt::Debug for PiiDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiiDetector")
            .field("id", &self.id)
            .field("types", &self.actions.iter().flatten().count())
            .finish()
    }
}

fn type_index(t: PiiType) -> Option<usize> {
    PiiType::ALL.iter().position(|x| *x == t)
}

impl PiiDetector {
    /// `actions`: the types to detect and what each gets. `channels` empty = all.
    pub fn new(
        id: &str,
        actions: Vec<TypeAction>,
        min_score: f32,
        channels: Vec<Channel>,
        directions: (bool, bool),
    ) -> Result<PiiDetector, String> {
        let pattern_types: Vec<PiiType> = actions
            .iter()
            .map(|a| a.kind)
            .filter(|k| !k.is_ner())
            .collect();
        let patterns = PiiPatterns::new(&pattern_types).map_err(|e| e.to_string())?;
        let mut table: Vec<Option<TypeAction>> = vec![None; PiiType::ALL.len()];
        for a in actions {
            if let Some(slot) = type_index(a.kind).and_then(|i| table.get_mut(i)) {
                *slot = Some(a);
            }
        }
        Ok(PiiDetector {
            id: id.to_string(),
            patterns,
            actions: table,
            min_score,
            channels,
            requests: directions.0,
            responses: directions.1,
            ner: None,
            on_error: OnTimeout::Allow,
        })
    }

    /// Add the NER stage.
    pub fn with_ner(mut self, ner: Box<dyn NerStage>) -> Self {
        self.ner = Some(ner);
        self
    }

    pub fn with_on_error(mut self, mode: OnTimeout) -> Self {
        self.on_error = mode;
        self
    }

    /// Whether any configured type is found by the NER model.
    pub fn wants_ner(&self) -> bool {
        self.actions.iter().flatten().any(|a| a.kind.is_ner())
    }

    fn action_for(&self, t: PiiType) -> Option<&TypeAction> {
        type_index(t)
            .and_then(|i| self.actions.get(i))
            .and_then(Option::as_ref)
    }

    fn push(&self, m: &PiiMatch, source: &'static str, out: &mut Vec<Finding>) {
        let Some(a) = self.action_for(m.kind) else {
            return;
        };
        if a.action == Action::Allow {
            return;
        }
        out.push(Finding {
            kind: m.kind.as_str(),
            family: Family::Pii,
            // Rule names of the patterns start with `pii.`; the detector's id replaces it.
            rule_id: format!(
                "{}.{}",
                self.id,
                m.rule.strip_prefix("pii.").unwrap_or(m.rule)
            ),
            start: m.start,
            end: m.end,
            score: m.score,
            action: a.action,
            source,
            rewrite: a.rewrite.clone(),
        });
    }

    /// Every match in `text`: patterns, then NER spans that overlap no pattern
    /// match, sorted by start. On a model failure the pattern matches are
    /// returned with the error.
    pub fn matches(&self, text: &str) -> (Vec<(PiiMatch, &'static str)>, Option<DetectorError>) {
        let mut found = Vec::new();
        self.patterns.scan(text, self.min_score, &mut found);
        let mut out: Vec<(PiiMatch, &'static str)> =
            found.into_iter().map(|m| (m, "pattern")).collect();
        let error = self.ner_matches(text, &mut out).err();
        out.sort_by_key(|(m, _)| (m.start, m.end));
        (out, error)
    }

    fn ner_matches(
        &self,
        text: &str,
        out: &mut Vec<(PiiMatch, &'static str)>,
    ) -> Result<(), DetectorError> {
        let Some(ner) = &self.ner else {
            return Ok(());
        };
        if !self.wants_ner() || !ner.worth_running(text) {
            return Ok(());
        }
        let spans = ner
            .spans(text)
            .map_err(|e| DetectorError(format!("NER: {e}")))?;
        for (kind, start, end, score) in spans {
            if score < self.min_score
                || !kind.is_ner()
                || self.action_for(kind).is_none()
                || text.get(start..end).is_none()
                || start >= end
            {
                continue;
            }
            if out.iter().any(|(m, _)| m.start < end && start < m.end) {
                continue;
            }
            out.push((
                PiiMatch {
                    kind,
                    start,
                    end,
                    score,
                    rule: "ner",
                },
                "ner",
            ));
        }
        Ok(())
    }
}

impl Detector for PiiDetector {
    fn name(&self) -> &'static str {
        "pii"
    }

    fn applies_to(&self, channel: Channel) -> bool {
        self.channels.is_empty() || self.channels.contains(&channel)
    }

    fn applies_to_direction(&self, dir: Direction) -> bool {
        match dir {
            Direction::Request => self.requests,
            Direction::Response => self.responses,
        }
    }

    fn scan(&self, text: &ScanText<'_>, channel: Channel, out: &mut Vec<Finding>) {
        let _ = self.scan_checked(text, channel, out);
    }

    fn scan_checked(
        &self,
        text: &ScanText<'_>,
        _channel: Channel,
        out: &mut Vec<Finding>,
    ) -> Result<(), DetectorError> {
        // Pattern matches stand even when the model fails.
        let (all, error) = self.matches(text.original);
        for (m, source) in &all {
            self.push(m, source, out);
        }
        error.map_or(Ok(()), Err)
    }

    fn on_error(&self) -> OnTimeout {
        self.on_error
    }

    /// Patterns only: the NER model costs milliseconds per call, and a
    /// stream's window is scanned again on every delta.
    fn scan_stream(&self, text: &ScanText<'_>, _channel: Channel, out: &mut Vec<Finding>) {
        let mut found = Vec::new();
        self.patterns
            .scan(text.original, self.min_score, &mut found);
        for m in &found {
            self.push(m, "pattern", out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NER stage that reports fixed spans (or fails), to test how they merge.
    struct FixedNer(Result<Vec<NerHit>, String>, bool);

    impl NerStage for FixedNer {
        fn worth_running(&self, _text: &str) -> bool {
            self.1
        }
        fn spans(&self, _text: &str) -> Result<Vec<NerHit>, String> {
            self.0.clone()
        }
    }

    fn detector(ner: FixedNer) -> PiiDetector {
        let actions = vec![
            TypeAction {
                kind: PiiType::Email,
                action: Action::Redact,
                rewrite: Rewrite::Mask,
            },
            TypeAction {
                kind: PiiType::Person,
                action: Action::Redact,
                rewrite: Rewrite::Pseudonymize,
            },
        ];
        match PiiDetector::new("pii", actions, 0.5, vec![], (true, false)) {
            Ok(d) => d.with_ner(Box::new(ner)),
            Err(e) => unreachable!("{e}"),
        }
    }

    const TEXT: &str = "Ask Jürgen Weiß at jw@example.com today";

    #[test]
    fn ner_spans_merge_with_patterns() {
        let person = (PiiType::Person, 4, 17, 0.9);
        // A NER span over the e-mail loses to the pattern; low scores, unconfigured
        // types, non-NER types and bad spans are dropped.
        let d = detector(FixedNer(
            Ok(vec![
                person,
                (PiiType::Person, 21, 35, 0.99),
                (PiiType::Person, 0, 3, 0.2),
                (PiiType::Location, 0, 3, 0.9),
                (PiiType::Email, 0, 3, 0.9),
                (PiiType::Person, 5, 6, 0.9),
                (PiiType::Person, 30, 99, 0.9),
            ]),
            true,
        ));
        let (m, err) = d.matches(TEXT);
        assert!(err.is_none());
        let got: Vec<(&str, usize, usize, &str)> = m
            .iter()
            .map(|(m, s)| (m.kind.as_str(), m.start, m.end, *s))
            .collect();
        assert_eq!(
            got,
            vec![("PERSON", 4, 17, "ner"), ("EMAIL", 21, 35, "pattern")]
        );
        assert_eq!(TEXT.get(4..17), Some("Jürgen Weiß"));
        // 4..16 ends inside "ß": dropped, not trusted.
        let d2 = detector(FixedNer(Ok(vec![(PiiType::Person, 4, 16, 0.9)]), true));
        assert_eq!(d2.matches(TEXT).0.len(), 1);
        // Skipped when the gate says so.
        let d = detector(FixedNer(Ok(vec![person]), false));
        assert_eq!(d.matches(TEXT).0.len(), 1);
    }

    #[test]
    fn a_failing_model_keeps_the_pattern_findings() {
        let d = detector(FixedNer(Err("boom".into()), true));
        let mut out = Vec::new();
        let r = d.scan_checked(&ScanText::new(TEXT), Channel::User, &mut out);
        assert_eq!(r, Err(DetectorError("NER: boom".into())));
        assert_eq!(out.len(), 1);
        assert_eq!(out.first().map(|f| f.kind), Some("EMAIL"));
        assert!(!format!("{:?}", r).contains("jw@"));
    }

    #[test]
    fn directions_and_channels() {
        let d = detector(FixedNer(Ok(vec![]), true));
        assert!(d.applies_to_direction(Direction::Request));
        assert!(!d.applies_to_direction(Direction::Response));
        assert!(d.applies_to(Channel::Tool));
    }
}
