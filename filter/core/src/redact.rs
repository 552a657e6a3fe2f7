//! Apply redactions to a text: each redacted span is replaced by `[KIND]`.

use crate::detect::{Action, Finding};

/// Replace the spans of `findings` whose action is `redact` with `[KIND]`.
/// Overlapping spans are merged (the first kind wins). Spans that are out of
/// range or not on character boundaries are ignored rather than trusted.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    let mut spans: Vec<(usize, usize, &str)> = findings
        .iter()
        .filter(|f| f.action == Action::Redact)
        .filter(|f| f.start < f.end && text.get(f.start..f.end).is_some())
        .map(|f| (f.start, f.end, f.kind))
        .collect();
    spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (start, end, kind) in spans {
        if end <= pos {
            continue;
        }
        if start < pos {
            // Overlaps the previous span: extend it, no second marker.
            pos = end;
            continue;
        }
        out.push_str(text.get(pos..start).unwrap_or_default());
        out.push('[');
        out.push_str(kind);
        out.push(']');
        pos = end;
    }
    out.push_str(text.get(pos..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Family;

    fn f(start: usize, end: usize, action: Action) -> Finding {
        Finding {
            kind: "DENY_LIST",
            family: Family::Injection,
            rule_id: "r".into(),
            start,
            end,
            score: 1.0,
            action,
            source: "pattern",
        }
    }

    #[test]
    fn replaces_and_merges() {
        let t = "abc secret def secret";
        assert_eq!(
            redact(t, &[f(4, 10, Action::Redact), f(15, 21, Action::Redact)]),
            "abc [DENY_LIST] def [DENY_LIST]"
        );
        assert_eq!(
            redact(t, &[f(4, 10, Action::Redact), f(6, 12, Action::Redact)]),
            "abc [DENY_LIST]ef secret"
        );
        assert_eq!(redact(t, &[f(4, 10, Action::Flag)]), t);
    }

    #[test]
    fn ignores_bad_spans() {
        let t = "é";
        assert_eq!(
            redact(t, &[f(1, 2, Action::Redact), f(0, 9, Action::Redact)]),
            "é"
        );
    }
}
