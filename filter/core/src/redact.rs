//! Rewrite a text's redacted spans: mask (`[EMAIL]`), partial mask (keep the
//! last four), keyed hash (`[EMAIL:3f9a…]`, HMAC-SHA256 with a configured
//! secret: the same value gives the same tag in every request), or a
//! reversible placeholder (`<PERSON_1>`) whose original [`Pseudonyms`] keeps
//! for the response of the same request, and nowhere else.

use crate::detect::{Action, Finding};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;

/// How a redacted span is rewritten.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Rewrite {
    /// `[KIND]`
    #[default]
    Mask,
    /// Every letter and digit but the last four becomes `*`; separators stay.
    PartialMask,
    /// `[KIND:<12 hex digits of HMAC-SHA256(key, KIND:value)>]`
    Hash(Arc<HashKey>),
    /// `<KIND_n>`, restored in the response.
    Pseudonymize,
    /// This text, whatever the value was (the output detector's stripped or
    /// defanged markup).
    Literal(Arc<str>),
}

/// The secret of keyed hashing. Never printed.
#[derive(Clone, PartialEq)]
pub struct HashKey(Vec<u8>);

impl HashKey {
    /// Shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    pub fn new(bytes: &[u8]) -> Option<HashKey> {
        (bytes.len() >= Self::MIN_LEN).then(|| HashKey(bytes.to_vec()))
    }

    /// `[KIND:tag]` for `value`.
    pub fn tag(&self, kind: &str, value: &str) -> String {
        let mut out = format!("[{kind}:");
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) {
            mac.update(kind.as_bytes());
            mac.update(b":");
            mac.update(value.as_bytes());
            for b in mac.finalize().into_bytes().iter().take(6) {
                out.push_str(&format!("{b:02x}"));
            }
        }
        out.push(']');
        out
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashKey(<{} bytes>)", self.0.len())
    }
}

/// One request's placeholders and the values they stand for. Bounded: past
/// [`Pseudonyms::MAX_ENTRIES`] values or [`Pseudonyms::MAX_BYTES`] bytes a
/// value is masked instead.
#[derive(Debug, Default)]
pub struct Pseudonyms {
    /// (kind, placeholder, value)
    entries: Vec<(&'static str, String, String)>,
    counts: Vec<(&'static str, u32)>,
    bytes: usize,
    /// Hands out no new placeholders (responses: a value the model wrote has
    /// no request to be restored from, so it is masked).
    frozen: bool,
}

impl Pseudonyms {
    pub const MAX_ENTRIES: usize = 1024;
    pub const MAX_BYTES: usize = 256 * 1024;

    /// A map that hands out no placeholders: pseudonymised kinds are masked.
    pub fn frozen() -> Pseudonyms {
        Pseudonyms {
            frozen: true,
            ..Pseudonyms::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The placeholder of `value`: the one it already has, or the next `<KIND_n>`.
    pub fn placeholder(&mut self, kind: &'static str, value: &str) -> Option<String> {
        if let Some((_, p, _)) = self
            .entries
            .iter()
            .find(|(k, _, v)| *k == kind && v == value)
        {
            return Some(p.clone());
        }
        if self.frozen
            || self.entries.len() >= Self::MAX_ENTRIES
            || self.bytes + value.len() > Self::MAX_BYTES
        {
            return None;
        }
        let n = match self.counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.counts.push((kind, 1));
                1
            }
        };
        let p = format!("<{kind}_{n}>");
        self.bytes += value.len() + p.len();
        self.entries.push((kind, p.clone(), value.to_string()));
        Some(p)
    }

    /// `text` with every known placeholder replaced by its value; `None` when it has none.
    pub fn restore(&self, text: &str) -> Option<String> {
        let found = self.placeholders(text);
        if found.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        for (start, end, value) in found {
            out.push_str(text.get(pos..start).unwrap_or_default());
            out.push_str(value);
            pos = end;
        }
        out.push_str(text.get(pos..).unwrap_or_default());
        Some(out)
    }

    /// Every known placeholder in `text`: (start, end, the value it stands for),
    /// in order, not overlapping.
    pub fn placeholders(&self, text: &str) -> Vec<(usize, usize, &str)> {
        let mut found = Vec::new();
        if self.entries.is_empty() || !text.contains('<') {
            return found;
        }
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(open) = text.get(i..).and_then(|r| r.find('<')).map(|o| o + i) {
            let close = bytes
                .get(open + 1..)
                .and_then(|r| {
                    r.iter()
                        .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                })
                .map(|c| open + 1 + c);
            let hit = close
                .filter(|c| bytes.get(*c) == Some(&b'>'))
                .and_then(|c| text.get(open..=c))
                .and_then(|p| self.entries.iter().find(|(_, ph, _)| ph == p));
            match hit {
                Some((_, p, v)) => {
                    found.push((open, open + p.len(), v.as_str()));
                    i = open + p.len();
                }
                None => i = open + 1,
            }
        }
        found
    }
}

/// Replace the spans of `findings` whose action is `redact` as their
/// [`Rewrite`] says. Overlapping spans are merged (the first one wins).
/// Spans that are out of range or not on character boundaries are ignored
/// rather than trusted.
pub fn redact(text: &str, findings: &[Finding], pseudonyms: &mut Pseudonyms) -> String {
    let mut spans: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.action == Action::Redact)
        .filter(|f| f.start < f.end && text.get(f.start..f.end).is_some())
        .collect();
    spans.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for f in spans {
        if f.end <= pos {
            continue;
        }
        if f.start < pos {
            // Overlaps the previous span: extend it, no second marker.
            pos = f.end;
            continue;
        }
        out.push_str(text.get(pos..f.start).unwrap_or_default());
        let value = text.get(f.start..f.end).unwrap_or_default();
        push_replacement(&mut out, f, value, pseudonyms);
        pos = f.end;
    }
    out.push_str(text.get(pos..).unwrap_or_default());
    out
}

/// What a redacted `value` found by `f` becomes.
pub fn replacement(f: &Finding, value: &str, pseudonyms: &mut Pseudonyms) -> String {
    let mut out = String::new();
    push_replacement(&mut out, f, value, pseudonyms);
    out
}

fn push_replacement(out: &mut String, f: &Finding, value: &str, pseudonyms: &mut Pseudonyms) {
    let mask = |out: &mut String| {
        out.push('[');
        out.push_str(f.kind);
        out.push(']');
    };
    match &f.rewrite {
        Rewrite::Mask => mask(out),
        Rewrite::PartialMask => out.push_str(&partial_mask(value)),
        Rewrite::Hash(key) => out.push_str(&key.tag(f.kind, value)),
        Rewrite::Pseudonymize => match pseudonyms.placeholder(f.kind, value) {
            Some(p) => out.push_str(&p),
            None => mask(out),
        },
        Rewrite::Literal(text) => out.push_str(text),
    }
}

/// Letters and digits but the last four become `*`; a value with four or
/// fewer is masked whole.
pub fn partial_mask(value: &str) -> String {
    let alnum = value.chars().filter(|c| c.is_alphanumeric()).count();
    let keep_from = if alnum > 4 { alnum - 4 } else { alnum };
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                seen += 1;
                if seen > keep_from {
                    c
                } else {
                    '*'
                }
            } else {
                c
            }
        })
        .collect()
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
            rewrite: Rewrite::Mask,
        }
    }

    fn with(kind: &'static str, start: usize, end: usize, rewrite: Rewrite) -> Finding {
        Finding {
            kind,
            rewrite,
            ..f(start, end, Action::Redact)
        }
    }

    #[test]
    fn replaces_and_merges() {
        let t = "abc secret def secret";
        let p = &mut Pseudonyms::default();
        assert_eq!(
            redact(t, &[f(4, 10, Action::Redact), f(15, 21, Action::Redact)], p),
            "abc [DENY_LIST] def [DENY_LIST]"
        );
        assert_eq!(
            redact(t, &[f(4, 10, Action::Redact), f(6, 12, Action::Redact)], p),
            "abc [DENY_LIST]ef secret"
        );
        assert_eq!(redact(t, &[f(4, 10, Action::Flag)], p), t);
    }

    #[test]
    fn ignores_bad_spans() {
        let t = "é";
        let p = &mut Pseudonyms::default();
        assert_eq!(
            redact(t, &[f(1, 2, Action::Redact), f(0, 9, Action::Redact)], p),
            "é"
        );
    }

    #[test]
    fn partial_mask_keeps_the_last_four_and_separators() {
        assert_eq!(partial_mask("4111 1111 1111 1234"), "**** **** **** 1234");
        assert_eq!(partial_mask("+44 20 7946 0958"), "+** ** **** 0958");
        assert_eq!(partial_mask("abc"), "***");
        assert_eq!(partial_mask("jürgen@exämple.de"), "******@*****le.de");
        let t = "card 4111-1111-1111-1111 ok";
        let out = redact(
            t,
            &[with("CREDIT_CARD", 5, 24, Rewrite::PartialMask)],
            &mut Pseudonyms::default(),
        );
        assert_eq!(out, "card ****-****-****-1111 ok");
    }

    #[test]
    fn keyed_hash_is_stable_and_keyed() {
        let k1 = Arc::new(HashKey::new(b"0123456789abcdef").unwrap_or_else(|| unreachable!()));
        let k2 = Arc::new(HashKey::new(b"fedcba9876543210").unwrap_or_else(|| unreachable!()));
        assert!(HashKey::new(b"short").is_none());
        let t = "mail bob@example.com";
        let p = &mut Pseudonyms::default();
        let a = redact(t, &[with("EMAIL", 5, 20, Rewrite::Hash(k1.clone()))], p);
        let b = redact(t, &[with("EMAIL", 5, 20, Rewrite::Hash(k1.clone()))], p);
        let c = redact(t, &[with("EMAIL", 5, 20, Rewrite::Hash(k2))], p);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(
            a.starts_with("mail [EMAIL:")
                && a.ends_with(']')
                && a.len() == "mail [EMAIL:]".len() + 12,
            "{a}"
        );
        assert!(!a.contains("bob"));
        // The known HMAC-SHA256 of RFC 4231 test case 2 ("Jefe", "what do ya want for nothing?")
        // starts 5bdcc146bf60; our tag hashes "KIND:value", so check the primitive directly.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap_or_else(|_| unreachable!());
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "5bdcc146bf60");
        assert_eq!(format!("{:?}", k1), "HashKey(<16 bytes>)");
    }

    #[test]
    fn pseudonyms_round_trip() {
        let t = "Anna Meier wrote to anna@example.com; Anna Meier again.";
        let p = &mut Pseudonyms::default();
        let findings = [
            with("PERSON", 0, 10, Rewrite::Pseudonymize),
            with("EMAIL", 20, 36, Rewrite::Pseudonymize),
            with("PERSON", 38, 48, Rewrite::Pseudonymize),
        ];
        let out = redact(t, &findings, p);
        assert_eq!(out, "<PERSON_1> wrote to <EMAIL_1>; <PERSON_1> again.");
        assert_eq!(p.len(), 2);
        let answer = "Dear <PERSON_1>, we will write to <EMAIL_1>. <PERSON_2> and <EMAIL_1x> are unknown, a<b.";
        assert_eq!(
            p.restore(answer).as_deref(),
            Some("Dear Anna Meier, we will write to anna@example.com. <PERSON_2> and <EMAIL_1x> are unknown, a<b.")
        );
        assert_eq!(p.restore("nothing here <"), None);
        assert_eq!(p.restore(&out).as_deref(), Some(t));
    }

    #[test]
    fn pseudonyms_are_bounded() {
        let p = &mut Pseudonyms::default();
        for i in 0..Pseudonyms::MAX_ENTRIES {
            assert!(p.placeholder("EMAIL", &format!("u{i}@x.io")).is_some());
        }
        assert_eq!(p.placeholder("EMAIL", "one-more@x.io"), None);
        // Known values still map.
        assert_eq!(
            p.placeholder("EMAIL", "u0@x.io").as_deref(),
            Some("<EMAIL_1>")
        );
        let t = "to one-more@x.io";
        assert_eq!(
            redact(t, &[with("EMAIL", 3, 16, Rewrite::Pseudonymize)], p),
            "to [EMAIL]"
        );
    }
}
