//! Unicode normalisation with a map back to the original bytes.
//!
//! The normalised view is: NFKC per character, lower-cased, look-alike letters
//! folded to Latin ([`fold_confusable`]), with zero-width and
//! bidi control characters removed and every run of white space folded to one
//! ASCII space. A match in the view maps back to a span of the original text
//! on character boundaries.
//!
//! The way back is a list of checkpoints `(view offset, original offset)`,
//! one wherever the distance between the two changes (a folded white-space run,
//! a removed character, a character whose normal form has another length).
//! Between checkpoints offsets move together, so ordinary text needs almost
//! none and normalising costs about one byte write per byte.

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// A normalised view of a text and the way back to it.
#[derive(Debug, Default)]
pub struct Normalized {
    /// The normalised text.
    pub text: String,
    /// `(view offset, original offset)` wherever their distance changes;
    /// empty means the offsets are equal throughout.
    marks: Vec<(u32, u32)>,
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

/// Builds a view and its checkpoints.
struct Builder {
    out: String,
    marks: Vec<(u32, u32)>,
    /// original offset minus view offset since the last checkpoint
    delta: i64,
    last_was_space: bool,
}

impl Builder {
    fn new(capacity: usize) -> Self {
        Builder {
            out: String::with_capacity(capacity),
            marks: Vec::new(),
            delta: 0,
            last_was_space: false,
        }
    }

    /// Note that the next output byte comes from original offset `orig`.
    fn at(&mut self, orig: usize) {
        let view = self.out.len();
        if orig as i64 - view as i64 != self.delta {
            self.delta = orig as i64 - view as i64;
            self.marks.push((view as u32, orig as u32));
        }
    }

    /// Append `c` (from the original character at `orig`) lower-cased, folding white-space runs.
    fn push(&mut self, c: char, orig: usize) {
        if c.is_whitespace() {
            if !self.last_was_space {
                self.last_was_space = true;
                self.at(orig);
                self.out.push(' ');
            }
            return;
        }
        self.last_was_space = false;
        if c.is_ascii() {
            self.at(orig);
            self.out.push(c.to_ascii_lowercase());
            return;
        }
        for l in c.to_lowercase() {
            self.at(orig);
            self.out.push(fold_confusable(l));
        }
    }

    fn finish(self) -> Normalized {
        Normalized {
            text: self.out,
            marks: self.marks,
        }
    }
}

impl Normalized {
    /// Build the normalised view of `text`.
    pub fn new(text: &str) -> Normalized {
        if let Some(lower) = ascii_simple_lower(text) {
            return Normalized {
                text: lower,
                marks: Vec::new(),
            };
        }
        if text.is_ascii() {
            return Normalized::from_ascii(text);
        }
        // NFKC is the identity on text that passes the quick check (most text):
        // then only case, invisibles and white space need work.
        let needs_nfkc = !matches!(is_nfkc_quick(text.chars()), IsNormalized::Yes);
        let mut b = Builder::new(text.len());
        for (start, c) in text.char_indices() {
            if c.is_ascii() || !(needs_nfkc || is_invisible(c)) {
                b.push(c, start);
            } else if is_invisible(c) {
                continue;
            } else {
                for n in std::iter::once(c).nfkc() {
                    b.push(n, start);
                }
            }
        }
        b.finish()
    }

    /// ASCII: a byte loop (NFKC is the identity on ASCII); checkpoints only
    /// where a white-space run longer than one byte is folded.
    fn from_ascii(text: &str) -> Normalized {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut marks: Vec<(u32, u32)> = Vec::new();
        let mut delta = 0usize;
        let mut in_space = false;
        for (i, &c) in bytes.iter().enumerate() {
            let space = is_ascii_space(c);
            if space && in_space {
                continue;
            }
            in_space = space;
            // i >= out.len() always: the view never grows faster than the original.
            if i - out.len() != delta {
                delta = i - out.len();
                marks.push((out.len() as u32, i as u32));
            }
            out.push(if space { b' ' } else { c.to_ascii_lowercase() });
        }
        Normalized {
            // Only ASCII bytes were written, so this cannot fail.
            text: String::from_utf8(out).unwrap_or_default(),
            marks,
        }
    }

    /// The original offset of view offset `view` (may fall inside an original
    /// character when the view expanded it; callers snap to boundaries).
    pub(crate) fn map(&self, view: usize) -> usize {
        map_marks(&self.marks, view)
    }

    /// Map the view span `start..end` back to a span of `original` (the text
    /// this view was built from), widened to whole original characters.
    pub fn original_span(
        &self,
        original: &str,
        start: usize,
        end: usize,
    ) -> Option<(usize, usize)> {
        if start >= end || end > self.text.len() {
            return None;
        }
        // Inside a character NFKC expanded (`½` -> `1⁄2`) the checkpoints can
        // map a later view offset to an earlier original one: never start past `last`.
        let last = floor_boundary(original, self.map(end - 1));
        let s = floor_boundary(original, self.map(start)).min(last);
        let e = last + original.get(last..)?.chars().next()?.len_utf8();
        Some((s, e))
    }
}

/// Follow checkpoints `(from offset, to offset)`: offsets move together
/// between checkpoints; before the first one they are equal.
pub(crate) fn map_marks(marks: &[(u32, u32)], pos: usize) -> usize {
    let i = marks.partition_point(|m| m.0 as usize <= pos);
    match i.checked_sub(1).and_then(|i| marks.get(i)) {
        Some(&(v, o)) => o as usize + (pos - v as usize),
        None => pos,
    }
}

pub(crate) fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Fold a lower-case letter that looks like a Latin letter (Cyrillic, Greek,
/// IPA and Latin-extended lookalikes used to dodge filters) to that letter.
/// Mathematical and full-width forms are already folded by NFKC.
pub fn fold_confusable(c: char) -> char {
    match c {
        'а' | 'α' | 'ɑ' | 'ạ' => 'a',
        'в' | 'ʙ' | 'β' => 'b',
        'с' | 'ϲ' | 'ċ' => 'c',
        'ԁ' | 'ɗ' => 'd',
        'е' | 'ё' | 'ε' | 'ҽ' | 'ẹ' => 'e',
        'ɡ' | 'ց' => 'g',
        'һ' | 'ʜ' => 'h',
        'і' | 'ї' | 'ι' | 'ı' | 'ɪ' | 'ị' => 'i',
        'ј' | 'ϳ' => 'j',
        'κ' | 'к' | 'ĸ' => 'k',
        'ӏ' | 'ⅼ' => 'l',
        'м' => 'm',
        'п' | 'η' | 'ո' => 'n',
        'о' | 'ο' | 'σ' | 'օ' | 'ọ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' | 'ʂ' => 's',
        'т' | 'τ' => 't',
        'υ' | 'ս' | 'ц' => 'u',
        'ν' | 'ѵ' => 'v',
        'ԝ' | 'ѡ' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' | 'ү' => 'y',
        'ᴢ' | 'ʐ' => 'z',
        other => other,
    }
}

/// ASCII white space as `char::is_whitespace` sees it (including vertical tab).
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// The common case in one pass, 8 bytes at a time: `Some(lower-cased copy)`
/// when the text is ASCII without control bytes and without two spaces in a
/// row, so offsets do not move; `None` sends it down the general path.
fn ascii_simple_lower(text: &str) -> Option<String> {
    const HI: u64 = 0x8080_8080_8080_8080;
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const SPACES: u64 = 0x2020_2020_2020_2020;
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut prev_space = false;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let w = u64::from_le_bytes(a);
        // Non-ASCII, or a byte below 0x20 (tab, CR, LF and other controls).
        if w & HI != 0 || (w.wrapping_sub(SPACES) & !w & HI) != 0 {
            return None;
        }
        // High bit set exactly in the bytes that are spaces; then two in a row.
        let x = w ^ SPACES;
        let sp = !(((x & LO7).wrapping_add(LO7)) | x | LO7);
        if sp & (sp >> 8) != 0 || (prev_space && sp & 0x80 != 0) {
            return None;
        }
        prev_space = sp >> 63 != 0;
        // 'A'..='Z' to lower case: bytes are < 0x80, so no carry between bytes.
        let ge_a = w.wrapping_add(0x3f3f_3f3f_3f3f_3f3f);
        let gt_z = w.wrapping_add(0x2525_2525_2525_2525);
        let upper = ge_a & !gt_z & HI;
        out.extend_from_slice(&(w | (upper >> 2)).to_le_bytes());
    }
    for &b in chunks.remainder() {
        if !b.is_ascii() || b < 0x20 {
            return None;
        }
        let space = b == b' ';
        if space && prev_space {
            return None;
        }
        prev_space = space;
        out.push(b.to_ascii_lowercase());
    }
    String::from_utf8(out).ok()
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
        assert_eq!(n.original_span("Hello World", 6, 11), Some((6, 11)));
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
        let (s, e) = n.original_span(original, at, at + 6).unwrap_or((0, 0));
        assert_eq!(&original[s..e], "ＩＧＮＯＲＥ");
    }

    #[test]
    fn whitespace_run_maps_to_whole_run() {
        let original = "a \t\n b";
        let n = Normalized::new(original);
        assert_eq!(n.text, "a b");
        assert_eq!(n.original_span(original, 0, 3), Some((0, original.len())));
    }
}

#[cfg(test)]
mod span_tests {
    use super::*;

    /// Every occurrence of `needle` in the view maps back to `expected` in the original.
    fn back(original: &str, needle: &str) -> Vec<String> {
        let n = Normalized::new(original);
        n.text
            .match_indices(needle)
            .filter_map(|(at, m)| n.original_span(original, at, at + m.len()))
            .map(|(s, e)| original[s..e].to_string())
            .collect()
    }

    #[test]
    fn ascii_runs_and_offsets_after_them() {
        let t = "A  \t\n B\ncd   Ef";
        assert_eq!(Normalized::new(t).text, "a b\ncd ef".replace('\n', " "));
        assert_eq!(back(t, "b cd"), vec!["B\ncd"]);
        assert_eq!(back(t, "ef"), vec!["Ef"]);
        assert_eq!(back(t, "a b"), vec!["A  \t\n B"]);
    }

    #[test]
    fn expansions_and_removals_snap_to_whole_characters() {
        // U+FB01 (fi ligature) expands to two letters; a match inside it covers the ligature.
        assert_eq!(back("a \u{FB01}le", "ile"), vec!["\u{FB01}le"]);
        assert_eq!(back("x\u{200B}yz", "xyz"), vec!["x\u{200B}yz"]);
        assert_eq!(back("Straße  ÉTÉ", "été"), vec!["ÉTÉ"]);
        // Full-width letters are 3 bytes each in the original, 1 in the view.
        assert_eq!(back("ＡＢＣ abc", "abc"), vec!["ＡＢＣ", "abc"]);
    }

    #[test]
    fn spans_are_always_on_boundaries() {
        let texts = [
            "ﬁﬁﬁ x",
            "é\u{200D}é  ü",
            "ＡＢ\n\nＣ",
            "plain text",
            "  lead",
        ];
        for t in texts {
            let n = Normalized::new(t);
            for s in 0..n.text.len() {
                for e in s + 1..=n.text.len() {
                    if let Some((a, b)) = n.original_span(t, s, e) {
                        assert!(t.get(a..b).is_some(), "{t:?} {s}..{e} -> {a}..{b}");
                        assert!(a < b);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod swar_tests {
    use super::*;

    #[test]
    fn fast_path_agrees_with_the_byte_loop() {
        // Deterministic pseudo-random ASCII over an alphabet rich in edge bytes.
        let alphabet = b"aZz@[`{ AMmq09\t\n\r\x0b\x7f  .,-";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200 {
            for _ in 0..20 {
                let s: String = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        alphabet[(state % alphabet.len() as u64) as usize] as char
                    })
                    .collect();
                let general = Normalized::from_ascii(&s);
                if let Some(fast) = ascii_simple_lower(&s) {
                    assert_eq!(fast, general.text, "{s:?}");
                    assert!(general.marks.is_empty(), "{s:?}");
                } else {
                    assert!(
                        s.bytes().any(|b| b < 0x20) || s.contains("  "),
                        "fast path refused simple text {s:?}"
                    );
                }
            }
        }
    }
}
