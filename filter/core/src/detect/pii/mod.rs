//! Validated PII and secret patterns.
//!
//! [`PiiPatterns::scan`] finds e-mail addresses, phone numbers, payment and
//! national identifiers, network addresses, dates of birth and credentials in
//! a text, and scores each match as Presidio does: a base score per pattern
//! (high when a checksum validates, lower when only the format does) adjusted
//! by [`context`] words just before the match.
//!
//! # How a scan works
//!
//! One pass over the bytes splits the text into ASCII alphanumeric words and
//! looks at the few bytes that start other candidates (`@`, `:`, `=`,
//! `-----BEGIN`). A word of letters only is dropped at once unless it may
//! start something (a known secret prefix, two capitals before digits, a hex
//! group before `:`, sixteen characters): prose costs one table lookup per
//! byte. The other words run hand-written parsers anchored at the word
//! ([`numbers`], [`secrets`]) that read a bounded number of bytes ahead and
//! end with the [`validators`]; only their survivors look up their context,
//! trying the context words at the word starts the pass recorded in the
//! window before them. No regular expression runs over the text, and the
//! work is linear in its length.
//!
//! Overlapping matches are then resolved: the higher score wins, then the more
//! specific type, then the longer span; no two reported spans overlap.
//!
//! Types that are too ambiguous on their own (nine to eleven bare digits,
//! undashed SSNs, BSNs, routing numbers) score below 0.5 without a context
//! word; passports and dates of birth are only reported next to one.

pub mod context;
pub mod numbers;
pub mod secrets;
pub mod types;
pub mod validators;

pub use types::{PiiMatch, PiiType};

use context::{Context, ContextMatcher};

/// Building the patterns failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PiiPatternError {
    /// The context words or secret names do not compile into a matcher.
    #[error("pii context words: cannot build the matcher: {0}")]
    Context(String),
}

/// The compiled patterns for a set of types (once per VM; `Send + Sync`).
#[derive(Debug)]
pub struct PiiPatterns {
    /// Bits of the enabled [`PiiType`]s.
    enabled: u64,
    context: ContextMatcher,
    /// Names whose values are secrets (`api_key`, `password`, ...).
    names: aho_corasick::AhoCorasick,
}

impl PiiPatterns {
    /// The built-in patterns for the given types (NER types are ignored).
    pub fn new(types: &[PiiType]) -> Result<PiiPatterns, PiiPatternError> {
        let enabled = types
            .iter()
            .filter(|t| !t.is_ner())
            .fold(0u64, |a, t| a | t.bit());
        Ok(PiiPatterns {
            enabled,
            context: ContextMatcher::new()?,
            names: secrets::name_matcher()?,
        })
    }

    /// Every pattern type.
    pub fn all() -> Result<PiiPatterns, PiiPatternError> {
        PiiPatterns::new(PiiType::ALL)
    }

    /// Whether `kind` is scanned for.
    pub fn enabled(&self, kind: PiiType) -> bool {
        self.enabled & kind.bit() != 0
    }

    /// Append the matches in `text` with score >= `min_score`, overlaps
    /// resolved (no two spans overlap), sorted by start.
    pub fn scan(&self, text: &str, min_score: f32, out: &mut Vec<PiiMatch>) {
        if self.enabled == 0 {
            return;
        }
        let mut scan = Scan {
            text,
            b: text.as_bytes(),
            pats: self,
            cands: Vec::new(),
            min_score,
            ctx_cache: [(usize::MAX, Context::default()); 2],
            word_starts: Vec::new(),
        };
        scan.run();
        resolve(scan.cands, out);
    }
}

/// Byte classes.
const DIGIT: u8 = 1;
const UPPER: u8 = 2;
const LOWER: u8 = 4;
const HEX: u8 = 8;
const ALNUM: u8 = DIGIT | UPPER | LOWER;

// Evaluated at compile time: an index out of range fails the build, never a request.
#[allow(clippy::indexing_slicing)]
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = if c.is_ascii_digit() {
            DIGIT | HEX
        } else if c.is_ascii_uppercase() {
            UPPER | if c <= b'F' { HEX } else { 0 }
        } else if c.is_ascii_lowercase() {
            LOWER | if c <= b'f' { HEX } else { 0 }
        } else {
            0
        };
        i += 1;
    }
    t
};

pub(crate) fn class(c: u8) -> u8 {
    CLASS.get(usize::from(c)).copied().unwrap_or(0)
}

/// The byte at `i`, or 0 past the end.
pub(crate) fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

pub(crate) fn is_alnum(c: u8) -> bool {
    class(c) & ALNUM != 0
}

pub(crate) fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// The set of `types` as bits ([`PiiType::bit`]), at compile time.
// Evaluated at compile time: an index out of range fails the build, never a request.
#[allow(clippy::indexing_slicing)]
const fn bits(types: &[PiiType]) -> u64 {
    let mut m = 0u64;
    let mut i = 0;
    while i < types.len() {
        m |= 1u64 << (types[i] as u32);
        i += 1;
    }
    m
}

/// The types found in digit groups ([`numbers`]' `numeric`).
const NUMERIC: u64 = bits(&[
    PiiType::Phone,
    PiiType::CreditCard,
    PiiType::UsSsn,
    PiiType::NhsNumber,
    PiiType::NlBsn,
    PiiType::UsRoutingNumber,
    PiiType::DeTaxId,
]);

/// National identifiers (and the routing number): a context word of one of
/// these closest before a number outweighs a passport word further back.
pub(crate) const NATIONAL_IDS: u64 = bits(&[
    PiiType::UsSsn,
    PiiType::UkNin,
    PiiType::NhsNumber,
    PiiType::EsDni,
    PiiType::EsNie,
    PiiType::ItFiscalCode,
    PiiType::NlBsn,
    PiiType::FrNir,
    PiiType::DeTaxId,
    PiiType::UsRoutingNumber,
]);

/// The types an assignment (`key = value`) may report: every secret type
/// (a prefixed token is reported as itself).
// Evaluated at compile time: an index out of range fails the build, never a request.
#[allow(clippy::indexing_slicing)]
const ASSIGNED: u64 = {
    let mut m = 0u64;
    let mut i = 0;
    while i < PiiType::ALL.len() {
        let t = PiiType::ALL[i];
        if t.is_secret() {
            m |= 1u64 << (t as u32);
        }
        i += 1;
    }
    m
};

/// One scan in progress.
pub(crate) struct Scan<'a> {
    pub(crate) text: &'a str,
    pub(crate) b: &'a [u8],
    pats: &'a PiiPatterns,
    cands: Vec<PiiMatch>,
    min_score: f32,
    /// The last two context lookups (start, context).
    ctx_cache: [(usize, Context); 2],
    /// Starts of the words that begin with an ASCII letter, in order.
    word_starts: Vec<usize>,
}

impl Scan<'_> {
    pub(crate) fn on(&self, kind: PiiType) -> bool {
        self.pats.enabled(kind)
    }

    /// The context before byte `start` (the last two lookups are cached: several
    /// candidates often start at the same place). Only the words the pass
    /// recorded in the window are tried.
    pub(crate) fn context(&mut self, start: usize) -> Context {
        if let Some(&(_, c)) = self.ctx_cache.iter().find(|(s, _)| *s == start) {
            return c;
        }
        let c = self
            .pats
            .context
            .before_words(self.text, &self.word_starts, start);
        self.ctx_cache = [(start, c), self.ctx_cache[0]];
        c
    }

    /// A candidate with a fixed score.
    pub(crate) fn push(
        &mut self,
        kind: PiiType,
        start: usize,
        end: usize,
        score: f32,
        rule: &'static str,
    ) {
        if !self.on(kind) || score < self.min_score || end <= start {
            return;
        }
        if !(self.text.is_char_boundary(start) && self.text.is_char_boundary(end)) {
            return;
        }
        self.cands.push(PiiMatch {
            kind,
            start,
            end,
            score,
            rule,
        });
    }

    /// A candidate whose score the context adjusts.
    pub(crate) fn push_ctx(
        &mut self,
        kind: PiiType,
        start: usize,
        end: usize,
        base: f32,
        rule: &'static str,
    ) {
        // Even a context word would not lift it to the threshold.
        if !self.on(kind) || base + context::BOOST < self.min_score {
            return;
        }
        let ctx = self.context(start);
        self.push(kind, start, end, context::adjust(kind, base, &ctx), rule);
    }

    /// A candidate reported only next to one of its context words (before
    /// it, or within [`context::AFTER`] bytes after it).
    pub(crate) fn push_if_ctx(
        &mut self,
        kind: PiiType,
        start: usize,
        end: usize,
        base: f32,
        rule: &'static str,
    ) {
        if !self.on(kind) || base + context::BOOST < self.min_score {
            return;
        }
        let mut ctx = self.context(start);
        // The word must be in the same sentence ("Date of birth: 1977-04-16.
        // The order shipped on 24/09/2023" is no second birth date).
        ctx.positive &= ctx.same_sentence;
        if !ctx.has(kind) {
            // "am 15.03.1985 geboren": these words may also follow closely.
            let after = self.pats.context.after(self.text, end);
            ctx.positive |= after.positive;
            ctx.same_sentence |= after.positive;
        }
        if ctx.has(kind) {
            self.push(kind, start, end, context::adjust(kind, base, &ctx), rule);
        }
    }

    /// The single pass over the text.
    fn run(&mut self) {
        let b = self.b;
        let n = b.len();
        let mut i = 0;
        while i < n {
            let c = at(b, i);
            let cl = class(c);
            if cl & ALNUM != 0 {
                if cl & DIGIT == 0 {
                    let prev = if i > 0 { at(b, i - 1) } else { 0 };
                    if prev < 0x80 || context::boundary_before(self.text, i) {
                        self.word_starts.push(i);
                    }
                }
                let mut j = i + 1;
                let mut flags = cl;
                while j < n {
                    let k = class(at(b, j));
                    if k & ALNUM == 0 {
                        break;
                    }
                    flags |= k;
                    j += 1;
                }
                i = self.word(i, j, flags).max(j);
                continue;
            }
            let resume = match c {
                b'@' => self.email(i),
                b':' | b'=' if self.pats.enabled & ASSIGNED != 0 => self.assignment(i),
                b'-' if b.get(i..).is_some_and(|t| t.starts_with(b"-----BEGIN ")) => self.pem(i),
                _ => None,
            };
            i = resume.unwrap_or(i + 1).max(i + 1);
        }
    }

    /// One alphanumeric word `s..e`; returns where the pass resumes.
    fn word(&mut self, s: usize, e: usize, flags: u8) -> usize {
        let b = self.b;
        let first = at(b, s);
        if secrets::maybe_prefix(first, at(b, s + 1)) {
            if let Some(end) = self.secret_prefix(s) {
                return end;
            }
        }
        let len = e - s;
        let next = at(b, e);
        // An AWS secret key: 40 characters, the first word of it ending at a `/`
        // or `+` ("8n+61T0m..."), starting after one ("+qs190wI..."), or the whole of it.
        if matches!(next, b'/' | b'+')
            || (s > 0 && matches!(at(b, s - 1), b'/' | b'+'))
            || (len >= 40 && flags & (UPPER | LOWER) == UPPER | LOWER)
        {
            if let Some(end) = self.aws_secret_standalone(s) {
                return end;
            }
        }
        if flags & DIGIT == 0 {
            if secrets::maybe_login(len, first, at(b, s + 1)) {
                if let Some(end) = self.login_pair(s, e) {
                    return end;
                }
            }
            if secrets::maybe_noun(len, first, at(b, s + 1), at(b, s + 2)) {
                if let Some(end) = self.secret_phrase(s, e) {
                    return end;
                }
            }
            // Letters only: most words end here.
            // (Nine capitals from C, F, G, H, J, K: a German passport number.)
            let maybe = len == 16
                || (len == 9
                    && flags & LOWER == 0
                    && matches!(first, b'C' | b'F' | b'G' | b'H' | b'J' | b'K'))
                || (len == 2 && next == b' ' && is_digit(at(b, e + 1)))
                || (len == 1
                    && matches!(first | 0x20, b'x' | b'y' | b'z')
                    && matches!(next, b'-' | b' ')
                    && is_digit(at(b, e + 1)))
                || (len <= 4
                    && matches!(next, b':' | b'-' | b'.')
                    && class(at(b, e + 1)) & HEX != 0
                    && (s..e).all(|k| class(at(b, k)) & HEX != 0));
            if !maybe {
                return e;
            }
        }
        if !numbers::left_ok(self.text, s) {
            return e;
        }
        let mut resume = e;
        if is_digit(first) {
            if self.pats.enabled & NUMERIC != 0 {
                self.numeric(s);
            }
            if let Some(end) = self.ipv4(s) {
                resume = resume.max(end);
            }
            self.date_of_birth(s);
            self.fr_nir(s);
            self.es_dni(s, e);
        } else {
            self.iban(s, e);
            self.uk_nin(s, e);
            self.es_nie(s, e);
            self.it_fiscal_code(s, e);
        }
        if let Some(end) = self.mac_or_ipv6(s, e) {
            resume = resume.max(end);
        }
        self.passport(s, e, flags);
        resume
    }
}

/// Sorts candidates by start and keeps, in each cluster of overlapping
/// ones, the best (score, then specificity, then length) that do not overlap.
fn resolve(mut cands: Vec<PiiMatch>, out: &mut Vec<PiiMatch>) {
    cands.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut i = 0;
    while i < cands.len() {
        let mut j = i + 1;
        let mut end = cands.get(i).map_or(0, |m| m.end);
        while let Some(m) = cands.get(j) {
            if m.start >= end {
                break;
            }
            end = end.max(m.end);
            j += 1;
        }
        let Some(cluster) = cands.get(i..j) else {
            break;
        };
        if let [one] = cluster {
            out.push(one.clone());
        } else {
            let mut ranked: Vec<&PiiMatch> = cluster.iter().collect();
            ranked.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then(b.kind.specificity().cmp(&a.kind.specificity()))
                    .then((b.end - b.start).cmp(&(a.end - a.start)))
                    .then(a.start.cmp(&b.start))
            });
            let mut kept: Vec<PiiMatch> = Vec::new();
            for m in ranked {
                if kept.iter().all(|k| m.end <= k.start || m.start >= k.end) {
                    kept.push(m.clone());
                }
            }
            kept.sort_by_key(|m| m.start);
            out.extend(kept);
        }
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &t in PiiType::ALL {
            assert_eq!(PiiType::parse(t.as_str()), Some(t));
        }
        assert_eq!(PiiType::parse("email"), None);
        assert_eq!(PiiType::ALL.len(), 33);
        assert!(PiiType::Jwt.is_secret() && !PiiType::Email.is_secret());
        assert!(PiiType::Person.is_ner() && !PiiType::Phone.is_ner());
    }

    #[test]
    fn resolve_keeps_best_non_overlapping() {
        let m = |kind, start, end, score| PiiMatch {
            kind,
            start,
            end,
            score,
            rule: "t",
        };
        let mut out = Vec::new();
        resolve(
            vec![
                m(PiiType::Phone, 0, 10, 0.6),
                m(PiiType::CreditCard, 2, 12, 0.9),
                m(PiiType::Email, 20, 30, 0.9),
                m(PiiType::NhsNumber, 11, 15, 0.5),
            ],
            &mut out,
        );
        let kinds: Vec<_> = out.iter().map(|m| (m.kind, m.start)).collect();
        assert_eq!(kinds, vec![(PiiType::CreditCard, 2), (PiiType::Email, 20)]);
    }

    #[test]
    fn patterns_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<PiiPatterns>();
    }
}
