//! The trace and audit trail of exchanges through the flow.

use super::*;
use crate::config::test_support::policy;
use crate::host::FakeHost;
use crate::telemetry::{AttrValue, SpanData, StatusCode};

const EMAIL: &str = "anna.meier@example.com";
const KEY: &str = "sk-live-0123456789abcdefghij";

fn traced(extra: &str) -> Rc<Policy> {
    policy(&format!(
        r#"{{"schemaVersion":1,
        "detectors":[{{"type":"pii","id":"pii","ner":false,"types":{{"EMAIL":"pseudonymize","AWS_ACCESS_KEY":"block","PHONE":"flag"}}}}],
        "traces":{{"cluster":"otel","content":"redacted"}}{extra}}}"#
    ))
}

fn request(body: &str) -> FakeHost {
    let len = body.len().to_string();
    let mut h = FakeHost::new(&[
        (":path", "/v1/chat/completions"),
        (":method", "POST"),
        ("content-type", "application/json"),
        ("content-length", &len),
        ("x-request-id", "rid-42"),
        ("authorization", &format!("Bearer {KEY}")),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ]);
    h.request_body = body.as_bytes().to_vec();
    h.clock_us = 1_000_000;
    h
}

fn send(flow: &mut RequestFlow, h: &mut FakeHost) -> Next {
    flow.on_request_headers(h, false);
    h.clock_us += 500;
    let size = h.request_body.len();
    flow.on_request_body(h, size, true)
}

fn respond_json(flow: &mut RequestFlow, h: &mut FakeHost, body: &str) {
    h.clock_us += 20_000;
    h.response_headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
        ("content-length".into(), body.len().to_string()),
    ];
    h.response_body = body.as_bytes().to_vec();
    flow.on_response_headers(h, false);
    h.clock_us += 1_000;
    flow.on_response_body(h, body.len(), true);
}

fn str_attr<'a>(s: &'a SpanData, k: &str) -> &'a str {
    match s.attr(k) {
        Some(AttrValue::Str(v)) => v,
        other => panic!("{k}: {other:?}"),
    }
}

fn int_attr(s: &SpanData, k: &str) -> i64 {
    match s.attr(k) {
        Some(AttrValue::Int(v)) => *v,
        other => panic!("{k}: {other:?}"),
    }
}

/// Every string the span holds: attributes, event attributes, name, status.
fn all_text(s: &SpanData) -> String {
    let mut out = format!("{} {}", s.name, s.status_message);
    let mut add = |v: &AttrValue| {
        if let AttrValue::Str(t) = v {
            out.push_str(t);
            out.push('\n');
        }
    };
    s.attrs.iter().for_each(|(_, v)| add(v));
    s.events
        .iter()
        .flat_map(|e| e.attrs.iter())
        .for_each(|(_, v)| add(v));
    out
}

#[test]
fn an_exchange_becomes_one_span_with_its_fields_and_no_raw_value() {
    let p = traced("");
    let body = format!(
        r#"{{"model":"gpt-4o","max_tokens":50,"messages":[{{"role":"user","content":"Mail {EMAIL} or +44 20 7946 0958"}}]}}"#
    );
    let mut h = request(&body);
    let mut flow = RequestFlow::new(p);
    assert_eq!(send(&mut flow, &mut h), Next::Continue);
    let resp = r#"{"id":"x","model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Done, I wrote to <EMAIL_1>."}}],"usage":{"prompt_tokens":30,"completion_tokens":8,"prompt_tokens_details":{"cached_tokens":16}}}"#;
    respond_json(&mut flow, &mut h, resp);
    assert!(h.spans.is_empty(), "the span waits for on_log");
    h.clock_us += 100;
    flow.on_log(&mut h);
    flow.on_log(&mut h);
    assert_eq!(h.spans.len(), 1, "one span per exchange");
    let s = &h.spans[0];
    assert_eq!(
        crate::telemetry::audit::hex(&s.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        s.parent_span_id,
        Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
    );
    assert_eq!(s.name, "chat gpt-4o");
    assert_eq!(s.start_us, 1_000_000);
    assert_eq!(s.end_us, 1_000_000 + 500 + 20_000 + 1_000 + 100);
    assert_eq!(str_attr(s, "gen_ai.operation.name"), "chat");
    assert_eq!(str_attr(s, "gen_ai.provider.name"), "openai");
    assert_eq!(str_attr(s, "gen_ai.request.model"), "gpt-4o");
    assert_eq!(str_attr(s, "gen_ai.response.model"), "gpt-4o-2024-08-06");
    assert_eq!(int_attr(s, "gen_ai.request.max_tokens"), 50);
    assert_eq!(int_attr(s, "gen_ai.usage.input_tokens"), 30);
    assert_eq!(int_attr(s, "gen_ai.usage.output_tokens"), 8);
    assert_eq!(int_attr(s, "gen_ai.usage.cache_read.input_tokens"), 16);
    assert_eq!(int_attr(s, "http.response.status_code"), 200);
    assert_eq!(str_attr(s, "tollgate.request_id"), "rid-42");
    assert_eq!(str_attr(s, "tollgate.endpoint"), "openaiChat");
    assert_eq!(str_attr(s, "tollgate.action"), "redact");
    assert_eq!(int_attr(s, "tollgate.upstream_time_us"), 20_000);
    assert_eq!(int_attr(s, "tollgate.time_to_first_token_us"), 21_000);
    assert_eq!(int_attr(s, "tollgate.pseudonymized.count"), 1);
    assert_eq!(
        str_attr(s, "tollgate.api_key.sha256_prefix"),
        crate::telemetry::key_hash_prefix(KEY)
    );
    assert_eq!(s.attr("tollgate.stream"), Some(&AttrValue::Bool(false)));
    // Each finding is an event with type, rule, span and action.
    let findings: Vec<_> = s
        .events
        .iter()
        .filter(|e| e.name == "tollgate.finding")
        .collect();
    assert_eq!(findings.len(), 2);
    let types: Vec<&AttrValue> = findings
        .iter()
        .filter_map(|e| {
            e.attrs
                .iter()
                .find(|(k, _)| *k == "tollgate.finding.type")
                .map(|(_, v)| v)
        })
        .collect();
    assert_eq!(
        types,
        [&AttrValue::from("EMAIL"), &AttrValue::from("PHONE")]
    );
    let email = findings[0];
    let get = |k: &str| {
        email
            .attrs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("tollgate.finding.start"), Some(AttrValue::Int(5)));
    assert_eq!(get("tollgate.finding.end"), Some(AttrValue::Int(27)));
    assert_eq!(
        get("tollgate.finding.action"),
        Some(AttrValue::from("redact"))
    );
    assert_eq!(
        get("tollgate.finding.location"),
        Some(AttrValue::from("messages[0].content"))
    );
    // The redacted prompt: even the flagged phone number is masked.
    let input = str_attr(s, "gen_ai.input.messages");
    assert!(input.contains("Mail <EMAIL> or <PHONE>"), "{input}");
    let audit = s.events.iter().find(|e| e.name == "tollgate.audit");
    assert!(audit.is_some(), "the redaction is an audit event too");
    // Nothing anywhere holds the raw values or the key.
    let text = all_text(s);
    for raw in [EMAIL, "7946 0958", KEY] {
        assert!(!text.contains(raw), "{raw} leaked: {text}");
    }
    let lines = h.audit_lines.join("\n");
    assert!(lines.contains("\"event\":\"request_redacted\""), "{lines}");
    for raw in [EMAIL, "7946 0958", KEY] {
        assert!(!lines.contains(raw), "{raw} leaked: {lines}");
    }
}

#[test]
fn a_blocked_request_is_an_error_span_and_an_audit_line_naming_the_rule() {
    let p = traced("");
    let body =
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"key AKIAIOSFODNN7EXAMPLF"}]}"#;
    let mut h = request(body);
    let mut flow = RequestFlow::new(p);
    assert_eq!(send(&mut flow, &mut h), Next::Pause);
    assert_eq!(h.replies[0].status, 403);
    flow.on_log(&mut h);
    let s = &h.spans[0];
    assert_eq!(s.status, StatusCode::Error);
    assert_eq!(str_attr(s, "tollgate.action"), "block");
    assert_eq!(int_attr(s, "http.response.status_code"), 403);
    let reason = str_attr(s, "tollgate.block_reason").to_string();
    assert_eq!(reason, "AWS_ACCESS_KEY");
    let line = h
        .audit_lines
        .iter()
        .find(|l| l.contains("request_blocked"))
        .cloned()
        .unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line.trim_start_matches(crate::telemetry::audit::PREFIX))
            .unwrap_or_default();
    assert_eq!(v["reason"], "AWS_ACCESS_KEY");
    assert_eq!(v["status"], 403);
    assert_eq!(v["request_id"], "rid-42");
    assert!(v["rules"][0].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    assert!(!all_text(s).contains("AKIAIOSFODNN7EXAMPLF"));
    assert!(!line.contains("AKIAIOSFODNN7EXAMPLF"));
    assert_eq!(h.counter("tollgate.audit_events.kind.request_blocked"), 1);
}

#[test]
fn a_streamed_exchange_reports_its_findings_usage_and_masked_output() {
    let p = traced("");
    let body = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut h = request(body);
    let mut flow = RequestFlow::new(p);
    assert_eq!(send(&mut flow, &mut h), Next::Continue);
    h.clock_us += 10_000;
    h.response_headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "text/event-stream".into()),
    ];
    flow.on_response_headers(&mut h, false);
    let chunk = |c: &str| {
        let v = serde_json::json!({"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini-2024","choices":[{"index":0,"delta":{"content":c},"finish_reason":null}],"usage":null});
        format!("data: {v}\n\n")
    };
    let usage = r#"data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#;
    let chunks = [
        chunk("Write to anna.me"),
        chunk("ier@example.com today"),
        format!("{usage}\n\ndata: [DONE]\n\n"),
    ];
    for (i, c) in chunks.iter().enumerate() {
        h.clock_us += 1_000;
        h.response_body = c.as_bytes().to_vec();
        flow.on_response_body(&mut h, c.len(), i == 2);
    }
    flow.on_log(&mut h);
    let s = &h.spans[0];
    assert_eq!(s.attr("tollgate.stream"), Some(&AttrValue::Bool(true)));
    assert_eq!(str_attr(s, "gen_ai.response.model"), "gpt-4o-mini-2024");
    assert_eq!(int_attr(s, "gen_ai.usage.output_tokens"), 7);
    assert_eq!(int_attr(s, "tollgate.time_to_first_token_us"), 11_000);
    let output = str_attr(s, "gen_ai.output.messages");
    assert!(output.contains("Write to <EMAIL> today"), "{output}");
    let f = s
        .events
        .iter()
        .find(|e| e.name == "tollgate.finding")
        .map(|e| e.attrs.clone())
        .unwrap_or_default();
    assert!(f.contains(&("tollgate.finding.direction", "response".into())));
    assert!(f.contains(&("tollgate.finding.start", AttrValue::Int(9))));
    assert!(f.contains(&("tollgate.finding.end", AttrValue::Int(31))));
    assert!(!all_text(s).contains(EMAIL));
}

#[test]
fn without_traces_no_span_but_the_audit_trail_still_runs() {
    let p = policy(
        r#"{"schemaVersion":1,"detectors":[{"type":"pii","id":"pii","ner":false,"types":{"EMAIL":"block"}}]}"#,
    );
    let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{EMAIL}"}}]}}"#);
    let mut h = request(&body);
    let mut flow = RequestFlow::new(p);
    send(&mut flow, &mut h);
    flow.on_log(&mut h);
    assert!(h.spans.is_empty());
    assert_eq!(h.audit_lines.len(), 1);
    assert!(h.audit_lines[0].starts_with("tollgate.audit {"));
    let off = policy(
        r#"{"schemaVersion":1,"audit":{"log":false},"detectors":[{"type":"pii","id":"pii","ner":false,"types":{"EMAIL":"block"}}]}"#,
    );
    let mut h = request(&body);
    let mut flow = RequestFlow::new(off);
    send(&mut flow, &mut h);
    assert!(h.audit_lines.is_empty());
    assert_eq!(h.counter("tollgate.audit_events.kind.request_blocked"), 1);
}

/// `n` requests of tenant acme at `at_us`, each through the flow to `on_log`;
/// the statuses the clients got (200 when forwarded).
fn acme_requests(p: &Rc<Policy>, shared: &FakeHost, at_us: u64, n: usize) -> Vec<u16> {
    (0..n)
        .map(|i| {
            let body = r#"{"model":"m","messages":[{"role":"user","content":"hello there"}]}"#;
            let mut h = request(body);
            h.request_headers
                .insert("x-tenant-id".into(), "acme".into());
            h.shared = shared.shared.clone();
            h.clock_us = at_us + i as u64;
            let mut flow = RequestFlow::new(p.clone());
            let next = send(&mut flow, &mut h);
            let status = match h.replies.first() {
                Some(r) => r.status,
                None => {
                    assert_eq!(next, Next::Continue);
                    h.response_headers = vec![(":status".into(), "200".into())];
                    flow.on_response_headers(&mut h, true);
                    200
                }
            };
            flow.on_log(&mut h);
            if status == 429 {
                let retry = h.replies[0]
                    .headers
                    .iter()
                    .find(|(k, _)| k == "retry-after");
                assert!(retry.is_some_and(|(_, v)| v.parse::<u64>().unwrap_or(0) >= 1));
                assert!(h
                    .audit_lines
                    .iter()
                    .any(|l| l.contains("\"event\":\"anomaly\"")));
                assert_eq!(
                    h.counter("tollgate.anomalies.tenant.acme.signal.requests"),
                    1
                );
            }
            status
        })
        .collect()
}

#[test]
fn a_request_spike_is_throttled_within_its_window_and_steady_traffic_is_not() {
    let p = policy(
        r#"{"schemaVersion":1,"identity":{"unknown":"reject"},
        "anomaly":{"window":"10s","warmup":4,"sigma":4,"action":"throttle"}}"#,
    );
    // Every request runs on a host of its own sharing one store, as workers do.
    let shared = FakeHost::default();
    let window = 10_000_000u64;
    let t0 = 1_000 * window;
    for w in 0..12u64 {
        // 20 requests per window, +-3.
        let n = 20 + (w % 3) as usize * 3 - 3;
        let statuses = acme_requests(&p, &shared, t0 + w * window + 1000, n);
        assert!(
            statuses.iter().all(|s| *s == 200),
            "window {w}: {statuses:?}"
        );
    }
    // A spike of 200 in the next window: refused before the window ends,
    // after about the threshold's worth of requests got through.
    let statuses = acme_requests(&p, &shared, t0 + 12 * window + 1000, 200);
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!(statuses.contains(&429), "no throttle: {statuses:?}");
    assert!(
        (25..=60).contains(&passed),
        "{passed} passed before the throttle"
    );
    // The next window starts fresh for a tenant back to normal.
    let statuses = acme_requests(&p, &shared, t0 + 13 * window + 1000, 20);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[test]
fn a_stream_without_usage_is_counted_with_the_models_tokenizer() {
    let p = policy(r#"{"schemaVersion":1,"traces":{"cluster":"otel"}}"#);
    let body = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut h = request(body);
    let mut flow = RequestFlow::new(p);
    send(&mut flow, &mut h);
    h.response_headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "text/event-stream".into()),
    ];
    flow.on_response_headers(&mut h, false);
    let deltas = [
        "Tokenizers split ",
        "text into pieces: ",
        "naïve café, 日本語 ok.",
    ];
    let mut stream = String::new();
    for d in deltas {
        let v = serde_json::json!({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":d},"finish_reason":null}]});
        stream.push_str(&format!("data: {v}\n\n"));
    }
    stream.push_str("data: [DONE]\n\n");
    h.response_body = stream.clone().into_bytes();
    flow.on_response_body(&mut h, stream.len(), true);
    let usage = flow.usage().unwrap_or_default();
    let want = crate::tokens::count("gpt-4o", &deltas.concat());
    assert_eq!(usage.output_tokens, Some(want.tokens));
    assert!(usage.estimated, "no usage came: marked estimated");
    if cfg!(feature = "tokenizer") {
        assert!(want.exact);
        assert_ne!(want.tokens, (deltas.concat().len() as u64).div_ceil(4));
    }
}
