//! Byte-exact rewriting of a JSON body: find the string literal a [`JsonPath`]
//! leads to in the raw bytes, and splice new literals in. Everything outside
//! the changed strings (white space, key order, number spelling, escapes in
//! other strings) reaches the upstream byte for byte, which re-serialising a
//! parsed value would not guarantee.
//!
//! The body has already been parsed by `serde_json` (so it is valid JSON and at
//! most [`super::MAX_DEPTH`] deep). Where a key appears twice in an object the
//! last one is located, as `serde_json` keeps the last value.

use super::{JsonPath, PathStep};
use std::ops::Range;

/// The byte range (quotes included) of the string literal at `path`, or `None`
/// when the path does not lead to a string.
pub fn locate_string(body: &[u8], path: &[PathStep]) -> Option<Range<usize>> {
    let mut pos = skip_ws(body, 0);
    for step in path {
        pos = match step {
            PathStep::Key(key) => find_member(body, pos, key)?,
            PathStep::Index(index) => find_element(body, pos, *index)?,
        };
    }
    if body.get(pos) != Some(&b'"') {
        return None;
    }
    let end = skip_string(body, pos)?;
    Some(pos..end)
}

/// One replacement: the string at `path` becomes `text`.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub path: JsonPath,
    pub text: String,
}

/// Apply `edits` to `body`: each string literal is replaced by `text` encoded
/// as a JSON string. `None` when a path does not lead to a string or two
/// edits touch the same string (the caller then keeps the original).
pub fn splice(body: &[u8], edits: &[Edit]) -> Option<Vec<u8>> {
    let mut located: Vec<(Range<usize>, String)> = Vec::with_capacity(edits.len());
    for e in edits {
        let range = locate_string(body, &e.path)?;
        let literal = serde_json::to_string(&e.text).ok()?;
        located.push((range, literal));
    }
    located.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut pos = 0;
    for (range, literal) in located {
        if range.start < pos {
            return None;
        }
        out.extend_from_slice(body.get(pos..range.start)?);
        out.extend_from_slice(literal.as_bytes());
        pos = range.end;
    }
    out.extend_from_slice(body.get(pos..)?);
    Some(out)
}

fn skip_ws(body: &[u8], mut pos: usize) -> usize {
    while matches!(body.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// `pos` is at an opening quote; returns the position after the closing one.
fn skip_string(body: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos + 1;
    loop {
        match body.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Position after the value starting at `pos`.
fn skip_value(body: &[u8], pos: usize) -> Option<usize> {
    match body.get(pos)? {
        b'"' => skip_string(body, pos),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = pos;
            loop {
                match body.get(i)? {
                    b'"' => {
                        i = skip_string(body, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = pos;
            while let Some(b) = body.get(i) {
                if matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                i += 1;
            }
            Some(i)
        }
    }
}

/// `pos` is at `{`: the start of the value of the last member named `key`.
fn find_member(body: &[u8], pos: usize, key: &str) -> Option<usize> {
    if body.get(pos) != Some(&b'{') {
        return None;
    }
    let mut found = None;
    let mut i = skip_ws(body, pos + 1);
    if body.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        let key_end = skip_string(body, i)?;
        let raw = body.get(i..key_end)?;
        let matches = match std::str::from_utf8(raw.get(1..raw.len().saturating_sub(1))?) {
            // Fast path: no escapes in the key.
            Ok(plain) if !plain.contains('\\') => plain == key,
            _ => serde_json::from_slice::<String>(raw).ok().as_deref() == Some(key),
        };
        i = skip_ws(body, key_end);
        if body.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(body, i + 1);
        if matches {
            found = Some(i);
        }
        i = skip_ws(body, skip_value(body, i)?);
        match body.get(i)? {
            b',' => i = skip_ws(body, i + 1),
            b'}' => return found,
            _ => return None,
        }
    }
}

/// `pos` is at `[`: the start of element `index`.
fn find_element(body: &[u8], pos: usize, index: usize) -> Option<usize> {
    if body.get(pos) != Some(&b'[') {
        return None;
    }
    let mut i = skip_ws(body, pos + 1);
    if body.get(i) == Some(&b']') {
        return None;
    }
    let mut n = 0;
    loop {
        if n == index {
            return Some(i);
        }
        i = skip_ws(body, skip_value(body, i)?);
        match body.get(i)? {
            b',' => i = skip_ws(body, i + 1),
            _ => return None,
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> PathStep {
        PathStep::Key(s.into())
    }

    #[test]
    fn locates_nested_strings_exactly() {
        let body = br#" { "model" : "m", "n": -1.50e+2, "messages" : [ {"role":"user","content": "a\"b"} , {"role":"user", "content":"x"}], "t":[1,[2,{"u":"}"}]]}"#;
        let r = locate_string(body, &[k("messages"), PathStep::Index(1), k("content")]);
        assert_eq!(r.map(|r| &body[r]), Some(&b"\"x\""[..]));
        let r = locate_string(body, &[k("messages"), PathStep::Index(0), k("content")]);
        assert_eq!(r.map(|r| &body[r]), Some(&br#""a\"b""#[..]));
        assert_eq!(
            locate_string(body, &[k("model")]).map(|r| &body[r]),
            Some(&b"\"m\""[..])
        );
        // Not strings, or not there.
        assert_eq!(locate_string(body, &[k("n")]), None);
        assert_eq!(
            locate_string(body, &[k("messages"), PathStep::Index(2)]),
            None
        );
        assert_eq!(locate_string(body, &[k("nope")]), None);
        assert_eq!(locate_string(body, &[PathStep::Index(0)]), None);
    }

    #[test]
    fn escaped_keys_and_duplicates_follow_serde() {
        // "c\u006fntent" is "content"; the last duplicate is the one serde keeps.
        let body = br#"{"c\u006fntent":"first","content":"second"}"#;
        let r = locate_string(body, &[k("content")]);
        assert_eq!(r.map(|r| &body[r]), Some(&b"\"second\""[..]));
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        assert_eq!(v["content"], "second");
    }

    #[test]
    fn splice_changes_only_the_strings() {
        let body =
            b"{\n  \"a\": \"one\",\n  \"b\": [1.0, 2e3, \"two\\u00e9\"],\n  \"c\": \"three\"\n}";
        let out = splice(
            body,
            &[
                Edit {
                    path: vec![k("c")],
                    text: "3 \"q\"".into(),
                },
                Edit {
                    path: vec![k("a")],
                    text: "ü".into(),
                },
            ],
        );
        assert_eq!(
            out.as_deref(),
            Some(&b"{\n  \"a\": \"\xc3\xbc\",\n  \"b\": [1.0, 2e3, \"two\\u00e9\"],\n  \"c\": \"3 \\\"q\\\"\"\n}"[..])
        );
        // Two edits of one string, or a path to a number: refused.
        let twice = [
            Edit {
                path: vec![k("a")],
                text: "x".into(),
            },
            Edit {
                path: vec![k("a")],
                text: "y".into(),
            },
        ];
        assert_eq!(splice(body, &twice), None);
        assert_eq!(
            splice(
                body,
                &[Edit {
                    path: vec![k("b"), PathStep::Index(0)],
                    text: "x".into()
                }]
            ),
            None
        );
        assert_eq!(splice(body, &[]).as_deref(), Some(&body[..]));
    }

    #[test]
    fn every_string_of_a_body_round_trips() {
        // Every string leaf located and replaced by itself gives a body that parses to the same value.
        let body = br#"{"a":["x",{"b":"y\n","c":[[["z"]]]}],"d":{"":"e"},"f":"\ud83d\ude00"}"#;
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let paths: Vec<JsonPath> = vec![
            vec![k("a"), PathStep::Index(0)],
            vec![k("a"), PathStep::Index(1), k("b")],
            vec![
                k("a"),
                PathStep::Index(1),
                k("c"),
                PathStep::Index(0),
                PathStep::Index(0),
                PathStep::Index(0),
            ],
            vec![k("d"), k("")],
            vec![k("f")],
        ];
        for p in &paths {
            assert!(locate_string(body, p).is_some(), "{p:?}");
        }
        let edits: Vec<Edit> = paths
            .iter()
            .map(|p| {
                let mut cur = &v;
                for s in p {
                    cur = match s {
                        PathStep::Key(key) => &cur[key.as_str()],
                        PathStep::Index(i) => &cur[*i],
                    };
                }
                Edit {
                    path: p.clone(),
                    text: cur.as_str().unwrap_or_default().to_string(),
                }
            })
            .collect();
        let out = splice(body, &edits).unwrap_or_default();
        let back: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(back, v);
    }
}
