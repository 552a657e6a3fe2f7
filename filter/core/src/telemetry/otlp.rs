//! OTLP/protobuf encoding of spans (`opentelemetry/proto/trace/v1/trace.proto`,
//! `collector/trace/v1/trace_service.proto`), by hand like the rate-limit
//! messages: one message shape, no protobuf runtime in the wasm.
//!
//! ```text
//! ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
//! ResourceSpans  { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
//! Resource       { repeated KeyValue attributes = 1; }
//! ScopeSpans     { InstrumentationScope scope = 1; repeated Span spans = 2; }
//! InstrumentationScope { string name = 1; string version = 2; }
//! Span  { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5;
//!         SpanKind kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
//!         repeated KeyValue attributes = 9; repeated Event events = 11;
//!         uint32 dropped_events_count = 12; Status status = 15; }
//! Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
//! Status { string message = 2; StatusCode code = 3; }
//! KeyValue { string key = 1; AnyValue value = 2; }
//! AnyValue { string string_value = 1; bool bool_value = 2; int64 int_value = 3;
//!            double double_value = 4; }
//! ```
//!
//! A span is encoded once, as a complete `ScopeSpans.spans` field, when its
//! exchange ends; a batch is those fields concatenated inside one envelope.

use super::{AttrValue, SpanData, SpanEvent, StatusCode};
use crate::ratelimit::proto::{put_bytes, put_varint};

/// `SpanKind.SPAN_KIND_CLIENT`: the filter's span stands for the call to the model.
const SPAN_KIND_CLIENT: u64 = 3;

fn put_fixed64(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, (field << 3) | 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_uint(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, field << 3);
    put_varint(out, v);
}

fn put_key_value(out: &mut Vec<u8>, field: u64, key: &str, value: &AttrValue) {
    let mut any = Vec::new();
    match value {
        AttrValue::Str(s) => put_bytes(&mut any, 1, s.as_bytes()),
        AttrValue::Bool(b) => put_uint(&mut any, 2, u64::from(*b)),
        // int64 is a two's-complement varint.
        AttrValue::Int(i) => put_uint(&mut any, 3, *i as u64),
        AttrValue::Double(d) => put_fixed64(&mut any, 4, d.to_bits()),
    }
    let mut kv = Vec::with_capacity(key.len() + any.len() + 4);
    put_bytes(&mut kv, 1, key.as_bytes());
    put_bytes(&mut kv, 2, &any);
    put_bytes(out, field, &kv);
}

fn encode_event(e: &SpanEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 32 * e.attrs.len());
    put_fixed64(&mut out, 1, e.time_us.saturating_mul(1000));
    put_bytes(&mut out, 2, e.name.as_bytes());
    for (k, v) in &e.attrs {
        put_key_value(&mut out, 3, k, v);
    }
    out
}

/// One span as a complete `ScopeSpans.spans` (field 2) entry.
pub fn encode_span_field(s: &SpanData) -> Vec<u8> {
    let mut span = Vec::with_capacity(512 + 48 * s.attrs.len());
    put_bytes(&mut span, 1, &s.trace_id);
    put_bytes(&mut span, 2, &s.span_id);
    if let Some(p) = &s.parent_span_id {
        put_bytes(&mut span, 4, p);
    }
    put_bytes(&mut span, 5, s.name.as_bytes());
    put_uint(&mut span, 6, SPAN_KIND_CLIENT);
    put_fixed64(&mut span, 7, s.start_us.saturating_mul(1000));
    put_fixed64(&mut span, 8, s.end_us.saturating_mul(1000));
    for (k, v) in &s.attrs {
        put_key_value(&mut span, 9, k, v);
    }
    for e in &s.events {
        put_bytes(&mut span, 11, &encode_event(e));
    }
    if s.dropped_events > 0 {
        put_uint(&mut span, 12, u64::from(s.dropped_events));
    }
    let code = match s.status {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    };
    if code != 0 || !s.status_message.is_empty() {
        let mut st = Vec::new();
        if !s.status_message.is_empty() {
            put_bytes(&mut st, 2, s.status_message.as_bytes());
        }
        if code != 0 {
            put_uint(&mut st, 3, code);
        }
        put_bytes(&mut span, 15, &st);
    }
    let mut field = Vec::with_capacity(span.len() + 6);
    put_bytes(&mut field, 2, &span);
    field
}

/// The parts of a batch that never change: the resource (service name,
/// Phoenix project) and the instrumentation scope, pre-encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl Envelope {
    pub fn new(service_name: &str, project: &str) -> Envelope {
        Envelope::with_artifacts(service_name, project, &[])
    }

    /// [`Envelope::new`] with the build's artifacts as resource attributes
    /// `tollgate.<name>.sha256` (see [`crate::build::summary`]).
    pub fn with_artifacts(
        service_name: &str,
        project: &str,
        artifacts: &[(String, String)],
    ) -> Envelope {
        let mut res = Vec::new();
        put_key_value(&mut res, 1, "service.name", &service_name.into());
        put_key_value(&mut res, 1, "openinference.project.name", &project.into());
        put_key_value(&mut res, 1, "telemetry.sdk.name", &"tollgate".into());
        for (name, sha) in artifacts {
            let key = format!("tollgate.{name}.sha256");
            put_key_value(&mut res, 1, &key, &sha.as_str().into());
        }
        let mut resource = Vec::new();
        put_bytes(&mut resource, 1, &res);
        let mut sc = Vec::new();
        put_bytes(&mut sc, 1, b"tollgate");
        put_bytes(&mut sc, 2, env!("CARGO_PKG_VERSION").as_bytes());
        let mut scope = Vec::new();
        put_bytes(&mut scope, 1, &sc);
        Envelope { resource, scope }
    }

    /// An `ExportTraceServiceRequest` holding the pre-encoded `spans`.
    pub fn request<'a>(&self, spans: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
        let mut scope_spans = self.scope.clone();
        for s in spans {
            scope_spans.extend_from_slice(s);
        }
        let mut rs = Vec::with_capacity(self.resource.len() + scope_spans.len() + 8);
        rs.extend_from_slice(&self.resource);
        put_bytes(&mut rs, 2, &scope_spans);
        let mut out = Vec::with_capacity(rs.len() + 6);
        put_bytes(&mut out, 1, &rs);
        out
    }
}
