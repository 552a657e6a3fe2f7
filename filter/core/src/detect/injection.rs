//! The prompt-injection detector: curated rules and the n-gram model, scored
//! together per channel. Rules give precise spans and ids; the model catches
//! phrasings no rule names. Both see every view of the text (see [`super::views`]).
//!
//! Combined score = 1 - (1 - rules) * (1 - model) (noisy-OR), where `rules` is
//! the highest severity score of the rules that fired and `model` the model's
//! probability. Each channel has its own `flag` and `block` thresholds.

use super::ngram::NgramModel;
use super::{Action, Channel, Detector, Family, Finding, OnTimeout, ScanText};

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
    pub model: f32,
    pub combined: f32,
}

pub struct InjectionDetector {
    id: String,
    rules: Option<Box<dyn Detector>>,
    model: Option<NgramModel>,
    thresholds: ChannelThresholds,
    budget: Option<(u64, OnTimeout)>,
}

impl InjectionDetector {
    /// Give the detector a time budget per request.
    pub fn with_budget(mut self, budget: Option<(u64, OnTimeout)>) -> Self {
        self.budget = budget;
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
            thresholds,
            budget: None,
        }
    }

    /// Score a text: rule findings (spans in `text.original`) and the scores.
    pub fn score(&self, text: &ScanText<'_>, channel: Channel) -> (Vec<Finding>, Scores) {
        let mut findings = Vec::new();
        if let Some(rules) = &self.rules {
            rules.scan(text, channel, &mut findings);
        }
        let rules_score = findings.iter().map(|f| f.score).fold(0.0f32, f32::max);
        let model_score = match &self.model {
            Some(m) => text.views().map(|v| m.score(v.text)).fold(0.0f32, f32::max),
            None => 0.0,
        };
        let combined = 1.0 - (1.0 - rules_score) * (1.0 - model_score);
        (
            findings,
            Scores {
                rules: rules_score,
                model: model_score,
                combined,
            },
        )
    }
}

impl Detector for InjectionDetector {
    fn name(&self) -> &'static str {
        "injection"
    }

    fn applies_to(&self, channel: Channel) -> bool {
        self.thresholds.get(channel).is_some()
    }

    fn budget(&self) -> Option<(u64, OnTimeout)> {
        self.budget
    }

    fn injection_score(&self, text: &ScanText<'_>, channel: Channel) -> Option<f32> {
        self.applies_to(channel)
            .then(|| self.score(text, channel).1.combined)
    }

    fn scan(&self, text: &ScanText<'_>, channel: Channel, out: &mut Vec<Finding>) {
        let Some(t) = self.thresholds.get(channel) else {
            return;
        };
        let (rule_findings, scores) = self.score(text, channel);
        let action = if scores.combined >= t.block {
            Action::Block
        } else if scores.combined >= t.flag {
            Action::Flag
        } else {
            return;
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
            });
        }
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
        let (_, s) = d.score(&ScanText::new("attack"), Channel::User);
        assert_eq!(s.rules, 0.5);
        assert_eq!(s.model, 0.0);
        assert!((s.combined - 0.5).abs() < 1e-6);
    }
}
