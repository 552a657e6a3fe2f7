//! One streamed response, scanned event by event.
//!
//! Bytes go in as the upstream sends them ([`StreamScanner::push`]); what
//! comes out is what the client may see now. Each event is parsed, its text
//! pieces appended to their stream's text ([`StreamKey`]), and the response
//! detectors run on the part of that text not yet decided (with up to
//! [`CONTEXT_BYTES`] of decided text before it, for context words). Text is
//! decided up to where [`hold_from`] says nothing can still be completing;
//! an event goes out once all its text is decided, in order, rewritten if a
//! redaction or a restored placeholder touches it. A redaction that spans
//! events is written into the event where the value starts; the rest of the
//! value is dropped from the events after it.
//!
//! Tool-call arguments are held until the call ends, then checked whole. A
//! finding whose action is `block` ends the stream: the events still held
//! are dropped, the API's error event is sent, and everything after it is
//! swallowed.
//!
//! With a tool policy ([`StreamScanner::with_tools`]) each tool call's
//! name is recorded from the event that opens it ([`named_tools`]), and the
//! complete call is checked ([`ToolPolicy::check_call`]) before any event
//! of it goes out: a violation ends the stream the same way.
//!
//! Decisions are made per event, so the output does not depend on how the
//! bytes were split into chunks.

use super::formats::{
    classify, error_event, named_tools, rebuild_with, remove_member, with_data, Piece, StreamApi,
    StreamErrorKind, StreamKey,
};
use super::parser::{SseEvent, SseParser, DEFAULT_MAX_EVENT_BYTES};
use super::window::hold_from;
use crate::agency::{ToolPolicy, ToolViolation, TOOL_ARGS_INVALID, TOOL_NOT_ALLOWED};
use crate::api::Direction;
use crate::config::Policy;
use crate::detect::normalize::floor_boundary;
use crate::detect::{Action, Channel, Finding, ScanText};
use crate::redact::{replacement, Pseudonyms};
use std::collections::VecDeque;
use std::rc::Rc;

/// Decided text kept in front of the undecided part when detecting, for
/// context words ("card number: ...") and matches that started just before.
pub const CONTEXT_BYTES: usize = 64;

/// Most text streams (choices, blocks, tool calls) one response may open.
pub const MAX_KEYS: usize = 256;

/// Most distinct names one tool call may be given (a name sent in pieces, or
/// renamed mid-call); past it the call is refused.
const MAX_TOOL_NAMES: usize = 4;

/// Token usage of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// The upstream reported no output tokens: `output_tokens` is estimated
    /// from the text streamed (about four bytes per token).
    pub estimated: bool,
    /// Prompt tokens served from the provider's cache, when reported.
    pub cached_tokens: Option<u64>,
}

/// What happened to a stream, for the flow's metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamOutcome {
    /// The stream was ended with an error event: the blocking finding's type
    /// (`AWS_ACCESS_KEY`), or the reason (`BAD_STREAM`, `TOOL_ARGS_TOO_LARGE`).
    pub blocked: Option<&'static str>,
    /// Text was redacted or placeholders restored.
    pub rewritten: bool,
    /// Findings whose action is `flag`, as `KIND:rule-id`, de-duplicated.
    pub flagged: Vec<String>,
    /// Bytes released at the end of the stream although they did not form an
    /// event (the upstream ended mid-event), after being checked.
    pub trailing_bytes: usize,
    /// Events dropped because the client did not ask for them (usage chunks).
    pub dropped_events: usize,
    /// Findings acted on (redacted, flagged, blocking), in offsets of their
    /// key's text; at most [`MAX_STREAM_FINDINGS`].
    pub findings: Vec<StreamFinding>,
    /// The tool call the tool policy refused (then `blocked` is its kind).
    pub tool_violation: Option<ToolViolation>,
    /// Decisions the request's profile only records (shadow mode): the
    /// finding's type or check's kind, and what would have been done.
    pub shadowed: Vec<(&'static str, Action)>,
    /// A system prompt leak (`CANARY_LEAK`, `SYSTEM_PROMPT_LEAK`) and what it got.
    pub leak: Option<(&'static str, Action)>,
}

/// Most findings a stream's outcome keeps (for its trace).
pub const MAX_STREAM_FINDINGS: usize = 64;

/// A finding in a stream: `key` is the index of its text stream (choice,
/// content block, tool call) in the order they appeared.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamFinding {
    pub key: usize,
    pub finding: Finding,
}

impl StreamOutcome {
    /// Types and rules of the findings that ended the stream.
    pub fn block_rules(&self) -> Vec<(&'static str, String)> {
        self.findings
            .iter()
            .filter(|f| f.finding.action == Action::Block)
            .map(|f| (f.finding.kind, f.finding.rule_id.clone()))
            .collect()
    }

    fn record(&mut self, key: usize, f: &Finding, offset: usize) {
        let (start, end) = (offset + f.start, offset + f.end);
        let seen = self
            .findings
            .iter()
            .any(|x| x.key == key && x.finding.start == start && x.finding.kind == f.kind);
        if seen || self.findings.len() >= MAX_STREAM_FINDINGS {
            return;
        }
        let mut finding = f.clone();
        finding.start = start;
        finding.end = end;
        self.findings.push(StreamFinding { key, finding });
    }
}

/// A redaction or a restored placeholder, in absolute offsets of a key's text.
#[derive(Debug, Clone)]
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// One stream of text (a choice's content, a content block, a tool call).
#[derive(Debug)]
struct KeyText {
    key: StreamKey,
    tool: bool,
    /// Raw text from absolute offset `base` to `total`.
    buf: String,
    base: usize,
    total: usize,
    /// Sent to the client up to here.
    emitted: usize,
    /// Findings final up to here.
    decided: usize,
    ended: bool,
    /// Edits in `emitted..decided`, sorted, not overlapping.
    edits: VecDeque<Edit>,
    /// The end of the last edit written out: raw text before it is replaced.
    skip_until: usize,
    /// FNV-1a of the whole raw text, to recognise a snapshot of it.
    hash: u64,
    /// Everything sent for this key (for snapshots); `None` once too long.
    output: Option<String>,
    /// A tool call's names as the stream gave them (usually one).
    names: Vec<String>,
    /// More than [`MAX_TOOL_NAMES`] names were given.
    names_overflow: bool,
    /// A custom tool's free-form input rather than JSON arguments.
    freeform: bool,
    /// The tool policy checked this (ended) call when its text was this long.
    checked: Option<usize>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

impl KeyText {
    fn new(key: StreamKey, tool: bool) -> Self {
        KeyText {
            key,
            tool,
            buf: String::new(),
            base: 0,
            total: 0,
            emitted: 0,
            decided: 0,
            ended: false,
            edits: VecDeque::new(),
            skip_until: 0,
            hash: FNV_OFFSET,
            output: Some(String::new()),
            names: Vec::new(),
            names_overflow: false,
            freeform: false,
            checked: None,
        }
    }

    fn slice(&self, start: usize, end: usize) -> &str {
        self.buf
            .get(start.saturating_sub(self.base)..end.saturating_sub(self.base))
            .unwrap_or_default()
    }

    /// The client's text for raw `start..end` (the next range to send).
    fn take(&mut self, start: usize, end: usize, max_output: usize) -> String {
        let mut out = String::new();
        let mut pos = start;
        while pos < end {
            if pos < self.skip_until {
                pos = self.skip_until.min(end);
                continue;
            }
            match self.edits.front() {
                Some(e) if e.start < end => {
                    if e.start <= pos {
                        out.push_str(&e.text);
                        self.skip_until = e.end;
                        self.edits.pop_front();
                    } else {
                        out.push_str(self.slice(pos, e.start));
                        pos = e.start;
                    }
                }
                _ => {
                    out.push_str(self.slice(pos, end));
                    pos = end;
                }
            }
        }
        self.emitted = self.emitted.max(end);
        if let Some(o) = &mut self.output {
            if o.len() + out.len() > max_output {
                self.output = None;
            } else {
                o.push_str(&out);
            }
        }
        // Keep the context the next detection needs, drop the rest.
        let keep_from = self
            .emitted
            .min(self.decided.saturating_sub(CONTEXT_BYTES))
            .saturating_sub(self.base);
        let cut = floor_boundary(&self.buf, keep_from);
        if cut > 4096 || (cut > 0 && cut * 2 > self.buf.len()) {
            self.buf.drain(..cut);
            self.base += cut;
        }
        out
    }
}

/// An event waiting to go out.
#[derive(Debug)]
struct Queued {
    ev: SseEvent,
    /// Text pieces: key and absolute raw range.
    spans: Vec<(StreamKey, usize, usize)>,
    /// Keys whose snapshot this event repeats, with the raw snapshot text.
    snapshots: Vec<(StreamKey, String)>,
    /// Tool calls this event belongs to: it waits until they are checked.
    tools: Vec<StreamKey>,
    /// Dropped rather than sent (a usage chunk the client did not ask for).
    drop: bool,
    /// `"usage":null` is removed from its JSON.
    strip_usage: bool,
}

/// The scanner of one streamed response.
pub struct StreamScanner {
    api: StreamApi,
    policy: Rc<Policy>,
    parser: SseParser,
    keys: Vec<KeyText>,
    queue: VecDeque<Queued>,
    /// The request's placeholders, restored in the output.
    restore: Pseudonyms,
    /// Hands out no placeholders: a value the model wrote is masked.
    masks: Pseudonyms,
    strip_usage: bool,
    usage: Usage,
    outcome: StreamOutcome,
    /// After a block or a broken stream: everything else is swallowed.
    closed: bool,
    finished: bool,
    /// Bytes of text streamed (for the token estimate).
    text_bytes: u64,
    /// The policy's detectors that scan assistant text in responses.
    detectors: Vec<usize>,
    events: Vec<SseEvent>,
    /// Bytes of the events waiting in `queue` (bounded by `maxBodyBytes`).
    queued_bytes: usize,
    /// The stream's output budget in bytes of text, and the limit it comes from.
    budget: Option<(u64, String)>,
    /// Raw text kept for a redacted copy in the trace: per key, up to
    /// `capture_max` bytes in all (`None`: not kept).
    captured: Option<Vec<String>>,
    capture_left: usize,
    /// Counts the streamed text's tokens for a stream without usage.
    counter: Option<crate::tokens::Counter>,
    /// Which tools the model may call, with what arguments.
    tools: Option<std::sync::Arc<ToolPolicy>>,
    /// Tool violations are recorded, not enforced (shadow mode).
    shadow_tools: bool,
    /// The request's access profile: detectors, action overrides, shadow.
    profile: Option<crate::access::Profile>,
    /// System prompt leak checks, with the n-gram tracker of the released text.
    leak: Option<(
        Rc<crate::access::LeakCheck>,
        Option<crate::detect::leak::LeakTracker>,
    )>,
    /// An answer that loops is ended: the tracker, `minWords`, `maxTopShare`.
    loops: Option<(crate::detect::consumption::RepeatTracker, usize, f32)>,
}

impl StreamScanner {
    /// `restore`: the request's placeholders. `strip_usage`: the filter
    /// added `stream_options.include_usage`, so the usage chunk and the
    /// `"usage":null` fields are removed before the client sees them.
    pub fn new(api: StreamApi, policy: Rc<Policy>, restore: Pseudonyms, strip_usage: bool) -> Self {
        let limit = DEFAULT_MAX_EVENT_BYTES.min(policy.max_body_bytes.max(1024));
        let detectors = policy
            .detectors
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.applies_to_direction(Direction::Response) && d.applies_to(Channel::Assistant)
            })
            .map(|(i, _)| i)
            .collect();
        StreamScanner {
            api,
            policy,
            parser: SseParser::new(limit),
            keys: Vec::new(),
            queue: VecDeque::new(),
            restore,
            masks: Pseudonyms::frozen(),
            strip_usage,
            usage: Usage::default(),
            outcome: StreamOutcome::default(),
            closed: false,
            finished: false,
            text_bytes: 0,
            detectors,
            events: Vec::new(),
            queued_bytes: 0,
            budget: None,
            captured: None,
            capture_left: 0,
            counter: None,
            tools: None,
            shadow_tools: false,
            profile: None,
            leak: None,
            loops: None,
        }
    }

    /// Check every complete tool call against `tools` before it goes out.
    pub fn with_tools(mut self, tools: impl Into<std::sync::Arc<ToolPolicy>>) -> Self {
        self.tools = Some(tools.into());
        self
    }

    /// Tool violations are only recorded in [`StreamOutcome::shadowed`].
    pub fn with_shadow_tools(mut self, shadow: bool) -> Self {
        self.shadow_tools = shadow;
        self
    }

    /// Run the detectors of the request's access profile, with its action
    /// overrides; findings it shadows are recorded, not acted on.
    pub fn with_profile(mut self, profile: crate::access::Profile) -> Self {
        self.detectors.retain(|i| profile.runs(*i));
        self.profile = Some(profile);
        self
    }

    /// Check the answer for the request's system prompt (canary, n-grams).
    pub fn with_leak(mut self, leak: Rc<crate::access::LeakCheck>) -> Self {
        let tracker = leak.index.as_ref().map(|i| i.tracker());
        self.leak = Some((leak, tracker));
        self
    }

    /// End an answer that loops: at least `min_words` words and one 4-gram
    /// above `max_top_share` of them (or a periodic run, see
    /// [`crate::detect::consumption::RepeatTracker::looping`]).
    pub fn with_loop_check(mut self, min_words: usize, max_top_share: f32) -> Self {
        self.loops = Some((
            crate::detect::consumption::RepeatTracker::new(),
            min_words,
            max_top_share,
        ));
        self
    }

    /// Count the output with `model`'s tokenizer when the upstream reports no usage.
    pub fn with_model(mut self, model: &str) -> Self {
        self.counter = Some(crate::tokens::Counter::new(model));
        self
    }

    /// Keep up to `max` bytes of the stream's text for
    /// [`StreamScanner::captured_messages`].
    pub fn with_capture(mut self, max: usize) -> Self {
        self.captured = Some(Vec::new());
        self.capture_left = max;
        self
    }

    /// The text kept by [`StreamScanner::with_capture`], every recorded
    /// finding replaced by `<TYPE>`, as `gen_ai.output.messages` JSON.
    pub fn captured_messages(&self) -> String {
        let mut msgs = Vec::new();
        for (i, text) in self.captured.iter().flatten().enumerate() {
            let spans: Vec<(usize, usize, &str)> = self
                .outcome
                .findings
                .iter()
                .filter(|f| f.key == i)
                .map(|f| (f.finding.start, f.finding.end, f.finding.kind))
                .collect();
            let role = if self.keys.get(i).is_some_and(|k| k.tool) {
                "tool_call"
            } else {
                "assistant"
            };
            msgs.push(serde_json::json!({
                "role": role,
                "parts": [{"type": "text", "content": crate::telemetry::masked(text, &spans, usize::MAX)}],
            }));
        }
        serde_json::Value::Array(msgs).to_string()
    }

    /// End the stream once its text passes `bytes` (the output a token or
    /// cost budget still allows), naming `limit` in the error event.
    pub fn with_budget(mut self, bytes: u64, limit: &str) -> Self {
        self.budget = Some((bytes, limit.to_string()));
        self
    }

    pub fn outcome(&self) -> &StreamOutcome {
        &self.outcome
    }

    /// Usage as reported by the upstream, or estimated at the end of the stream.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Bytes from the upstream in, bytes for the client out.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.closed || self.finished {
            return;
        }
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let parsed = self.parser.push(chunk, &mut events);
        for ev in events.drain(..) {
            if self.closed {
                break;
            }
            self.on_event(ev, out);
        }
        self.events = events;
        if parsed.is_err() && !self.closed {
            self.fail(
                out,
                "BAD_STREAM",
                StreamErrorKind::BadStream,
                "an event of the upstream stream is too large to check",
            );
        }
    }

    /// The upstream's stream is over: release everything still held.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.closed || self.finished {
            return;
        }
        let mut events = Vec::new();
        let rest = self.parser.finish(&mut events);
        for ev in events {
            if self.closed {
                return;
            }
            self.on_event(ev, out);
        }
        if self.closed {
            return;
        }
        self.finished = true;
        for i in 0..self.keys.len() {
            if let Some(k) = self.keys.get_mut(i) {
                k.ended = true;
            }
            if !self.decide(i, out) {
                return;
            }
        }
        self.emit(out);
        if !rest.is_empty() {
            // An event without its blank line: a client may still read it,
            // so it goes out only if it holds nothing a detector objects to.
            let text = String::from_utf8_lossy(&rest);
            if self.detect(&text).is_empty() {
                self.outcome.trailing_bytes = rest.len();
                out.extend_from_slice(&rest);
            }
        }
        if self.usage.output_tokens.is_none() {
            // No usage from the upstream: counted with the model's tokenizer
            // where the build has one (still marked estimated: reasoning
            // tokens are not in the text), else 4 bytes per token.
            let tokens = match self.counter.take() {
                Some(c) => c.finish().tokens,
                None => self.text_bytes.div_ceil(4),
            };
            self.usage.output_tokens = Some(tokens);
            self.usage.estimated = true;
        }
    }

    fn key_index(&mut self, key: StreamKey, tool: bool) -> usize {
        if let Some(i) = self.keys.iter().position(|k| k.key == key) {
            if tool {
                if let Some(k) = self.keys.get_mut(i) {
                    k.tool = true;
                }
            }
            return i;
        }
        self.keys.push(KeyText::new(key, tool));
        self.keys.len() - 1
    }

    fn on_event(&mut self, mut ev: SseEvent, out: &mut Vec<u8>) {
        if let Some((leak, _)) = self.leak.as_ref() {
            if let (Some(token), Some(original)) = (&leak.canary, &leak.instructions) {
                if ev.data.contains(token.as_str()) {
                    // The Responses API echoes `instructions` in its
                    // lifecycle events: the client gets them without the canary.
                    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&ev.data) {
                        if crate::access::unecho_instructions(&mut v, token, original) {
                            let data = v.to_string();
                            ev.raw = with_data(&ev, &data);
                            ev.data = data;
                        }
                    }
                }
            }
        }
        let pieces = classify(self.api, &ev);
        if self.tools.is_some()
            && pieces
                .iter()
                .any(|p| matches!(p, Piece::ToolStart { .. } | Piece::ToolArgs { .. }))
        {
            self.record_tool_names(&ev);
        }
        let mut q = Queued {
            ev,
            spans: Vec::new(),
            snapshots: Vec::new(),
            tools: Vec::new(),
            drop: false,
            strip_usage: false,
        };
        let mut touched: Vec<usize> = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Text { key, text } | Piece::Reasoning { key, text } => {
                    let i = self.append(key, false, &text, &mut q);
                    touched.push(i);
                }
                Piece::ToolArgs { key, text } => {
                    let i = self.append(key, true, &text, &mut q);
                    q.tools.push(key);
                    let too_long = self
                        .keys
                        .get(i)
                        .is_some_and(|k| k.total > self.policy.responses.max_tool_args_bytes);
                    if too_long {
                        let msg = format!(
                            "tool call arguments exceed the limit of {} bytes",
                            self.policy.responses.max_tool_args_bytes
                        );
                        self.fail(out, "TOOL_ARGS_TOO_LARGE", StreamErrorKind::Policy, &msg);
                        return;
                    }
                }
                Piece::ToolStart { key } => {
                    self.key_index(key, true);
                    q.tools.push(key);
                }
                Piece::Snapshot { key, text } => q.snapshots.push((key, text)),
                Piece::BlockEnd { key } => {
                    for (i, k) in self.keys.iter_mut().enumerate() {
                        if k.key.within(&key) && !k.ended {
                            k.ended = true;
                            touched.push(i);
                        }
                    }
                }
                Piece::Done => {
                    for (i, k) in self.keys.iter_mut().enumerate() {
                        if !k.ended {
                            k.ended = true;
                            touched.push(i);
                        }
                    }
                }
                Piece::Usage {
                    input_tokens,
                    output_tokens,
                    cached_tokens,
                } => {
                    if cached_tokens.is_some() {
                        self.usage.cached_tokens = cached_tokens;
                    }
                    if input_tokens.is_some() {
                        self.usage.input_tokens = input_tokens;
                    }
                    if output_tokens.is_some() {
                        self.usage.output_tokens = output_tokens;
                    }
                    if self.strip_usage && is_usage_only_chunk(&q.ev) {
                        q.drop = true;
                    }
                }
                Piece::Error { .. } | Piece::Opaque => {}
            }
        }
        if self.strip_usage && !q.drop && q.ev.data.contains("\"usage\"") {
            q.strip_usage = true;
        }
        if let Some(msg) = self.over_budget() {
            self.fail(out, "BUDGET", StreamErrorKind::Budget, &msg);
            return;
        }
        if self
            .loops
            .as_ref()
            .is_some_and(|(t, words, share)| t.looping(*words, *share))
        {
            if self
                .profile
                .as_ref()
                .is_some_and(|p| p.shadowed(&["OUTPUT_LOOP"]))
            {
                if !self
                    .outcome
                    .shadowed
                    .contains(&("OUTPUT_LOOP", Action::Block))
                {
                    self.outcome.shadowed.push(("OUTPUT_LOOP", Action::Block));
                }
                self.loops = None;
            } else {
                let msg = "the answer repeats itself (output loop): ended";
                self.fail(out, "OUTPUT_LOOP", StreamErrorKind::Budget, msg);
                return;
            }
        }
        if self.keys.len() > MAX_KEYS {
            let msg = format!("the upstream stream opened more than {MAX_KEYS} text streams");
            self.fail(out, "BAD_STREAM", StreamErrorKind::BadStream, &msg);
            return;
        }
        self.queued_bytes += q.ev.raw.len();
        if self.queued_bytes > self.policy.max_body_bytes {
            let msg = format!(
                "the stream held more than {} bytes waiting for a check",
                self.policy.max_body_bytes
            );
            self.fail(out, "BAD_STREAM", StreamErrorKind::BadStream, &msg);
            return;
        }
        self.queue.push_back(q);
        touched.sort_unstable();
        touched.dedup();
        for i in touched {
            if !self.decide(i, out) {
                return;
            }
        }
        self.emit(out);
    }

    /// Remember the names of the tool calls `ev` names, per key.
    fn record_tool_names(&mut self, ev: &SseEvent) {
        for t in named_tools(self.api, ev) {
            let i = self.key_index(t.key, true);
            let Some(k) = self.keys.get_mut(i) else {
                continue;
            };
            k.freeform |= t.freeform;
            if k.names.contains(&t.name) {
                continue;
            }
            if k.names.len() >= MAX_TOOL_NAMES {
                k.names_overflow = true;
            } else {
                k.names.push(t.name);
            }
        }
    }

    /// Check tool call `i` (ended) against the tool policy, once.
    fn check_tool(&mut self, i: usize) -> Result<(), ToolViolation> {
        let Some(policy) = self.tools.clone() else {
            return Ok(());
        };
        let Some(k) = self.keys.get_mut(i) else {
            return Ok(());
        };
        if k.checked == Some(k.total) {
            return Ok(());
        }
        k.checked = Some(k.total);
        let first = k.names.first().cloned().unwrap_or_default();
        if k.names_overflow {
            return Err(ToolViolation {
                kind: TOOL_NOT_ALLOWED,
                tool: first,
                rule: "allow".to_owned(),
                detail: "the call was given too many names".to_owned(),
            });
        }
        if k.base != 0 {
            // Tool text is never released before it is checked; if it ever
            // were, the call could not be checked whole.
            return Err(ToolViolation {
                kind: TOOL_ARGS_INVALID,
                tool: first,
                rule: "json".to_owned(),
                detail: "(root): arguments were not held whole".to_owned(),
            });
        }
        let args = k.slice(0, k.total);
        // A call the stream never named is checked as the tool "".
        let names: &[String] = if k.names.is_empty() {
            &[String::new()]
        } else {
            &k.names
        };
        for name in names {
            if k.freeform {
                policy.check_input(name, args)?;
            } else {
                policy.check_call(name, args)?;
            }
        }
        Ok(())
    }

    /// A tool call broke the policy: the stream ends (`false`), or in
    /// shadow mode the violation is recorded and the call goes out (`true`).
    fn tool_blocked(&mut self, out: &mut Vec<u8>, v: ToolViolation) -> bool {
        let msg = format!("tool call blocked by policy: {} ({})", v.kind, v.tool);
        let kind = v.kind;
        let shadow = self.shadow_tools
            || self
                .profile
                .as_ref()
                .is_some_and(|p| p.shadowed(&[kind, v.tool.as_str()]));
        self.outcome.tool_violation = Some(v);
        if shadow {
            if self.outcome.shadowed.len() < 32 {
                self.outcome.shadowed.push((kind, Action::Block));
            }
            return true;
        }
        self.fail(out, kind, StreamErrorKind::Policy, &msg);
        false
    }

    fn append(&mut self, key: StreamKey, tool: bool, text: &str, q: &mut Queued) -> usize {
        let i = self.key_index(key, tool);
        if let Some(k) = self.keys.get_mut(i) {
            let start = k.total;
            k.buf.push_str(text);
            k.total += text.len();
            k.hash = fnv(k.hash, text.as_bytes());
            q.spans.push((key, start, k.total));
        }
        self.text_bytes += text.len() as u64;
        if let Some(c) = self.counter.as_mut() {
            c.push(text);
        }
        if !tool {
            if let Some((t, _, _)) = self.loops.as_mut() {
                t.push(text);
            }
        }
        if let Some(cap) = self.captured.as_mut() {
            while cap.len() <= i && cap.len() <= MAX_KEYS {
                cap.push(String::new());
            }
            if let Some(c) = cap.get_mut(i) {
                let take = floor_boundary(text, text.len().min(self.capture_left));
                c.push_str(text.get(..take).unwrap_or_default());
                self.capture_left -= take;
            }
        }
        i
    }

    /// Whether the text so far passed the budget.
    fn over_budget(&self) -> Option<String> {
        self.budget
            .as_ref()
            .filter(|(max, _)| self.text_bytes > *max)
            .map(|(_, name)| format!("limit exhausted: {name} (budget ran out mid-stream)"))
    }

    /// Findings of the response detectors in `text` (patterns only).
    fn detect(&mut self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        if self.detectors.is_empty() {
            return found;
        }
        let view = ScanText::new(text);
        for i in &self.detectors {
            let Some(d) = self.policy.detectors.get(*i) else {
                continue;
            };
            let first = found.len();
            d.scan_stream(&view, Channel::Assistant, &mut found);
            let Some(p) = self.profile.as_ref() else {
                continue;
            };
            let id = self.policy.detector_ids.get(*i).map_or("", String::as_str);
            for f in p.apply(id, &mut found, first) {
                let entry = (f.kind, f.action);
                if !self.outcome.shadowed.contains(&entry) && self.outcome.shadowed.len() < 32 {
                    self.outcome.shadowed.push(entry);
                }
            }
        }
        found.sort_by_key(|f| (f.start, f.end));
        found
    }

    /// The leak checks on key `i`'s newly decided text `decided` (its
    /// window is `window`); `false` when the stream was ended.
    fn check_leak(&mut self, window: &str, decided: &str, out: &mut Vec<u8>) -> bool {
        let Some((leak, tracker)) = self.leak.as_mut() else {
            return true;
        };
        if self.outcome.leak.is_some() {
            return true;
        }
        let mut kind = None;
        if let Some(token) = &leak.canary {
            if crate::detect::leak::find_canary(window, token).is_some() {
                kind = Some("CANARY_LEAK");
            }
        }
        if let (Some(index), Some(t)) = (leak.index.as_ref(), tracker.as_mut()) {
            t.push(index, decided);
            if kind.is_none() {
                kind = leak.leaked(t.overlap(index));
            }
        }
        let Some(kind) = kind else {
            return true;
        };
        let action = leak.action;
        if self.profile.as_ref().is_some_and(|p| p.shadowed(&[kind])) {
            self.outcome.shadowed.push((kind, action));
            self.outcome.leak = Some((kind, Action::Allow));
            return true;
        }
        self.outcome.leak = Some((kind, action));
        if action == Action::Block {
            self.block(out, kind);
            return false;
        }
        let entry = format!("{kind}:access.{}", kind.to_ascii_lowercase());
        if !self.outcome.flagged.contains(&entry) {
            self.outcome.flagged.push(entry);
        }
        true
    }

    /// Decide key `i` as far as it can be; `false` when the stream was ended.
    fn decide(&mut self, i: usize, out: &mut Vec<u8>) -> bool {
        if self.keys.get(i).is_some_and(|k| k.tool && k.ended) {
            if let Err(v) = self.check_tool(i) {
                if !self.tool_blocked(out, v) {
                    return false;
                }
            }
        }
        let Some(k) = self.keys.get(i) else {
            return true;
        };
        if (k.tool && !k.ended) || k.decided >= k.total {
            return true;
        }
        let from = k.decided.saturating_sub(CONTEXT_BYTES).max(k.base) - k.base;
        let wstart = k.base + floor_boundary(&k.buf, from);
        let window = k.slice(wstart, k.total).to_owned();
        let d = k.decided - wstart;
        let ended = k.ended;
        let findings = self.detect(&window);
        let (min_hold, max_hold) = (
            self.policy.responses.hold_back_bytes,
            self.policy.responses.max_hold_bytes,
        );
        let undecided = window.get(d..).unwrap_or_default();
        let mut rp = if ended {
            window.len()
        } else {
            d + hold_from(undecided, min_hold, max_hold)
        };
        // A block anywhere in the undecided text ends the stream now.
        if let Some(f) = findings
            .iter()
            .find(|f| f.end > d && f.action == Action::Block)
        {
            let kind = f.kind;
            self.outcome.record(i, f, wstart);
            self.block(out, kind);
            return false;
        }
        // Never cut a match: move the border to its start.
        loop {
            let cut = findings
                .iter()
                .filter(|f| f.action >= Action::Flag && f.start < rp && f.end > rp && f.start >= d)
                .map(|f| f.start)
                .min();
            match cut {
                Some(s) if s < rp => rp = s,
                _ => break,
            }
        }
        let mut edits: Vec<Edit> = Vec::new();
        for f in findings.iter().filter(|f| f.end > d && f.end <= rp) {
            if f.action >= Action::Flag {
                self.outcome.record(i, f, wstart);
            }
            match f.action {
                Action::Redact => {
                    let start = f.start.max(d);
                    if edits.last().is_some_and(|e| e.end > wstart + start) {
                        continue;
                    }
                    let value = window.get(start..f.end).unwrap_or_default();
                    let text = replacement(f, value, &mut self.masks);
                    edits.push(Edit {
                        start: wstart + start,
                        end: wstart + f.end,
                        text,
                    });
                }
                Action::Flag => {
                    let entry = format!("{}:{}", f.kind, f.rule_id);
                    if !self.outcome.flagged.contains(&entry) && self.outcome.flagged.len() < 32 {
                        self.outcome.flagged.push(entry);
                    }
                }
                Action::Allow | Action::Block => {}
            }
        }
        let decided_text = window.get(d..rp).unwrap_or_default();
        let is_tool = self.keys.get(i).is_some_and(|k| k.tool);
        if !is_tool && !self.check_leak(&window, decided_text, out) {
            return false;
        }
        // Placeholders of the request, put back where no redaction is.
        for (s, e, value) in self.restore.placeholders(decided_text) {
            let (s, e) = (wstart + d + s, wstart + d + e);
            if edits.iter().any(|x| x.start < e && s < x.end) {
                continue;
            }
            edits.push(Edit {
                start: s,
                end: e,
                text: value.to_owned(),
            });
        }
        edits.sort_by_key(|e| e.start);
        if !edits.is_empty() {
            self.outcome.rewritten = true;
        }
        if let Some(k) = self.keys.get_mut(i) {
            k.edits.extend(edits);
            k.decided = k.decided.max(wstart + rp);
        }
        true
    }

    /// Send every event at the head of the queue whose text is decided.
    fn emit(&mut self, out: &mut Vec<u8>) {
        let max_output = self.policy.max_body_bytes;
        while let Some(front) = self.queue.front() {
            if !self.ready(front) {
                break;
            }
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes = self.queued_bytes.saturating_sub(q.ev.raw.len());
            if q.drop {
                self.outcome.dropped_events += 1;
                continue;
            }
            let mut ev = q.ev;
            if q.strip_usage {
                if let Some(data) = remove_member(&ev.data, "usage") {
                    ev.raw = with_data(&ev, &data);
                    ev.data = data;
                }
            }
            let mut edits: Vec<(StreamKey, String)> = Vec::new();
            let mut changed = false;
            for (key, start, end) in &q.spans {
                let Some(k) = self.keys.iter_mut().find(|k| k.key == *key) else {
                    continue;
                };
                let raw = k.slice(*start, *end).to_owned();
                let text = k.take(*start, *end, max_output);
                changed |= text != raw;
                edits.push((*key, text));
            }
            for (key, snap) in &q.snapshots {
                match self.snapshot(*key, snap, out) {
                    Some(text) => {
                        changed |= text != *snap;
                        edits.push((*key, text));
                    }
                    None => return,
                }
            }
            if !changed {
                out.extend_from_slice(&ev.raw);
                continue;
            }
            let refs: Vec<(StreamKey, &str)> =
                edits.iter().map(|(k, t)| (*k, t.as_str())).collect();
            match rebuild_with(self.api, &ev, &refs) {
                Some(bytes) => out.extend_from_slice(&bytes),
                None => {
                    // Cannot happen for an event classify read; never send
                    // the unredacted original instead.
                    self.fail(
                        out,
                        "BAD_STREAM",
                        StreamErrorKind::BadStream,
                        "an event could not be rewritten",
                    );
                    return;
                }
            }
        }
    }

    fn ready(&self, q: &Queued) -> bool {
        let decided = |key: &StreamKey, end: usize| {
            self.keys
                .iter()
                .find(|k| k.key == *key)
                .is_none_or(|k| k.decided >= end)
        };
        let complete = |key: &StreamKey| {
            self.keys.iter().find(|k| k.key == *key).is_none_or(|k| {
                k.ended
                    && k.decided >= k.total
                    && (!k.tool || self.tools.is_none() || k.checked == Some(k.total))
            })
        };
        q.spans.iter().all(|(k, _, end)| decided(k, *end))
            && q.tools.iter().all(complete)
            && q.snapshots.iter().all(|(k, _)| complete(k))
    }

    /// The client's version of a snapshot of `key`'s whole text: what was
    /// sent for it when the snapshot repeats the streamed text, else the
    /// snapshot checked and redacted on its own. `None` when it blocks.
    fn snapshot(&mut self, key: StreamKey, snap: &str, out: &mut Vec<u8>) -> Option<String> {
        if let Some(k) = self.keys.iter().find(|k| k.key == key) {
            if k.total == snap.len() && k.hash == fnv(FNV_OFFSET, snap.as_bytes()) {
                if let Some(o) = &k.output {
                    return Some(o.clone());
                }
            }
            // A tool call's snapshot that is not what was streamed (and
            // checked): checked on its own.
            if let (true, Some(policy)) = (k.tool, self.tools.clone()) {
                let names: Vec<String> = if k.names.is_empty() {
                    vec![String::new()]
                } else {
                    k.names.clone()
                };
                let freeform = k.freeform;
                for name in &names {
                    let checked = if freeform {
                        policy.check_input(name, snap)
                    } else {
                        policy.check_call(name, snap)
                    };
                    if let Err(v) = checked {
                        if !self.tool_blocked(out, v) {
                            return None;
                        }
                    }
                }
            }
        }
        let findings = self.detect(snap);
        if let Some(f) = findings.iter().find(|f| f.action == Action::Block) {
            let kind = f.kind;
            self.block(out, kind);
            return None;
        }
        let mut text = crate::redact::redact(snap, &findings, &mut self.masks);
        if let Some(restored) = self.restore.restore(&text) {
            text = restored;
        }
        if text != snap {
            self.outcome.rewritten = true;
        }
        Some(text)
    }

    fn block(&mut self, out: &mut Vec<u8>, kind: &'static str) {
        self.fail(
            out,
            kind,
            StreamErrorKind::Policy,
            "response blocked by policy",
        );
    }

    fn fail(
        &mut self,
        out: &mut Vec<u8>,
        reason: &'static str,
        kind: StreamErrorKind,
        message: &str,
    ) {
        self.queue.clear();
        self.queued_bytes = 0;
        self.outcome.blocked = Some(reason);
        self.closed = true;
        out.extend_from_slice(&error_event(self.api, kind, message));
    }
}

/// An OpenAI usage chunk: `"choices": []` with a `usage` object.
fn is_usage_only_chunk(ev: &SseEvent) -> bool {
    serde_json::from_str::<serde_json::Value>(&ev.data).is_ok_and(|v| {
        v.get("choices")
            .and_then(serde_json::Value::as_array)
            .is_some_and(Vec::is_empty)
            && v.get("usage").is_some_and(serde_json::Value::is_object)
    })
}

#[cfg(test)]
mod tests;
