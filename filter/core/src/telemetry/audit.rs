//! The audit trail: every security decision as one JSON line (through
//! Envoy's log) and as a `tollgate.audit` span event, with who, when, what
//! and which rule, and never the data itself (types and rule ids only).

use super::{AttrValue, Attrs, ExchangeTrace};
use serde_json::{json, Map, Value};

/// The prefix of every audit line, to find them in Envoy's log.
pub const PREFIX: &str = "tollgate.audit ";

/// One decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditEvent {
    /// `request_blocked`, `request_redacted`, `response_blocked`,
    /// `response_redacted`, `stream_ended`, `budget_soft`, `budget_exceeded`,
    /// `ratelimit_failed_open`, `anomaly`, `config_loaded`, `config_rejected`.
    pub event: &'static str,
    /// The reason tag (`EMAIL`, `RATE_LIMITED`, `requests`, ...).
    pub reason: Option<String>,
    /// Rule ids of the findings behind the decision (de-duplicated, at most 16).
    pub rules: Vec<String>,
    /// Finding types behind the decision (de-duplicated, at most 16).
    pub types: Vec<String>,
    /// The HTTP status the client got, when the decision sets it.
    pub status: Option<u16>,
    /// Other plain facts (counts, limit names, the action taken).
    pub detail: Vec<(&'static str, String)>,
}

impl AuditEvent {
    pub fn new(event: &'static str) -> AuditEvent {
        AuditEvent {
            event,
            ..AuditEvent::default()
        }
    }

    pub fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = Some(r.into());
        self
    }

    pub fn status(mut self, s: u16) -> Self {
        self.status = Some(s);
        self
    }

    pub fn detail(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.detail.push((k, v.into()));
        self
    }

    /// Add a finding's type and rule (de-duplicated, bounded).
    pub fn finding(mut self, kind: &str, rule: &str) -> Self {
        if !self.types.iter().any(|t| t == kind) && self.types.len() < 16 {
            self.types.push(kind.to_string());
        }
        if !self.rules.iter().any(|r| r == rule) && self.rules.len() < 16 {
            self.rules.push(rule.to_string());
        }
        self
    }

    /// Add the types and rules of the `findings` whose action is `action`.
    pub fn findings<'a>(
        mut self,
        findings: impl IntoIterator<Item = &'a crate::detect::Finding>,
        action: crate::detect::Action,
    ) -> Self {
        for f in findings.into_iter().filter(|f| f.action == action) {
            self = self.finding(f.kind, &f.rule_id);
        }
        self
    }

    /// The JSON line, with the exchange's context (`None` for VM-wide events).
    pub fn line(&self, ctx: Option<&ExchangeTrace>, now_us: u64) -> String {
        let mut m = Map::new();
        m.insert("ts_us".into(), json!(now_us));
        m.insert("event".into(), json!(self.event));
        if let Some(t) = ctx {
            m.insert("request_id".into(), json!(t.request_id));
            m.insert("trace_id".into(), json!(hex(&t.trace_id)));
            let mut put = |k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    m.insert(k.into(), json!(v));
                }
            };
            put("tenant", &t.tenant);
            put("team", &t.team);
            put("agent", &t.agent);
            put("api_key_sha256_prefix", &t.key_hash);
            put("model", &t.model_requested);
            if let Some(api) = t.api {
                m.insert("endpoint".into(), json!(api.as_str()));
            }
            m.insert("path".into(), json!(t.path.split('?').next().unwrap_or("")));
        }
        if let Some(r) = &self.reason {
            m.insert("reason".into(), json!(r));
        }
        if !self.types.is_empty() {
            m.insert("types".into(), json!(self.types));
        }
        if !self.rules.is_empty() {
            m.insert("rules".into(), json!(self.rules));
        }
        if let Some(s) = self.status {
            m.insert("status".into(), json!(s));
        }
        for (k, v) in &self.detail {
            m.insert((*k).into(), json!(v));
        }
        let mut out = String::from(PREFIX);
        out.push_str(&Value::Object(m).to_string());
        out
    }

    /// The same facts as span event attributes.
    pub fn attrs(&self) -> Attrs {
        let mut a: Attrs = vec![("tollgate.audit.event", self.event.into())];
        if let Some(r) = &self.reason {
            a.push(("tollgate.audit.reason", r.as_str().into()));
        }
        if !self.types.is_empty() {
            a.push(("tollgate.audit.types", self.types.join(",").into()));
        }
        if !self.rules.is_empty() {
            a.push(("tollgate.audit.rules", self.rules.join(",").into()));
        }
        if let Some(s) = self.status {
            a.push(("tollgate.audit.status", AttrValue::from(u64::from(s))));
        }
        for (k, v) in &self.detail {
            a.push((detail_key(k), v.as_str().into()));
        }
        a
    }
}

/// Span attribute names for the detail keys in use (static, as OTLP keys are here).
fn detail_key(k: &str) -> &'static str {
    match k {
        "action" => "tollgate.audit.action",
        "limits" => "tollgate.audit.limits",
        "count" => "tollgate.audit.count",
        "signals" => "tollgate.audit.signals",
        "detectors" => "tollgate.audit.detectors",
        "error" => "tollgate.audit.error",
        "direction" => "tollgate.audit.direction",
        _ => "tollgate.audit.detail",
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
