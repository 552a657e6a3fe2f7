use super::exporter::{ExportHost, Exporter, ExporterSettings, Target};
use super::otlp::{encode_span_field, Envelope};
use super::*;
use crate::metrics::Metric;
use std::collections::BTreeMap;

/// A protobuf field as the tests read it.
#[derive(Debug, Clone, PartialEq)]
enum F {
    Varint(u64),
    Fixed64(u64),
    Bytes(Vec<u8>),
}

fn varint(b: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// Every field of one message, in order (a real decoder's wire rules).
fn fields(b: &[u8]) -> Vec<(u64, F)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let tag = varint(b, &mut i);
        let f = match tag & 7 {
            0 => F::Varint(varint(b, &mut i)),
            1 => {
                let v = u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
                i += 8;
                F::Fixed64(v)
            }
            2 => {
                let n = varint(b, &mut i) as usize;
                let v = b[i..i + n].to_vec();
                i += n;
                F::Bytes(v)
            }
            w => panic!("wire type {w}"),
        };
        out.push((tag >> 3, f));
    }
    out
}

fn bytes_of(fs: &[(u64, F)], n: u64) -> Vec<Vec<u8>> {
    fs.iter()
        .filter(|(k, _)| *k == n)
        .filter_map(|(_, f)| match f {
            F::Bytes(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

/// `KeyValue` list → key → decoded AnyValue.
fn attrs_of(kvs: Vec<Vec<u8>>) -> BTreeMap<String, AttrValue> {
    let mut m = BTreeMap::new();
    for kv in kvs {
        let f = fields(&kv);
        let key = String::from_utf8(bytes_of(&f, 1)[0].clone()).unwrap();
        let any = fields(&bytes_of(&f, 2)[0]);
        let v = match &any[0] {
            (1, F::Bytes(b)) => AttrValue::Str(String::from_utf8(b.clone()).unwrap()),
            (2, F::Varint(v)) => AttrValue::Bool(*v != 0),
            (3, F::Varint(v)) => AttrValue::Int(*v as i64),
            (4, F::Fixed64(v)) => AttrValue::Double(f64::from_bits(*v)),
            other => panic!("{other:?}"),
        };
        m.insert(key, v);
    }
    m
}

fn sample_span() -> SpanData {
    SpanData {
        trace_id: [1; 16],
        span_id: [2; 8],
        parent_span_id: Some([3; 8]),
        name: "chat gpt-4o".into(),
        start_us: 1_700_000_000_000_000,
        end_us: 1_700_000_000_250_000,
        attrs: vec![
            ("gen_ai.request.model", "gpt-4o".into()),
            ("gen_ai.usage.input_tokens", 12u64.into()),
            ("tollgate.cost_usd", 0.25f64.into()),
            ("tollgate.stream", true.into()),
            ("neg", AttrValue::Int(-5)),
        ],
        events: vec![SpanEvent {
            name: "tollgate.finding",
            time_us: 1_700_000_000_100_000,
            attrs: vec![("tollgate.finding.type", "EMAIL".into())],
        }],
        status: StatusCode::Error,
        status_message: "blocked: EMAIL".into(),
        dropped_events: 2,
    }
}

#[test]
fn otlp_request_decodes_to_the_span_with_every_field() {
    let env = Envelope::new("tollgate", "proj");
    let span = encode_span_field(&sample_span());
    let req = env.request([span.as_slice(), span.as_slice()].into_iter());
    let top = fields(&req);
    let rs = bytes_of(&top, 1);
    assert_eq!(rs.len(), 1);
    let rs = fields(&rs[0]);
    let resource = fields(&bytes_of(&rs, 1)[0]);
    let res_attrs = attrs_of(bytes_of(&resource, 1));
    assert_eq!(res_attrs["service.name"], AttrValue::Str("tollgate".into()));
    assert_eq!(
        res_attrs["openinference.project.name"],
        AttrValue::Str("proj".into())
    );
    let ss = fields(&bytes_of(&rs, 2)[0]);
    let scope = fields(&bytes_of(&ss, 1)[0]);
    assert_eq!(bytes_of(&scope, 1)[0], b"tollgate");
    let spans = bytes_of(&ss, 2);
    assert_eq!(spans.len(), 2);
    let s = fields(&spans[0]);
    assert_eq!(bytes_of(&s, 1)[0], vec![1; 16]);
    assert_eq!(bytes_of(&s, 2)[0], vec![2; 8]);
    assert_eq!(bytes_of(&s, 4)[0], vec![3; 8]);
    assert_eq!(bytes_of(&s, 5)[0], b"chat gpt-4o");
    assert!(s.contains(&(6, F::Varint(3))));
    assert!(s.contains(&(7, F::Fixed64(1_700_000_000_000_000_000))));
    assert!(s.contains(&(8, F::Fixed64(1_700_000_000_250_000_000))));
    assert!(s.contains(&(12, F::Varint(2))));
    let a = attrs_of(bytes_of(&s, 9));
    assert_eq!(a["gen_ai.usage.input_tokens"], AttrValue::Int(12));
    assert_eq!(a["tollgate.cost_usd"], AttrValue::Double(0.25));
    assert_eq!(a["tollgate.stream"], AttrValue::Bool(true));
    assert_eq!(a["neg"], AttrValue::Int(-5));
    let ev = fields(&bytes_of(&s, 11)[0]);
    assert!(ev.contains(&(1, F::Fixed64(1_700_000_000_100_000_000))));
    assert_eq!(bytes_of(&ev, 2)[0], b"tollgate.finding");
    let ea = attrs_of(bytes_of(&ev, 3));
    assert_eq!(ea["tollgate.finding.type"], AttrValue::Str("EMAIL".into()));
    let st = fields(&bytes_of(&s, 15)[0]);
    assert_eq!(bytes_of(&st, 2)[0], b"blocked: EMAIL");
    assert!(st.contains(&(3, F::Varint(2))));
}

#[derive(Default)]
struct FakeExport {
    now: u64,
    sent: Vec<(u32, Vec<u8>)>,
    fail_dispatch: bool,
    counters: BTreeMap<String, u64>,
}

impl ExportHost for FakeExport {
    fn dispatch_otlp(
        &mut self,
        cluster: &str,
        _authority: &str,
        path: &str,
        body: &[u8],
        _timeout_ms: u64,
    ) -> Result<u32, String> {
        assert_eq!((cluster, path), ("otel", "/v1/traces"));
        if self.fail_dispatch {
            return Err("unknown cluster".into());
        }
        let token = self.sent.len() as u32 + 1;
        self.sent.push((token, body.to_vec()));
        Ok(token)
    }
    fn now_micros(&self) -> u64 {
        self.now
    }
    fn count(&mut self, metric: Metric, n: u64) {
        *self.counters.entry(metric.name()).or_default() += n;
    }
}

fn settings() -> ExporterSettings {
    ExporterSettings {
        batch_spans: 3,
        batch_bytes: 10_000,
        flush_interval_us: 1_000_000,
        max_queue_spans: 5,
        max_queue_bytes: 100_000,
        max_retries: 2,
        backoff_us: 100_000,
        max_backoff_us: 150_000,
    }
}

fn exporter() -> Exporter {
    Exporter::new(
        settings(),
        Target {
            cluster: "otel".into(),
            authority: "otel".into(),
            path: "/v1/traces".into(),
            timeout_ms: 1000,
        },
        Envelope::new("tollgate", "p"),
    )
}

fn spans_in(body: &[u8]) -> usize {
    let rs = fields(&bytes_of(&fields(body), 1)[0]);
    bytes_of(&fields(&bytes_of(&rs, 2)[0]), 2).len()
}

fn push(e: &mut Exporter, h: &mut FakeExport) -> bool {
    let span = encode_span_field(&sample_span());
    let counters = &mut h.counters;
    e.push(span, h.now, &mut |m, n| {
        *counters.entry(m.name()).or_default() += n
    })
}

#[test]
fn exporter_batches_by_count_and_by_time() {
    let (mut e, mut h) = (exporter(), FakeExport::default());
    push(&mut e, &mut h);
    push(&mut e, &mut h);
    e.tick(&mut h);
    assert!(h.sent.is_empty(), "two spans, young: not due");
    push(&mut e, &mut h);
    e.tick(&mut h);
    assert_eq!(h.sent.len(), 1);
    assert_eq!(spans_in(&h.sent[0].1), 3);
    e.on_response(&mut h, 1, Some(200));
    assert_eq!(h.counters["tollgate.trace_spans_exported"], 3);
    push(&mut e, &mut h);
    h.now += 999_999;
    e.tick(&mut h);
    assert_eq!(h.sent.len(), 1, "not yet a second");
    h.now += 1;
    e.tick(&mut h);
    assert_eq!(h.sent.len(), 2);
    assert_eq!(spans_in(&h.sent[1].1), 1);
}

#[test]
fn a_full_batch_waiting_goes_as_soon_as_the_last_one_is_answered() {
    let (mut e, mut h) = (exporter(), FakeExport::default());
    for _ in 0..5 {
        push(&mut e, &mut h);
    }
    e.tick(&mut h);
    assert_eq!(h.sent.len(), 1);
    push(&mut e, &mut h);
    e.on_response(&mut h, 1, Some(200));
    assert_eq!(
        h.sent.len(),
        2,
        "three more were queued: sent without a tick"
    );
    assert_eq!(spans_in(&h.sent[1].1), 3);
    e.on_response(&mut h, 2, Some(200));
    assert_eq!(h.sent.len(), 2, "a lone young span waits for its interval");
}

#[test]
fn exporter_drops_and_counts_when_full_never_blocks() {
    let (mut e, mut h) = (exporter(), FakeExport::default());
    let kept: Vec<bool> = (0..8).map(|_| push(&mut e, &mut h)).collect();
    assert_eq!(kept, [true, true, true, true, true, false, false, false]);
    assert!(!e.has_room(), "full: the plugin skips encoding");
    assert_eq!(
        h.counters["tollgate.trace_spans_dropped.reason.queue_full"],
        3
    );
    assert_eq!(e.queued(), 5);
}

#[test]
fn exporter_retries_with_backoff_then_drops() {
    let (mut e, mut h) = (exporter(), FakeExport::default());
    for _ in 0..3 {
        push(&mut e, &mut h);
    }
    e.tick(&mut h);
    e.on_response(&mut h, 1, None); // no answer
    assert!(e.busy());
    h.now += 99_999;
    e.tick(&mut h);
    assert_eq!(h.sent.len(), 1, "backoff not over");
    h.now += 1;
    e.tick(&mut h);
    assert_eq!(h.sent.len(), 2, "first retry after 100 ms");
    assert_eq!(h.sent[1].1, h.sent[0].1, "the same batch");
    e.on_response(&mut h, 2, Some(503));
    h.now += 149_999;
    e.tick(&mut h);
    assert_eq!(h.sent.len(), 2, "second backoff doubles, capped at 150 ms");
    h.now += 1;
    e.tick(&mut h);
    assert_eq!(h.sent.len(), 3);
    e.on_response(&mut h, 3, Some(500));
    assert!(!e.busy(), "retries used up: dropped");
    assert_eq!(
        h.counters["tollgate.trace_spans_dropped.reason.collector"],
        3
    );
    assert_eq!(h.counters["tollgate.trace_spans_retried"], 6);
    assert_eq!(h.counters["tollgate.trace_batches.result.failed"], 3);
}

#[test]
fn exporter_drops_a_refused_batch_at_once_and_survives_dispatch_errors() {
    let (mut e, mut h) = (exporter(), FakeExport::default());
    for _ in 0..3 {
        push(&mut e, &mut h);
    }
    e.tick(&mut h);
    e.on_response(&mut h, 1, Some(415));
    assert!(!e.busy());
    assert_eq!(
        h.counters["tollgate.trace_spans_dropped.reason.rejected"],
        3
    );
    // A stale or unknown token changes nothing.
    e.on_response(&mut h, 99, Some(200));
    h.fail_dispatch = true;
    for _ in 0..3 {
        push(&mut e, &mut h);
    }
    for _ in 0..10 {
        h.now += 1_000_000;
        e.tick(&mut h);
    }
    assert_eq!(
        h.counters["tollgate.trace_spans_dropped.reason.collector"],
        3
    );
    assert!(!e.busy());
}

#[test]
fn masked_replaces_every_span_and_bounds_the_text() {
    let t = "mail bob@x.io or call +44 20 7946 0958 now";
    let spans = [(5, 13, "EMAIL"), (22, 38, "PHONE"), (23, 30, "PHONE")];
    assert_eq!(masked(t, &spans, 1000), "mail <EMAIL> or call <PHONE> now");
    assert_eq!(masked(t, &spans, 8), "mail <EM");
    // Offsets inside a multi-byte char never split it.
    assert_eq!(masked("é@x", &[(1, 3, "X")], 100), "<X>x");
}

#[test]
fn traceparent_parsed_or_refused() {
    let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (t, p) = parse_traceparent(v).unwrap();
    assert_eq!(audit::hex(&t), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(audit::hex(&p), "00f067aa0ba902b7");
    for bad in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
    ] {
        assert!(parse_traceparent(bad).is_none(), "{bad}");
    }
}

#[test]
fn key_hash_prefix_is_twelve_hex_digits_of_sha256() {
    // sha256("sk-test") = 3c5c1e...
    let h = key_hash_prefix("sk-test");
    assert_eq!(h.len(), 12);
    assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(h, key_hash_prefix("sk-tesu"));
}

#[test]
fn audit_line_is_json_with_context_and_no_value() {
    let trace = ExchangeTrace {
        request_id: "r-1".into(),
        tenant: Some("acme".into()),
        key_hash: Some("abcdef012345".into()),
        path: "/v1/chat/completions?x=1".into(),
        ..ExchangeTrace::default()
    };
    let ev = audit::AuditEvent::new("request_blocked")
        .reason("EMAIL")
        .status(403)
        .finding("EMAIL", "pii.email")
        .finding("EMAIL", "pii.email");
    let line = ev.line(Some(&trace), 42);
    let json = line.strip_prefix(audit::PREFIX).unwrap();
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["event"], "request_blocked");
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["request_id"], "r-1");
    assert_eq!(v["status"], 403);
    assert_eq!(v["types"], serde_json::json!(["EMAIL"]));
    assert_eq!(v["rules"], serde_json::json!(["pii.email"]));
    assert_eq!(v["path"], "/v1/chat/completions");
    assert_eq!(v["ts_us"], 42);
}

#[test]
fn model_in_finds_the_first_model_name() {
    let chunk =
        br#"data: {"id":"x","object":"chat.completion.chunk","model":"gpt-4o-2024","choices":[]}"#;
    assert_eq!(exchange::model_in(chunk).as_deref(), Some("gpt-4o-2024"));
    assert_eq!(exchange::model_in(b"data: {}"), None);
}

#[test]
fn trace_config_defaults_and_errors() {
    let ok =
        crate::config::test_support::policy(r#"{"schemaVersion":1,"traces":{"cluster":"otel"}}"#);
    let t = ok.traces.as_ref().unwrap();
    assert_eq!(t.path, "/v1/traces");
    assert_eq!(t.timeout_ms, 2000);
    assert_eq!(t.exporter.batch_spans, 512);
    assert_eq!(t.exporter.flush_interval_us, 1_000_000);
    assert_eq!(t.content, Content::None);
    for (bad, field) in [
        (r#"{"cluster":""}"#, "traces.cluster"),
        (r#"{"cluster":"o","batchSpans":0}"#, "traces.batchSpans"),
        (r#"{"cluster":"o","timeout":"2 parsecs"}"#, "traces.timeout"),
        (r#"{"cluster":"o","path":"v1/traces"}"#, "traces.path"),
    ] {
        let json = format!(r#"{{"schemaVersion":1,"traces":{bad}}}"#);
        let err = crate::Policy::from_json(json.as_bytes()).unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
    }
}
