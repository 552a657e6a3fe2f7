//! Properties over thousands of generated request bodies (issue #10, point 2):
//! seeded and deterministic (see `gen/mod.rs`), every API shape the core
//! parses, with astral, combining and right-to-left text, `\uXXXX` escapes
//! (surrogate pairs too), huge and odd numbers, nesting, duplicate keys (refused:
//! 400) and odd white space.
//!
//! (a) a body the policy allows is forwarded byte for byte;
//! (b) redaction changes no byte outside the strings that held findings;
//! (c) pseudonymise, then restore, gives the original text back.

// Test code: a broken fixture should fail loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod gen;

use gen::{Api, Body, Rng, Shape, Token};
use serde_json::Value;
use std::rc::Rc;
use tollgate_core::api::splice::locate_string;
use tollgate_core::api::{self as core_api, ApiKind, Direction};
use tollgate_core::host::{FakeHost, Host};
use tollgate_core::scan::{restore_body, scan_body};
use tollgate_core::stream::{Next, RequestFlow, ACTION_HEADER};
use tollgate_core::Policy;

/// Bodies per property.
const CASES: usize = 5_000;

fn policy(json: &str) -> Rc<Policy> {
    Rc::new(Policy::from_json(json.as_bytes()).expect("policy compiles"))
}

fn kind(api: Api) -> ApiKind {
    ApiKind::for_path(api.path())
}

fn host(path: &str, body: &[u8]) -> FakeHost {
    let len = body.len().to_string();
    let mut h = FakeHost::new(&[
        (":path", path),
        (":method", "POST"),
        ("content-type", "application/json"),
        ("content-length", &len),
        ("x-request-id", "prop"),
    ]);
    h.request_body = body.to_vec();
    h
}

/// Run a request through the flow as the plugin does (headers, then the
/// whole body); `h.request_body` is then what the upstream receives.
fn run(p: &Rc<Policy>, body: &Body) -> (FakeHost, Next) {
    let mut h = host(body.api.path(), &body.bytes);
    let mut flow = RequestFlow::new(p.clone());
    let a = flow.on_request_headers(&mut h, false);
    assert_eq!(a, Next::Pause, "the request waits for its body");
    assert!(h.replies.is_empty());
    let next = flow.on_request_body(&mut h, body.bytes.len(), true);
    (h, next)
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn allowed_bodies_are_forwarded_byte_for_byte() {
    let p = policy(tollgate_core::config::DEFAULT_POLICY_JSON);
    let mut rng = Rng::new(1001);
    let (mut forwarded, mut refused, mut duplicates) = (0, 0, 0);
    for i in 0..CASES {
        let api = Api::ALL[i % Api::ALL.len()];
        let shape = Shape {
            depth: None,
            huge_floats: true,
            duplicate_keys: true,
        };
        let body = gen::body(&mut rng, api, shape, &mut gen::text);
        // Every generated body (but those with 1e400) is valid JSON.
        let parses = serde_json::from_slice::<Value>(&body.bytes).is_ok();
        assert_eq!(parses, !body.huge_float, "case {i}: {}", show(&body.bytes));
        let (h, next) = run(&p, &body);
        if body.huge_float || body.duplicate_key {
            // serde_json refuses floats past f64, and the filter refuses a
            // member name twice in one object: 400, never forwarded.
            assert_eq!(
                next,
                Next::Pause,
                "case {i} ({:?}): {}",
                body.api,
                show(&body.bytes)
            );
            assert_eq!(h.replies.len(), 1, "case {i}");
            assert_eq!(h.replies[0].status, 400, "case {i}");
            refused += 1;
            duplicates += usize::from(body.duplicate_key);
            continue;
        }
        assert!(
            h.replies.is_empty(),
            "case {i}: benign body refused ({}): {}",
            h.replies[0].status,
            show(&body.bytes)
        );
        assert_eq!(next, Next::Continue, "case {i}");
        assert_ne!(
            h.request_header(ACTION_HEADER).as_deref(),
            Some("redact"),
            "case {i}: benign body rewritten: {}",
            show(&body.bytes)
        );
        assert_eq!(h.request_body, body.bytes, "case {i}: bytes changed");
        assert_eq!(
            h.request_header("content-length"),
            Some(body.bytes.len().to_string()),
            "case {i}"
        );
        forwarded += 1;
    }
    // Not vacuous: nearly every body went through.
    assert_eq!(forwarded + refused, CASES);
    assert!(forwarded > CASES * 6 / 10, "{forwarded} forwarded");
    assert!(refused > duplicates, "some bodies carried 1e400");
    assert!(duplicates > 0, "some bodies had a duplicate member name");
}

/// A text with PII inserted between benign words; the values go to `pii`.
fn text_with_pii(rng: &mut Rng, pii: &mut Vec<String>) -> String {
    let mut t = gen::text(rng);
    for _ in 0..1 + rng.below(3) {
        let v = match rng.below(3) {
            0 => gen::email(rng),
            1 => gen::luhn_card(rng),
            _ => gen::aws_key(rng),
        };
        t.push(' ');
        t.push_str(&v);
        t.push(' ');
        t.push_str(&gen::text(rng));
        pii.push(v);
    }
    t
}

const MASKING: &str = r#"{"schemaVersion":1,"unknownJson":"scanStrings","detectors":[
    {"type":"pii","id":"pii","ner":false,
     "types":{"EMAIL":"mask","CREDIT_CARD":"partialMask","AWS_ACCESS_KEY":"mask"}}]}"#;

/// Decode a JSON string literal.
fn decode(lit: &[u8]) -> String {
    serde_json::from_slice::<String>(lit).expect("a string literal")
}

#[test]
fn redaction_changes_only_the_strings_with_findings() {
    let p = policy(MASKING);
    let mut rng = Rng::new(1002);
    let mut rewritten_strings = 0;
    for i in 0..CASES {
        let api = Api::ALL[i % Api::ALL.len()];
        let mut pii = Vec::new();
        let body = gen::body(&mut rng, api, Shape::default(), &mut |r: &mut Rng| {
            text_with_pii(r, &mut pii)
        });
        let ctx = || show(&body.bytes);
        let (h, next) = run(&p, &body);
        assert!(h.replies.is_empty(), "case {i}: refused: {}", ctx());
        assert_eq!(next, Next::Continue, "case {i}");
        let out = &h.request_body;
        assert_eq!(
            h.request_header("content-length"),
            Some(out.len().to_string()),
            "case {i}"
        );
        // Valid JSON, and no inserted value reaches the upstream.
        let parsed: Value = serde_json::from_slice(out)
            .unwrap_or_else(|e| panic!("case {i}: not JSON ({e}): {}", show(out)));
        let _ = parsed;
        // Which literals held findings (the scan the flow ran, on the original bytes).
        let scan = scan_body(&p, kind(api), Direction::Request, &body.bytes).unwrap();
        let mut held: Vec<(usize, usize)> = Vec::new(); // (literal start, segment)
        for f in &scan.findings {
            let seg = &scan.segments[f.segment];
            let r = locate_string(&body.bytes, &seg.path).expect("a segment's literal");
            if !held.iter().any(|(s, _)| *s == r.start) {
                held.push((r.start, f.segment));
            }
        }
        let (a, b) = (gen::tokens(&body.bytes), gen::tokens(out));
        assert_eq!(a.len(), b.len(), "case {i}: structure changed");
        let mut offset = 0;
        for (x, y) in a.iter().zip(&b) {
            match (x, y) {
                (Token::Other(x), Token::Other(y)) => {
                    assert_eq!(x, y, "case {i}: bytes outside strings changed at {offset}");
                    offset += x.len();
                }
                (Token::Str(x), Token::Str(y)) => {
                    if x != y {
                        rewritten_strings += 1;
                        let seg = held
                            .iter()
                            .find(|(s, _)| *s == offset)
                            .map(|(_, seg)| *seg)
                            .unwrap_or_else(|| {
                                panic!("case {i}: a string without findings changed at {offset}")
                            });
                        check_outside_findings(&scan, seg, &decode(x), &decode(y), i);
                    }
                    offset += x.len();
                }
                _ => panic!("case {i}: token kinds differ at {offset}"),
            }
        }
        for v in &pii {
            for t in &b {
                if let Token::Str(s) = t {
                    assert!(
                        !decode(s).contains(v.as_str()),
                        "case {i}: {v} reached the upstream: {}",
                        show(out)
                    );
                }
            }
        }
    }
    assert!(rewritten_strings >= CASES, "{rewritten_strings}");
}

/// Within one rewritten string, the text before, between and after the
/// findings is unchanged and in order.
fn check_outside_findings(
    scan: &tollgate_core::scan::BodyScan,
    seg: usize,
    old: &str,
    new: &str,
    case: usize,
) {
    let mut spans: Vec<(usize, usize)> = scan
        .findings
        .iter()
        .filter(|f| f.segment == seg)
        .map(|f| (f.finding.start, f.finding.end))
        .collect();
    spans.sort_unstable();
    // Merge overlaps (redaction merges them too).
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s < last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    assert_eq!(scan.segments[seg].text, old, "case {case}");
    let mut pos_old = 0;
    let mut pos_new = 0;
    for (s, e) in &merged {
        let keep = &old[pos_old..*s];
        let at = new[pos_new..]
            .find(keep)
            .unwrap_or_else(|| panic!("case {case}: {keep:?} lost from {old:?} -> {new:?}"));
        if pos_old == 0 {
            assert_eq!(at, 0, "case {case}: prefix changed: {old:?} -> {new:?}");
        }
        pos_new += at + keep.len();
        pos_old = *e;
    }
    assert!(
        new[pos_new..].ends_with(&old[pos_old..]),
        "case {case}: suffix changed: {old:?} -> {new:?}"
    );
}

const PSEUDONYMS: &str = r#"{"schemaVersion":1,"unknownJson":"scanStrings","detectors":[
    {"type":"pii","id":"pii","ner":false,"types":{"EMAIL":"pseudonymize","CREDIT_CARD":"pseudonymize"}}]}"#;

#[test]
fn pseudonymise_then_restore_round_trips() {
    let p = policy(PSEUDONYMS);
    let mut rng = Rng::new(1003);
    let mut restored = 0;
    for i in 0..CASES {
        let api = Api::ALL[i % Api::ALL.len()];
        let mut pii = Vec::new();
        let body = gen::body(&mut rng, api, Shape::default(), &mut |r: &mut Rng| {
            let mut t = gen::text(r);
            for _ in 0..1 + r.below(3) {
                // Repeat a value now and then: it keeps its placeholder.
                let v = match (pii.last().cloned(), r.below(4)) {
                    (Some(last), 0) => last,
                    (_, 1) => gen::luhn_card(r),
                    _ => gen::email(r),
                };
                t.push_str(&format!(" {v} "));
                t.push_str(&gen::text(r));
                pii.push(v);
            }
            t
        });
        let scan = scan_body(&p, kind(api), Direction::Request, &body.bytes).unwrap();
        let out = scan
            .rewritten
            .as_deref()
            .unwrap_or_else(|| panic!("case {i}: nothing pseudonymised: {}", show(&body.bytes)));
        assert!(!scan.pseudonyms.is_empty(), "case {i}");
        let value: Value = serde_json::from_slice(out).unwrap();
        let after = core_api::extract(kind(api), Direction::Request, &value, true);
        assert_eq!(after.len(), scan.segments.len(), "case {i}");
        for (old, new) in scan.segments.iter().zip(&after) {
            for v in &pii {
                assert!(
                    !new.text.contains(v.as_str()),
                    "case {i}: {v} left in clear"
                );
            }
            if old.text == new.text {
                assert_eq!(scan.pseudonyms.restore(&new.text), None, "case {i}");
                continue;
            }
            // Straight from the map...
            assert_eq!(
                scan.pseudonyms.restore(&new.text).as_deref(),
                Some(old.text.as_str()),
                "case {i}"
            );
            // ...and through a response that echoes the text.
            let response = serde_json::json!({"id":"r","object":"chat.completion",
                "choices":[{"index":0,"message":{"role":"assistant","content":new.text},"finish_reason":"stop"}]});
            let bytes = serde_json::to_vec(&response).unwrap();
            let back = restore_body(&p, ApiKind::OpenaiChat, &bytes, &scan.pseudonyms)
                .unwrap_or_else(|| panic!("case {i}: nothing restored"));
            let back: Value = serde_json::from_slice(&back).unwrap();
            assert_eq!(
                back["choices"][0]["message"]["content"].as_str(),
                Some(old.text.as_str()),
                "case {i}"
            );
            restored += 1;
        }
    }
    assert!(restored >= CASES, "{restored}");
}

/// What the redaction property found: a card after another number was
/// never tried (the sequence read from the first number fails Luhn).
#[test]
fn a_card_after_another_number_is_masked() {
    let p = policy(MASKING);
    for (t, card) in [
        ("qty 2 4111 1111 1111 1111 please", "4111 1111 1111 1111"),
        ("ref 42 5504338810179832 ok", "5504338810179832"),
        ("3 377837627823099", "377837627823099"),
        ("order 7 4111111111111111.", "4111111111111111"),
    ] {
        let f = tollgate_core::scan::scan_text(&p, t, tollgate_core::detect::Channel::User);
        let spans: Vec<&str> = f.iter().map(|f| &t[f.start..f.end]).collect();
        assert_eq!(spans, [card], "{t}");
    }
    // A phone number's tail is still no number of its own.
    let p = policy(
        r#"{"schemaVersion":1,"detectors":[{"type":"pii","id":"pii","ner":false,"types":{"PHONE":"mask","CREDIT_CARD":"mask"}}]}"#,
    );
    let t = "call +44 20 7946 0958 now";
    let f = tollgate_core::scan::scan_text(&p, t, tollgate_core::detect::Channel::User);
    let spans: Vec<&str> = f.iter().map(|f| &t[f.start..f.end]).collect();
    assert_eq!(spans, ["+44 20 7946 0958"]);
}
