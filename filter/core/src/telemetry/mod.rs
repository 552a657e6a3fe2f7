//! Traces and the audit trail.
//!
//! Every exchange becomes one OTLP span ([`SpanData`]), built by the request
//! flow while it runs ([`ExchangeTrace`]) and handed to the host when the
//! exchange is over. The plugin encodes it ([`otlp`]) and queues it in the
//! VM's [`exporter::Exporter`], which the root context flushes to the
//! collector in batches. Attribute names follow the OpenTelemetry GenAI
//! semantic conventions (`gen_ai.*`) where one exists, ours are `tollgate.*`.
//!
//! Nothing here holds a raw value: findings carry type, rule, score and byte
//! span; texts (only with `traces.content: redacted`) have every finding
//! replaced by `<TYPE>`; API keys appear as a SHA-256 prefix.

pub mod audit;
pub mod exchange;
pub mod exporter;
pub mod otlp;

pub use exchange::ExchangeTrace;

use crate::config::TracesConfig;
use crate::config::{parse_duration_us, ConfigError};
use sha2::{Digest, Sha256};

/// A span attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_string())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}
impl From<u64> for AttrValue {
    fn from(v: u64) -> Self {
        AttrValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<usize> for AttrValue {
    fn from(v: usize) -> Self {
        AttrValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for AttrValue {
    fn from(v: f64) -> Self {
        AttrValue::Double(v)
    }
}
impl From<f32> for AttrValue {
    fn from(v: f32) -> Self {
        AttrValue::Double(f64::from(v))
    }
}
impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue::Bool(v)
    }
}

pub type Attrs = Vec<(&'static str, AttrValue)>;

/// A span event: a finding or an audit decision.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub name: &'static str,
    pub time_us: u64,
    pub attrs: Attrs,
}

/// OTLP `Status.StatusCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

/// One finished span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanData {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub start_us: u64,
    pub end_us: u64,
    pub attrs: Attrs,
    pub events: Vec<SpanEvent>,
    pub status: StatusCode,
    pub status_message: String,
    /// Events left out to keep the span bounded.
    pub dropped_events: u32,
}

impl SpanData {
    /// The value of attribute `key`, if set.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// What goes into a trace's text attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Content {
    /// No prompt or response text (default).
    #[default]
    None,
    /// The texts with every finding replaced by `<TYPE>`.
    Redacted,
}

/// Compiled [`TracesConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct TracePolicy {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
    pub project: String,
    pub service_name: String,
    pub content: Content,
    pub max_content_bytes: usize,
    pub exporter: exporter::ExporterSettings,
}

impl TracePolicy {
    pub fn compile(c: &TracesConfig) -> Result<TracePolicy, ConfigError> {
        let at = |f: &str| format!("traces.{f}");
        let ms = |f: &str, v: &str| {
            parse_duration_us(v)
                .map(|us| us.div_ceil(1000))
                .map_err(|e| ConfigError::at(at(f), e))
        };
        if c.cluster.trim().is_empty() {
            return Err(ConfigError::at(at("cluster"), "must name an Envoy cluster"));
        }
        if !c.path.starts_with('/') {
            return Err(ConfigError::at(at("path"), "must start with /"));
        }
        let batch_spans = c.batch_spans as usize;
        let max_queue_spans = c.max_queue_spans as usize;
        if batch_spans == 0 || batch_spans > max_queue_spans {
            return Err(ConfigError::at(
                at("batchSpans"),
                "must be between 1 and maxQueueSpans",
            ));
        }
        if max_queue_spans > 100_000 {
            return Err(ConfigError::at(at("maxQueueSpans"), "at most 100000"));
        }
        let max_queue_bytes = c.max_queue_bytes as usize;
        if !(4096..=256 * 1024 * 1024).contains(&max_queue_bytes) {
            return Err(ConfigError::at(
                at("maxQueueBytes"),
                "between 4096 and 268435456",
            ));
        }
        if c.max_retries > 10 {
            return Err(ConfigError::at(at("maxRetries"), "at most 10"));
        }
        if c.max_content_bytes > 1 << 20 {
            return Err(ConfigError::at(at("maxContentBytes"), "at most 1048576"));
        }
        let backoff_ms = ms("retryBackoff", &c.retry_backoff)?;
        let max_backoff_ms = ms("maxRetryBackoff", &c.max_retry_backoff)?.max(backoff_ms);
        Ok(TracePolicy {
            cluster: c.cluster.clone(),
            authority: c.authority.clone().unwrap_or_else(|| c.cluster.clone()),
            path: c.path.clone(),
            timeout_ms: ms("timeout", &c.timeout)?,
            project: c.project.clone(),
            service_name: c.service_name.clone(),
            content: match c.content {
                crate::config::TraceContent::None => Content::None,
                crate::config::TraceContent::Redacted => Content::Redacted,
            },
            max_content_bytes: c.max_content_bytes as usize,
            exporter: exporter::ExporterSettings {
                batch_spans,
                batch_bytes: (c.batch_bytes as usize).min(max_queue_bytes),
                flush_interval_us: ms("flushInterval", &c.flush_interval)?.saturating_mul(1000),
                max_queue_spans,
                max_queue_bytes,
                max_retries: c.max_retries,
                backoff_us: backoff_ms.saturating_mul(1000),
                max_backoff_us: max_backoff_ms.saturating_mul(1000),
            },
        })
    }
}

/// W3C `traceparent`: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
pub fn parse_traceparent(v: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut parts = v.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || flags.len() != 2 {
        return None;
    }
    let trace: [u8; 16] = hex_bytes(trace)?;
    let parent: [u8; 8] = hex_bytes(parent)?;
    if trace.iter().all(|b| *b == 0) || parent.iter().all(|b| *b == 0) {
        return None;
    }
    Some((trace, parent))
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let pair = s.get(2 * i..2 * i + 2)?;
        *o = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// Ids for a new span: derived by SHA-256 from the request id and the time,
/// so they are unique per exchange without a random source in the VM.
pub fn span_ids(request_id: &str, now_us: u64) -> ([u8; 16], [u8; 8]) {
    let mut h = Sha256::new();
    h.update(request_id.as_bytes());
    h.update(now_us.to_le_bytes());
    let d: [u8; 32] = h.finalize().into();
    let mut trace = [0u8; 16];
    let mut span = [0u8; 8];
    trace.copy_from_slice(d.get(..16).unwrap_or(&[0u8; 16]));
    span.copy_from_slice(d.get(16..24).unwrap_or(&[0u8; 8]));
    (trace, span)
}

/// The first 12 hex digits of the SHA-256 of an API key: enough to tell keys
/// apart in a trace, nothing to recover the key from.
pub fn key_hash_prefix(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// `text` with every span in `spans` (byte offsets, any order, may overlap)
/// replaced by `<KIND>`, cut to at most `max` bytes (on a char boundary).
pub fn masked(text: &str, spans: &[(usize, usize, &str)], max: usize) -> String {
    let mut spans: Vec<(usize, usize, &str)> = spans
        .iter()
        .filter(|(s, e, _)| s < e && *e <= text.len())
        .copied()
        .collect();
    spans.sort_by_key(|(s, _, _)| *s);
    let mut out = String::with_capacity(text.len().min(max));
    let mut at = 0;
    for (s, e, kind) in spans {
        if e <= at {
            continue;
        }
        let s = crate::detect::normalize::floor_boundary(text, s.max(at));
        out.push_str(text.get(at..s).unwrap_or_default());
        out.push('<');
        out.push_str(kind);
        out.push('>');
        at = ceil_boundary(text, e);
    }
    out.push_str(text.get(at..).unwrap_or_default());
    if out.len() > max {
        let cut = crate::detect::normalize::floor_boundary(&out, max);
        out.truncate(cut);
    }
    out
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i.min(s.len())
}

#[cfg(test)]
mod tests;

/// A span for a VM-wide decision (configuration loaded): the audit event
/// as its one event, so the trace store shows it next to the exchanges.
pub fn config_span(ev: &audit::AuditEvent, now_us: u64) -> SpanData {
    let (trace_id, span_id) = span_ids(ev.event, now_us);
    SpanData {
        trace_id,
        span_id,
        name: format!("tollgate.{}", ev.event),
        start_us: now_us,
        end_us: now_us,
        attrs: vec![("tollgate.audit.event", ev.event.into())],
        events: vec![SpanEvent {
            name: "tollgate.audit",
            time_us: now_us,
            attrs: ev.attrs(),
        }],
        ..SpanData::default()
    }
}
