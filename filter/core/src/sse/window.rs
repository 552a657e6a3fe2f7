//! The hold-back window: how much of a streamed text must wait because a
//! pattern may still be completing across the border with the next delta.
//!
//! A fixed window (Higress holds the last N bytes) either delays every
//! token or misses long values. Instead [`hold_from`] holds exactly the
//! tail that could still grow into a match, and releases the rest at once:
//!
//! * the trailing run of non-space characters (a word, an e-mail, an API key,
//!   a URL, a `<PERSON_1>` placeholder still being written);
//! * before it, a group of number-like tokens joined by single spaces
//!   (`+49 30 1234`, `DE89 3704 0044`, `4111 1111 1111`, `AB 12 34 56 C`,
//!   `12 March 1990`): a token with a digit, a short upper-case or
//!   punctuation token, or a month name;
//! * an open PEM block (`-----BEGIN ... KEY-----` without its `END` line);
//! * unfinished markup the output detector reads whole: a markdown link or
//!   image (`![alt text](https://...` without its `)`, a `[label]: url`
//!   definition without its line end) started in the last
//!   [`MARKDOWN_HOLD_BYTES`], an HTML tag without its `>` or a `<script>`,
//!   `<style>`, `<iframe>`, ... without its end tag (up to a blank line);
//! * at least `min_bytes` (the configured `holdBackBytes`).
//!
//! What is held is released as soon as the next delta shows it cannot grow
//! any more, and at the latest when the text ends. Plain prose waits one
//! word: the added time to first token is one delta, not a window.

use crate::detect::normalize::floor_boundary;

/// Where the held tail of `text` starts (a char boundary): everything before
/// it can be decided now. `min_bytes` is held in any case; at most
/// `max_bytes` is held (the oldest part of a longer run is released).
pub fn hold_from(text: &str, min_bytes: usize, max_bytes: usize) -> usize {
    let b = text.as_bytes();
    let len = b.len();
    let token_start = |mut i: usize| {
        while i > 0 && !b.get(i - 1).is_some_and(u8::is_ascii_whitespace) {
            i -= 1;
        }
        i
    };
    // 1. The trailing run of non-space characters.
    let mut p = token_start(len);
    // 2. Number-like tokens before it, each after one or two spaces or tabs
    //    (a line end ends the group). When the text ends in a space, the
    //    tokens before it are walked the same way: the group may go on.
    if p == len || number_like(text.get(p..).unwrap_or_default()) {
        let mut q = p;
        loop {
            let mut gap = q;
            while gap > 0 && q - gap < 2 && matches!(b.get(gap - 1), Some(b' ' | b'\t')) {
                gap -= 1;
            }
            if gap == q || gap == 0 {
                break;
            }
            let start = token_start(gap);
            let token = text.get(start..gap).unwrap_or_default();
            if token.is_empty() || !number_like(token) || len - start > MAX_GROUP_BYTES {
                break;
            }
            q = start;
        }
        p = q;
    }
    // 3. An open PEM block.
    if let Some(begin) = text.rfind("-----BEGIN") {
        let after = text.get(begin + 10..).unwrap_or_default();
        let closed = after
            .find("-----END")
            .and_then(|e| after.get(e + 8..))
            .is_some_and(|rest| rest.contains("-----"));
        if !closed {
            p = p.min(begin);
        }
    }
    // 4. Unfinished markup.
    if let Some(m) = open_markdown(text) {
        p = p.min(m);
    }
    if let Some(m) = open_tag(text, max_bytes) {
        p = p.min(m);
    }
    // 5. The fixed minimum, then the bound.
    p = p.min(len.saturating_sub(min_bytes));
    if len - p > max_bytes {
        p = len - max_bytes;
    }
    floor_boundary(text, p)
}

/// How far back an unfinished markdown link or image is looked for (its
/// text and destination together); a `[` further back is prose.
pub const MARKDOWN_HOLD_BYTES: usize = 512;

/// Whether the byte at `i` is escaped by an odd run of backslashes.
fn escaped(b: &[u8], i: usize) -> bool {
    let mut n = 0;
    while i > n && b.get(i - n - 1) == Some(&b'\\') {
        n += 1;
    }
    n % 2 == 1
}

/// Past the bracket (`[`/`]` or `(`/`)`) opened at `open`, balanced; `None`
/// when the text ends first or a blank line comes.
fn close_of(b: &[u8], open: usize, (o, c): (u8, u8)) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open + 1;
    while let Some(x) = b.get(i) {
        match *x {
            b'\n' if b.get(i + 1) == Some(&b'\n') => return Some(i),
            x if x == c && !escaped(b, i) => {
                if depth == 0 {
                    return Some(i + 1);
                }
                depth -= 1;
            }
            x if x == o && !escaped(b, i) => depth += 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The start of the earliest markdown link, image or reference definition
/// begun in the last [`MARKDOWN_HOLD_BYTES`] that may still be completing.
fn open_markdown(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let from = b.len().saturating_sub(MARKDOWN_HOLD_BYTES);
    let region = b.get(from..)?;
    if !region.contains(&b'[') {
        return None;
    }
    let mut i = from;
    while let Some(off) = b.get(i..).and_then(|r| r.iter().position(|c| *c == b'[')) {
        let open = i + off;
        i = open + 1;
        if escaped(b, open) {
            continue;
        }
        let start = if open > 0 && b.get(open - 1) == Some(&b'!') {
            open - 1
        } else {
            open
        };
        let Some(after) = close_of(b, open, (b'[', b']')) else {
            return Some(start);
        };
        let unfinished = match b.get(after) {
            None => true,
            Some(b'(') => close_of(b, after, (b'(', b')')).is_none(),
            Some(b'[') => close_of(b, after, (b'[', b']')).is_none(),
            Some(b':') => !b.get(after..).is_some_and(|r| r.contains(&b'\n')),
            Some(_) => false,
        };
        if unfinished {
            return Some(start);
        }
    }
    None
}

/// The start of the earliest HTML tag (or script-like element) in the last
/// `max_bytes` without its end, up to a blank line.
fn open_tag(text: &str, max_bytes: usize) -> Option<usize> {
    let b = text.as_bytes();
    let from = b.len().saturating_sub(max_bytes);
    let mut i = from;
    while let Some(off) = b.get(i..).and_then(|r| r.iter().position(|c| *c == b'<')) {
        let lt = i + off;
        match crate::detect::output::markup_end(text, lt) {
            Some(end) => i = end.max(lt + 1),
            None => {
                let blank = text.get(lt..).is_some_and(|r| r.contains("\n\n"));
                if !blank {
                    return Some(lt);
                }
                i = lt + 1;
            }
        }
    }
    None
}

/// The longest group of number-like tokens held (an IBAN with spaces is 42).
const MAX_GROUP_BYTES: usize = 96;

/// A token that may be one group of a number written with spaces, or a date.
fn number_like(token: &str) -> bool {
    if token.bytes().any(|c| c.is_ascii_digit()) {
        return true;
    }
    let t = token.trim_matches(|c: char| matches!(c, ',' | '.' | ':' | ';' | '(' | ')'));
    if t.is_empty() {
        // Pure punctuation such as `+`, `-`, `(`, `/`.
        return token.len() <= 3;
    }
    if (2..=3).contains(&t.len()) && t.bytes().all(|c| c.is_ascii_uppercase()) {
        return true;
    }
    is_month(t)
}

/// Month names and their abbreviations in the languages the DOB patterns read.
fn is_month(word: &str) -> bool {
    const MONTHS: &[&str] = &[
        // en
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec", // de
        "januar",
        "februar",
        "märz",
        "mai",
        "juni",
        "juli",
        "oktober",
        "dezember",
        "jänner",
        // fr
        "janvier",
        "février",
        "mars",
        "avril",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre", // es
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "setiembre",
        "octubre",
        "noviembre",
        "diciembre", // it
        "gennaio",
        "febbraio",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "settembre",
        "ottobre",
        "dicembre", // nl
        "januari",
        "februari",
        "maart",
        "mei",
        "augustus", // pt
        "janeiro",
        "fevereiro",
        "março",
        "maio",
        "junho",
        "julho",
        "setembro",
        "outubro",
        "novembro",
        "dezembro",
        "de",
        "of",
    ];
    if word.len() > 12 {
        return false;
    }
    let lower = word.to_lowercase();
    MONTHS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(text: &str) -> &str {
        &text[hold_from(text, 0, 2048)..]
    }

    #[test]
    fn prose_waits_one_word() {
        assert_eq!(held("Hello, how can I"), "I");
        assert_eq!(held("Hello, how can I "), "");
        assert_eq!(held("The answer is"), "is");
        assert_eq!(held(""), "");
    }

    #[test]
    fn runs_that_may_grow_are_held() {
        assert_eq!(held("mail me at jane.doe@exa"), "jane.doe@exa");
        assert_eq!(held("key sk-ant-api03-abc"), "sk-ant-api03-abc");
        assert_eq!(held("hi <PERSON_"), "<PERSON_");
    }

    #[test]
    fn number_groups_are_held_whole() {
        assert_eq!(held("Call me at +49 30 1234"), "+49 30 1234");
        assert_eq!(held("Call me at +49 30 "), "+49 30 ");
        assert_eq!(held("IBAN DE89 3704 0044"), "DE89 3704 0044");
        assert_eq!(held("my card: 4111 1111 1111"), "4111 1111 1111");
        assert_eq!(held("NIN AB 12 34"), "NIN AB 12 34");
        assert_eq!(held("born on 12 March"), "12 March");
        assert_eq!(held("born on 12 March "), "12 March ");
        // A line end ends a group.
        assert_eq!(held("id 12\n34"), "34");
        // A word after the group releases it.
        assert_eq!(held("Call +49 30 1234 5678 now"), "now");
    }

    #[test]
    fn open_pem_blocks_are_held() {
        let t = "here:\n-----BEGIN PRIVATE KEY-----\nMIIEv\nQIBADAN";
        assert_eq!(held(t), "-----BEGIN PRIVATE KEY-----\nMIIEv\nQIBADAN");
        let closed = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- ok ";
        assert_eq!(held(closed), "");
    }

    #[test]
    fn unfinished_markdown_is_held() {
        assert_eq!(held("ok ![alt text](https://ev"), "![alt text](https://ev");
        assert_eq!(held("ok ![alt te"), "![alt te");
        assert_eq!(held("ok ![alt text]"), "![alt text]");
        assert_eq!(held("ok [a [b] c](x \"ti tle"), "[a [b] c](x \"ti tle");
        assert_eq!(held("ok ![a][re"), "![a][re");
        assert_eq!(
            held("ok\n[r]: https://evil.net/x \"t"),
            "[r]: https://evil.net/x \"t"
        );
        // Finished constructs and prose brackets are released.
        assert_eq!(held("ok ![a](https://x.io/y) done "), "");
        assert_eq!(held("see [1] and [2] then "), "");
        assert_eq!(held("[r]: https://x.io\nnext "), "");
        assert_eq!(held("a [b\n\nnew paragraph "), "");
        // A `[` further back than the bound is prose.
        let long = format!("x [{} ", "word ".repeat(200));
        assert_eq!(held(&long), "");
    }

    #[test]
    fn unfinished_html_is_held() {
        assert_eq!(held("hi <img src=x one"), "<img src=x one");
        assert_eq!(held("hi <img title=\"a>b\" on"), "<img title=\"a>b\" on");
        assert_eq!(held("hi <script>var a = 1; "), "<script>var a = 1; ");
        assert_eq!(held("hi <style>p{} </sty"), "<style>p{} </sty");
        assert_eq!(held("hi <"), "<");
        assert_eq!(held("hi <https://evil.net/"), "<https://evil.net/");
        assert_eq!(held("x <!-- c "), "<!-- c ");
        // Finished tags, prose and generics are released.
        assert_eq!(held("hi <b>bold</b> "), "");
        assert_eq!(held("<script>x</script> ok "), "");
        assert_eq!(held("a < b and Vec<String> ok "), "");
        assert_eq!(held("a<b\n\nnext "), "");
        // Never more than the bound.
        let t = format!("ok <script>{}", "x ".repeat(600));
        assert_eq!(t.len() - hold_from(&t, 0, 2048), t.len() - 3);
        let t = format!("<script>{}", "x ".repeat(3000));
        assert!(t.len() - hold_from(&t, 0, 2048) <= 2048);
        let t = format!("<img {}", "a".repeat(3000));
        assert_eq!(t.len() - hold_from(&t, 0, 2048), 2048);
    }

    #[test]
    fn minimum_and_maximum() {
        assert_eq!(
            &"Hello there "[hold_from("Hello there ", 4, 2048)..],
            "ere "
        );
        let long = "x".repeat(5000);
        assert_eq!(hold_from(&long, 0, 2048), 5000 - 2048);
        // Char boundaries.
        let t = "aé".repeat(10);
        let p = hold_from(&t, 3, 2048);
        assert!(t.is_char_boundary(p));
    }
}
