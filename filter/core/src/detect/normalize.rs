//! Unicode normalisation with a map back to the original bytes.
//!
//! The normalised view is: NFKC per character, lower-cased, with zero-width and
//! bidi control characters removed and every run of white space folded to one
//! ASCII space. Each byte of the view remembers the byte span of the original
//! character it came from, so a match in the view maps back to a span of the
//! original text on character boundaries.

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// A normalised view of a text and the way back to it.
#[derive(Debug, Default)]
pub struct Normalized {
    /// The normalised text.
    pub text: String,
    /// For each byte of `text`: the original span (start, end) it came from.
    /// Empty when `identity_ascii` is set.
    origin: Vec<(u32, u32)>,
    /// The text was already in normal form except for ASCII case: spans in the
    /// view are spans in the original.
    identity_ascii: bool,
}

/// Characters that change nothing visible and are used to split words so
/// filters miss them: zero-width spaces and joiners, bidi controls, the BOM,
/// soft hyphen, invisible operators, variation selectors.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{E0000}'..='\u{E007F}')
}

impl Normalized {
    /// Build the normalised view of `text`.
    pub fn new(text: &str) -> Normalized {
        if is_ascii_simple(text) {
            return Normalized {
                text: text.to_ascii_lowercase(),
                origin: Vec::new(),
                identity_ascii: true,
            };
        }
        if text.is_ascii() {
            return Normalized::from_ascii(text);
        }
        // NFKC is the identity on text that passes the quick check (most text):
        // then only case, invisibles and white space need work.
        let needs_nfkc = !matches!(is_nfkc_quick(text.chars()), IsNormalized::Yes);
        let mut out = String::with_capacity(text.len());
        let mut origin: Vec<(u32, u32)> = Vec::with_capacity(text.len());
        let mut last_was_space = false;
        for (start, c) in text.char_indices() {
            let span = (start as u32, (start + c.len_utf8()) as u32);
            if c.is_ascii() {
                push_folded(c, span, &mut out, &mut origin, &mut last_was_space);
            } else if is_invisible(c) {
                continue;
            } else if needs_nfkc {
                for n in std::iter::once(c).nfkc() {
                    push_folded(n, span, &mut out, &mut origin, &mut last_was_space);
                }
            } else {
                push_folded(c, span, &mut out, &mut origin, &mut last_was_space);
            }
        }
        Normalized {
            text: out,
            origin,
            identity_ascii: false,
        }
    }

    /// ASCII with irregular white space: a byte loop (NFKC is the identity on ASCII).
    fn from_ascii(text: &str) -> Normalized {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut origin: Vec<(u32, u32)> = Vec::with_capacity(bytes.len());
        let mut iter = bytes.iter().enumerate().peekable();
        while let Some((i, &b)) = iter.next() {
            if is_ascii_space(b) {
                let mut end = i + 1;
                while let Some((j, _)) = iter.next_if(|(_, &n)| is_ascii_space(n)) {
                    end = j + 1;
                }
                out.push(b' ');
                origin.push((i as u32, end as u32));
            } else {
                out.push(b.to_ascii_lowercase());
                origin.push((i as u32, i as u32 + 1));
            }
        }
        Normalized {
            // Only ASCII bytes were written, so this cannot fail.
            text: String::from_utf8(out).unwrap_or_default(),
            origin,
            identity_ascii: false,
        }
    }

    /// Map a span of the view back to a span of the original text.
    pub fn original_span(&self, start: usize, end: usize) -> Option<(usize, usize)> {
        if self.identity_ascii {
            return Some((start, end));
        }
        if start >= end {
            return None;
        }
        let first = self.origin.get(start)?;
        let last = self.origin.get(end - 1)?;
        Some((first.0 as usize, last.1 as usize))
    }
}

/// Append `c` lower-cased, folding white-space runs into one space, recording
/// for every byte written the original span it came from.
fn push_folded(
    c: char,
    span: (u32, u32),
    out: &mut String,
    origin: &mut Vec<(u32, u32)>,
    last_was_space: &mut bool,
) {
    if c.is_whitespace() {
        if *last_was_space {
            // Extend the span the space stands for.
            if let Some(o) = origin.last_mut() {
                o.1 = span.1;
            }
        } else {
            *last_was_space = true;
            out.push(' ');
            origin.push(span);
        }
        return;
    }
    *last_was_space = false;
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        origin.push(span);
        return;
    }
    let mut buf = [0u8; 4];
    for l in c.to_lowercase() {
        let s = l.encode_utf8(&mut buf);
        out.push_str(s);
        origin.extend(std::iter::repeat_n(span, s.len()));
    }
}

/// ASCII white space as `char::is_whitespace` sees it (including vertical tab).
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// ASCII text whose white space is already single spaces (the common case):
/// only case folding is needed, and offsets do not move.
fn is_ascii_simple(text: &str) -> bool {
    let mut prev_space = false;
    for b in text.bytes() {
        if !b.is_ascii() {
            return false;
        }
        let space = b.is_ascii_whitespace() || b == 0x0b;
        if space && (b != b' ' || prev_space) {
            return false;
        }
        prev_space = space;
    }
    true
}

/// Normalise a configured phrase the same way texts are normalised.
pub fn normalize_phrase(phrase: &str) -> String {
    Normalized::new(phrase.trim()).text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(s: &str) -> String {
        Normalized::new(s).text
    }

    #[test]
    fn ascii_fast_path_keeps_offsets() {
        let n = Normalized::new("Hello World");
        assert_eq!(n.text, "hello world");
        assert_eq!(n.original_span(6, 11), Some((6, 11)));
    }

    #[test]
    fn folds_width_case_space_and_invisibles() {
        assert_eq!(
            view("ＩＧＮＯＲＥ  all\u{200B}previous"),
            "ignore allprevious"
        );
        assert_eq!(view("Ignore\t\n all"), "ignore all");
        assert_eq!(view("ÉCOLE"), "école");
        assert_eq!(view("ﬁle"), "file");
    }

    #[test]
    fn maps_back_to_original_char_boundaries() {
        let original = "Say: ＩＧＮＯＲＥ\u{200B} me";
        let n = Normalized::new(original);
        let at = n.text.find("ignore").unwrap_or(usize::MAX);
        let (s, e) = n.original_span(at, at + 6).unwrap_or((0, 0));
        assert_eq!(&original[s..e], "ＩＧＮＯＲＥ");
    }

    #[test]
    fn whitespace_run_maps_to_whole_run() {
        let original = "a \t\n b";
        let n = Normalized::new(original);
        assert_eq!(n.text, "a b");
        assert_eq!(n.original_span(0, 3), Some((0, original.len())));
    }
}
