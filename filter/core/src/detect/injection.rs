//! The prompt-injection detector: curated rules and the n-gram model, scored
//! together per channel. Rules give precise spans and ids; the model catches
//! phrasings no rule names. Both see every view of the text (see [`super::views`]).
//!
//! Without the second stage: combined = 1 - (1 - rules) * (1 - ngram)
//! (noisy-OR), where `rules` is the highest severity score of the rules that
//! fired and `ngram` the n-gram model's probability. With it (feature `ml`,
//! see [`super::tiny`]): the tiny model runs only where the n-gram model is
//! unsure, and combined = max(rules, sigmoid(w0 + w1 logit(ngram) + w2
//! logit(tiny) + w3 rules)) with the weights fitted on the dev split. Each
//! channel has its own `flag` and `block` thresholds.

use super::ngram::NgramModel;
use super::{Action, Channel, Detector, DetectorError, Family, Finding, OnTimeout, ScanText};

/// Finding type of prompt-injection detections.
pub const KIND: &str = "PROMPT_INJECTION";

/// Thresholds on the combined score for one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub flag: f32,
    pub block: f32,
}

/// Thresholds per channel; `None` means the channel is not scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelThresholds {
    pub user: Option<Thresholds>,
    pub system: Option<Thresholds>,
    pub assistant: Option<Thresholds>,
    pub tool: Option<Thresholds>,
    pub document: Option<Thresholds>,
}

impl ChannelThresholds {
    /// The same thresholds on every channel (evaluation, training, benches).
    pub fn all(t: Thresholds) -> Self {
        ChannelThresholds {
            user: Some(t),
            system: Some(t),
            assistant: Some(t),
            tool: Some(t),
            document: Some(t),
        }
    }

    pub fn get(&self, channel: Channel) -> Option<Thresholds> {
        match channel {
            Channel::User => self.user,
            Channel::System => self.system,
            Channel::Assistant => self.assistant,
            Channel::Tool => self.tool,
            Channel::Document => self.document,
        }
    }
}

/// The scores behind one decision (also what `tollgate eval` reports).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Scores {
    pub rules: f32,
    /// The n-gram model alone (highest over the views).
    pub ngram: f32,
    /// The second stage, when it ran on this text.
    pub tiny: Option<f32>,
    /// The models together (the n-gram score when the second stage did not run).
    pub model: f32,
    pub combined: f32,
}

/// A detector's scores and findings for one text, and the failure, if any.
pub struct Scored {
    pub findings: Vec<Finding>,
    pub scores: Scores,
    /// The second stage failed: scores are the first stage's alone.
    pub error: Option<DetectorError>,
}

pub struct InjectionDetector {
    id: String,
    rules: Option<Box<dyn Detector>>,
    model: Option<NgramModel>,
    #[cfg(feature = "ml")]
    tiny: Option<(super::tiny::TinyModel, usize)>,
    thresholds: ChannelThresholds,
    budget: Option<(u64, OnTimeout)>,
    on_error: OnTimeout,
    responses: bool,
}

impl InjectionDetector {
    /// Scan responses too (the `assistant` channel's thresholds apply).
    pub fn with_responses(mut self, on: bool) -> Self {
        self.responses = on;
        self
    }

    /// Give the detector a time budget per request.
    pub fn with_budget(mut self, budget: Option<(u64, OnTimeout)>) -> Self {
        self.budget = budget;
        self
    }

    /// What a request gets when a stage of the detector fails.
    pub fn with_on_error(mut self, mode: OnTimeout) -> Self {
        self.on_error = mode;
        self
    }

    /// The n-gram model, if the detector has one.
    pub fn ngram(&self) -> Option<&NgramModel> {
        self.model.as_ref()
    }

    /// The second-stage model, if the detector has one.
    #[cfg(feature = "ml")]
    pub fn tiny(&self) -> Option<&super::tiny::TinyModel> {
        self.tiny.as_ref().map(|t| &t.0)
    }

    /// Add the second-stage model, run on at most `max_windows` windows per text.
    #[cfg(feature = "ml")]
    pub fn with_tiny(mut self, tiny: super::tiny::TinyModel, max_windows: usize) -> Self {
        self.tiny = Some((tiny, max_windows));
        self
    }

    pub fn new(
        id: &str,
        rules: Option<Box<dyn Detector>>,
        model: Option<NgramModel>,
        thresholds: ChannelThresholds,
    ) -> Self {
        InjectionDetector {
            id: id.to_string(),
            rules,
            model,
            #[cfg(feature = "ml")]
            tiny: None,
            thresholds,
            budget: None,
            on_error: OnTimeout::Allow,
            responses: false,
        }
    }

    /// Score a text: rule findings (spans in `text.original`) and the scores.
    pub fn score(&self, text: &ScanText<'_>, channel: Channel) -> Scored {
        let mut findings = Vec::new();
        if let Some(rules) = &self.rules {
            rules.scan(text, channel, &mut findings);
        }
        let rules_score = findings.iter().map(|f| f.score).fold(0.0f32, f32::max);
        // The n-gram score of every view; the most suspicious view goes on to the second stage.
        let mut ngram = 0.0f32;
        #[allow(unused_variables, unused_mut)]
        let mut top_view: Option<&str> = None;
        if let Some(m) = &self.model {
            for v in text.views() {
                let s = m.score(v.text);
                if top_view.is_none() || s > ngram {
                    ngram = s;
                    top_view = Some(v.text);
                }
            }
        }
        let mut scores = Scores {
            rules: rules_score,
            ngram,
            tiny: None,
            model: ngram,
            combined: 0.0,
        };
        #[allow(unused_mut)]
        let mut error = None;
        scores.combined = 1.0 - (1.0 - rules_score) * (1.0 - scores.model);
        #[cfg(feature = "ml")]
        if let (Some((tiny, max_windows)), Some(model), Some(view)) =
            (&self.tiny, &self.model, top_view)
        {
            if tiny.combine.needs_model(ngram) {
                match tiny.score(view, *max_windows, &|w| model.score(w)) {
                    Ok(p) => scores.tiny = Some(p),
                    Err(e) => error = Some(DetectorError(e.to_string())),
                }
            }
            // The stages as fitted on dev; a rule that fires keeps at least its
            // own severity (a curated rule can block alone, as without the model).
            let c = &tiny.combine;
            scores.model = c.score(0.0, ngram, scores.tiny);
            scores.combined = c.score(rules_score, ngram, scores.tiny).max(rules_score);
        }
        Scored {
            findings,
            scores,
            error,
        }
    }
}

impl Detector for InjectionDetector {
    fn name(&self) -> &'static str {
        "injection"
    }

    fn applies_to(&self, channel: Channel) -> bool {
        self.thresholds.get(channel).is_some()
    }

    fn applies_to_direction(&self, dir: crate::api::Direction) -> bool {
        dir == crate::api::Direction::Request || self.responses
    }

    /// Streams: the curated rules only, each finding on its own span. The
    /// models score whole texts, and a window of a few words re-scored on
    /// every delta is not what they were fitted on.
    fn scan_stream(&self, text: &ScanText<'_>, channel: Channel, out: &mut Vec<Finding>) {
        let (Some(t), Some(rules)) = (self.thresholds.get(channel), &self.rules) else {
            return;
        };
        let mut found = Vec::new();
        rules.scan(text, channel, &mut found);
        for mut f in found {
            f.action = if f.score >= t.block {
                Action::Block
            } else if f.score >= t.flag {
                Action::Flag
            } else {
                continue;
            };
            out.push(f);
        }
    }

    fn budget(&self) -> Option<(u64, OnTimeout)> {
        self.budget
    }

    fn on_error(&self) -> OnTimeout {
        self.on_error
    }

    fn injection_score(&self, text: &ScanText<'_>, channel: Channel) -> Option<f32> {
        self.applies_to(channel)
            .then(|| self.score(text, channel).scores.combined)
    }

    fn scan(&self, text: &ScanText<'_>, channel: Channel, out: &mut Vec<Finding>) {
        // A failed stage is reported by `scan_checked`; here the first stage's verdict stands.
        let _ = self.scan_checked(text, channel, out);
    }

    fn scan_checked(
        &self,
        text: &ScanText<'_>,
        channel: Channel,
        out: &mut Vec<Finding>,
    ) -> Result<(), DetectorError> {
        let Some(t) = self.thresholds.get(channel) else {
            return Ok(());
        };
        let Scored {
            findings: rule_findings,
            scores,
            error,
        } = self.score(text, channel);
        let result = error.map_or(Ok(()), Err);
        let action = if scores.combined >= t.block {
            Action::Block
        } else if scores.combined >= t.flag {
            Action::Flag
        } else {
            return result;
        };
        for mut f in rule_findings {
            f.action = action;
            out.push(f);
        }
        if scores.model >= t.flag || out.is_empty() {
            // The model's own finding covers the whole text.
            out.push(Finding {
                kind: KIND,
                family: Family::Injection,
                rule_id: format!("{}.model", self.id),
                start: 0,
                end: text.original.len(),
                score: scores.combined,
                action,
                source: "model",
                rewrite: crate::redact::Rewrite::Mask,
            });
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FixedRule(f32);
    impl Detector for FixedRule {
        fn name(&self) -> &'static str {
            "fixed"
        }
        fn applies_to(&self, _: Channel) -> bool {
            true
        }
        fn scan(&self, text: &ScanText<'_>, _: Channel, out: &mut Vec<Finding>) {
            if text.original.contains("attack") {
                out.push(Finding {
                    kind: KIND,
                    family: Family::Injection,
                    rule_id: "pi.test".into(),
                    start: 0,
                    end: 6,
                    score: self.0,
                    action: Action::Allow,
                    source: "pattern",
                    rewrite: crate::redact::Rewrite::Mask,
                });
            }
        }
    }

    fn thresholds() -> ChannelThresholds {
        let t = Some(Thresholds {
            flag: 0.5,
            block: 0.9,
        });
        ChannelThresholds {
            user: t,
            system: t,
            assistant: None,
            tool: Some(Thresholds {
                flag: 0.3,
                block: 0.6,
            }),
            document: t,
        }
    }

    fn run(d: &InjectionDetector, text: &str, channel: Channel) -> Vec<Finding> {
        let mut out = Vec::new();
        d.scan(&ScanText::new(text), channel, &mut out);
        out
    }

    #[test]
    fn per_channel_thresholds_decide() {
        let d = InjectionDetector::new("pi", Some(Box::new(FixedRule(0.6))), None, thresholds());
        let user = run(&d, "attack now", Channel::User);
        assert_eq!(user.len(), 1);
        assert_eq!(user[0].action, Action::Flag);
        let tool = run(&d, "attack now", Channel::Tool);
        assert_eq!(tool[0].action, Action::Block);
        assert!(run(&d, "attack now", Channel::Assistant).is_empty());
        assert!(run(&d, "hello", Channel::User).is_empty());
    }

    #[test]
    fn scores_combine_noisy_or() {
        let d = InjectionDetector::new("pi", Some(Box::new(FixedRule(0.5))), None, thresholds());
        let s = d.score(&ScanText::new("attack"), Channel::User).scores;
        assert_eq!(s.rules, 0.5);
        assert_eq!(s.model, 0.0);
        assert!((s.combined - 0.5).abs() < 1e-6);
    }
}
