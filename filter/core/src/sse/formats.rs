//! The streamed event shapes of the LLM APIs: which text an event carries,
//! how to write changed text back into it, and each API's in-stream error.
//!
//! * OpenAI Chat Completions: `data: {"object":"chat.completion.chunk",
//!   "choices":[{"index","delta":{"content","refusal","tool_calls":[{"index",
//!   "function":{"arguments"}}]},"finish_reason"}],"usage"}`, then
//!   `data: [DONE]`. Legacy Completions is the same with `choices[].text`.
//! * OpenAI Responses: `event: response.output_text.delta` and friends, each
//!   `{"type","output_index","content_index",...,"delta"}`; `*.done` events,
//!   `response.output_item.done` and `response.completed` repeat the full text.
//! * Anthropic Messages: `message_start`, `content_block_start`,
//!   `content_block_delta` (`text_delta`, `input_json_delta`,
//!   `thinking_delta`), `content_block_stop`, `message_delta`,
//!   `message_stop`, `ping`, `error`.
//!
//! [`classify`] reads an event into [`Piece`]s; each text piece has a
//! [`StreamKey`] naming the stream it continues (a choice, an output item's
//! content part, a content block), so a hold-back window can be kept per key.
//! [`rebuild`] and [`rebuild_with`] write new text for some keys back into the
//! event: the JSON is spliced byte for byte ([`crate::api::splice`]), so ids,
//! indices, finish reasons, key order and number spelling stay as received,
//! and the `event:`/`id:`/comment lines and line ends are kept.

use super::parser::SseEvent;
use crate::api::splice::{self, Edit};
use crate::api::{write_back, ApiKind, JsonPath, PathStep};

use serde_json::{json, Map, Value};

/// A streamed API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamApi {
    /// `POST /v1/chat/completions` with `"stream": true`.
    OpenaiChat,
    /// `POST /v1/completions` (legacy) with `"stream": true`.
    OpenaiCompletions,
    /// `POST /v1/responses` with `"stream": true`.
    OpenaiResponses,
    /// `POST /v1/messages` with `"stream": true`.
    AnthropicMessages,
}

impl StreamApi {
    /// The stream format of a request API; `None` for APIs that do not stream.
    pub fn for_api(kind: ApiKind) -> Option<StreamApi> {
        match kind {
            ApiKind::OpenaiChat => Some(StreamApi::OpenaiChat),
            ApiKind::OpenaiCompletions => Some(StreamApi::OpenaiCompletions),
            ApiKind::OpenaiResponses => Some(StreamApi::OpenaiResponses),
            ApiKind::AnthropicMessages => Some(StreamApi::AnthropicMessages),
            ApiKind::OpenaiEmbeddings | ApiKind::UnknownJson => None,
        }
    }
}

/// Which text stream a piece continues. Every key names one stream of text
/// (one string that deltas append to), except the two scopes
/// [`StreamKey::Choice`] and [`StreamKey::Item`] (see [`StreamKey::within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKey {
    /// Chat `choices[i].delta.content`; Completions `choices[i].text`.
    Content { choice: u64 },
    /// Chat `choices[i].delta.refusal`.
    Refusal { choice: u64 },
    /// Chat `choices[i].delta.reasoning_content` (or `reasoning`), as sent by
    /// DeepSeek, vLLM, OpenRouter.
    ReasoningContent { choice: u64 },
    /// Chat `choices[i].delta.tool_calls[index].function.arguments` (and the
    /// deprecated `function_call.arguments` as index 0).
    ToolCall { choice: u64, index: u64 },
    /// Scope: everything of one Chat choice (ended by `finish_reason`).
    Choice { choice: u64 },
    /// Responses content part `content_index` of output item `output_index`
    /// (`output_text`, `refusal`, `reasoning_text`).
    Part { output: u64, content: u64 },
    /// Responses reasoning summary part `summary_index` of an output item.
    Summary { output: u64, summary: u64 },
    /// Responses output item `output_index`: the text key of a function, custom
    /// tool or MCP call's arguments, and the scope of all its parts.
    Item { output: u64 },
    /// Anthropic content block `index` (text, tool input JSON, thinking).
    Block { index: u64 },
}

impl StreamKey {
    /// Whether the stream `self` ends when `scope` ends: the same key, a Chat
    /// choice's streams within [`StreamKey::Choice`], a Responses item's parts
    /// within [`StreamKey::Item`].
    pub fn within(&self, scope: &StreamKey) -> bool {
        match (*self, *scope) {
            (a, b) if a == b => true,
            (
                StreamKey::Content { choice }
                | StreamKey::Refusal { choice }
                | StreamKey::ReasoningContent { choice }
                | StreamKey::ToolCall { choice, .. },
                StreamKey::Choice { choice: c },
            ) => choice == c,
            (
                StreamKey::Part { output, .. } | StreamKey::Summary { output, .. },
                StreamKey::Item { output: o },
            ) => output == o,
            _ => false,
        }
    }
}

/// What one event means to the filter. [`classify`] returns them in the
/// order they apply: text first, then ends, usage, errors and `Done`. An
/// event with nothing of interest (`ping`, `response.created`, a keep-alive
/// comment) gives no piece at all: forward it as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// New output text for `key` (a delta).
    Text { key: StreamKey, text: String },
    /// New tool or function call arguments for `key` (a fragment of JSON).
    ToolArgs { key: StreamKey, text: String },
    /// The event is part of tool call `key` (it opens the call, or names it)
    /// but carries no argument text: a filter that holds tool calls until
    /// they are checked holds this event too.
    ToolStart { key: StreamKey },
    /// New reasoning or thinking text for `key`. Anthropic thinking is signed:
    /// changing it makes the block invalid when it is sent back.
    Reasoning { key: StreamKey, text: String },
    /// The whole text of `key` so far, repeated by a `*.done` or
    /// `response.completed` event (Responses only). Not new text: rebuild
    /// it with the concatenation of what was released for `key`, or the
    /// original text reaches the client again.
    Snapshot { key: StreamKey, text: String },
    /// The stream `key` (or every stream [`StreamKey::within`] it) is over:
    /// Chat `finish_reason`, Responses `*.done`, Anthropic `content_block_stop`.
    BlockEnd { key: StreamKey },
    /// Token counts as reported (the latest value of each wins: Anthropic's
    /// `message_delta` `output_tokens` is cumulative).
    Usage {
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
        /// Prompt tokens served from the provider's cache (OpenAI
        /// `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`).
        cached_tokens: Option<u64>,
    },
    /// The upstream reported an error inside the stream.
    Error { message: String },
    /// The response is complete: `[DONE]`, `message_stop`,
    /// `response.completed`/`failed`/`incomplete`.
    Done,
    /// Data that is not a JSON object: the filter cannot tell what it carries.
    Opaque,
}

/// Why the filter ends a stream with an error event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamErrorKind {
    /// A detector blocked the output.
    Policy,
    /// A detector in block mode could not run in time.
    Degraded,
    /// The upstream stream could not be parsed (too large an event, not SSE).
    BadStream,
    /// A token or cost budget ran out in the middle of the stream.
    Budget,
}

impl StreamErrorKind {
    /// OpenAI-style `code` (the same codes as local replies).
    pub fn code(self) -> &'static str {
        match self {
            StreamErrorKind::Policy => "content_policy_violation",
            StreamErrorKind::Degraded => "detector_unavailable",
            StreamErrorKind::BadStream => "invalid_upstream_stream",
            StreamErrorKind::Budget => "rate_limit_exceeded",
        }
    }

    fn openai_type(self) -> &'static str {
        match self {
            StreamErrorKind::Policy => "invalid_request_error",
            StreamErrorKind::Degraded | StreamErrorKind::BadStream => "server_error",
            StreamErrorKind::Budget => "requests",
        }
    }

    fn anthropic_type(self) -> &'static str {
        match self {
            StreamErrorKind::Policy => "permission_error",
            StreamErrorKind::Degraded => "overloaded_error",
            StreamErrorKind::BadStream => "api_error",
            StreamErrorKind::Budget => "rate_limit_error",
        }
    }
}

/// Read one event. See [`Piece`]; empty data gives no piece, data that is not
/// a JSON object gives [`Piece::Opaque`].
pub fn classify(api: StreamApi, ev: &SseEvent) -> Vec<Piece> {
    if ev.data.is_empty() {
        return Vec::new();
    }
    if is_done_marker(api, ev) {
        return vec![Piece::Done];
    }
    let Ok(value) = serde_json::from_str::<Value>(&ev.data) else {
        return vec![Piece::Opaque];
    };
    let Some(scan) = scan(api, ev, &value) else {
        return vec![Piece::Opaque];
    };
    let mut out = Vec::with_capacity(scan.locs.len() + scan.tail.len());
    for loc in scan.locs {
        if !loc.text.is_empty() {
            out.push(loc.piece());
        } else if loc.kind == Kind::ToolArgs {
            out.push(Piece::ToolStart { key: loc.key });
        }
    }
    out.extend(scan.tail);
    out
}

/// The names of the tool calls an event opens or names, with the keys
/// [`classify`] gives their arguments:
///
/// * OpenAI Chat: `choices[i].delta.tool_calls[j].function.name` (or
///   `custom.name`) at `ToolCall{choice: i, index: call.index}`, and the
///   legacy `delta.function_call.name` at index 0;
/// * OpenAI Responses: `response.output_item.added` with an item of type
///   `function_call`, `custom_tool_call` or `mcp_call`, at `Item{output_index}`;
/// * Anthropic: `content_block_start` (and `message_start` content) with a
///   `tool_use`, `server_tool_use` or `mcp_tool_use` block, at `Block{index}`.
// Not re-exported by `sse/mod.rs` yet (outside this change); the scanner
// uses [`named_tools`], which also tells custom tools apart.
#[allow(dead_code)]
pub fn tool_names(api: StreamApi, ev: &SseEvent) -> Vec<(StreamKey, String)> {
    named_tools(api, ev)
        .into_iter()
        .map(|t| (t.key, t.name))
        .collect()
}

/// A tool call an event names (see [`tool_names`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTool {
    pub key: StreamKey,
    pub name: String,
    /// A custom tool: its input is free-form text, not JSON.
    pub freeform: bool,
}

fn name_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(|n| n.get("name")).and_then(Value::as_str)
}

/// [`tool_names`] with whether each call is a custom tool's.
pub fn named_tools(api: StreamApi, ev: &SseEvent) -> Vec<NamedTool> {
    let mut out = Vec::new();
    let Some(value) = parse_object(api, ev) else {
        return out;
    };
    let Some(obj) = value.as_object() else {
        return out;
    };
    let mut push = |key, name: &str, freeform| {
        out.push(NamedTool {
            key,
            name: name.to_owned(),
            freeform,
        })
    };
    match api {
        StreamApi::OpenaiChat => {
            let choices = obj.get("choices").and_then(Value::as_array);
            for (pos, ch) in choices.into_iter().flatten().enumerate() {
                let choice = num(ch, "index").unwrap_or(pos as u64);
                let Some(delta) = ch.get("delta") else {
                    continue;
                };
                let calls = delta.get("tool_calls").and_then(Value::as_array);
                for (tpos, call) in calls.into_iter().flatten().enumerate() {
                    let index = num(call, "index").unwrap_or(tpos as u64);
                    let key = StreamKey::ToolCall { choice, index };
                    if let Some(n) = name_of(call.get("function")) {
                        push(key, n, false);
                    } else if let Some(n) = name_of(call.get("custom")) {
                        push(key, n, true);
                    }
                }
                if let Some(n) = name_of(delta.get("function_call")) {
                    push(StreamKey::ToolCall { choice, index: 0 }, n, false);
                }
            }
        }
        StreamApi::OpenaiResponses => {
            if event_type(obj, ev) == "response.output_item.added" {
                let item = obj.get("item");
                let ty = item.and_then(|i| i.get("type")).and_then(Value::as_str);
                if let (Some(ty @ ("function_call" | "custom_tool_call" | "mcp_call")), Some(n)) =
                    (ty, name_of(item))
                {
                    let output = num_in(obj, "output_index").unwrap_or(0);
                    push(StreamKey::Item { output }, n, ty == "custom_tool_call");
                }
            }
        }
        StreamApi::AnthropicMessages => {
            let is_tool = |b: &Value| {
                matches!(
                    b.get("type").and_then(Value::as_str),
                    Some("tool_use" | "server_tool_use" | "mcp_tool_use")
                )
            };
            match event_type(obj, ev) {
                "content_block_start" => {
                    let block = obj.get("content_block");
                    if let (true, Some(n)) = (block.is_some_and(is_tool), name_of(block)) {
                        let index = num_in(obj, "index").unwrap_or(0);
                        push(StreamKey::Block { index }, n, false);
                    }
                }
                "message_start" => {
                    let blocks = obj
                        .get("message")
                        .and_then(|m| m.get("content"))
                        .and_then(Value::as_array);
                    for (i, b) in blocks.into_iter().flatten().enumerate() {
                        if let (true, Some(n)) = (is_tool(b), name_of(Some(b))) {
                            push(StreamKey::Block { index: i as u64 }, n, false);
                        }
                    }
                }
                _ => {}
            }
        }
        StreamApi::OpenaiCompletions => {}
    }
    out
}

/// The event with its one text piece (`Text`, `ToolArgs`, `Reasoning` or
/// `Snapshot`, as [`classify`] reports it) replaced by `new_text`. `None`
/// when the event has no text piece or several (use [`rebuild_with`]).
pub fn rebuild(api: StreamApi, ev: &SseEvent, new_text: &str) -> Option<Vec<u8>> {
    let value = parse_object(api, ev)?;
    let scan = scan(api, ev, &value)?;
    let mut texts = scan.locs.iter().filter(|l| !l.text.is_empty());
    let only = texts.next()?;
    if texts.next().is_some() {
        return None;
    }
    let edits = [Edit {
        path: only.path.to_json_path(),
        text: new_text.to_owned(),
    }];
    rewrite(ev, &value, &edits)
}

/// The event with the text of each listed key replaced. Every key must name a
/// string the event carries (an empty one included), else `None`: the caller
/// then keeps or drops the event as its policy says. The result is the raw
/// event with only the changed JSON strings differing; an empty `edits`
/// gives the raw bytes back.
pub fn rebuild_with(api: StreamApi, ev: &SseEvent, edits: &[(StreamKey, &str)]) -> Option<Vec<u8>> {
    if edits.is_empty() {
        return Some(ev.raw.clone());
    }
    let value = parse_object(api, ev)?;
    let scan = scan(api, ev, &value)?;
    let mut located = Vec::with_capacity(edits.len());
    for (key, text) in edits {
        let before = located.len();
        for loc in scan.locs.iter().filter(|l| l.key == *key) {
            located.push(Edit {
                path: loc.path.to_json_path(),
                text: (*text).to_owned(),
            });
        }
        if located.len() == before {
            return None;
        }
    }
    rewrite(ev, &value, &located)
}

/// The event that ends the stream with an error, in the API's own format:
///
/// * OpenAI Chat and Completions: `data: {"error":{"message","type","param",
///   "code"}}` then `data: [DONE]` (the OpenAI SDKs raise on an `error` key).
/// * OpenAI Responses: `event: error` with `{"type":"error","code","message",
///   "param"}`, then `event: response.failed` with a `response` whose
///   `status` is `failed` and whose `error` is `{"code","message"}`.
/// * Anthropic: `event: error` with `{"type":"error","error":{"type",
///   "message"}}` (`permission_error`, `overloaded_error`, `api_error`).
pub fn error_event(api: StreamApi, kind: StreamErrorKind, message: &str) -> Vec<u8> {
    match api {
        StreamApi::OpenaiChat | StreamApi::OpenaiCompletions => {
            let body = json!({
                "error": {
                    "message": message,
                    "type": kind.openai_type(),
                    "param": null,
                    "code": kind.code(),
                }
            });
            let mut out = sse_bytes(None, &body);
            out.extend_from_slice(b"data: [DONE]\n\n");
            out
        }
        StreamApi::OpenaiResponses => {
            let error = json!({
                "type": "error",
                "code": kind.code(),
                "message": message,
                "param": null,
            });
            let failed = json!({
                "type": "response.failed",
                "response": {
                    "object": "response",
                    "status": "failed",
                    "error": {"code": kind.code(), "message": message},
                    "incomplete_details": null,
                    "output": [],
                }
            });
            let mut out = sse_bytes(Some("error"), &error);
            out.extend_from_slice(&sse_bytes(Some("response.failed"), &failed));
            out
        }
        StreamApi::AnthropicMessages => {
            let body = json!({
                "type": "error",
                "error": {"type": kind.anthropic_type(), "message": message},
            });
            sse_bytes(Some("error"), &body)
        }
    }
}

fn sse_bytes(event: Option<&str>, data: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

// --- locating text ---------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    ToolArgs,
    Reasoning,
    Snapshot,
}

/// One string of the event: what it is, its stream, where it is.
struct Loc<'a> {
    kind: Kind,
    key: StreamKey,
    path: Path,
    text: &'a str,
}

impl Loc<'_> {
    fn piece(self) -> Piece {
        let key = self.key;
        let text = self.text.to_owned();
        match self.kind {
            Kind::Text => Piece::Text { key, text },
            Kind::ToolArgs => Piece::ToolArgs { key, text },
            Kind::Reasoning => Piece::Reasoning { key, text },
            Kind::Snapshot => Piece::Snapshot { key, text },
        }
    }
}

/// Text locations (in document order) and the other pieces of one event.
struct Scan<'a> {
    root: &'a Value,
    locs: Vec<Loc<'a>>,
    tail: Vec<Piece>,
}

impl<'a> Scan<'a> {
    /// Record the string at `path` (from the root), if there is one.
    fn add(&mut self, kind: Kind, key: StreamKey, path: Path) {
        if let Some(Value::String(text)) = get(self.root, &path) {
            self.locs.push(Loc {
                kind,
                key,
                path,
                text,
            });
        }
    }

    /// Record `text`, found at `path`.
    fn push(&mut self, kind: Kind, key: StreamKey, path: Path, text: &'a str) {
        self.locs.push(Loc {
            kind,
            key,
            path,
            text,
        });
    }

    fn end(&mut self, key: StreamKey) {
        self.tail.push(Piece::BlockEnd { key });
    }

    fn usage(&mut self, usage: Option<&Value>, input: &str, output: &str) {
        if let Some(u) = usage.filter(|u| u.is_object()) {
            self.tail.push(Piece::Usage {
                input_tokens: num(u, input),
                output_tokens: num(u, output),
                cached_tokens: cached_tokens(u),
            });
        }
    }
}

/// Cached prompt tokens in a usage object, in either API's field.
pub fn cached_tokens(u: &Value) -> Option<u64> {
    u.get("prompt_tokens_details")
        .or_else(|| u.get("input_tokens_details"))
        .and_then(|d| d.get("cached_tokens"))
        .or_else(|| u.get("cache_read_input_tokens"))
        .and_then(Value::as_u64)
}

fn is_done_marker(api: StreamApi, ev: &SseEvent) -> bool {
    matches!(api, StreamApi::OpenaiChat | StreamApi::OpenaiCompletions)
        && ev.data.trim() == "[DONE]"
}

fn parse_object(api: StreamApi, ev: &SseEvent) -> Option<Value> {
    if ev.data.is_empty() || is_done_marker(api, ev) {
        return None;
    }
    serde_json::from_str(&ev.data).ok()
}

fn scan<'a>(api: StreamApi, ev: &SseEvent, root: &'a Value) -> Option<Scan<'a>> {
    let obj = root.as_object()?;
    let mut s = Scan {
        root,
        locs: Vec::new(),
        tail: Vec::new(),
    };
    match api {
        StreamApi::OpenaiChat => scan_choices(&mut s, obj, false),
        StreamApi::OpenaiCompletions => scan_choices(&mut s, obj, true),
        StreamApi::OpenaiResponses => scan_responses(&mut s, obj, ev),
        StreamApi::AnthropicMessages => scan_anthropic(&mut s, obj, ev),
    }
    Some(s)
}

fn scan_choices<'a>(s: &mut Scan<'a>, obj: &'a Map<String, Value>, legacy: bool) {
    if let Some(err) = obj.get("error").filter(|e| !e.is_null()) {
        s.tail.push(Piece::Error {
            message: error_message(err),
        });
    }
    if let Some(Value::Array(choices)) = obj.get("choices") {
        for (pos, ch) in choices.iter().enumerate() {
            let choice = num(ch, "index").unwrap_or(pos as u64);
            let mut base = path(&["choices"]);
            base.push(Step::Index(pos));
            if legacy {
                s.add(
                    Kind::Text,
                    StreamKey::Content { choice },
                    join(&base, &["text"]),
                );
            } else if let Some(Value::Object(delta)) = ch.get("delta") {
                // One pass over the (small) delta: no hashing per field.
                let base = join(&base, &["delta"]);
                for (field, v) in delta {
                    match (field.as_str(), v) {
                        ("content", Value::String(t)) => {
                            let key = StreamKey::Content { choice };
                            s.push(Kind::Text, key, join(&base, &["content"]), t);
                        }
                        ("refusal", Value::String(t)) => {
                            let key = StreamKey::Refusal { choice };
                            s.push(Kind::Text, key, join(&base, &["refusal"]), t);
                        }
                        ("reasoning_content", Value::String(t)) => {
                            let key = StreamKey::ReasoningContent { choice };
                            let p = join(&base, &["reasoning_content"]);
                            s.push(Kind::Reasoning, key, p, t);
                        }
                        ("reasoning", Value::String(t)) => {
                            let key = StreamKey::ReasoningContent { choice };
                            s.push(Kind::Reasoning, key, join(&base, &["reasoning"]), t);
                        }
                        ("tool_calls", Value::Array(calls)) => {
                            for (tpos, call) in calls.iter().enumerate() {
                                let args = call.get("function").and_then(|f| f.get("arguments"));
                                let index = num(call, "index").unwrap_or(tpos as u64);
                                let Some(Value::String(t)) = args else {
                                    let key = StreamKey::ToolCall { choice, index };
                                    s.tail.push(Piece::ToolStart { key });
                                    continue;
                                };
                                let mut p = join(&base, &["tool_calls"]);
                                p.push(Step::Index(tpos));
                                let p = join(&p, &["function", "arguments"]);
                                s.push(Kind::ToolArgs, StreamKey::ToolCall { choice, index }, p, t);
                            }
                        }
                        ("function_call", Value::Object(fc)) => {
                            if let Some(Value::String(t)) = fc.get("arguments") {
                                let key = StreamKey::ToolCall { choice, index: 0 };
                                let p = join(&base, &["function_call", "arguments"]);
                                s.push(Kind::ToolArgs, key, p, t);
                            }
                        }
                        _ => {}
                    }
                }
            }
            if ch.get("finish_reason").is_some_and(|f| !f.is_null()) {
                s.end(StreamKey::Choice { choice });
            }
        }
    }
    s.usage(obj.get("usage"), "prompt_tokens", "completion_tokens");
}

fn scan_responses(s: &mut Scan<'_>, obj: &Map<String, Value>, ev: &SseEvent) {
    let ty = event_type(obj, ev);
    let output = num_in(obj, "output_index").unwrap_or(0);
    let part = StreamKey::Part {
        output,
        content: num_in(obj, "content_index").unwrap_or(0),
    };
    let summary = StreamKey::Summary {
        output,
        summary: num_in(obj, "summary_index").unwrap_or(0),
    };
    let item = StreamKey::Item { output };
    match ty {
        "response.output_text.delta" | "response.refusal.delta" => {
            s.add(Kind::Text, part, path(&["delta"]));
        }
        "response.reasoning_text.delta" => s.add(Kind::Reasoning, part, path(&["delta"])),
        "response.reasoning_summary_text.delta" => {
            s.add(Kind::Reasoning, summary, path(&["delta"]));
        }
        "response.function_call_arguments.delta"
        | "response.custom_tool_call_input.delta"
        | "response.mcp_call_arguments.delta" => s.add(Kind::ToolArgs, item, path(&["delta"])),
        "response.output_text.done" | "response.reasoning_text.done" => {
            s.add(Kind::Snapshot, part, path(&["text"]));
            s.end(part);
        }
        "response.refusal.done" => {
            s.add(Kind::Snapshot, part, path(&["refusal"]));
            s.end(part);
        }
        "response.reasoning_summary_text.done" => {
            s.add(Kind::Snapshot, summary, path(&["text"]));
            s.end(summary);
        }
        "response.function_call_arguments.done" | "response.mcp_call_arguments.done" => {
            s.add(Kind::Snapshot, item, path(&["arguments"]));
            s.end(item);
        }
        "response.custom_tool_call_input.done" => {
            s.add(Kind::Snapshot, item, path(&["input"]));
            s.end(item);
        }
        "response.content_part.added" | "response.content_part.done" => {
            let done = ty.ends_with(".done");
            let part_obj = obj.get("part");
            content_part(s, part_obj, path(&["part"]), part, done);
            if done {
                s.end(part);
            }
        }
        "response.reasoning_summary_part.added" | "response.reasoning_summary_part.done" => {
            let done = ty.ends_with(".done");
            let kind = if done {
                Kind::Snapshot
            } else {
                Kind::Reasoning
            };
            s.add(kind, summary, path(&["part", "text"]));
            if done {
                s.end(summary);
            }
        }
        "response.output_item.added" | "response.output_item.done" => {
            let done = ty.ends_with(".done");
            output_item(s, obj.get("item"), path(&["item"]), output, done);
            if done {
                s.end(item);
            }
        }
        "response.created"
        | "response.queued"
        | "response.in_progress"
        | "response.completed"
        | "response.failed"
        | "response.incomplete" => {
            let response = obj.get("response");
            if let Some(Value::Array(items)) = response.and_then(|r| r.get("output")) {
                for (pos, it) in items.iter().enumerate() {
                    let mut base = path(&["response", "output"]);
                    base.push(Step::Index(pos));
                    output_item(s, Some(it), base, pos as u64, true);
                }
            }
            s.usage(
                response.and_then(|r| r.get("usage")),
                "input_tokens",
                "output_tokens",
            );
            if ty == "response.failed" {
                let err = response
                    .and_then(|r| r.get("error"))
                    .filter(|e| !e.is_null());
                s.tail.push(Piece::Error {
                    message: err.map_or_else(|| "response failed".to_owned(), error_message),
                });
            }
            if matches!(
                ty,
                "response.completed" | "response.failed" | "response.incomplete"
            ) {
                s.tail.push(Piece::Done);
            }
        }
        "error" => s.tail.push(Piece::Error {
            message: error_message(&Value::Object(obj.clone())),
        }),
        _ => {}
    }
}

/// A Responses content part at `base`: `output_text`/`refusal` text, or
/// `reasoning_text`. `done` parts repeat text already streamed.
fn content_part(s: &mut Scan<'_>, part: Option<&Value>, base: Path, key: StreamKey, done: bool) {
    let Some(part) = part else { return };
    let (field, kind) = match part.get("type").and_then(Value::as_str) {
        Some("refusal") => ("refusal", Kind::Text),
        Some("reasoning_text") => ("text", Kind::Reasoning),
        _ => ("text", Kind::Text),
    };
    let kind = if done { Kind::Snapshot } else { kind };
    s.add(kind, key, join(&base, &[field]));
}

/// A Responses output item at `base` (message, function/custom/MCP call,
/// reasoning). `done` items repeat text already streamed.
fn output_item(s: &mut Scan<'_>, item: Option<&Value>, base: Path, output: u64, done: bool) {
    let Some(item) = item else { return };
    let snap = |kind| if done { Kind::Snapshot } else { kind };
    match item.get("type").and_then(Value::as_str) {
        Some("message") => {
            if let Some(Value::Array(parts)) = item.get("content") {
                for (ci, part) in parts.iter().enumerate() {
                    let mut p = join(&base, &["content"]);
                    p.push(Step::Index(ci));
                    let key = StreamKey::Part {
                        output,
                        content: ci as u64,
                    };
                    content_part(s, Some(part), p, key, done);
                }
            }
        }
        Some("function_call") | Some("mcp_call") => {
            let key = StreamKey::Item { output };
            s.add(snap(Kind::ToolArgs), key, join(&base, &["arguments"]));
        }
        Some("custom_tool_call") => {
            let key = StreamKey::Item { output };
            s.add(snap(Kind::ToolArgs), key, join(&base, &["input"]));
        }
        Some("reasoning") => {
            for (field, is_summary) in [("summary", true), ("content", false)] {
                if let Some(Value::Array(parts)) = item.get(field) {
                    for (i, _) in parts.iter().enumerate() {
                        let mut p = join(&base, &[field]);
                        p.push(Step::Index(i));
                        p.push(Step::Key("text"));
                        let key = if is_summary {
                            StreamKey::Summary {
                                output,
                                summary: i as u64,
                            }
                        } else {
                            StreamKey::Part {
                                output,
                                content: i as u64,
                            }
                        };
                        s.add(snap(Kind::Reasoning), key, p);
                    }
                }
            }
        }
        _ => {}
    }
}

fn scan_anthropic(s: &mut Scan<'_>, obj: &Map<String, Value>, ev: &SseEvent) {
    let ty = event_type(obj, ev);
    let index = num_in(obj, "index").unwrap_or(0);
    let block = StreamKey::Block { index };
    match ty {
        "message_start" => {
            let message = obj.get("message");
            if let Some(Value::Array(blocks)) = message.and_then(|m| m.get("content")) {
                for (i, b) in blocks.iter().enumerate() {
                    let mut p = path(&["message", "content"]);
                    p.push(Step::Index(i));
                    content_block(s, b, p, StreamKey::Block { index: i as u64 });
                }
            }
            s.usage(
                message.and_then(|m| m.get("usage")),
                "input_tokens",
                "output_tokens",
            );
        }
        "content_block_start" => {
            if let Some(b) = obj.get("content_block") {
                content_block(s, b, path(&["content_block"]), block);
            }
        }
        "content_block_delta" => match obj
            .get("delta")
            .and_then(|d| d.get("type"))
            .and_then(Value::as_str)
        {
            Some("text_delta") => s.add(Kind::Text, block, path(&["delta", "text"])),
            Some("input_json_delta") => {
                s.add(Kind::ToolArgs, block, path(&["delta", "partial_json"]))
            }
            Some("thinking_delta") => s.add(Kind::Reasoning, block, path(&["delta", "thinking"])),
            _ => {}
        },
        "content_block_stop" => s.end(block),
        "message_delta" => s.usage(obj.get("usage"), "input_tokens", "output_tokens"),
        "message_stop" => s.tail.push(Piece::Done),
        "error" => s.tail.push(Piece::Error {
            message: obj
                .get("error")
                .map_or_else(|| "upstream error".to_owned(), error_message),
        }),
        _ => {}
    }
}

/// An Anthropic content block at `base`: `text` or `thinking` text.
fn content_block(s: &mut Scan<'_>, block: &Value, base: Path, key: StreamKey) {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => s.add(Kind::Text, key, join(&base, &["text"])),
        Some("thinking") => s.add(Kind::Reasoning, key, join(&base, &["thinking"])),
        Some("tool_use" | "server_tool_use" | "mcp_tool_use") => {
            s.tail.push(Piece::ToolStart { key });
        }
        _ => {}
    }
}

/// The JSON `type`, else the SSE `event:` name.
fn event_type<'a>(obj: &'a Map<String, Value>, ev: &'a SseEvent) -> &'a str {
    obj.get("type")
        .and_then(Value::as_str)
        .or(ev.event.as_deref())
        .unwrap_or("")
}

fn error_message(err: &Value) -> String {
    match err {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message") {
            Some(Value::String(m)) => m.clone(),
            _ => err.to_string(),
        },
        other => other.to_string(),
    }
}

fn num(v: &Value, field: &str) -> Option<u64> {
    v.get(field).and_then(Value::as_u64)
}

fn num_in(obj: &Map<String, Value>, field: &str) -> Option<u64> {
    obj.get(field).and_then(Value::as_u64)
}

/// One step of a path into the event's JSON; every key is a literal.
#[derive(Debug, Clone, Copy)]
enum Step {
    Key(&'static str),
    Index(usize),
}

/// The deepest path used: `choices[i].delta.tool_calls[j].function.arguments`.
const MAX_STEPS: usize = 8;

/// A path that costs no allocation: classify runs on every event, and only
/// [`rebuild`] needs a [`JsonPath`].
#[derive(Debug, Clone, Copy)]
struct Path {
    steps: [Step; MAX_STEPS],
    len: usize,
    /// A step was dropped (never with the shapes here): the path leads nowhere.
    overflow: bool,
}

impl Path {
    fn push(&mut self, step: Step) {
        match self.steps.get_mut(self.len) {
            Some(slot) => {
                *slot = step;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    fn steps(&self) -> &[Step] {
        self.steps.get(..self.len).unwrap_or(&[])
    }

    fn to_json_path(self) -> JsonPath {
        self.steps()
            .iter()
            .map(|s| match *s {
                Step::Key(k) => PathStep::Key(k.to_owned()),
                Step::Index(i) => PathStep::Index(i),
            })
            .collect()
    }
}

fn path(keys: &[&'static str]) -> Path {
    let mut p = Path {
        steps: [Step::Index(0); MAX_STEPS],
        len: 0,
        overflow: false,
    };
    for k in keys {
        p.push(Step::Key(k));
    }
    p
}

fn join(base: &Path, keys: &[&'static str]) -> Path {
    let mut p = *base;
    for k in keys {
        p.push(Step::Key(k));
    }
    p
}

fn get<'a>(root: &'a Value, path: &Path) -> Option<&'a Value> {
    if path.overflow {
        return None;
    }
    let mut cur = root;
    for step in path.steps() {
        cur = match *step {
            Step::Key(k) => cur.get(k)?,
            Step::Index(i) => cur.get(i)?,
        };
    }
    Some(cur)
}

// --- writing back ------------------------------------------------------------

/// Apply `edits` to the event's JSON (spliced, else re-serialised) and write
/// the event again around the new data.
fn rewrite(ev: &SseEvent, value: &Value, edits: &[Edit]) -> Option<Vec<u8>> {
    let data = match splice::splice(ev.data.as_bytes(), edits) {
        Some(bytes) => String::from_utf8(bytes).ok()?,
        None => {
            let mut v = value.clone();
            for e in edits {
                write_back(&mut v, &e.path, &e.text).ok()?;
            }
            serde_json::to_string(&v).ok()?
        }
    };
    Some(write_event(&ev.raw, &data))
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The event with its `data` replaced by `data` (every other line and line
/// end kept, as [`rebuild`] writes it).
pub fn with_data(ev: &SseEvent, data: &str) -> Vec<u8> {
    write_event(&ev.raw, data)
}

/// `json` (an object) without its top-level member `name` and the comma that
/// joined it; everything else byte for byte. `None` when there is no such
/// member or `json` is not an object.
pub fn remove_member(json: &str, name: &str) -> Option<String> {
    let b = json.as_bytes();
    let open = b.iter().position(|c| !c.is_ascii_whitespace())?;
    if b.get(open) != Some(&b'{') {
        return None;
    }
    // Walk the top-level members: (start of key, end of value) pairs.
    let mut members: Vec<(usize, usize, bool)> = Vec::new();
    let mut i = open + 1;
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b'}' => break,
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_start = i;
        let key_end = skip_string(b, i)?;
        let key: String = serde_json::from_slice(b.get(key_start..key_end)?).ok()?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let value_end = skip_value(b, skip_ws(b, i + 1))?;
        members.push((key_start, value_end, key == name));
        i = value_end;
    }
    let pos = members.iter().position(|m| m.2)?;
    let (start, end, _) = *members.get(pos)?;
    // Remove `"name": value` with the comma after it, or, for the last
    // member, the comma before it.
    let (cut_start, cut_end) = if let Some(next) = members.get(pos + 1) {
        (start, next.0)
    } else if pos > 0 {
        let prev_end = members.get(pos - 1)?.1;
        (prev_end, end)
    } else {
        (start, end)
    };
    let mut out = String::with_capacity(json.len());
    out.push_str(json.get(..cut_start)?);
    out.push_str(json.get(cut_end..)?);
    Some(out)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index after the JSON string starting at `i`.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match b.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The index after the JSON value starting at `i` (nesting bounded by the
/// parser that accepted the event).
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match b.get(i)? {
            b'"' => i = skip_string(b, i)?,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
                i += 1;
            }
            b',' if depth == 0 => return Some(i),
            _ => i += 1,
        }
        if depth == 0 && matches!(b.get(i), Some(b',' | b'}' | b']')) {
            return Some(i);
        }
        if depth == 0 && b.get(i).is_some_and(u8::is_ascii_whitespace) {
            let j = skip_ws(b, i);
            if matches!(b.get(j), Some(b',' | b'}')) {
                return Some(i);
            }
        }
    }
}

/// `raw` with its `data` lines carrying `data` instead: every other line
/// (`event:`, `id:`, comments, the blank line) and every line end is kept.
/// `data` has one segment per original data line when the JSON was spliced
/// (spliced strings never add a line break); otherwise extra segments follow
/// the last data line and missing ones drop the remaining data lines.
fn write_event(raw: &[u8], data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + data.len());
    // A BOM can only start the stream's first event; keep it in front.
    let body = match raw.strip_prefix(BOM) {
        Some(rest) => {
            out.extend_from_slice(BOM);
            rest
        }
        None => raw,
    };
    let lines = split_lines(body);
    let last_data = lines.iter().rposition(|(c, _)| is_data_line(c));
    let mut segs = data.split('\n');
    for (i, (content, term)) in lines.iter().enumerate() {
        if !is_data_line(content) {
            out.extend_from_slice(content);
            out.extend_from_slice(term);
            continue;
        }
        if let Some(seg) = segs.next() {
            write_data_line(&mut out, content, seg, term);
        }
        if Some(i) == last_data {
            for seg in segs.by_ref() {
                write_data_line(&mut out, content, seg, term);
            }
        }
    }
    out
}

/// One `data` line that parses back to `seg`, spelled like `original`.
fn write_data_line(out: &mut Vec<u8>, original: &[u8], seg: &str, term: &[u8]) {
    let spaced = original.starts_with(b"data: ") || seg.starts_with(' ');
    if spaced {
        out.extend_from_slice(b"data: ");
    } else if original == b"data" && seg.is_empty() {
        out.extend_from_slice(b"data");
    } else {
        out.extend_from_slice(b"data:");
    }
    out.extend_from_slice(seg.as_bytes());
    out.extend_from_slice(if term.is_empty() { b"\n" } else { term });
}

fn is_data_line(content: &[u8]) -> bool {
    content == b"data" || content.starts_with(b"data:")
}

/// Lines of `bytes` as (content, line end); CRLF is one line end.
fn split_lines(bytes: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut lines = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
            lines.push((rest, &[][..]));
            break;
        };
        let term_len = if rest.get(pos..pos + 2) == Some(b"\r\n") {
            2
        } else {
            1
        };
        let (Some(content), Some(term), Some(tail)) = (
            rest.get(..pos),
            rest.get(pos..pos + term_len),
            rest.get(pos + term_len..),
        ) else {
            break;
        };
        lines.push((content, term));
        rest = tail;
    }
    lines
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sse::parser::tests::parse_all;
    use crate::sse::parser::SseParser;

    /// OpenAI Chat: role chunk, a keep-alive comment, text with multi-byte
    /// UTF-8 (and an escaped `\u00e9`), a streamed tool call, finish, usage.
    pub(crate) const OPENAI_CHAT: &str = concat!(
        r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        "\n\n: keep-alive\n\n",
        r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"content":"Café "},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"content":"日本 😀"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"content":" ok \u00e9"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Zürich\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}"#,
        "\n\n",
        "data: [DONE]\n\n",
    );

    /// OpenAI Responses: a message with two text deltas, then a function call.
    pub(crate) const OPENAI_RESPONSES: &str = concat!(
        "event: response.created\n",
        r#"data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1700000000,"status":"in_progress","model":"gpt-4o-mini","output":[],"temperature":1.0,"usage":null}}"#,
        "\n\n",
        "event: response.output_item.added\n",
        r#"data: {"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}}"#,
        "\n\n",
        "event: response.content_part.added\n",
        r#"data: {"type":"response.content_part.added","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]}}"#,
        "\n\n",
        "event: response.output_text.delta\n",
        r#"data: {"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Grüße ","logprobs":[]}"#,
        "\n\n",
        "event: response.output_text.delta\n",
        r#"data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"日本 🎉","logprobs":[]}"#,
        "\n\n",
        "event: response.output_text.done\n",
        r#"data: {"type":"response.output_text.done","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Grüße 日本 🎉","logprobs":[]}"#,
        "\n\n",
        "event: response.content_part.done\n",
        r#"data: {"type":"response.content_part.done","sequence_number":6,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"Grüße 日本 🎉","annotations":[],"logprobs":[]}}"#,
        "\n\n",
        "event: response.output_item.done\n",
        r#"data: {"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Grüße 日本 🎉","annotations":[],"logprobs":[]}]}}"#,
        "\n\n",
        "event: response.output_item.added\n",
        r#"data: {"type":"response.output_item.added","sequence_number":8,"output_index":1,"item":{"id":"fc_1","type":"function_call","status":"in_progress","arguments":"","call_id":"call_1","name":"get_weather"}}"#,
        "\n\n",
        "event: response.function_call_arguments.delta\n",
        r#"data: {"type":"response.function_call_arguments.delta","sequence_number":9,"item_id":"fc_1","output_index":1,"delta":"{\"city\":\"Köln\"}"}"#,
        "\n\n",
        "event: response.function_call_arguments.done\n",
        r#"data: {"type":"response.function_call_arguments.done","sequence_number":10,"item_id":"fc_1","output_index":1,"arguments":"{\"city\":\"Köln\"}"}"#,
        "\n\n",
        "event: response.output_item.done\n",
        r#"data: {"type":"response.output_item.done","sequence_number":11,"output_index":1,"item":{"id":"fc_1","type":"function_call","status":"completed","arguments":"{\"city\":\"Köln\"}","call_id":"call_1","name":"get_weather"}}"#,
        "\n\n",
        "event: response.completed\n",
        r#"data: {"type":"response.completed","sequence_number":12,"response":{"id":"resp_1","object":"response","created_at":1700000000,"status":"completed","model":"gpt-4o-mini","output":[{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Grüße 日本 🎉","annotations":[],"logprobs":[]}]},{"id":"fc_1","type":"function_call","status":"completed","arguments":"{\"city\":\"Köln\"}","call_id":"call_1","name":"get_weather"}],"temperature":1.0,"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":0},"output_tokens":11,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":31}}}"#,
        "\n\n",
    );

    /// Anthropic Messages: text block, ping, tool_use block, usage, stop.
    pub(crate) const ANTHROPIC: &str = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        "\n\n",
        "event: ping\n",
        r#"data: {"type": "ping"}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hola, señor "}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"日本 🚀"}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":0}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Málaga\"}"}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":1}"#,
        "\n\n",
        "event: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}"#,
        "\n\n",
        "event: message_stop\n",
        r#"data: {"type":"message_stop"}"#,
        "\n\n",
    );

    pub(crate) fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    pub(crate) fn cr(s: &str) -> Vec<u8> {
        s.replace('\n', "\r").into_bytes()
    }

    /// Every recorded stream, in LF, CRLF and CR variants.
    pub(crate) fn corpus() -> Vec<(StreamApi, Vec<u8>)> {
        let mut v = Vec::new();
        for (api, s) in [
            (StreamApi::OpenaiChat, OPENAI_CHAT),
            (StreamApi::OpenaiResponses, OPENAI_RESPONSES),
            (StreamApi::AnthropicMessages, ANTHROPIC),
        ] {
            v.push((api, s.as_bytes().to_vec()));
            v.push((api, crlf(s)));
            v.push((api, cr(s)));
        }
        v
    }

    fn events(s: &[u8]) -> Vec<SseEvent> {
        let (all, rest) = parse_all(s);
        assert!(rest.is_empty());
        all
    }

    fn text(key: StreamKey, t: &str) -> Piece {
        Piece::Text {
            key,
            text: t.into(),
        }
    }

    fn json_of(ev: &SseEvent) -> Value {
        serde_json::from_str(&ev.data).unwrap()
    }

    fn reparse(bytes: &[u8]) -> SseEvent {
        let mut all = events(bytes);
        assert_eq!(all.len(), 1, "{}", String::from_utf8_lossy(bytes));
        all.remove(0)
    }

    #[test]
    fn classify_openai_chat() {
        let api = StreamApi::OpenaiChat;
        let got: Vec<Vec<Piece>> = events(OPENAI_CHAT.as_bytes())
            .iter()
            .map(|e| classify(api, e))
            .collect();
        let c0 = StreamKey::Content { choice: 0 };
        let t0 = StreamKey::ToolCall {
            choice: 0,
            index: 0,
        };
        let want = vec![
            vec![],
            vec![],
            vec![text(c0, "Café ")],
            vec![text(c0, "日本 😀")],
            vec![text(c0, " ok é")],
            vec![Piece::ToolStart { key: t0 }],
            vec![Piece::ToolArgs {
                key: t0,
                text: "{\"city\":".into(),
            }],
            vec![Piece::ToolArgs {
                key: t0,
                text: "\"Zürich\"}".into(),
            }],
            vec![Piece::BlockEnd {
                key: StreamKey::Choice { choice: 0 },
            }],
            vec![Piece::Usage {
                input_tokens: Some(12),
                output_tokens: Some(9),
                cached_tokens: None,
            }],
            vec![Piece::Done],
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn classify_openai_responses() {
        let api = StreamApi::OpenaiResponses;
        let got: Vec<Vec<Piece>> = events(OPENAI_RESPONSES.as_bytes())
            .iter()
            .map(|e| classify(api, e))
            .collect();
        let p = StreamKey::Part {
            output: 0,
            content: 0,
        };
        let item0 = StreamKey::Item { output: 0 };
        let item1 = StreamKey::Item { output: 1 };
        let full = "Grüße 日本 🎉";
        let args = "{\"city\":\"Köln\"}";
        let snap = |key, t: &str| Piece::Snapshot {
            key,
            text: t.into(),
        };
        let want = vec![
            vec![],
            vec![],
            vec![],
            vec![text(p, "Grüße ")],
            vec![text(p, "日本 🎉")],
            vec![snap(p, full), Piece::BlockEnd { key: p }],
            vec![snap(p, full), Piece::BlockEnd { key: p }],
            vec![snap(p, full), Piece::BlockEnd { key: item0 }],
            vec![Piece::ToolStart { key: item1 }],
            vec![Piece::ToolArgs {
                key: item1,
                text: args.into(),
            }],
            vec![snap(item1, args), Piece::BlockEnd { key: item1 }],
            vec![snap(item1, args), Piece::BlockEnd { key: item1 }],
            vec![
                snap(p, full),
                snap(item1, args),
                Piece::Usage {
                    input_tokens: Some(20),
                    output_tokens: Some(11),
                    cached_tokens: Some(0),
                },
                Piece::Done,
            ],
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn classify_anthropic() {
        let api = StreamApi::AnthropicMessages;
        let got: Vec<Vec<Piece>> = events(ANTHROPIC.as_bytes())
            .iter()
            .map(|e| classify(api, e))
            .collect();
        let b0 = StreamKey::Block { index: 0 };
        let b1 = StreamKey::Block { index: 1 };
        let want = vec![
            vec![Piece::Usage {
                input_tokens: Some(25),
                output_tokens: Some(1),
                cached_tokens: Some(0),
            }],
            vec![],
            vec![],
            vec![text(b0, "Hola, señor ")],
            vec![text(b0, "日本 🚀")],
            vec![Piece::BlockEnd { key: b0 }],
            vec![Piece::ToolStart { key: b1 }],
            vec![Piece::ToolStart { key: b1 }],
            vec![Piece::ToolArgs {
                key: b1,
                text: "{\"city\": \"Málaga\"}".into(),
            }],
            vec![Piece::BlockEnd { key: b1 }],
            vec![Piece::Usage {
                input_tokens: None,
                output_tokens: Some(42),
                cached_tokens: None,
            }],
            vec![Piece::Done],
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn classify_is_the_same_for_crlf_and_cr_streams() {
        for (api, bytes) in corpus() {
            let lf = match api {
                StreamApi::OpenaiChat => OPENAI_CHAT,
                StreamApi::OpenaiResponses => OPENAI_RESPONSES,
                _ => ANTHROPIC,
            };
            let a: Vec<_> = events(lf.as_bytes())
                .iter()
                .map(|e| classify(api, e))
                .collect();
            let b: Vec<_> = events(&bytes).iter().map(|e| classify(api, e)).collect();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn classify_other_shapes() {
        let ev = |data: &str, event: Option<&str>| SseEvent {
            data: data.into(),
            event: event.map(Into::into),
            dispatch: true,
            ..Default::default()
        };
        let chat = StreamApi::OpenaiChat;
        // Several choices, content and finish in one chunk, reasoning, refusal.
        let e = ev(
            r#"{"choices":[{"index":0,"delta":{"content":"a","reasoning_content":"r"},"finish_reason":"stop"},{"index":1,"delta":{"refusal":"no"},"finish_reason":null}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            None,
        );
        assert_eq!(
            classify(chat, &e),
            vec![
                text(StreamKey::Content { choice: 0 }, "a"),
                Piece::Reasoning {
                    key: StreamKey::ReasoningContent { choice: 0 },
                    text: "r".into()
                },
                text(StreamKey::Refusal { choice: 1 }, "no"),
                Piece::BlockEnd {
                    key: StreamKey::Choice { choice: 0 }
                },
                Piece::Usage {
                    input_tokens: Some(1),
                    output_tokens: Some(2),
                    cached_tokens: None
                },
            ]
        );
        assert_eq!(
            classify(
                chat,
                &ev(
                    r#"{"error":{"message":"boom","type":"server_error"}}"#,
                    None
                )
            ),
            vec![Piece::Error {
                message: "boom".into()
            }]
        );
        assert_eq!(classify(chat, &ev("not json", None)), vec![Piece::Opaque]);
        assert_eq!(classify(chat, &ev("[1,2]", None)), vec![Piece::Opaque]);
        assert_eq!(classify(chat, &ev("", None)), vec![]);
        // Legacy completions.
        let e = ev(
            r#"{"id":"cmpl-1","object":"text_completion","choices":[{"text":"hi","index":0,"logprobs":null,"finish_reason":null}]}"#,
            None,
        );
        assert_eq!(
            classify(StreamApi::OpenaiCompletions, &e),
            vec![text(StreamKey::Content { choice: 0 }, "hi")]
        );
        // Anthropic thinking and error; Responses error, reasoning summary.
        let anth = StreamApi::AnthropicMessages;
        let e = ev(
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            Some("content_block_delta"),
        );
        assert_eq!(
            classify(anth, &e),
            vec![Piece::Reasoning {
                key: StreamKey::Block { index: 2 },
                text: "hmm".into()
            }]
        );
        let e = ev(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            Some("error"),
        );
        assert_eq!(
            classify(anth, &e),
            vec![Piece::Error {
                message: "Overloaded".into()
            }]
        );
        let resp = StreamApi::OpenaiResponses;
        let e = ev(
            r#"{"type":"error","code":"ERR","message":"Something went wrong","param":null,"sequence_number":1}"#,
            Some("error"),
        );
        assert_eq!(
            classify(resp, &e),
            vec![Piece::Error {
                message: "Something went wrong".into()
            }]
        );
        let e = ev(
            r#"{"type":"response.reasoning_summary_text.delta","item_id":"rs_1","output_index":0,"summary_index":1,"delta":"think"}"#,
            None,
        );
        assert_eq!(
            classify(resp, &e),
            vec![Piece::Reasoning {
                key: StreamKey::Summary {
                    output: 0,
                    summary: 1
                },
                text: "think".into()
            }]
        );
        // The SSE event name is used when the JSON has no type.
        let e = ev(
            r#"{"index":0,"delta":{"type":"text_delta","text":"x"}}"#,
            Some("content_block_delta"),
        );
        assert_eq!(
            classify(anth, &e),
            vec![text(StreamKey::Block { index: 0 }, "x")]
        );
    }

    #[test]
    fn keys_within_scopes() {
        let choice = StreamKey::Choice { choice: 1 };
        assert!(StreamKey::Content { choice: 1 }.within(&choice));
        assert!(StreamKey::ToolCall {
            choice: 1,
            index: 3
        }
        .within(&choice));
        assert!(!StreamKey::Content { choice: 0 }.within(&choice));
        let item = StreamKey::Item { output: 2 };
        assert!(StreamKey::Part {
            output: 2,
            content: 1
        }
        .within(&item));
        assert!(item.within(&item));
        assert!(!StreamKey::Block { index: 2 }.within(&item));
    }

    #[test]
    fn stream_api_for_request_api() {
        assert_eq!(
            StreamApi::for_api(ApiKind::OpenaiChat),
            Some(StreamApi::OpenaiChat)
        );
        assert_eq!(
            StreamApi::for_api(ApiKind::AnthropicMessages),
            Some(StreamApi::AnthropicMessages)
        );
        assert_eq!(StreamApi::for_api(ApiKind::OpenaiEmbeddings), None);
    }

    /// Every text piece of every event, rebuilt with the same text, gives the
    /// raw bytes back; with new text, only that string changes.
    #[test]
    fn rebuild_same_text_is_byte_exact_and_new_text_changes_only_the_delta() {
        for (api, bytes) in corpus() {
            for ev in events(&bytes) {
                let pieces = classify(api, &ev);
                let texts: Vec<(StreamKey, String)> = pieces
                    .iter()
                    .filter_map(|p| match p {
                        Piece::Text { key, text }
                        | Piece::ToolArgs { key, text }
                        | Piece::Reasoning { key, text }
                        | Piece::Snapshot { key, text } => Some((*key, text.clone())),
                        _ => None,
                    })
                    .collect();
                if texts.is_empty() {
                    assert_eq!(rebuild(api, &ev, "x"), None);
                    continue;
                }
                let same: Vec<(StreamKey, &str)> =
                    texts.iter().map(|(k, t)| (*k, t.as_str())).collect();
                let out = rebuild_with(api, &ev, &same).unwrap();
                // Byte exact, except `\u00e9` which is written as "é".
                let back = reparse(&out);
                assert_eq!(json_of(&back), json_of(&ev));
                if !ev.data.contains("\\u00e9") {
                    assert_eq!(out, ev.raw);
                }
                // A new text in every text piece.
                let new = "[REDACTED] \"q\" 日本\n";
                let edits: Vec<(StreamKey, &str)> = texts.iter().map(|(k, _)| (*k, new)).collect();
                let out = rebuild_with(api, &ev, &edits).unwrap();
                let back = reparse(&out);
                assert_eq!(back.event, ev.event);
                assert_eq!(back.id, ev.id);
                let new_pieces = classify(api, &back);
                assert_eq!(new_pieces.len(), pieces.len());
                for (a, b) in pieces.iter().zip(&new_pieces) {
                    match (a, b) {
                        (Piece::Text { key: k1, .. }, Piece::Text { key: k2, text })
                        | (Piece::ToolArgs { key: k1, .. }, Piece::ToolArgs { key: k2, text })
                        | (Piece::Reasoning { key: k1, .. }, Piece::Reasoning { key: k2, text })
                        | (Piece::Snapshot { key: k1, .. }, Piece::Snapshot { key: k2, text }) => {
                            assert_eq!(k1, k2);
                            assert_eq!(text, new);
                        }
                        _ => assert_eq!(a, b),
                    }
                }
                // Writing the old texts back into the rebuilt event restores
                // the original JSON: nothing else changed.
                let restored = rebuild_with(api, &back, &same).unwrap();
                assert_eq!(json_of(&reparse(&restored)), json_of(&ev));
                // The line ends of the original are kept.
                let crlf_in = ev.raw.windows(2).any(|w| w == b"\r\n");
                let crlf_out = out.windows(2).any(|w| w == b"\r\n");
                assert_eq!(crlf_in, crlf_out);
                if texts.len() == 1 {
                    assert_eq!(rebuild(api, &ev, new), Some(out));
                }
            }
        }
    }

    #[test]
    fn rebuild_keeps_key_order_and_other_lines() {
        let input = b"id: 42\nevent: content_block_delta\n: note\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"call 555-0100\"}}\n\n";
        let ev = reparse(input);
        let out = rebuild(StreamApi::AnthropicMessages, &ev, "call [PHONE]").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id: 42\nevent: content_block_delta\n: note\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"call [PHONE]\"}}\n\n"
        );
    }

    #[test]
    fn rebuild_multi_line_data() {
        let input = b"data:{\"choices\":[{\"index\":0,\r\ndata: \"delta\":{\"content\":\"secret\"}}]}\r\n\r\n";
        let ev = reparse(input);
        assert_eq!(
            classify(StreamApi::OpenaiChat, &ev),
            vec![text(StreamKey::Content { choice: 0 }, "secret")]
        );
        let out = rebuild(StreamApi::OpenaiChat, &ev, "hidden").unwrap();
        assert_eq!(
            out,
            b"data:{\"choices\":[{\"index\":0,\r\ndata: \"delta\":{\"content\":\"hidden\"}}]}\r\n\r\n"
        );
    }

    #[test]
    fn write_event_with_fewer_or_more_segments() {
        let raw = b"event: x\ndata: a\ndata: b\nid: 1\n\n";
        assert_eq!(write_event(raw, "{}"), b"event: x\ndata: {}\nid: 1\n\n");
        assert_eq!(
            write_event(raw, "1\n2\n3"),
            b"event: x\ndata: 1\ndata: 2\ndata: 3\nid: 1\n\n"
        );
        assert_eq!(write_event(b"data\n\n", ""), b"data\n\n");
        assert_eq!(write_event(b"data\n\n", " x"), b"data:  x\n\n");
        assert_eq!(
            write_event(b"\xEF\xBB\xBFdata:1\r\n\r\n", "2"),
            b"\xEF\xBB\xBFdata:2\r\n\r\n"
        );
    }

    #[test]
    fn rebuild_refuses_unknown_keys_and_ambiguity() {
        let evs = events(OPENAI_RESPONSES.as_bytes());
        let api = StreamApi::OpenaiResponses;
        // response.completed has two text pieces: `rebuild` is ambiguous.
        let completed = evs.last().unwrap();
        assert_eq!(rebuild(api, completed, "x"), None);
        let only_args =
            rebuild_with(api, completed, &[(StreamKey::Item { output: 1 }, "{}")]).unwrap();
        let back = reparse(&only_args);
        assert_eq!(
            classify(api, &back)[1],
            Piece::Snapshot {
                key: StreamKey::Item { output: 1 },
                text: "{}".into()
            }
        );
        assert_eq!(
            rebuild_with(api, completed, &[(StreamKey::Item { output: 7 }, "{}")]),
            None
        );
        assert_eq!(
            rebuild_with(api, completed, &[]),
            Some(completed.raw.clone())
        );
        // [DONE] and pings carry nothing to rebuild.
        let chat = events(OPENAI_CHAT.as_bytes());
        assert_eq!(
            rebuild(StreamApi::OpenaiChat, chat.last().unwrap(), "x"),
            None
        );
        // The first chunk's empty content can still be written.
        let first = &chat[0];
        assert_eq!(rebuild(StreamApi::OpenaiChat, first, "x"), None);
        let out = rebuild_with(
            StreamApi::OpenaiChat,
            first,
            &[(StreamKey::Content { choice: 0 }, "x")],
        )
        .unwrap();
        assert_eq!(
            classify(StreamApi::OpenaiChat, &reparse(&out)),
            vec![text(StreamKey::Content { choice: 0 }, "x")]
        );
    }

    #[test]
    fn error_events_are_valid_sse_and_json_of_the_right_shape() {
        for kind in [
            StreamErrorKind::Policy,
            StreamErrorKind::Degraded,
            StreamErrorKind::BadStream,
        ] {
            let msg = "blocked: \"secret\" leaked\n(日本)";
            for api in [StreamApi::OpenaiChat, StreamApi::OpenaiCompletions] {
                let evs = events(&error_event(api, kind, msg));
                assert_eq!(evs.len(), 2);
                let j = json_of(&evs[0]);
                assert_eq!(j["error"]["message"], msg);
                assert_eq!(j["error"]["code"], kind.code());
                assert!(j["error"]["type"].is_string());
                assert!(j["error"]["param"].is_null());
                assert_eq!(evs[1].data, "[DONE]");
                assert_eq!(
                    classify(api, &evs[0]),
                    vec![Piece::Error {
                        message: msg.into()
                    }]
                );
                assert_eq!(classify(api, &evs[1]), vec![Piece::Done]);
            }
            let api = StreamApi::OpenaiResponses;
            let evs = events(&error_event(api, kind, msg));
            assert_eq!(evs.len(), 2);
            assert_eq!(evs[0].event.as_deref(), Some("error"));
            let j = json_of(&evs[0]);
            assert_eq!(j["type"], "error");
            assert_eq!(j["message"], msg);
            assert_eq!(j["code"], kind.code());
            assert_eq!(evs[1].event.as_deref(), Some("response.failed"));
            let j = json_of(&evs[1]);
            assert_eq!(j["type"], "response.failed");
            assert_eq!(j["response"]["status"], "failed");
            assert_eq!(j["response"]["error"]["message"], msg);
            assert_eq!(
                classify(api, &evs[1]),
                vec![
                    Piece::Error {
                        message: msg.into()
                    },
                    Piece::Done
                ]
            );
            let api = StreamApi::AnthropicMessages;
            let evs = events(&error_event(api, kind, msg));
            assert_eq!(evs.len(), 1);
            assert_eq!(evs[0].event.as_deref(), Some("error"));
            let j = json_of(&evs[0]);
            assert_eq!(j["type"], "error");
            assert_eq!(j["error"]["message"], msg);
            assert!(j["error"]["type"].as_str().unwrap().ends_with("_error"));
        }
    }

    /// The parser's events and `classify` agree with the mock upstream's
    /// shapes when fed chunk by chunk (the full loop the filter will run).
    #[test]
    fn parse_classify_rebuild_loop_reproduces_the_stream() {
        for (api, bytes) in corpus() {
            let mut p = SseParser::default();
            let mut out = Vec::new();
            let mut forwarded = Vec::new();
            let mut rest = Vec::new();
            let chunks: Vec<&[u8]> = bytes.chunks(7).collect();
            for i in 0..=chunks.len() {
                match chunks.get(i) {
                    Some(chunk) => p.push(chunk, &mut out).unwrap(),
                    None => rest = p.finish(&mut out),
                }
                for ev in out.drain(..) {
                    let keys: Vec<(StreamKey, String)> = classify(api, &ev)
                        .into_iter()
                        .filter_map(|p| match p {
                            Piece::Text { key, text } | Piece::ToolArgs { key, text } => {
                                Some((key, text))
                            }
                            _ => None,
                        })
                        .collect();
                    if keys.is_empty() {
                        forwarded.extend_from_slice(&ev.raw);
                    } else {
                        let edits: Vec<(StreamKey, &str)> =
                            keys.iter().map(|(k, t)| (*k, t.as_str())).collect();
                        let rebuilt = rebuild_with(api, &ev, &edits).unwrap();
                        forwarded.extend_from_slice(&rebuilt);
                    }
                }
            }
            forwarded.extend(rest);
            let s = String::from_utf8(bytes.clone()).unwrap();
            let want = s.replace("\\u00e9", "é");
            assert_eq!(String::from_utf8(forwarded).unwrap(), want);
        }
    }

    #[test]
    fn tool_names_use_the_keys_classify_gives() {
        for (api, stream, want) in [
            (
                StreamApi::OpenaiChat,
                OPENAI_CHAT,
                StreamKey::ToolCall {
                    choice: 0,
                    index: 0,
                },
            ),
            (
                StreamApi::OpenaiResponses,
                OPENAI_RESPONSES,
                StreamKey::Item { output: 1 },
            ),
            (
                StreamApi::AnthropicMessages,
                ANTHROPIC,
                StreamKey::Block { index: 1 },
            ),
        ] {
            let evs = events(stream.as_bytes());
            let names: Vec<(StreamKey, String)> =
                evs.iter().flat_map(|e| tool_names(api, e)).collect();
            assert_eq!(names, [(want, "get_weather".to_owned())], "{api:?}");
            // The event naming the call is one classify says is part of it.
            for e in evs.iter().filter(|e| !tool_names(api, e).is_empty()) {
                assert!(classify(api, e).iter().any(|p| matches!(p,
                    Piece::ToolStart { key } | Piece::ToolArgs { key, .. } if *key == want)));
            }
        }
    }

    #[test]
    fn tool_names_of_other_shapes() {
        let one = |api, raw: &str| named_tools(api, &reparse(raw.as_bytes()));
        // Chat: several calls in one delta, a second choice, legacy function_call, custom tools.
        let got = one(
            StreamApi::OpenaiChat,
            "data: {\"choices\":[{\"index\":1,\"delta\":{\"tool_calls\":[{\"index\":2,\"function\":{\"name\":\"a\",\"arguments\":\"\"}},{\"index\":3,\"type\":\"custom\",\"custom\":{\"name\":\"b\"}}],\"function_call\":{\"name\":\"c\"}}}]}\n\n",
        );
        let key = |index| StreamKey::ToolCall { choice: 1, index };
        assert_eq!(
            got,
            [
                NamedTool {
                    key: key(2),
                    name: "a".into(),
                    freeform: false
                },
                NamedTool {
                    key: key(3),
                    name: "b".into(),
                    freeform: true
                },
                NamedTool {
                    key: key(0),
                    name: "c".into(),
                    freeform: false
                },
            ]
        );
        // Argument deltas name nothing.
        assert!(one(StreamApi::OpenaiChat, "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n").is_empty());
        // Responses: custom and MCP calls; a message item names nothing.
        let got = one(
            StreamApi::OpenaiResponses,
            "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"output_index\":4,\"item\":{\"type\":\"custom_tool_call\",\"name\":\"sql\",\"input\":\"\"}}\n\n",
        );
        assert_eq!(
            got,
            [NamedTool {
                key: StreamKey::Item { output: 4 },
                name: "sql".into(),
                freeform: true
            }]
        );
        let got = tool_names(
            StreamApi::OpenaiResponses,
            &reparse(b"data: {\"type\":\"response.output_item.added\",\"output_index\":2,\"item\":{\"type\":\"mcp_call\",\"name\":\"search\",\"arguments\":\"\"}}\n\n"),
        );
        assert_eq!(got, [(StreamKey::Item { output: 2 }, "search".to_owned())]);
        assert!(one(StreamApi::OpenaiResponses, "data: {\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":\"message\",\"name\":\"x\"}}\n\n").is_empty());
        // Anthropic: server tools; a text block names nothing.
        let got = tool_names(
            StreamApi::AnthropicMessages,
            &reparse(b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"s\",\"name\":\"web_search\",\"input\":{}}}\n\n"),
        );
        assert_eq!(
            got,
            [(StreamKey::Block { index: 3 }, "web_search".to_owned())]
        );
        assert!(one(StreamApi::AnthropicMessages, "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\",\"name\":\"x\"}}\n\n").is_empty());
        // Not JSON, [DONE], Completions: nothing.
        assert!(one(StreamApi::OpenaiChat, "data: [DONE]\n\n").is_empty());
        assert!(one(StreamApi::OpenaiChat, "data: {oops\n\n").is_empty());
        assert!(one(StreamApi::OpenaiCompletions, "data: {\"choices\":[{\"index\":0,\"delta\":{\"function_call\":{\"name\":\"c\"}}}]}\n\n").is_empty());
    }
}
