//! The trace of one exchange, filled in by the request flow as it goes and
//! turned into a [`SpanData`] when the exchange is over.

use super::{AttrValue, Attrs, SpanData, SpanEvent, StatusCode};
use crate::api::ApiKind;
use crate::detect::{Action, Finding};

/// Most events (findings and audit decisions) one span carries; the rest are counted.
pub const MAX_EVENTS: usize = 128;

/// Everything the span of one exchange reports.
#[derive(Debug, Clone, Default)]
pub struct ExchangeTrace {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub start_us: u64,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub api: Option<ApiKind>,
    pub tenant: Option<String>,
    pub team: Option<String>,
    pub agent: Option<String>,
    pub key_hash: Option<String>,
    pub model_requested: Option<String>,
    pub model_served: Option<String>,
    pub stream: bool,
    pub max_tokens: Option<u64>,
    /// Microseconds spent in the filter's own work (scans, stream rewriting).
    pub filter_us: u64,
    /// When the request went on to the upstream, its response headers came,
    /// and its first body bytes came.
    pub forwarded_us: Option<u64>,
    pub response_headers_us: Option<u64>,
    pub first_byte_us: Option<u64>,
    pub status: Option<u16>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub tokens_estimated: bool,
    pub cost_micros: Option<u64>,
    /// The request's decision, and the response's (`allow`, `redact`, `block`).
    pub action: Option<Action>,
    pub response_action: Option<Action>,
    /// Why the filter refused the request or ended the response.
    pub block_reason: Option<String>,
    pub ratelimit: Option<&'static str>,
    pub degraded: Vec<String>,
    pub budget_soft: Vec<String>,
    pub limits_exceeded: Vec<String>,
    pub anomalies: Vec<String>,
    /// The module's sha256 as deployed (`moduleSha256`).
    pub module_sha256: Option<String>,
    /// The access profile the request ran under (`tenant:acme/role:analyst`).
    pub profile: Option<String>,
    pub role: Option<String>,
    /// Decisions recorded in shadow mode, as `KIND:action`.
    pub shadow: Vec<String>,
    /// Access decisions that changed the request (`MAX_TOKENS:clamp`, `TOOLS:drop`, `CANARY:added`).
    pub access: Vec<String>,
    pub pseudonymized: usize,
    pub findings: usize,
    pub events: Vec<SpanEvent>,
    pub dropped_events: usize,
    /// Redacted texts (only with `traces.content: redacted`).
    pub input_content: Option<String>,
    pub output_content: Option<String>,
}

impl ExchangeTrace {
    pub fn event(&mut self, name: &'static str, time_us: u64, attrs: Attrs) {
        if self.events.len() >= MAX_EVENTS {
            self.dropped_events += 1;
            return;
        }
        self.events.push(SpanEvent {
            name,
            time_us,
            attrs,
        });
    }

    /// A finding as an event: type, rule, score, span and action, never the value.
    pub fn finding(&mut self, time_us: u64, direction: &'static str, where_: &str, f: &Finding) {
        self.findings += 1;
        self.event(
            "tollgate.finding",
            time_us,
            vec![
                ("tollgate.finding.type", f.kind.into()),
                ("tollgate.finding.rule_id", f.rule_id.as_str().into()),
                ("tollgate.finding.score", f.score.into()),
                ("tollgate.finding.start", f.start.into()),
                ("tollgate.finding.end", f.end.into()),
                ("tollgate.finding.action", f.action.as_str().into()),
                ("tollgate.finding.source", f.source.into()),
                ("tollgate.finding.direction", direction.into()),
                ("tollgate.finding.location", where_.into()),
            ],
        );
    }

    /// The finished span, ending at `end_us`.
    pub fn finish(self, end_us: u64) -> SpanData {
        let mut a: Attrs = Vec::with_capacity(48);
        let op = match self.api {
            Some(ApiKind::OpenaiChat | ApiKind::OpenaiResponses | ApiKind::AnthropicMessages) => {
                Some("chat")
            }
            Some(ApiKind::OpenaiCompletions) => Some("text_completion"),
            Some(ApiKind::OpenaiEmbeddings) => Some("embeddings"),
            _ => None,
        };
        let provider = match self.api {
            Some(ApiKind::AnthropicMessages) => Some("anthropic"),
            Some(ApiKind::UnknownJson) | None => None,
            Some(_) => Some("openai"),
        };
        let name = match (op, &self.model_requested) {
            (Some(op), Some(m)) => format!("{op} {m}"),
            (Some(op), None) => op.to_string(),
            _ => format!("{} {}", self.method, self.path_only()),
        };
        if let Some(op) = op {
            a.push(("gen_ai.operation.name", op.into()));
        }
        if let Some(p) = provider {
            a.push(("gen_ai.provider.name", p.into()));
            a.push(("gen_ai.system", p.into()));
        }
        push_opt(&mut a, "gen_ai.request.model", self.model_requested.clone());
        push_opt(&mut a, "gen_ai.response.model", self.model_served.clone());
        if let Some(n) = self.max_tokens {
            a.push(("gen_ai.request.max_tokens", n.into()));
        }
        if let Some(n) = self.input_tokens {
            a.push(("gen_ai.usage.input_tokens", n.into()));
        }
        if let Some(n) = self.output_tokens {
            a.push(("gen_ai.usage.output_tokens", n.into()));
        }
        if let Some(n) = self.cached_tokens {
            a.push(("gen_ai.usage.cache_read.input_tokens", n.into()));
        }
        if self.tokens_estimated {
            a.push(("tollgate.usage.estimated", true.into()));
        }
        a.push(("http.request.method", self.method.as_str().into()));
        a.push(("url.path", self.path_only().into()));
        if let Some(s) = self.status {
            a.push(("http.response.status_code", u64::from(s).into()));
        }
        a.push(("tollgate.request_id", self.request_id.as_str().into()));
        if let Some(api) = self.api {
            a.push(("tollgate.endpoint", api.as_str().into()));
        }
        push_opt(&mut a, "tollgate.tenant", self.tenant.clone());
        push_opt(&mut a, "tollgate.team", self.team.clone());
        push_opt(&mut a, "tollgate.agent", self.agent.clone());
        push_opt(
            &mut a,
            "tollgate.api_key.sha256_prefix",
            self.key_hash.clone(),
        );
        a.push(("tollgate.stream", self.stream.into()));
        a.push(("tollgate.filter_time_us", self.filter_us.into()));
        if let (Some(f), Some(h)) = (self.forwarded_us, self.response_headers_us) {
            a.push(("tollgate.upstream_time_us", h.saturating_sub(f).into()));
        }
        if let (Some(f), Some(b)) = (self.forwarded_us, self.first_byte_us) {
            a.push((
                "tollgate.time_to_first_token_us",
                b.saturating_sub(f).into(),
            ));
        }
        if let Some(c) = self.cost_micros {
            a.push(("tollgate.cost_usd", (c as f64 / 1e6).into()));
        }
        let action = match (self.action, &self.block_reason) {
            (_, Some(_)) if self.response_action != Some(Action::Block) => Some(Action::Block),
            (a, _) => a,
        };
        if let Some(act) = action {
            a.push(("tollgate.action", act.as_str().into()));
        }
        if let Some(act) = self.response_action {
            a.push(("tollgate.response.action", act.as_str().into()));
        }
        push_opt(&mut a, "tollgate.block_reason", self.block_reason.clone());
        a.push(("tollgate.findings.count", self.findings.into()));
        if self.pseudonymized > 0 {
            a.push(("tollgate.pseudonymized.count", self.pseudonymized.into()));
        }
        if let Some(r) = self.ratelimit {
            a.push(("tollgate.ratelimit.result", r.into()));
        }
        push_list(&mut a, "tollgate.degraded", &self.degraded);
        push_list(&mut a, "tollgate.budget.soft", &self.budget_soft);
        push_list(&mut a, "tollgate.ratelimit.exceeded", &self.limits_exceeded);
        push_list(&mut a, "tollgate.anomaly", &self.anomalies);
        push_opt(&mut a, "tollgate.profile", self.profile.clone());
        push_opt(&mut a, "tollgate.module.sha256", self.module_sha256.clone());
        push_opt(&mut a, "tollgate.role", self.role.clone());
        push_list(&mut a, "tollgate.shadow", &self.shadow);
        push_list(&mut a, "tollgate.access", &self.access);
        if self.dropped_events > 0 {
            a.push(("tollgate.events.dropped", self.dropped_events.into()));
        }
        if let Some(text) = self.input_content {
            a.push(("gen_ai.input.messages", text.as_str().into()));
            a.push(("input.value", text.into()));
            a.push(("input.mime_type", "application/json".into()));
        }
        if let Some(text) = self.output_content {
            a.push(("gen_ai.output.messages", text.as_str().into()));
            a.push(("output.value", text.into()));
            a.push(("output.mime_type", "application/json".into()));
        }
        // Phoenix (OpenInference) files the span as an LLM call; it derives
        // its `llm.*` attributes from the `gen_ai.*` ones itself.
        a.push(("openinference.span.kind", "LLM".into()));
        let (status, status_message) = match (self.status, &self.block_reason) {
            (_, Some(r)) => (StatusCode::Error, format!("blocked: {r}")),
            (Some(s), None) if s >= 500 => (StatusCode::Error, format!("HTTP {s}")),
            _ => (StatusCode::Unset, String::new()),
        };
        SpanData {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            name,
            start_us: self.start_us,
            end_us: end_us.max(self.start_us),
            attrs: a,
            events: self.events,
            status,
            status_message,
            dropped_events: u32::try_from(self.dropped_events).unwrap_or(u32::MAX),
        }
    }

    fn path_only(&self) -> &str {
        self.path.split(['?', '#']).next().unwrap_or("")
    }
}

fn push_opt(a: &mut Attrs, key: &'static str, v: Option<String>) {
    if let Some(v) = v {
        a.push((key, AttrValue::Str(v)));
    }
}

fn push_list(a: &mut Attrs, key: &'static str, v: &[String]) {
    if !v.is_empty() {
        a.push((key, AttrValue::Str(v.join(","))));
    }
}

/// A segment's location for a trace: its JSON path, with object keys that
/// are not plain identifiers shown as `?` (keys of unknown JSON may be data).
pub fn location(path: &crate::api::JsonPath) -> String {
    use crate::api::PathStep;
    let mut out = String::new();
    for step in path.iter().take(16) {
        match step {
            PathStep::Key(k)
                if k.len() <= 32
                    && !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathStep::Key(_) => out.push_str(".?"),
            PathStep::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// The redacted texts of a scanned body for a trace: one entry per segment
/// (`{"role","parts":[{"type":"text","content"}]}`, as `gen_ai.input.messages`),
/// every finding replaced by `<TYPE>`, at most `max` bytes of text in all.
pub fn redacted_messages(
    segments: &[crate::api::Segment],
    findings: &[crate::scan::BodyFinding],
    max: usize,
) -> String {
    let mut left = max;
    let mut msgs = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        if left == 0 {
            break;
        }
        let spans: Vec<(usize, usize, &str)> = findings
            .iter()
            .filter(|f| f.segment == i)
            .map(|f| (f.finding.start, f.finding.end, f.finding.kind))
            .collect();
        let text = super::masked(&seg.text, &spans, left);
        left = left.saturating_sub(text.len());
        msgs.push(serde_json::json!({
            "role": seg.channel.as_str(),
            "parts": [{"type": "text", "content": text}],
        }));
    }
    serde_json::Value::Array(msgs).to_string()
}

/// The model named in a stream's first bytes (`"model":"..."`, the first
/// occurrence: OpenAI chunks carry it at the top, Anthropic's `message_start`
/// and OpenAI's `response.created` inside their message); at most 128 bytes.
pub fn model_in(chunk: &[u8]) -> Option<String> {
    const NEEDLE: &[u8] = b"\"model\":\"";
    let at = chunk.windows(NEEDLE.len()).position(|w| w == NEEDLE)? + NEEDLE.len();
    let rest = chunk.get(at..)?;
    let end = rest
        .iter()
        .take(129)
        .position(|b| *b == b'"' || *b == b'\\')?;
    let name = std::str::from_utf8(rest.get(..end)?).ok()?;
    (!name.is_empty()).then(|| name.to_string())
}
