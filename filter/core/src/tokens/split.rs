//! The pre-tokenizer: the text cut into the pieces BPE merges within, as
//! tiktoken's regular expressions cut it, by a hand-written scanner (five
//! times faster than a regex engine here: the pieces are short, and a
//! search per piece costs more than the piece).
//!
//! cl100k_base: `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|
//! ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
//!
//! o200k_base: `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//! [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//! \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
//!
//! Each alternative is tried in order where the previous piece ended, with
//! the match a backtracking engine would pick (the possessive quantifiers
//! change nothing: nothing after them can fail). Under `(?i)` the only
//! non-ASCII letter that folds into these contractions is `ſ` (to s).
//! `tests::scanner_matches_the_regex_patterns` checks the cuts against the
//! patterns run by `regex-automata` on random text, `tests::random_text_*`
//! the tokens against tiktoken-rs.

use super::class::{Classes, LETTER, LOWER, NUM, SPACE, UPPER};
use super::Encoding;

#[derive(Debug)]
pub(super) struct Splitter {
    encoding: Encoding,
    classes: &'static Classes,
}

impl Splitter {
    pub(super) fn new(encoding: Encoding) -> Result<Splitter, String> {
        let classes = Classes::get().ok_or("the character classes did not build")?;
        Ok(Splitter { encoding, classes })
    }

    /// The pieces of `text`, in order, covering it.
    pub(super) fn pieces<'a>(&'a self, text: &'a str) -> Pieces<'a> {
        Pieces {
            scan: Scan {
                s: text,
                b: text.as_bytes(),
                cls: self.classes,
            },
            o200k: self.encoding == Encoding::O200kBase,
            at: 0,
        }
    }

    /// The last position after `from` (bytes) in `text` that starts a piece
    /// whatever text follows, and where `text` may be cut with the pieces
    /// before unchanged: a space after a non-space (no piece holds a space
    /// but as its first character, or in a run of whitespace), or the
    /// character after a newline that is not whitespace nor `/` (a piece may
    /// hold a newline only with other whitespace, or at the end of
    /// punctuation, where o200k also takes `/`).
    /// `tests::counter_*` check that cutting there changes no count.
    pub(super) fn last_boundary(&self, text: &str, from: usize) -> Option<usize> {
        let bytes = text.as_bytes();
        let mut p = bytes.len().checked_sub(1)?;
        let low = from.max(1);
        let space = |c: char| self.classes.of(c) & SPACE != 0;
        while p >= low {
            let at = bytes.get(p).copied()?;
            let before = bytes.get(p - 1).copied()?;
            if at == b' ' {
                let prev = text.get(..p).and_then(|s| s.chars().next_back());
                if prev.is_some_and(|c| !space(c)) {
                    return Some(p);
                }
            } else if before == b'\n' {
                let next = text.get(p..).and_then(|s| s.chars().next());
                if next.is_some_and(|c| !space(c) && c != '/') {
                    return Some(p);
                }
            }
            p -= 1;
        }
        None
    }
}

pub(super) struct Pieces<'a> {
    scan: Scan<'a>,
    o200k: bool,
    at: usize,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let start = self.at;
        let (_, _, one) = self.scan.ch(start)?;
        let end = if self.o200k {
            self.scan.o200k(start)
        } else {
            self.scan.cl100k(start)
        };
        // Every piece is at least one character, so the scan always moves on.
        let end = if end > start { end } else { one };
        self.at = end;
        self.scan.s.get(start..end)
    }
}

struct Scan<'a> {
    s: &'a str,
    b: &'a [u8],
    cls: &'a Classes,
}

const PUNCT: u8 = SPACE | LETTER | NUM;

impl Scan<'_> {
    /// The character at byte `i`, its class bits, and where the next starts.
    #[inline]
    fn ch(&self, i: usize) -> Option<(char, u8, usize)> {
        let b = *self.b.get(i)?;
        if b < 0x80 {
            return Some((char::from(b), self.cls.of_ascii(b), i + 1));
        }
        let c = self.s.get(i..)?.chars().next()?;
        Some((c, self.cls.of(c), i + c.len_utf8()))
    }

    /// Past the characters from `i` that have a bit of `mask`.
    #[inline]
    fn run(&self, mut i: usize, mask: u8) -> usize {
        while let Some((_, f, j)) = self.ch(i) {
            if f & mask == 0 {
                break;
            }
            i = j;
        }
        i
    }

    /// Past the characters from `i` that have none of `mask`.
    #[inline]
    fn run_without(&self, mut i: usize, mask: u8) -> usize {
        while let Some((_, f, j)) = self.ch(i) {
            if f & mask != 0 {
                break;
            }
            i = j;
        }
        i
    }

    /// Past `[\r\n]*` (with `/` too for o200k).
    fn newlines(&self, mut i: usize, slash: bool) -> usize {
        while let Some(&b) = self.b.get(i) {
            if b == b'\r' || b == b'\n' || (slash && b == b'/') {
                i += 1;
            } else {
                break;
            }
        }
        i
    }

    /// `'(?i:s|t|re|ve|m|ll|d)` at `i`: where it ends.
    fn contraction(&self, i: usize) -> Option<usize> {
        let (q, _, j) = self.ch(i)?;
        if q != '\'' {
            return None;
        }
        let (c, _, k) = self.ch(j)?;
        let second = |want: [char; 2]| match self.ch(k) {
            Some((c2, _, e)) if want.contains(&c2) => Some(e),
            _ => None,
        };
        match c {
            's' | 'S' | 'ſ' | 't' | 'T' | 'm' | 'M' | 'd' | 'D' => Some(k),
            'l' | 'L' => second(['l', 'L']),
            'r' | 'R' | 'v' | 'V' => second(['e', 'E']),
            _ => None,
        }
    }

    /// `\p{N}{1,3}` from the number at `i` (which ends at `j`).
    fn digits(&self, j: usize) -> usize {
        let mut end = j;
        for _ in 0..2 {
            match self.ch(end) {
                Some((_, f, k)) if f & NUM != 0 => end = k,
                _ => break,
            }
        }
        end
    }

    /// ` ?[^\s\p{L}\p{N}]+[\r\n]*` (`[\r\n/]*` for o200k) at the character `c`
    /// (bits `f`, ending at `j`).
    fn punct(&self, c: char, f: u8, j: usize, slash: bool) -> Option<usize> {
        let from = if f & PUNCT == 0 {
            j
        } else if c == ' ' {
            match self.ch(j) {
                Some((_, f2, k)) if f2 & PUNCT == 0 => k,
                _ => return None,
            }
        } else {
            return None;
        };
        Some(self.newlines(self.run_without(from, PUNCT), slash))
    }

    /// The whitespace alternatives at the space `c` at `i` (ending at `j`).
    fn spaces(&self, c: char, i: usize, j: usize, o200k: bool) -> usize {
        let mut newline = (c == '\r' || c == '\n').then_some(j);
        let mut last = i;
        let mut end = j;
        while let Some((c2, f2, k)) = self.ch(end) {
            if f2 & SPACE == 0 {
                break;
            }
            if c2 == '\r' || c2 == '\n' {
                newline = Some(k);
            }
            last = end;
            end = k;
        }
        let at_end = end == self.b.len();
        if o200k {
            // \s*[\r\n]+ then \s+(?!\S) at the end of the text.
            if let Some(n) = newline {
                return n;
            }
            if at_end {
                return end;
            }
        } else {
            // \s++$ then \s*[\r\n].
            if at_end {
                return end;
            }
            if let Some(n) = newline {
                return n;
            }
        }
        // \s+(?!\S): all but the last; else one.
        if last > i {
            last
        } else {
            j
        }
    }

    fn cl100k(&self, i: usize) -> usize {
        let Some((c, f, j)) = self.ch(i) else {
            return i;
        };
        if c == '\'' {
            if let Some(e) = self.contraction(i) {
                return e;
            }
        }
        if f & LETTER != 0 {
            return self.run(j, LETTER);
        }
        if c != '\r' && c != '\n' && f & NUM == 0 {
            if let Some((_, f2, k)) = self.ch(j) {
                if f2 & LETTER != 0 {
                    return self.run(k, LETTER);
                }
            }
        }
        if f & NUM != 0 {
            return self.digits(j);
        }
        if let Some(e) = self.punct(c, f, j, false) {
            return e;
        }
        if f & SPACE != 0 {
            return self.spaces(c, i, j, false);
        }
        j
    }

    /// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+` and the
    /// optional contraction, from `s`: the star gives back characters until
    /// the plus can take one.
    fn words_lower(&self, s: usize) -> Option<usize> {
        let mut p = s;
        let mut last_lower = None;
        while let Some((_, f, k)) = self.ch(p) {
            if f & UPPER == 0 {
                break;
            }
            if f & LOWER != 0 {
                last_lower = Some(p);
            }
            p = k;
        }
        let from = match self.ch(p) {
            Some((_, f, _)) if f & LOWER != 0 => p,
            _ => last_lower?,
        };
        let e = self.run(from, LOWER);
        Some(self.contraction(e).unwrap_or(e))
    }

    /// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*` and the
    /// optional contraction, from `s`.
    fn words_upper(&self, s: usize) -> Option<usize> {
        let (_, f, k) = self.ch(s)?;
        if f & UPPER == 0 {
            return None;
        }
        let e = self.run(self.run(k, UPPER), LOWER);
        Some(self.contraction(e).unwrap_or(e))
    }

    fn o200k(&self, i: usize) -> usize {
        let Some((c, f, j)) = self.ch(i) else {
            return i;
        };
        // `[^\r\n\p{L}\p{N}]?` takes the character if it can, else nothing.
        let prefix = c != '\r' && c != '\n' && f & (LETTER | NUM) == 0;
        let words = |w: fn(&Self, usize) -> Option<usize>| {
            prefix.then(|| w(self, j)).flatten().or_else(|| w(self, i))
        };
        if let Some(e) = words(Self::words_lower) {
            return e;
        }
        if let Some(e) = words(Self::words_upper) {
            return e;
        }
        if f & NUM != 0 {
            return self.digits(j);
        }
        if let Some(e) = self.punct(c, f, j, true) {
            return e;
        }
        if f & SPACE != 0 {
            return self.spaces(c, i, j, true);
        }
        j
    }
}
