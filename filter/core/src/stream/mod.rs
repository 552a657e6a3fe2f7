//! The per-request state machine. The plugin's `GuardStream` forwards each
//! proxy-wasm callback here; every decision is made and tested in this file.
//!
//! Request path: pause at the headers, buffer the body until it is complete
//! (end of stream, or the trailers for HTTP/2 with trailers), scan it, then
//! forward (maybe rewritten or flagged) or answer locally. After a local reply
//! the flow never resumes.

use crate::access::{LeakCheck, Profile, Violation};
use crate::api::{ApiKind, Direction};
use crate::config::{FailureMode, LimitKind};
use crate::config::{MalformedJson, Policy};
use crate::detect::Action;
use crate::detect::OnTimeout;
use crate::host::Host;
use crate::metrics::Metric;
use crate::ratelimit::{self, proto, Charge, Identity, LimitStatus};
use crate::redact::Pseudonyms;
use crate::reply::{error_reply, RefusalReason};
use crate::scan::{findings_header, restore_body, scan_body_for};
use crate::sse::{StreamApi, StreamScanner, Usage};
use crate::telemetry::audit::AuditEvent;
use crate::telemetry::exchange::{location, redacted_messages};
use crate::telemetry::{self, Content, ExchangeTrace};
use std::rc::Rc;

/// What the callback returns to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Pause,
}

/// Headers the filter owns: removed from incoming requests so a client cannot forge them.
pub const FINDINGS_HEADER: &str = "x-tollgate-findings";
pub const ACTION_HEADER: &str = "x-tollgate-action";
/// Findings in the response (sent to the client only with `exposeFindings`).
pub const RESPONSE_FINDINGS_HEADER: &str = "x-tollgate-response-findings";
/// Set when a detector ran out of its time budget and the request went on without it.
pub const DEGRADED_HEADER: &str = "x-tollgate-degraded";
/// The tenant's traffic is anomalous (the signals); the request passed (`action: flag`).
pub const ANOMALY_HEADER: &str = "x-tollgate-anomaly";
/// Decisions the caller's profile only records (shadow mode), as `KIND:action`.
pub const SHADOW_HEADER: &str = "x-tollgate-shadow";
/// Longest list of shadow decisions kept per request.
const MAX_SHADOW: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the request headers.
    Start,
    /// Holding the request while the body arrives.
    Buffering,
    /// Holding the checked request until the rate-limit service answers.
    Limiting,
    /// Decision made, request forwarded.
    Forwarded,
    /// Answered locally; nothing more happens.
    Replied,
}

/// The response side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseState {
    /// Not looked at (yet), or passed through.
    Through,
    /// Holding the response headers while the body arrives.
    Buffering,
    /// A streamed (SSE) response, scanned chunk by chunk.
    Streaming,
    /// Scanned and released.
    Done,
}

/// One request's journey through the filter.
pub struct RequestFlow {
    policy: Rc<Policy>,
    state: State,
    api: ApiKind,
    request_id: String,
    body_size: usize,
    /// Headers to add to the response for the client.
    response_headers: Vec<(String, String)>,
    /// The placeholders the request's rewrite handed out, restored in the response.
    pseudonyms: Pseudonyms,
    response: ResponseState,
    response_size: usize,
    /// The scanner of a streamed response.
    stream: Option<Box<StreamScanner>>,
    /// The filter added `stream_options.include_usage` to the request.
    strip_usage: bool,
    /// Token usage of the streamed response, once it ended.
    usage: Option<Usage>,
    stream_block_counted: bool,
    /// The caller (when limits are configured).
    identity: Option<Identity>,
    /// The rate-limit check in flight, then what it reserved.
    limits: Option<LimitCheck>,
    /// The exchange's trace and audit context.
    trace: Box<ExchangeTrace>,
    /// The span was emitted (`on_log` ran).
    logged: bool,
    /// Types and rules of the findings that blocked the request, for the audit line.
    block_findings: Vec<(&'static str, String)>,
    /// The request had an injection finding (for the anomaly detector).
    injection_seen: bool,
    /// The request's (response's) headers went on before the body was
    /// checked (`pauseAtHeaders: false`): they can no longer be read or changed.
    req_headers_sent: bool,
    resp_headers_sent: bool,
    /// The request's prompt tokens (counted when limits or anomalies need them).
    prompt_tokens: Option<u64>,
    /// What the anomaly detector was told at the request (tokens, cost), so
    /// the end of the exchange adds only the rest; `None` if not observed.
    anomaly_observed: Option<(u64, u64)>,
    /// The caller's access profile (when `access` is configured).
    profile: Option<Profile>,
    /// Decisions recorded in shadow mode (`KIND:action`), for the upstream's header.
    shadow: Vec<String>,
    /// Access checks that flag the request (`REPETITION`), for the findings header.
    access_flags: Vec<&'static str>,
    /// The response checks of the caller's profile: system prompt leakage.
    leak: Option<Rc<LeakCheck>>,
}

/// The rate-limit check of one request.
#[derive(Debug, Default)]
struct LimitCheck {
    /// Calls in flight: token, and the limits (indexes) of its descriptors.
    pending: Vec<(u32, Vec<usize>)>,
    statuses: Vec<LimitStatus>,
    /// What was reserved before the upstream call, and its prompt part.
    reserved: Charge,
    prompt: u64,
    model: String,
    /// A call failed: the strictest failure mode of its limits.
    failed: Option<FailureMode>,
    /// The action the scan decided (for the metric once forwarded).
    action: Action,
    settled: bool,
}

impl LimitCheck {
    /// A call failed: its limits' failure mode joins the others (deny wins).
    fn fail(&mut self, mode: FailureMode) {
        self.failed = Some(self.failed.map_or(mode, |m| m.min(mode)));
    }
}

impl RequestFlow {
    pub fn new(policy: Rc<Policy>) -> Self {
        RequestFlow {
            policy,
            state: State::Start,
            api: ApiKind::UnknownJson,
            request_id: String::new(),
            body_size: 0,
            response_headers: Vec::new(),
            pseudonyms: Pseudonyms::default(),
            response: ResponseState::Through,
            response_size: 0,
            stream: None,
            strip_usage: false,
            usage: None,
            stream_block_counted: false,
            identity: None,
            limits: None,
            trace: Box::default(),
            logged: false,
            block_findings: Vec::new(),
            injection_seen: false,
            req_headers_sent: false,
            resp_headers_sent: false,
            prompt_tokens: None,
            anomaly_observed: None,
            profile: None,
            shadow: Vec::new(),
            access_flags: Vec::new(),
            leak: None,
        }
    }

    /// The exchange's trace so far.
    pub fn trace(&self) -> &ExchangeTrace {
        &self.trace
    }

    pub fn api(&self) -> ApiKind {
        self.api
    }

    /// Token usage of a streamed response (reported, or estimated), once it ended.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// `on_http_request_headers`.
    pub fn on_request_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Next {
        host.count(Metric::Requests, 1);
        host.set_request_header(FINDINGS_HEADER, None);
        host.set_request_header(ACTION_HEADER, None);
        host.set_request_header(DEGRADED_HEADER, None);
        host.set_request_header(ANOMALY_HEADER, None);
        host.set_request_header(SHADOW_HEADER, None);
        if self.policy.responses.identity_encoding && !self.policy.detectors.is_empty() {
            // The response must be readable to be scanned or restored.
            host.set_request_header("accept-encoding", Some("identity"));
        }
        let path = host.request_header(":path").unwrap_or_default();
        self.api = self.policy.api_for_path(&path);
        self.request_id = host
            .request_header("x-request-id")
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .unwrap_or_else(|| format!("tollgate-{:x}", host.now_micros()));
        self.start_trace(host, &path);

        if let Some(policy) = self.policy.identity.as_ref() {
            let header = |name: &str| host.request_header(name);
            let metadata = |path: &[String]| host.metadata(path);
            match policy.resolve(&header, &metadata) {
                Some(id) => {
                    self.trace.tenant = Some(id.tenant.clone());
                    self.trace.team = id.team.clone();
                    self.trace.agent = id.agent.clone();
                    self.trace.role = id.role.clone();
                    self.identity = Some(id);
                }
                None => {
                    self.refuse(
                        host,
                        RefusalReason::Unauthenticated,
                        "the caller's tenant is not known",
                    );
                    return Next::Pause;
                }
            }
        }
        if is_training_path(&path) {
            // Data on its way into a model's training (OWASP LLM04): recorded.
            host.count(Metric::TrainingUploads, 1);
            self.trace.access.push("TRAINING_UPLOAD".into());
            let shown: String = path
                .split('?')
                .next()
                .unwrap_or_default()
                .chars()
                .take(128)
                .collect();
            self.audit(
                host,
                AuditEvent::new("training_upload").detail("path", shown),
            );
        }
        if let Some(ap) = self.policy.access.as_ref() {
            let id = self.identity.as_ref();
            let profile = ap.profile(
                id.map(|i| i.tenant.as_str()),
                id.and_then(|i| i.role.as_deref()),
            );
            self.trace.profile = Some(profile.name().to_string());
            let endpoint = profile.check_endpoint(self.api, &path);
            self.profile = Some(profile);
            if let Err(v) = endpoint {
                if self.access_denied(host, v, RefusalReason::Forbidden) {
                    return Next::Pause;
                }
            }
        }
        if end_of_stream {
            // A request without a body (GET /v1/models) counts for the limits too.
            return self.check_limits_for(host, None, 0, None, Action::Allow);
        }
        if let Some(ct) = host.request_header("content-type") {
            if !is_json_content_type(&ct) {
                host.count(Metric::NonJsonPassthrough, 1);
                return self.check_limits_for(host, None, 0, None, Action::Allow);
            }
        }
        if content_length(host.request_header("content-length"))
            .is_some_and(|len| len > self.policy.max_body_bytes as u64)
        {
            self.refuse_too_large(host);
            return Next::Pause;
        }
        self.state = State::Buffering;
        if !self.policy.pause_at_headers {
            // The headers go on now (the host cannot hold them and still give
            // us the body); the body is held in `on_request_body`, so nothing
            // of it reaches the upstream before it is checked. Its length may
            // change, so the upstream gets it chunked (HTTP/1.1) or framed (HTTP/2).
            host.set_request_header("content-length", None);
            self.req_headers_sent = true;
            return Next::Continue;
        }
        Next::Pause
    }

    /// `on_http_request_body`: `body_size` is the whole buffered size so far.
    pub fn on_request_body(
        &mut self,
        host: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Next {
        match self.state {
            State::Buffering => {}
            State::Replied | State::Limiting => return Next::Pause,
            State::Start | State::Forwarded => return Next::Continue,
        }
        self.body_size = body_size;
        if body_size > self.policy.max_body_bytes {
            self.refuse_too_large(host);
            return Next::Pause;
        }
        if !end_of_stream {
            return Next::Pause;
        }
        self.finish_request(host)
    }

    /// `on_http_request_trailers`: HTTP/2 with trailers never ends the body
    /// stream, so the final check runs here.
    pub fn on_request_trailers(&mut self, host: &mut dyn Host) -> Next {
        match self.state {
            State::Buffering => self.finish_request(host),
            State::Replied | State::Limiting => Next::Pause,
            State::Start | State::Forwarded => Next::Continue,
        }
    }

    /// `on_http_response_headers`. A JSON response is held (headers and
    /// body) when the policy scans responses or the request's placeholders
    /// must be put back; anything else passes.
    pub fn on_response_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Next {
        for (k, v) in self.response_headers.drain(..) {
            host.add_response_header(&k, &v);
        }
        if self.state == State::Forwarded {
            self.trace.response_headers_us = Some(host.now_micros());
            self.trace.status = host
                .response_header(":status")
                .and_then(|s| s.trim().parse().ok());
            let ct = host.response_header("content-type").unwrap_or_default();
            self.trace.stream |= is_event_stream(&ct);
        }
        if self.state != State::Forwarded || end_of_stream {
            return Next::Continue;
        }
        let wanted = !self.pseudonyms.is_empty()
            || self.leak.is_some()
            || self.profile.as_ref().is_some_and(|p| {
                p.tools().is_some() || p.flooding().is_some_and(|f| f.output_loops)
            })
            || self.policy.scans_responses()
            || self.strip_usage
            || self.needs_usage();
        if !wanted {
            return Next::Continue;
        }
        let ct = host.response_header("content-type").unwrap_or_default();
        let stream = is_event_stream(&ct);
        if !stream && !is_json_content_type(&ct) {
            host.count(Metric::ResponsesUnscanned("not_json"), 1);
            return Next::Continue;
        }
        if host
            .response_header("content-encoding")
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
        {
            host.count(Metric::ResponsesUnscanned("encoded"), 1);
            return Next::Continue;
        }
        if stream {
            let Some(api) = StreamApi::for_api(self.api) else {
                host.count(Metric::ResponsesUnscanned("unknown_stream"), 1);
                return Next::Continue;
            };
            // Events are rewritten, held and dropped: the length changes.
            host.set_response_header("content-length", None);
            let pseudonyms = std::mem::take(&mut self.pseudonyms);
            let mut scanner =
                StreamScanner::new(api, self.policy.clone(), pseudonyms, self.strip_usage)
                    .with_model(self.trace.model_requested.as_deref().unwrap_or_default());
            if let Some(max) = self.content_max() {
                scanner = scanner.with_capture(max);
            }
            if let Some(p) = self.profile.clone() {
                if let Some(t) = p.tools() {
                    scanner = scanner.with_tools(t);
                }
                if let Some(f) = p.flooding().filter(|f| f.output_loops) {
                    scanner = scanner.with_loop_check(f.min_words, f.max_top_share);
                }
                scanner = scanner.with_profile(p);
            }
            if let Some(leak) = self.leak.clone() {
                scanner = scanner.with_leak(leak);
            }
            if let Some((tokens, name)) = self.output_allowance() {
                // The scanner estimates tokens as 4 bytes of text, like the reservation.
                scanner = scanner.with_budget(tokens.saturating_mul(4), &name);
            }
            self.stream = Some(Box::new(scanner));
            self.response = ResponseState::Streaming;
            return Next::Continue;
        }
        if content_length(host.response_header("content-length"))
            .is_some_and(|len| len > self.policy.max_body_bytes as u64)
        {
            host.count(Metric::ResponsesUnscanned("too_large"), 1);
            return Next::Continue;
        }
        self.response = ResponseState::Buffering;
        if !self.policy.pause_at_headers {
            // As for the request: the headers go on, the body is held in
            // `on_response_body`. A refusal then replaces the body only (the
            // status has been sent).
            host.set_response_header("content-length", None);
            self.resp_headers_sent = true;
            return Next::Continue;
        }
        Next::Pause
    }

    /// `on_http_response_body`: `body_size` is the whole buffered size so far.
    pub fn on_response_body(
        &mut self,
        host: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Next {
        if body_size > 0 && self.trace.first_byte_us.is_none() && self.state == State::Forwarded {
            self.trace.first_byte_us = Some(host.now_micros());
        }
        if self.response == ResponseState::Streaming {
            return self.stream_chunk(host, body_size, end_of_stream);
        }
        if self.response != ResponseState::Buffering {
            return Next::Continue;
        }
        self.response_size = body_size;
        if body_size > self.policy.max_body_bytes {
            // Past the buffer limit: released unscanned (and counted) rather
            // than held against Envoy's own buffer limit.
            host.count(Metric::ResponsesUnscanned("too_large"), 1);
            self.response = ResponseState::Done;
            return Next::Continue;
        }
        if !end_of_stream {
            return Next::Pause;
        }
        self.finish_response(host)
    }

    /// `on_http_response_trailers`.
    pub fn on_response_trailers(&mut self, host: &mut dyn Host) -> Next {
        if self.response == ResponseState::Buffering {
            return self.finish_response(host);
        }
        if self.response == ResponseState::Streaming {
            // Trailers cannot carry body bytes: what the scanner still holds
            // (an upstream that ended without its final event) is dropped.
            let mut out = Vec::new();
            if let Some(s) = self.stream.as_mut() {
                s.finish(&mut out);
            }
            if !out.is_empty() {
                host.count(Metric::StreamBytesDropped, out.len() as u64);
            }
            self.end_stream(host);
        }
        Next::Continue
    }

    /// One chunk of a streamed response: what the client may see now
    /// replaces it (held text waits for the next chunk).
    fn stream_chunk(&mut self, host: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Next {
        let Some(scanner) = self.stream.as_mut() else {
            return Next::Continue;
        };
        let chunk = if body_size == 0 {
            Vec::new()
        } else {
            host.response_body(0, body_size).unwrap_or_default()
        };
        let started = host.now_micros();
        let mut out = Vec::with_capacity(chunk.len() + 64);
        scanner.push(&chunk, &mut out);
        if end_of_stream {
            scanner.finish(&mut out);
        }
        self.trace.filter_us += host.now_micros().saturating_sub(started);
        if self.trace.model_served.is_none() {
            self.trace.model_served = telemetry::exchange::model_in(&chunk);
        }
        if out != chunk {
            host.set_response_body(&out);
        }
        if !self.stream_block_counted {
            if let Some(kind) = scanner.outcome().blocked {
                self.stream_block_counted = true;
                host.count(Metric::ResponsesBlocked(kind), 1);
                let rules = scanner.outcome().block_rules();
                self.stream_blocked(host, kind, rules);
            }
        }
        if end_of_stream {
            self.end_stream(host);
        }
        Next::Continue
    }

    /// The streamed response is over: count it.
    fn end_stream(&mut self, host: &mut dyn Host) {
        self.response = ResponseState::Done;
        let Some(scanner) = self.stream.take() else {
            return;
        };
        let outcome = scanner.outcome();
        host.count(Metric::ResponsesScanned, 1);
        host.count(Metric::StreamsScanned, 1);
        if outcome.rewritten {
            host.count(Metric::ResponsesRewritten, 1);
        }
        if !outcome.flagged.is_empty() {
            host.count(Metric::StreamsFlagged, outcome.flagged.len() as u64);
        }
        if let Some(kind) = outcome.blocked.filter(|_| !self.stream_block_counted) {
            host.count(Metric::ResponsesBlocked(kind), 1);
            self.stream_blocked(host, kind, outcome.block_rules());
        }
        let now = host.now_micros();
        for f in &outcome.findings {
            self.trace
                .finding(now, "response", &format!("stream[{}]", f.key), &f.finding);
        }
        for (kind, action) in &outcome.shadowed {
            let rule = format!("stream.{}", kind.to_ascii_lowercase());
            self.record_shadow(host, kind, action.as_str(), &rule);
        }
        if let Some((kind, action)) = outcome.leak.filter(|(_, a)| *a == Action::Flag) {
            self.audit_leak(host, kind, action);
        }
        if outcome.rewritten {
            self.trace.response_action.get_or_insert(Action::Redact);
        }
        if self.content_max().is_some() {
            self.trace.output_content = Some(scanner.captured_messages());
        }
        let usage = scanner.usage();
        if let Some(n) = usage.input_tokens {
            host.count(Metric::TokensInput, n);
        }
        if let Some(n) = usage.output_tokens {
            host.count(Metric::TokensOutput, n);
        }
        if usage.estimated {
            host.count(Metric::TokensEstimated, 1);
        }
        self.trace.input_tokens = usage.input_tokens;
        self.trace.output_tokens = usage.output_tokens;
        self.trace.cached_tokens = usage.cached_tokens;
        self.trace.tokens_estimated = usage.estimated;
        self.usage = Some(usage);
        let prompt = self.limits.as_ref().map_or(0, |c| c.prompt);
        self.settle(
            host,
            usage.input_tokens.unwrap_or(prompt),
            usage.output_tokens.unwrap_or(0),
        );
    }

    /// The most output tokens the token and cost budgets still allow this
    /// request (its reservation plus what they have left), and the limit
    /// that allows the least; `None` without such limits or with `midStream: finish`.
    fn output_allowance(&self) -> Option<(u64, String)> {
        let rl = self.policy.rate_limit.as_ref()?;
        if rl.mid_stream != crate::config::MidStream::End {
            return None;
        }
        let check = self.limits.as_ref()?;
        let reserved_output = check.reserved.tokens.saturating_sub(check.prompt);
        let output_price = rl.price(&check.model).map(|p| p.output);
        check
            .statuses
            .iter()
            .filter(|s| s.limit.is_some())
            .filter_map(|s| {
                let extra = match s.kind {
                    LimitKind::Tokens => u64::from(s.remaining),
                    LimitKind::Cost => {
                        let p = output_price.filter(|p| *p > 0.0)?;
                        (f64::from(s.remaining) / p).floor() as u64
                    }
                    LimitKind::Requests => return None,
                };
                Some((reserved_output.saturating_add(extra), s.name.clone()))
            })
            .min_by_key(|(t, _)| *t)
    }

    /// Token or cost limits were charged a reservation: the response's usage settles it.
    fn needs_usage(&self) -> bool {
        self.limits
            .as_ref()
            .is_some_and(|c| !c.settled && (c.reserved.tokens > 0 || c.reserved.cost_micros > 0))
            && self.policy.rate_limit.as_ref().is_some_and(|rl| {
                rl.limits
                    .iter()
                    .any(|l| matches!(l.kind, LimitKind::Tokens | LimitKind::Cost))
            })
    }

    fn finish_response(&mut self, host: &mut dyn Host) -> Next {
        self.response = ResponseState::Done;
        let body = host
            .response_body(0, self.response_size)
            .unwrap_or_default();
        if body.iter().all(u8::is_ascii_whitespace) {
            return Next::Continue;
        }
        let started = host.now_micros();
        let meta = crate::scan::response_meta(&body);
        if let Some(m) = &meta {
            self.trace.model_served = m.model.clone();
            if let Some(u) = m.usage {
                self.trace.input_tokens = Some(u.input_tokens.unwrap_or(0));
                self.trace.output_tokens = Some(u.output_tokens.unwrap_or(0));
                self.trace.cached_tokens = u.cached_tokens;
            }
        }
        if self.needs_usage() {
            if let Some(u) = meta.as_ref().and_then(|m| m.usage) {
                let (input, output) = (u.input_tokens.unwrap_or(0), u.output_tokens.unwrap_or(0));
                self.usage = Some(u);
                self.settle(host, input, output);
            }
        }
        if let Some(kind) = self.access_response(host, &body) {
            self.replace_response_with_refusal(host, kind);
            self.trace.filter_us += host.now_micros().saturating_sub(started);
            return Next::Continue;
        }
        let mut out: Option<Vec<u8>> = None;
        if self.policy.scans_responses() {
            let policy = self.policy.clone();
            let scan = scan_body_for(
                &policy,
                self.api,
                Direction::Response,
                &body,
                &|| 0,
                self.profile.as_ref(),
            );
            let scan = match scan {
                Ok(scan) => scan,
                Err(_) => {
                    host.count(Metric::ResponsesUnscanned("malformed"), 1);
                    return Next::Continue;
                }
            };
            host.count(Metric::ResponsesScanned, 1);
            for f in &scan.shadowed {
                let (kind, action) = (f.finding.kind, f.finding.action.as_str());
                self.record_shadow(host, kind, action, &f.finding.rule_id);
            }
            let now = host.now_micros();
            if let Some(text) = self.trace_scan(now, "response", &scan) {
                self.trace.output_content = Some(text);
            }
            self.trace.response_action = Some(scan.action);
            match scan.action {
                Action::Block => {
                    let ev = AuditEvent::new("response_blocked")
                        .reason(scan.block_kind())
                        .status(502)
                        .findings(scan.findings.iter().map(|f| &f.finding), Action::Block);
                    self.trace.block_reason = Some(scan.block_kind().to_string());
                    self.audit(host, ev);
                    self.replace_response_with_refusal(host, scan.block_kind());
                    self.trace.filter_us += host.now_micros().saturating_sub(started);
                    return Next::Continue;
                }
                Action::Redact => {
                    let ev = AuditEvent::new("response_redacted")
                        .findings(scan.findings.iter().map(|f| &f.finding), Action::Redact);
                    self.audit(host, ev.detail("count", scan.findings.len().to_string()));
                    out = scan.rewritten;
                }
                Action::Flag | Action::Allow => {}
            }
            if scan.action != Action::Allow && self.policy.expose_findings {
                let header = findings_header(scan.findings.iter().map(|f| &f.finding));
                self.set_resp_header(host, RESPONSE_FINDINGS_HEADER, Some(&header));
            }
        }
        let current = out.as_deref().unwrap_or(&body);
        if let Some(restored) = restore_body(&self.policy, self.api, current, &self.pseudonyms) {
            out = Some(restored);
        }
        if let Some(unechoed) = self.unecho(out.as_deref().unwrap_or(&body)) {
            out = Some(unechoed);
        }
        if let Some(new_body) = out {
            host.count(Metric::ResponsesRewritten, 1);
            host.set_response_body(&new_body);
            if !self.resp_headers_sent && host.response_header("content-length").is_some() {
                host.set_response_header("content-length", Some(&new_body.len().to_string()));
            }
        }
        self.trace.filter_us += host.now_micros().saturating_sub(started);
        Next::Continue
    }

    /// A response the policy refuses: the client gets 502 in the API's error
    /// shape instead of the upstream's body.
    fn replace_response_with_refusal(&mut self, host: &mut dyn Host, kind: &'static str) {
        let reply = error_reply(
            self.api.error_style(),
            RefusalReason::Policy(kind),
            "response blocked by policy",
            &self.request_id,
        );
        host.count(Metric::ResponsesBlocked(kind), 1);
        self.set_resp_header(host, ":status", Some("502"));
        self.set_resp_header(host, "content-type", Some("application/json"));
        self.set_resp_header(host, "content-length", Some(&reply.body.len().to_string()));
        self.set_resp_header(host, ACTION_HEADER, Some("block"));
        host.set_response_body(&reply.body);
    }

    fn finish_request(&mut self, host: &mut dyn Host) -> Next {
        let body = if self.body_size == 0 {
            Vec::new()
        } else {
            host.request_body(0, self.body_size).unwrap_or_default()
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            // Nothing to scan; the upstream answers an empty body itself. It
            // is still a request for the limits.
            return self.check_limits_for(host, None, 0, None, Action::Allow);
        }
        let started = host.now_micros();
        let clock = || host.now_micros();
        let policy = self.policy.clone();
        let result = scan_body_for(
            &policy,
            self.api,
            Direction::Request,
            &body,
            &clock,
            self.profile.as_ref(),
        );
        let spent = host.now_micros().saturating_sub(started);
        self.trace.filter_us += spent;
        host.record(Metric::DetectorTimeUs, spent);
        host.count(Metric::BodyBytesScanned, body.len() as u64);
        let mut scan = match result {
            Ok(scan) => scan,
            Err(e) => {
                return match self.policy.malformed_json {
                    MalformedJson::Reject => {
                        self.refuse(host, RefusalReason::MalformedJson, &e.to_string());
                        Next::Pause
                    }
                    MalformedJson::PassThrough => {
                        self.set_req_header(host, FINDINGS_HEADER, Some("MALFORMED_JSON"));
                        self.expose(ACTION_HEADER, "flag");
                        self.expose(FINDINGS_HEADER, "MALFORMED_JSON");
                        self.forward(host, Action::Flag);
                        Next::Continue
                    }
                };
            }
        };
        self.trace_request_scan(host, &scan);
        for f in &scan.shadowed {
            self.record_shadow(
                host,
                f.finding.kind,
                f.finding.action.as_str(),
                &f.finding.rule_id,
            );
        }
        if let Some(d) = scan.degraded.iter().find(|d| d.mode == OnTimeout::Block) {
            let message = format!("detector {} {}", d.detector, d.reason);
            self.refuse(host, RefusalReason::Degraded(d.detector), &message);
            return Next::Pause;
        }
        if !scan.degraded.is_empty() {
            let mut names: Vec<&str> = scan.degraded.iter().map(|d| d.detector).collect();
            names.dedup();
            let value = names.join(",");
            for name in names {
                host.count(Metric::Degraded(name), 1);
                self.trace.degraded.push(name.to_string());
            }
            self.set_req_header(host, DEGRADED_HEADER, Some(&value));
            // Not sensitive, and the client should know the check was partial.
            self.response_headers
                .push((DEGRADED_HEADER.to_string(), value));
        }
        let header = findings_header(scan.findings.iter().map(|f| &f.finding));
        match scan.action {
            Action::Block => {
                let kind = scan.block_kind();
                self.block_findings = scan
                    .findings
                    .iter()
                    .filter(|f| f.finding.action == Action::Block)
                    .map(|f| (f.finding.kind, f.finding.rule_id.clone()))
                    .collect();
                let message = if self.policy.expose_findings {
                    format!("request blocked by policy ({header})")
                } else {
                    "request blocked by policy".to_string()
                };
                self.refuse(host, RefusalReason::Policy(kind), &message);
                return Next::Pause;
            }
            Action::Redact => {
                self.pseudonyms = std::mem::take(&mut scan.pseudonyms);
                self.trace.pseudonymized = self.pseudonyms.len();
                let ev = AuditEvent::new("request_redacted")
                    .findings(scan.findings.iter().map(|f| &f.finding), Action::Redact)
                    .detail("count", scan.findings.len().to_string())
                    .detail("action", format!("{} pseudonymised", self.pseudonyms.len()));
                self.audit(host, ev);
            }
            Action::Flag | Action::Allow => {}
        }
        let mut new_body = if scan.action == Action::Redact {
            scan.rewritten.take()
        } else {
            None
        };
        match self.access_request(host, &body, new_body.as_deref(), &mut scan) {
            Err(()) => return Next::Pause,
            Ok(Some(b)) => new_body = Some(b),
            Ok(None) => {}
        }
        let mut header = header;
        if !self.access_flags.is_empty() {
            scan.action = scan.action.max(Action::Flag);
            let flags = self.access_flags.join(",");
            header = if header.is_empty() {
                flags
            } else {
                format!("{header},{flags}")
            };
        }
        if self.policy.responses.stream_usage
            && matches!(self.api, ApiKind::OpenaiChat | ApiKind::OpenaiCompletions)
            && scan.stream.is_some_and(|s| !s.has_stream_options)
        {
            // Ask for the usage chunk; the client, which did not, never sees it.
            if let Some(b) = with_stream_usage(new_body.as_deref().unwrap_or(&body)) {
                new_body = Some(b);
                self.strip_usage = true;
            }
        }
        if let Some(new_body) = &new_body {
            host.set_request_body(new_body);
            if !self.req_headers_sent && host.request_header("content-length").is_some() {
                host.set_request_header("content-length", Some(&new_body.len().to_string()));
            }
        }
        if scan.action != Action::Allow {
            self.set_req_header(host, FINDINGS_HEADER, Some(&header));
            self.set_req_header(host, ACTION_HEADER, Some(scan.action.as_str()));
            self.expose(ACTION_HEADER, scan.action.as_str());
            self.expose(FINDINGS_HEADER, &header);
        }
        self.check_limits(host, &scan)
    }

    /// Forward the request, through the rate-limit service when limits are
    /// configured: it reserves what this request may cost, and the request
    /// waits for the answers ([`RequestFlow::on_grpc_response`]).
    fn check_limits(&mut self, host: &mut dyn Host, scan: &crate::scan::BodyScan) -> Next {
        if self.policy.rate_limit.is_some() || self.policy.anomaly.is_some() {
            // The prompt counted with the model's tokenizer where the build has
            // one for it (OpenAI models), else estimated (4 bytes per token).
            let model = scan.model.as_deref().unwrap_or_default();
            self.prompt_tokens = Some(
                scan.segments
                    .iter()
                    .map(|s| crate::tokens::count(model, &s.text).tokens)
                    .sum(),
            );
        }
        self.check_limits_for(
            host,
            scan.model.clone(),
            scan.text_bytes,
            scan.max_tokens,
            scan.action,
        )
    }

    /// [`RequestFlow::check_limits`] for a request of `text_bytes` of text
    /// (0 for one without a body, which still counts as a request); without
    /// limits the request is forwarded at once.
    fn check_limits_for(
        &mut self,
        host: &mut dyn Host,
        model: Option<String>,
        text_bytes: usize,
        max_tokens: Option<u64>,
        action: Action,
    ) -> Next {
        if self.policy.anomaly.is_some()
            && self.check_anomaly(host, model.as_deref(), text_bytes, max_tokens)
        {
            return Next::Pause;
        }
        let (Some(rl), Some(who)) = (self.policy.rate_limit.clone(), self.identity.clone()) else {
            self.forward(host, action);
            return Next::Continue;
        };
        let model = model.unwrap_or_default();
        let prompt = self
            .prompt_tokens
            .unwrap_or_else(|| (text_bytes as u64).div_ceil(4));
        let output = if text_bytes == 0 {
            0
        } else {
            max_tokens.unwrap_or(rl.default_max_tokens)
        };
        let reserved = Charge {
            tokens: prompt + output,
            cost_micros: ratelimit::cost_micros(rl.price(&model), prompt, output),
        };
        let mut check = LimitCheck {
            reserved,
            prompt,
            model: model.clone(),
            action,
            ..LimitCheck::default()
        };
        // One call per amount charged (hits_addend is per request).
        let mut groups: Vec<(u64, Vec<usize>, Vec<ratelimit::Descriptor>)> = Vec::new();
        for (i, limit) in rl.limits.iter().enumerate() {
            let amount = reserved.amount(limit.kind);
            let Some(d) = rl.descriptor(limit, &who, &model).filter(|_| amount > 0) else {
                continue;
            };
            match groups.iter_mut().find(|(a, _, _)| *a == amount) {
                Some((_, idx, ds)) => {
                    idx.push(i);
                    ds.push(d);
                }
                None => groups.push((amount, vec![i], vec![d])),
            }
        }
        for (amount, idx, descriptors) in groups {
            let hits = u32::try_from(amount).unwrap_or(u32::MAX);
            let msg = proto::encode_request(&rl.domain, &descriptors, hits);
            match host.dispatch_grpc(
                &rl.cluster,
                ratelimit::SERVICE,
                ratelimit::METHOD,
                &msg,
                rl.timeout_ms,
            ) {
                Ok(token) => check.pending.push((token, idx)),
                Err(_) => check.fail(strictest(&rl, &idx)),
            }
        }
        self.limits = Some(check);
        if self.limits.as_ref().is_some_and(|c| c.pending.is_empty()) {
            return self.limits_decided(host, false);
        }
        self.state = State::Limiting;
        Next::Pause
    }

    /// `on_grpc_call_response`: `status` is the gRPC status (0 = OK).
    pub fn on_grpc_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        status: u32,
        body: Option<Vec<u8>>,
    ) {
        let Some(rl) = self.policy.rate_limit.clone() else {
            return;
        };
        let Some(check) = self.limits.as_mut() else {
            return;
        };
        let Some(pos) = check.pending.iter().position(|(t, _)| *t == token) else {
            // A settlement's answer (or a late one): nothing waits for it.
            return;
        };
        let (_, idx) = check.pending.remove(pos);
        let decoded = if status == 0 {
            body.as_deref()
                .map(proto::decode_response)
                .and_then(Result::ok)
        } else {
            None
        };
        match decoded {
            Some(resp) => {
                for (n, i) in idx.iter().enumerate() {
                    let Some(limit) = rl.limits.get(*i) else {
                        continue;
                    };
                    let st = resp.statuses.get(n).cloned().unwrap_or_default();
                    let over = st.code == proto::Code::OverLimit
                        || (resp.statuses.is_empty() && resp.overall == proto::Code::OverLimit);
                    let limit_q = st.limit.map(|(q, u)| (q, u.0));
                    let soft = match (limit.soft, limit_q) {
                        (Some(f), Some((q, _))) => f64::from(st.remaining) < f * f64::from(q),
                        _ => false,
                    };
                    check.statuses.push(LimitStatus {
                        name: limit.name.clone(),
                        kind: limit.kind,
                        over,
                        limit: limit_q,
                        remaining: st.remaining,
                        reset_seconds: st.reset_seconds,
                        soft,
                    });
                }
            }
            None => {
                check.fail(strictest(&rl, &idx));
            }
        }
        if check.pending.is_empty() && self.state == State::Limiting {
            let _ = self.limits_decided(host, true);
        }
    }

    /// All answers are in: refuse (429, or 503 when the service failed and
    /// may not be bypassed) or let the request go on.
    fn limits_decided(&mut self, host: &mut dyn Host, paused: bool) -> Next {
        let Some(check) = self.limits.as_ref() else {
            return Next::Continue;
        };
        let action = check.action;
        let failed = check.failed;
        let over: Vec<&LimitStatus> = check.statuses.iter().filter(|s| s.over).collect();
        let headers = ratelimit::headers(&check.statuses);
        let soft: Vec<String> = check
            .statuses
            .iter()
            .filter(|s| s.soft && !s.over)
            .map(|s| s.name.clone())
            .collect();
        if failed == Some(FailureMode::Deny) {
            host.count(Metric::LimitCalls("failed"), 1);
            self.trace.ratelimit = Some("failed_closed");
            self.refuse(
                host,
                RefusalReason::LimiterUnavailable,
                "the rate-limit service is unavailable",
            );
            return Next::Pause;
        }
        if !over.is_empty() {
            let names: Vec<&str> = over.iter().map(|s| s.name.as_str()).collect();
            let retry = over.iter().filter_map(|s| s.reset_seconds).max();
            let message = format!("limit exhausted: {}", names.join(", "));
            for name in &names {
                host.count(Metric::LimitExceeded((*name).to_string()), 1);
            }
            self.trace.ratelimit = Some("over_limit");
            self.trace.limits_exceeded = names.iter().map(|n| (*n).to_string()).collect();
            let mut extra: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            if let Some(r) = retry {
                extra.push(("retry-after".into(), r.to_string()));
            }
            self.refuse_with(host, RefusalReason::RateLimited, &message, extra);
            return Next::Pause;
        }
        for (k, v) in headers {
            self.response_headers.push((k.to_string(), v));
        }
        if !soft.is_empty() {
            for name in &soft {
                host.count(Metric::LimitSoft(name.clone()), 1);
            }
            self.trace.budget_soft = soft.clone();
            self.audit(
                host,
                AuditEvent::new("budget_soft").detail("limits", soft.join(",")),
            );
            self.response_headers
                .push(("x-tollgate-budget-warning".into(), soft.join(",")));
        }
        if failed == Some(FailureMode::Allow) {
            // Never a silent fail-open: the client and the upstream are told.
            host.count(Metric::Degraded("ratelimit"), 1);
            host.count(Metric::LimitCalls("failed"), 1);
            self.trace.ratelimit = Some("failed_open");
            self.trace.degraded.push("ratelimit".into());
            self.audit(host, AuditEvent::new("ratelimit_failed_open"));
            self.set_req_header(host, DEGRADED_HEADER, Some("ratelimit"));
            self.response_headers
                .push((DEGRADED_HEADER.to_string(), "ratelimit".to_string()));
        } else {
            host.count(Metric::LimitCalls("ok"), 1);
            self.trace.ratelimit = Some("ok");
        }
        self.forward(host, action);
        if paused {
            host.resume_request();
        }
        Next::Continue
    }

    /// After the response: charge what the real usage adds beyond the
    /// reservation (tokens and cost). Fire and forget.
    fn settle(&mut self, host: &mut dyn Host, input: u64, output: u64) {
        let (Some(rl), Some(who)) = (self.policy.rate_limit.clone(), self.identity.clone()) else {
            return;
        };
        let Some(check) = self.limits.as_mut() else {
            return;
        };
        if check.settled || !check.pending.is_empty() {
            return;
        }
        check.settled = true;
        let actual = Charge {
            tokens: input + output,
            cost_micros: ratelimit::cost_micros(rl.price(&check.model), input, output),
        };
        let reserved = check.reserved;
        let model = check.model.clone();
        host.count(Metric::TokensSettled, actual.tokens);
        if rl.price(&model).is_some() {
            self.trace.cost_micros = Some(actual.cost_micros);
        }
        for kind in [LimitKind::Tokens, LimitKind::Cost] {
            let (a, r) = (actual.amount(kind), reserved.amount(kind));
            if a < r {
                host.count(Metric::LimitUnsettled(kind.as_str()), r - a);
                continue;
            }
            if a == r {
                continue;
            }
            let descriptors: Vec<ratelimit::Descriptor> = rl
                .limits
                .iter()
                .filter(|l| l.kind == kind)
                .filter_map(|l| rl.descriptor(l, &who, &model))
                .collect();
            if descriptors.is_empty() {
                continue;
            }
            let hits = u32::try_from(a - r).unwrap_or(u32::MAX);
            let msg = proto::encode_request(&rl.domain, &descriptors, hits);
            let sent = host.dispatch_grpc(
                &rl.cluster,
                ratelimit::SERVICE,
                ratelimit::METHOD,
                &msg,
                rl.timeout_ms,
            );
            host.count(
                Metric::LimitCalls(if sent.is_ok() {
                    "settle"
                } else {
                    "settle_failed"
                }),
                1,
            );
        }
    }

    /// Set a request header, unless the headers already went on (the host
    /// refuses that, and proxy-wasm's SDK would trap on the refusal).
    fn set_req_header(&self, host: &mut dyn Host, name: &str, value: Option<&str>) {
        if !self.req_headers_sent {
            host.set_request_header(name, value);
        }
    }

    /// [`RequestFlow::set_req_header`] for the response.
    fn set_resp_header(&self, host: &mut dyn Host, name: &str, value: Option<&str>) {
        if !self.resp_headers_sent {
            host.set_response_header(name, value);
        }
    }

    fn expose(&mut self, name: &str, value: &str) {
        if self.policy.expose_findings {
            self.response_headers
                .push((name.to_string(), value.to_string()));
        }
    }

    fn forward(&mut self, host: &mut dyn Host, action: Action) {
        let metric = match action {
            Action::Allow => Metric::Allowed,
            Action::Flag => Metric::Flagged,
            Action::Redact => Metric::Redacted,
            // Blocks never forward; counted by `refuse`.
            Action::Block => return,
        };
        host.count(metric, 1);
        if !self.shadow.is_empty() {
            let value = self.shadow.join(",");
            self.set_req_header(host, SHADOW_HEADER, Some(&value));
            self.expose(SHADOW_HEADER, &value);
        }
        self.trace.action = Some(action);
        self.trace.forwarded_us = Some(host.now_micros());
        self.state = State::Forwarded;
    }

    /// An access decision against the request: enforced (refused; `true`)
    /// or, when the profile puts it in shadow mode, only recorded.
    fn access_denied(
        &mut self,
        host: &mut dyn Host,
        v: Violation,
        reason: fn(&'static str) -> RefusalReason,
    ) -> bool {
        if self.profile.as_ref().is_some_and(|p| p.shadowed(&[v.kind])) {
            self.record_shadow(host, v.kind, "block", &access_rule(v.kind));
            return false;
        }
        self.block_findings.push((v.kind, access_rule(v.kind)));
        self.refuse(host, reason(v.kind), &v.message);
        true
    }

    /// An access check that flags the request (it goes on, named in the
    /// findings header and the audit trail).
    fn access_flag(&mut self, host: &mut dyn Host, kind: &'static str) {
        if self.profile.as_ref().is_some_and(|p| p.shadowed(&[kind])) {
            self.record_shadow(host, kind, "flag", &access_rule(kind));
            return;
        }
        if !self.access_flags.contains(&kind) {
            self.access_flags.push(kind);
            self.trace.access.push(format!("{kind}:flag"));
            let rule = access_rule(kind);
            self.audit(
                host,
                AuditEvent::new("access_flag")
                    .reason(kind)
                    .finding(kind, &rule),
            );
        }
    }

    /// The profile's checks of a whole JSON answer: system prompt leakage.
    /// `Some(kind)` when the answer must be refused.
    fn access_response(&mut self, host: &mut dyn Host, body: &[u8]) -> Option<&'static str> {
        let tools = self.profile.as_ref().and_then(Profile::tools);
        if self.leak.is_none() && tools.is_none() {
            return None;
        }
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        if let Some(t) = tools {
            if let Err(v) = t.check_response(self.api, &value) {
                let rule = format!("tools.{}", v.rule);
                let shadow = self
                    .profile
                    .as_ref()
                    .is_some_and(|p| p.shadowed(&[v.kind, v.tool.as_str()]));
                if shadow {
                    self.record_shadow(host, v.kind, "block", &rule);
                } else {
                    self.trace.response_action = Some(Action::Block);
                    self.trace.block_reason = Some(v.kind.to_string());
                    let ev = AuditEvent::new("response_blocked")
                        .reason(v.kind)
                        .status(502)
                        .finding(v.kind, &rule)
                        .detail("tool", v.tool.clone())
                        .detail("detail", v.detail.clone());
                    self.audit(host, ev);
                    return Some(v.kind);
                }
            }
        }
        let leak = self.leak.clone()?;
        let scan_unknown = self.policy.unknown_json == crate::config::UnknownJson::ScanStrings;
        let segs = crate::api::extract(self.api, Direction::Response, &value, scan_unknown);
        let text: Vec<&str> = segs.iter().map(|s| s.text.as_str()).collect();
        let kind = leak.check(&text.join("\n"))?;
        self.response_leak(host, kind, leak.action)
    }

    /// The answer without the canary in its echo of `instructions`
    /// (Responses API); `None` when it has none.
    fn unecho(&self, body: &[u8]) -> Option<Vec<u8>> {
        let leak = self.leak.as_ref()?;
        let (token, original) = (leak.canary.as_ref()?, leak.instructions.as_ref()?);
        let text = std::str::from_utf8(body).ok()?;
        if !text.contains(token.as_str()) {
            return None;
        }
        let mut v: serde_json::Value = serde_json::from_str(text).ok()?;
        crate::access::unecho_instructions(&mut v, token, original)
            .then(|| serde_json::to_vec(&v).ok())
            .flatten()
    }

    /// A leak found in the answer: refused (`Some`), flagged, or recorded in shadow mode.
    fn response_leak(
        &mut self,
        host: &mut dyn Host,
        kind: &'static str,
        action: Action,
    ) -> Option<&'static str> {
        if self.profile.as_ref().is_some_and(|p| p.shadowed(&[kind])) {
            self.record_shadow(host, kind, action.as_str(), &access_rule(kind));
            return None;
        }
        self.audit_leak(host, kind, action);
        if action == Action::Block {
            self.trace.response_action = Some(Action::Block);
            self.trace.block_reason = Some(kind.to_string());
            return Some(kind);
        }
        if self.policy.expose_findings {
            self.set_resp_header(host, RESPONSE_FINDINGS_HEADER, Some(kind));
        }
        None
    }

    /// A leak acted on (not shadowed), in a JSON answer or a stream: named
    /// in the trace's access decisions and audited as `response_leak`.
    fn audit_leak(&mut self, host: &mut dyn Host, kind: &'static str, action: Action) {
        self.trace
            .access
            .push(format!("{kind}:{}", action.as_str()));
        let ev = AuditEvent::new("response_leak")
            .reason(kind)
            .finding(kind, &access_rule(kind))
            .detail("action", action.as_str());
        self.audit(host, ev);
    }

    /// A decision made in shadow mode: counted, audited, traced, and named
    /// to the upstream in `x-tollgate-shadow`; not enforced.
    fn record_shadow(&mut self, host: &mut dyn Host, kind: &'static str, would: &str, rule: &str) {
        host.count(Metric::Shadow(kind), 1);
        let entry = format!("{kind}:{would}");
        if !self.shadow.contains(&entry) && self.shadow.len() < MAX_SHADOW {
            self.shadow.push(entry.clone());
            self.trace.shadow.push(entry);
        }
        let profile = self
            .profile
            .as_ref()
            .map_or("default", Profile::name)
            .to_string();
        let ev = AuditEvent::new("shadow")
            .reason(kind)
            .finding(kind, rule)
            .detail("action", would.to_string())
            .detail("profile", profile);
        self.audit(host, ev);
    }

    /// The request checks and rewrites of the caller's profile: model,
    /// output cap, prompt size, messages. `Err` when the request was
    /// refused; `Ok(Some(body))` when the profile rewrote it (`current`:
    /// the body as rewritten so far, if it was).
    fn access_request(
        &mut self,
        host: &mut dyn Host,
        body: &[u8],
        current: Option<&[u8]>,
        scan: &mut crate::scan::BodyScan,
    ) -> Result<Option<Vec<u8>>, ()> {
        let Some(profile) = self.profile.clone() else {
            return Ok(None);
        };
        if let Err(v) = profile.check_model(scan.model.as_deref()) {
            if self.access_denied(host, v, RefusalReason::Forbidden) {
                return Err(());
            }
        }
        let chars: u64 = scan
            .segments
            .iter()
            .map(|s| s.text.chars().count() as u64)
            .sum();
        if let Some(max) = profile.max_prompt_chars().filter(|m| chars > *m) {
            let v = Violation {
                kind: "PROMPT_TOO_LARGE",
                message: format!("the prompt has {chars} characters, more than the {max} allowed"),
            };
            if self.access_denied(host, v, RefusalReason::OverCap) {
                return Err(());
            }
        }
        if let Some(max) = profile.max_prompt_tokens() {
            let model = scan.model.as_deref().unwrap_or_default();
            let tokens: u64 = scan
                .segments
                .iter()
                .map(|s| crate::tokens::count(model, &s.text).tokens)
                .sum();
            self.prompt_tokens = Some(tokens);
            if tokens > max {
                let v = Violation {
                    kind: "PROMPT_TOO_LARGE",
                    message: format!("the prompt has {tokens} tokens, more than the {max} allowed"),
                };
                if self.access_denied(host, v, RefusalReason::OverCap) {
                    return Err(());
                }
            }
        }
        let source = current.unwrap_or(body);
        let mut value: Option<serde_json::Value> = None;
        let parsed = |value: &mut Option<serde_json::Value>| -> bool {
            if value.is_none() {
                *value = serde_json::from_slice(source).ok();
            }
            value.is_some()
        };
        if let Some(max) = profile.max_messages() {
            if parsed(&mut value) {
                let n = value.as_ref().map_or(0, message_count);
                if n > max {
                    let v = Violation {
                        kind: "TOO_MANY_MESSAGES",
                        message: format!(
                            "the request has {n} messages, more than the {max} allowed"
                        ),
                    };
                    if self.access_denied(host, v, RefusalReason::OverCap) {
                        return Err(());
                    }
                }
            }
        }
        if let Some(f) = profile.flooding() {
            let text: Vec<&str> = scan
                .segments
                .iter()
                .filter(|s| s.channel != crate::detect::Channel::Assistant)
                .map(|s| s.text.as_str())
                .collect();
            let r = crate::detect::consumption::repetition(&text.join("\n"));
            if crate::detect::consumption::is_flood(
                &r,
                f.min_words,
                f.max_top_share,
                f.min_distinct,
            ) {
                let v = Violation {
                    kind: "REPETITION",
                    message: "the prompt is repetitive context flooding".to_string(),
                };
                if f.action == Action::Block {
                    if self.access_denied(host, v, RefusalReason::OverCap) {
                        return Err(());
                    }
                } else {
                    self.access_flag(host, v.kind);
                }
            }
        }
        let mut changed = false;
        if let Some(sp) = profile.system_prompt() {
            let system: Vec<&str> = scan
                .segments
                .iter()
                .filter(|s| s.channel == crate::detect::Channel::System)
                .map(|s| s.text.as_str())
                .collect();
            let index = (sp.leak_threshold > 0.0 || sp.leak_run_words > 0)
                .then(|| crate::detect::leak::PromptIndex::new(&system.join("\n"), sp.ngram))
                .filter(|i| !i.is_empty());
            let mut canary = None;
            let mut instructions = None;
            if sp.canary && parsed(&mut value) {
                if profile.shadowed(&["CANARY"]) {
                    self.record_shadow(host, "CANARY", "insert", "access.canary");
                } else if let Some(v) = value.as_mut() {
                    if self.api == ApiKind::OpenaiResponses {
                        instructions = Some(
                            v.get("instructions")
                                .cloned()
                                .unwrap_or(serde_json::Value::Null),
                        );
                    }
                    let seed = host.now_micros().to_le_bytes();
                    let token = crate::detect::leak::canary_token(&seed, &self.request_id);
                    if crate::detect::leak::insert_canary(self.api, v, &token) {
                        changed = true;
                        canary = Some(token);
                        host.count(Metric::AccessRewrites("canary"), 1);
                        self.trace.access.push("CANARY:added".into());
                    }
                }
            }
            let instructions = instructions.filter(|_| canary.is_some());
            if index.is_some() || canary.is_some() {
                self.leak = Some(Rc::new(LeakCheck {
                    canary,
                    index,
                    threshold: sp.leak_threshold,
                    run_words: sp.leak_run_words,
                    action: sp.action,
                    instructions,
                }));
            }
        }
        if let Some(tp) = profile.tools() {
            if parsed(&mut value) {
                let shadow = profile.shadowed(&["TOOL_NOT_ALLOWED"]);
                let mut copy = if shadow { value.clone() } else { None };
                let target = if shadow {
                    copy.as_mut()
                } else {
                    value.as_mut()
                };
                let r = target
                    .map(|v| tp.filter_request(self.api, v))
                    .unwrap_or_default();
                if !r.refused.is_empty() {
                    let shown: Vec<String> = r
                        .refused
                        .iter()
                        .map(|n| n.chars().take(64).collect())
                        .collect();
                    let v = Violation {
                        kind: "TOOL_NOT_ALLOWED",
                        message: format!("tools not allowed for the caller: {}", shown.join(", ")),
                    };
                    if self.access_denied(host, v, RefusalReason::Forbidden) {
                        return Err(());
                    }
                } else if r.changed && shadow {
                    self.record_shadow(host, "TOOL_NOT_ALLOWED", "drop", "access.tools");
                } else if r.changed {
                    changed = true;
                    host.count(Metric::AccessRewrites("tools"), 1);
                    self.trace
                        .access
                        .push(format!("TOOLS:drop:{}", r.dropped.len()));
                    let names: Vec<String> = r
                        .dropped
                        .iter()
                        .map(|n| n.chars().take(64).collect())
                        .collect();
                    let ev = AuditEvent::new("tools_dropped")
                        .reason("TOOL_NOT_ALLOWED")
                        .detail("tools", names.join(","));
                    self.audit(host, ev);
                }
            }
        }
        if let Some((cap, mode)) = profile.max_tokens() {
            let asked = scan.max_tokens;
            if asked.is_some_and(|a| a > cap) && mode == crate::config::CapMode::Refuse {
                let v = Violation {
                    kind: "MAX_TOKENS",
                    message: format!(
                        "the request asks for {} output tokens, more than the {cap} allowed",
                        asked.unwrap_or_default()
                    ),
                };
                if self.access_denied(host, v, RefusalReason::OverCap) {
                    return Err(());
                }
            } else if asked.is_none_or(|a| a > cap) && parsed(&mut value) {
                let shadow = profile.shadowed(&["MAX_TOKENS"]);
                if shadow {
                    self.record_shadow(host, "MAX_TOKENS", "clamp", "access.max_tokens");
                } else if let Some(v) = value.as_mut() {
                    if clamp_max_tokens(self.api, v, cap) {
                        changed = true;
                        scan.max_tokens = Some(cap);
                        host.count(Metric::AccessRewrites("max_tokens"), 1);
                        self.trace.access.push(format!("MAX_TOKENS:clamp:{cap}"));
                    }
                }
            }
        }
        if !changed {
            return Ok(None);
        }
        Ok(value.and_then(|v| serde_json::to_vec(&v).ok()))
    }

    fn refuse_too_large(&mut self, host: &mut dyn Host) {
        let msg = format!(
            "request body exceeds the limit of {} bytes",
            self.policy.max_body_bytes
        );
        self.refuse(host, RefusalReason::BodyTooLarge, &msg);
    }

    fn refuse(&mut self, host: &mut dyn Host, reason: RefusalReason, message: &str) {
        self.refuse_with(host, reason, message, Vec::new());
    }

    fn refuse_with(
        &mut self,
        host: &mut dyn Host,
        reason: RefusalReason,
        message: &str,
        extra: Vec<(String, String)>,
    ) {
        let mut reply = error_reply(self.api.error_style(), reason, message, &self.request_id);
        reply.headers.push((ACTION_HEADER.into(), "block".into()));
        reply.headers.extend(extra);
        host.count(Metric::Blocked(reason.tag()), 1);
        host.count(Metric::LocalReply(reply.status), 1);
        self.trace.status = Some(reply.status);
        self.trace.block_reason = Some(reason.tag().to_string());
        let event = match reason {
            RefusalReason::RateLimited => "limit_exceeded",
            _ => "request_blocked",
        };
        let mut ev = AuditEvent::new(event)
            .reason(reason.tag())
            .status(reply.status);
        for (kind, rule) in std::mem::take(&mut self.block_findings) {
            ev = ev.finding(kind, &rule);
        }
        if !self.trace.limits_exceeded.is_empty() {
            ev = ev.detail("limits", self.trace.limits_exceeded.join(","));
        }
        self.audit(host, ev);
        host.send_reply(&reply);
        self.state = State::Replied;
    }

    /// `on_log`: the exchange is over (also after a local reply, a reset or
    /// a client gone mid-stream). Emits its span when traces are configured.
    pub fn on_log(&mut self, host: &mut dyn Host) {
        if self.logged {
            return;
        }
        self.logged = true;
        if self.trace.status.is_none() {
            self.trace.status = host
                .property(&["response", "code"])
                .and_then(|c| c.trim().parse().ok())
                .filter(|c| *c > 0);
        }
        if self.trace.cost_micros.is_none() {
            if let (Some(rl), Some(i), Some(o)) = (
                self.policy.rate_limit.as_ref(),
                self.trace.input_tokens,
                self.trace.output_tokens,
            ) {
                let model = self.trace.model_requested.clone().unwrap_or_default();
                if let Some(price) = rl.price(&model) {
                    self.trace.cost_micros = Some(ratelimit::cost_micros(Some(price), i, o));
                }
            }
        }
        self.anomaly_end(host);
        // A stream that never got its request headers (reset at once) has no exchange to report.
        if self.policy.traces.is_some() && self.state != State::Start {
            let trace = std::mem::take(&mut *self.trace);
            let now = host.now_micros();
            host.emit_span(trace.finish(now));
        }
    }

    /// The tenant the anomaly detector counts (all traffic is one tenant without identity).
    fn anomaly_tenant(&self) -> String {
        self.identity
            .as_ref()
            .map_or_else(|| "default".to_string(), |i| i.tenant.clone())
    }

    /// Tell the anomaly detector about this request and act on its verdict;
    /// `true` when the request was refused.
    fn check_anomaly(
        &mut self,
        host: &mut dyn Host,
        model: Option<&str>,
        text_bytes: usize,
        max_tokens: Option<u64>,
    ) -> bool {
        let policy = self.policy.clone();
        let Some(ap) = policy.anomaly.as_ref() else {
            return false;
        };
        let prompt = self
            .prompt_tokens
            .unwrap_or_else(|| (text_bytes as u64).div_ceil(4));
        let rl = self.policy.rate_limit.as_ref();
        let output = if text_bytes == 0 {
            0
        } else {
            max_tokens.unwrap_or_else(|| rl.map_or(0, |r| r.default_max_tokens))
        };
        let price = rl.and_then(|r| r.price(model.unwrap_or_default()));
        let cost = ratelimit::cost_micros(price, prompt, output);
        let obs = crate::anomaly::Observation {
            requests: 1,
            tokens: prompt + output,
            cost_micros: cost,
            injection: u64::from(self.injection_seen),
            ..Default::default()
        };
        let tenant = self.anomaly_tenant();
        let now = host.now_micros();
        let result = crate::anomaly::observe(ap, host, &tenant, now, &obs, true);
        self.anomaly_observed = Some((prompt + output, cost));
        if result.untracked {
            host.count(Metric::AnomalyUntracked, 1);
        }
        if result.contention || result.write_failed {
            host.count(Metric::AnomalyContention, 1);
        }
        let Some(verdict) = result.verdict else {
            return false;
        };
        let names: Vec<&'static str> = verdict.signals.iter().map(|a| a.signal.as_str()).collect();
        for name in &names {
            host.count(Metric::Anomalies(tenant.clone(), name), 1);
        }
        let joined = if names.is_empty() {
            "blocked".to_string()
        } else {
            names.join(",")
        };
        self.trace.anomalies = vec![format!("{}:{joined}", verdict.action.as_str())];
        let detail: Vec<String> = verdict
            .signals
            .iter()
            .map(|a| format!("{}={:.0}>{:.0}", a.signal.as_str(), a.value, a.threshold))
            .collect();
        let ev = AuditEvent::new("anomaly")
            .reason(joined.clone())
            .detail("action", verdict.action.as_str())
            .detail("signals", detail.join(","));
        self.audit(host, ev);
        if verdict.refuses() {
            let message = format!("anomalous traffic for this tenant: {joined}");
            let extra = vec![(
                "retry-after".to_string(),
                verdict.retry_after_secs.max(1).to_string(),
            )];
            self.refuse_with(host, RefusalReason::Anomaly, &message, extra);
            return true;
        }
        self.set_req_header(host, ANOMALY_HEADER, Some(&joined));
        self.expose(ANOMALY_HEADER, &joined);
        false
    }

    /// The exchange ended: its response status and the usage beyond what
    /// the request told the anomaly detector.
    fn anomaly_end(&mut self, host: &mut dyn Host) {
        let policy = self.policy.clone();
        let (Some(ap), Some((tokens0, cost0))) = (policy.anomaly.as_ref(), self.anomaly_observed)
        else {
            return;
        };
        if self.state == State::Replied {
            // The filter's own refusal is not the upstream's answer.
            return;
        }
        let tokens = self
            .trace
            .input_tokens
            .zip(self.trace.output_tokens)
            .map_or(0, |(i, o)| (i + o).saturating_sub(tokens0));
        let cost = self
            .trace
            .cost_micros
            .map_or(0, |c| c.saturating_sub(cost0));
        let status = self.trace.status.unwrap_or(0);
        let obs = crate::anomaly::Observation {
            responses: 1,
            errors: u64::from(status > 0 && crate::anomaly::is_error_status(status)),
            tokens,
            cost_micros: cost,
            ..Default::default()
        };
        let tenant = self.anomaly_tenant();
        let now = host.now_micros();
        let r = crate::anomaly::observe(ap, host, &tenant, now, &obs, false);
        if r.contention || r.write_failed {
            host.count(Metric::AnomalyContention, 1);
        }
    }

    /// The trace's start: ids (joining the caller's trace when it sent a
    /// W3C `traceparent`), method, path, API and the key's hash prefix.
    fn start_trace(&mut self, host: &mut dyn Host, path: &str) {
        let now = host.now_micros();
        let t = &mut self.trace;
        t.start_us = now;
        t.request_id = self.request_id.clone();
        t.api = Some(self.api);
        t.method = host.request_header(":method").unwrap_or_default();
        t.path = path.chars().take(256).collect();
        let (trace_id, span_id) = telemetry::span_ids(&self.request_id, now);
        t.span_id = span_id;
        match host
            .request_header("traceparent")
            .and_then(|v| telemetry::parse_traceparent(&v))
        {
            Some((tid, parent)) => {
                t.trace_id = tid;
                t.parent_span_id = Some(parent);
            }
            None => t.trace_id = trace_id,
        }
        if self.policy.traces.is_some() {
            t.module_sha256 = self.policy.module_sha256.clone();
        }
        if self.policy.traces.is_some() || self.policy.audit_log {
            let header = |name: &str| host.request_header(name);
            t.key_hash = ratelimit::bearer_key(&header).map(|k| telemetry::key_hash_prefix(&k));
        }
    }

    /// The request scan's facts for the trace: model, stream, cap, findings, text.
    fn trace_request_scan(&mut self, host: &mut dyn Host, scan: &crate::scan::BodyScan) {
        let now = host.now_micros();
        self.trace.model_requested = scan.model.as_ref().map(|m| m.chars().take(128).collect());
        self.trace.stream = scan.stream.is_some();
        self.trace.max_tokens = scan.max_tokens;
        self.injection_seen = scan
            .findings
            .iter()
            .any(|f| f.finding.family == crate::detect::Family::Injection);
        if let Some(text) = self.trace_scan(now, "request", scan) {
            self.trace.input_content = Some(text);
        }
    }

    /// A scanned body's findings as span events (when tracing) and its
    /// redacted text (when the trace keeps texts).
    fn trace_scan(
        &mut self,
        now: u64,
        direction: &'static str,
        scan: &crate::scan::BodyScan,
    ) -> Option<String> {
        self.policy.traces.as_ref()?;
        for f in &scan.findings {
            let loc = scan
                .segments
                .get(f.segment)
                .map(|s| location(&s.path))
                .unwrap_or_default();
            self.trace.finding(now, direction, &loc, &f.finding);
        }
        let max = self.content_max()?;
        Some(redacted_messages(&scan.segments, &scan.findings, max))
    }

    /// The most bytes of each text the trace keeps, when it keeps texts.
    fn content_max(&self) -> Option<usize> {
        self.policy
            .traces
            .as_ref()
            .filter(|t| t.content == Content::Redacted)
            .map(|t| t.max_content_bytes)
    }

    /// A stream was ended by the filter (a finding, a budget, a bad stream).
    fn stream_blocked(
        &mut self,
        host: &mut dyn Host,
        kind: &'static str,
        rules: Vec<(&'static str, String)>,
    ) {
        self.trace.response_action = Some(Action::Block);
        self.trace.block_reason = Some(kind.to_string());
        let mut ev = AuditEvent::new("stream_ended").reason(kind);
        for (k, r) in rules {
            ev = ev.finding(k, &r);
        }
        self.audit(host, ev);
    }

    /// One security decision: counted, logged (`audit.log`), and a span event.
    fn audit(&mut self, host: &mut dyn Host, ev: AuditEvent) {
        let now = host.now_micros();
        host.count(Metric::AuditEvents(ev.event), 1);
        if self.policy.audit_log {
            host.audit(&ev.line(Some(&self.trace), now));
        }
        if self.policy.traces.is_some() {
            self.trace.event("tollgate.audit", now, ev.attrs());
        }
    }
}

/// The rule id of an access decision of type `kind` (`access.<kind>`).
fn access_rule(kind: &str) -> String {
    format!("access.{}", kind.to_ascii_lowercase())
}

/// The strictest failure mode of the limits `idx` (deny wins).
fn strictest(rl: &ratelimit::RateLimitPolicy, idx: &[usize]) -> FailureMode {
    if idx
        .iter()
        .filter_map(|i| rl.limits.get(*i))
        .any(|l| l.failure_mode == FailureMode::Deny)
    {
        FailureMode::Deny
    } else {
        FailureMode::Allow
    }
}

/// A `content-length` header's value, when it is a number.
fn content_length(value: Option<String>) -> Option<u64> {
    value.and_then(|v| v.trim().parse::<u64>().ok())
}

/// `body` (a JSON object) with `"stream_options":{"include_usage":true}`
/// added as its last member; every other byte unchanged.
fn with_stream_usage(body: &[u8]) -> Option<Vec<u8>> {
    let end = body.iter().rposition(|b| *b == b'}')?;
    let (head, tail) = (body.get(..end)?, body.get(end..)?);
    let mut out = Vec::with_capacity(body.len() + 40);
    out.extend_from_slice(head);
    out.extend_from_slice(b",\"stream_options\":{\"include_usage\":true}");
    out.extend_from_slice(tail);
    Some(out)
}

/// Fine-tuning jobs and file uploads (OpenAI `/v1/fine_tuning/...`,
/// `/v1/files`; any prefix before `/v1/`).
fn is_training_path(path: &str) -> bool {
    let p = path.split(['?', '#']).next().unwrap_or(path);
    p.contains("/v1/fine_tuning/")
        || p.ends_with("/v1/fine_tuning")
        || p.ends_with("/v1/files")
        || p.contains("/v1/uploads")
}

/// Messages of a request: `messages` (Chat, Anthropic) or `input` items (Responses).
fn message_count(v: &serde_json::Value) -> u64 {
    ["messages", "input"]
        .iter()
        .find_map(|k| v.get(*k).and_then(serde_json::Value::as_array))
        .map_or(0, |a| a.len() as u64)
}

/// Clamp the request's output cap to `cap`, or set one where it has none;
/// `true` when the body changed. Chat gets `max_completion_tokens`,
/// Responses `max_output_tokens`, Completions and Anthropic `max_tokens`.
fn clamp_max_tokens(api: ApiKind, v: &mut serde_json::Value, cap: u64) -> bool {
    let Some(obj) = v.as_object_mut() else {
        return false;
    };
    let mut changed = false;
    let mut present = false;
    for key in ["max_tokens", "max_completion_tokens", "max_output_tokens"] {
        if let Some(n) = obj.get(key).and_then(serde_json::Value::as_u64) {
            present = true;
            if n > cap {
                obj.insert(key.to_string(), cap.into());
                changed = true;
            }
        }
    }
    if !present {
        let key = match api {
            ApiKind::OpenaiChat => "max_completion_tokens",
            ApiKind::OpenaiResponses => "max_output_tokens",
            ApiKind::OpenaiCompletions | ApiKind::AnthropicMessages => "max_tokens",
            ApiKind::OpenaiEmbeddings | ApiKind::UnknownJson => return false,
        };
        obj.insert(key.to_string(), cap.into());
        changed = true;
    }
    changed
}

/// `text/event-stream`, any parameters.
pub fn is_event_stream(ct: &str) -> bool {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("text/event-stream")
}

/// `application/json`, `application/*+json`, `text/json`, any parameters.
pub fn is_json_content_type(ct: &str) -> bool {
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || mime == "text/json" || mime.ends_with("+json")
}

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace_tests;
