//! The per-request state machine. The plugin's `GuardStream` forwards each
//! proxy-wasm callback here; every decision is made and tested in this file.
//!
//! Request path: pause at the headers, buffer the body until it is complete
//! (end of stream, or the trailers for HTTP/2 with trailers), scan it, then
//! forward (maybe rewritten or flagged) or answer locally. After a local reply
//! the flow never resumes.

use crate::api::{ApiKind, Direction};
use crate::config::{MalformedJson, Policy};
use crate::detect::Action;
use crate::detect::OnTimeout;
use crate::host::Host;
use crate::metrics::Metric;
use crate::redact::Pseudonyms;
use crate::reply::{error_reply, RefusalReason};
use crate::scan::{findings_header, restore_body, scan_body, scan_body_timed};
use crate::sse::{StreamApi, StreamScanner, Usage};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the request headers.
    Start,
    /// Holding the request while the body arrives.
    Buffering,
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
        }
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

        if end_of_stream {
            self.forward(host, Action::Allow);
            return Next::Continue;
        }
        if let Some(ct) = host.request_header("content-type") {
            if !is_json_content_type(&ct) {
                host.count(Metric::NonJsonPassthrough, 1);
                self.forward(host, Action::Allow);
                return Next::Continue;
            }
        }
        if content_length(host.request_header("content-length"))
            .is_some_and(|len| len > self.policy.max_body_bytes as u64)
        {
            self.refuse_too_large(host);
            return Next::Pause;
        }
        self.state = State::Buffering;
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
            State::Replied => return Next::Pause,
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
            State::Replied => Next::Pause,
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
        if self.state != State::Forwarded || end_of_stream {
            return Next::Continue;
        }
        let wanted =
            !self.pseudonyms.is_empty() || self.policy.scans_responses() || self.strip_usage;
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
            self.stream = Some(Box::new(StreamScanner::new(
                api,
                self.policy.clone(),
                pseudonyms,
                self.strip_usage,
            )));
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
        Next::Pause
    }

    /// `on_http_response_body`: `body_size` is the whole buffered size so far.
    pub fn on_response_body(
        &mut self,
        host: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Next {
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
        let mut out = Vec::with_capacity(chunk.len() + 64);
        scanner.push(&chunk, &mut out);
        if end_of_stream {
            scanner.finish(&mut out);
        }
        if out != chunk {
            host.set_response_body(&out);
        }
        if !self.stream_block_counted {
            if let Some(kind) = scanner.outcome().blocked {
                self.stream_block_counted = true;
                host.count(Metric::ResponsesBlocked(kind), 1);
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
        self.usage = Some(usage);
    }

    fn finish_response(&mut self, host: &mut dyn Host) -> Next {
        self.response = ResponseState::Done;
        let body = host
            .response_body(0, self.response_size)
            .unwrap_or_default();
        if body.iter().all(u8::is_ascii_whitespace) {
            return Next::Continue;
        }
        let mut out: Option<Vec<u8>> = None;
        if self.policy.scans_responses() {
            let scan = match scan_body(&self.policy, self.api, Direction::Response, &body) {
                Ok(scan) => scan,
                Err(_) => {
                    host.count(Metric::ResponsesUnscanned("malformed"), 1);
                    return Next::Continue;
                }
            };
            host.count(Metric::ResponsesScanned, 1);
            match scan.action {
                Action::Block => {
                    self.replace_response_with_refusal(host, scan.block_kind());
                    return Next::Continue;
                }
                Action::Redact => out = scan.rewritten,
                Action::Flag | Action::Allow => {}
            }
            if scan.action != Action::Allow && self.policy.expose_findings {
                let header = findings_header(scan.findings.iter().map(|f| &f.finding));
                host.set_response_header(RESPONSE_FINDINGS_HEADER, Some(&header));
            }
        }
        let current = out.as_deref().unwrap_or(&body);
        if let Some(restored) = restore_body(&self.policy, self.api, current, &self.pseudonyms) {
            out = Some(restored);
        }
        if let Some(new_body) = out {
            host.count(Metric::ResponsesRewritten, 1);
            host.set_response_body(&new_body);
            if host.response_header("content-length").is_some() {
                host.set_response_header("content-length", Some(&new_body.len().to_string()));
            }
        }
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
        host.set_response_header(":status", Some("502"));
        host.set_response_header("content-type", Some("application/json"));
        host.set_response_header("content-length", Some(&reply.body.len().to_string()));
        host.set_response_header(ACTION_HEADER, Some("block"));
        host.set_response_body(&reply.body);
    }

    fn finish_request(&mut self, host: &mut dyn Host) -> Next {
        let body = if self.body_size == 0 {
            Vec::new()
        } else {
            host.request_body(0, self.body_size).unwrap_or_default()
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            // Nothing to scan; the upstream answers an empty body itself.
            self.forward(host, Action::Allow);
            return Next::Continue;
        }
        let started = host.now_micros();
        let clock = || host.now_micros();
        let result = scan_body_timed(&self.policy, self.api, Direction::Request, &body, &clock);
        host.record(
            Metric::DetectorTimeUs,
            host.now_micros().saturating_sub(started),
        );
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
                        host.set_request_header(FINDINGS_HEADER, Some("MALFORMED_JSON"));
                        self.expose(ACTION_HEADER, "flag");
                        self.expose(FINDINGS_HEADER, "MALFORMED_JSON");
                        self.forward(host, Action::Flag);
                        Next::Continue
                    }
                };
            }
        };
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
            }
            host.set_request_header(DEGRADED_HEADER, Some(&value));
            // Not sensitive, and the client should know the check was partial.
            self.response_headers
                .push((DEGRADED_HEADER.to_string(), value));
        }
        let header = findings_header(scan.findings.iter().map(|f| &f.finding));
        match scan.action {
            Action::Block => {
                let kind = scan.block_kind();
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
            }
            Action::Flag | Action::Allow => {}
        }
        let mut new_body = if scan.action == Action::Redact {
            scan.rewritten.take()
        } else {
            None
        };
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
            if host.request_header("content-length").is_some() {
                host.set_request_header("content-length", Some(&new_body.len().to_string()));
            }
        }
        if scan.action != Action::Allow {
            host.set_request_header(FINDINGS_HEADER, Some(&header));
            host.set_request_header(ACTION_HEADER, Some(scan.action.as_str()));
            self.expose(ACTION_HEADER, scan.action.as_str());
            self.expose(FINDINGS_HEADER, &header);
        }
        self.forward(host, scan.action);
        Next::Continue
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
        self.state = State::Forwarded;
    }

    fn refuse_too_large(&mut self, host: &mut dyn Host) {
        let msg = format!(
            "request body exceeds the limit of {} bytes",
            self.policy.max_body_bytes
        );
        self.refuse(host, RefusalReason::BodyTooLarge, &msg);
    }

    fn refuse(&mut self, host: &mut dyn Host, reason: RefusalReason, message: &str) {
        let mut reply = error_reply(self.api.error_style(), reason, message, &self.request_id);
        reply.headers.push((ACTION_HEADER.into(), "block".into()));
        host.count(Metric::Blocked(reason.tag()), 1);
        host.count(Metric::LocalReply(reply.status), 1);
        host.send_reply(&reply);
        self.state = State::Replied;
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
mod tests;
