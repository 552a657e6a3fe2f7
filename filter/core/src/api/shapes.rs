//! Where each API keeps its text, and how to put changed text back.
//!
//! [`extract`] walks a parsed body with the shape its [`ApiKind`] expects and
//! returns every string a detector should look at, each with the exact
//! [`JsonPath`] of that string. It reads object entries in the body's own
//! order, so segments come out in document order. It never fails: a value of
//! the wrong type (a number where text was expected, `messages` not an array,
//! `null` content) is skipped. A body that does not have the shape its kind
//! expects at all (a chat request without `messages`, an error object instead
//! of a completion) is treated as unknown JSON.
//!
//! Walks over JSON of arbitrary shape (unknown JSON, Anthropic `tool_use`
//! input, tool parameter schemas) stop descending at [`MAX_DEPTH`] steps from
//! the root of the body, so a hostile body cannot exhaust the stack.

use super::{ApiError, ApiKind, Direction, JsonPath, PathStep, Segment, SegmentKind};
use crate::detect::Channel;
use serde_json::{Map, Value};

/// Containers this many steps below the root of the body are not entered:
/// strings up to this depth are extracted, deeper ones are not. Equal to
/// serde_json's recursion limit, so every body that parses is walked in full
/// and no text can hide below the walk (deeper bodies fail to parse: 400).
pub const MAX_DEPTH: usize = 128;

/// Every scannable string of `body`, in document order. Never panics, whatever the JSON.
///
/// `scan_unknown` applies to [`ApiKind::UnknownJson`] and to bodies that do not
/// have the shape their kind expects: when true, every string value (not keys)
/// is a [`SegmentKind::Text`] segment on [`Channel::User`]; when false, such a
/// body yields nothing. Empty strings are never segments.
pub fn extract(kind: ApiKind, dir: Direction, body: &Value, scan_unknown: bool) -> Vec<Segment> {
    let mut w = Walker::default();
    match body
        .as_object()
        .filter(|obj| has_expected_shape(kind, dir, obj))
    {
        Some(obj) => match (kind, dir) {
            (ApiKind::OpenaiChat, Direction::Request) => chat_request(&mut w, obj),
            (ApiKind::OpenaiChat, Direction::Response) => chat_response(&mut w, obj),
            (ApiKind::OpenaiResponses, Direction::Request) => responses_request(&mut w, obj),
            (ApiKind::OpenaiResponses, Direction::Response) => responses_response(&mut w, obj),
            (ApiKind::OpenaiCompletions, Direction::Request) => completions_request(&mut w, obj),
            (ApiKind::OpenaiCompletions, Direction::Response) => completions_response(&mut w, obj),
            (ApiKind::OpenaiEmbeddings, Direction::Request) => embeddings_request(&mut w, obj),
            (ApiKind::OpenaiEmbeddings, Direction::Response) => {}
            (ApiKind::AnthropicMessages, dir) => anthropic(&mut w, obj, dir),
            (ApiKind::UnknownJson, _) => {}
        },
        None if scan_unknown => string_leaves(&mut w, body, Channel::User, SegmentKind::Text),
        None => {}
    }
    w.out
}

/// Replace the string at `path` with `text`. Err(BadPath) when the path does not lead to a string.
pub fn write_back(body: &mut Value, path: &[PathStep], text: &str) -> Result<(), ApiError> {
    let mut cur = body;
    for step in path {
        let next = match (step, cur) {
            (PathStep::Key(key), Value::Object(obj)) => obj.get_mut(key),
            (PathStep::Index(i), Value::Array(arr)) => arr.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else {
            return Err(ApiError::BadPath(display_path(path)));
        };
        cur = next;
    }
    match cur {
        Value::String(s) => {
            text.clone_into(s);
            Ok(())
        }
        _ => Err(ApiError::BadPath(display_path(path))),
    }
}

/// `$.messages[0].content`, with `["..."]` for keys that are not identifiers.
fn display_path(path: &[PathStep]) -> String {
    let mut out = String::from("$");
    for step in path {
        match step {
            PathStep::Key(key) if is_identifier(key) => {
                out.push('.');
                out.push_str(key);
            }
            PathStep::Key(key) => {
                out.push('[');
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(']');
            }
            PathStep::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a body has the top-level field its kind and direction are known by.
fn has_expected_shape(kind: ApiKind, dir: Direction, obj: &Map<String, Value>) -> bool {
    let is = |key: &str, string: bool, array: bool, object: bool| match obj.get(key) {
        Some(Value::String(_)) => string,
        Some(Value::Array(_)) => array,
        Some(Value::Object(_)) => object,
        _ => false,
    };
    match (kind, dir) {
        (ApiKind::OpenaiChat | ApiKind::AnthropicMessages, Direction::Request) => {
            is("messages", false, true, false)
        }
        (ApiKind::OpenaiChat | ApiKind::OpenaiCompletions, Direction::Response) => {
            is("choices", false, true, false)
        }
        (ApiKind::OpenaiResponses, Direction::Request) => {
            is("input", true, true, false)
                || is("instructions", true, true, false)
                || is("prompt", false, false, true)
        }
        (ApiKind::OpenaiResponses, Direction::Response) => {
            is("output", false, true, false) || is("output_text", true, false, false)
        }
        (ApiKind::OpenaiCompletions, Direction::Request) => is("prompt", true, true, false),
        (ApiKind::OpenaiEmbeddings, Direction::Request) => is("input", true, true, false),
        (ApiKind::OpenaiEmbeddings, Direction::Response) => is("data", false, true, false),
        (ApiKind::AnthropicMessages, Direction::Response) => is("content", false, true, false),
        (ApiKind::UnknownJson, _) => false,
    }
}

/// The path to the value being looked at, and the segments found so far.
#[derive(Default)]
struct Walker {
    path: JsonPath,
    out: Vec<Segment>,
}

impl Walker {
    /// A segment for the string at the current path.
    fn emit(&mut self, channel: Channel, kind: SegmentKind, text: &str) {
        if !text.is_empty() {
            self.out.push(Segment {
                path: self.path.clone(),
                channel,
                kind,
                text: text.to_owned(),
            });
        }
    }

    fn at_key(&mut self, key: &str, f: impl FnOnce(&mut Self)) {
        self.path.push(PathStep::Key(key.to_owned()));
        f(self);
        self.path.pop();
    }

    fn at_index(&mut self, index: usize, f: impl FnOnce(&mut Self)) {
        self.path.push(PathStep::Index(index));
        f(self);
        self.path.pop();
    }

    /// Calls `f` on `obj[key]` when present.
    fn field(&mut self, obj: &Map<String, Value>, key: &str, f: impl FnOnce(&mut Self, &Value)) {
        if let Some(v) = obj.get(key) {
            self.at_key(key, |w| f(w, v));
        }
    }

    /// A segment for `obj[key]` when it is a string.
    fn string_field(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        channel: Channel,
        kind: SegmentKind,
    ) {
        self.field(obj, key, |w, v| string(w, v, channel, kind));
    }
}

/// A segment for `v` when it is a string.
fn string(w: &mut Walker, v: &Value, channel: Channel, kind: SegmentKind) {
    if let Value::String(s) = v {
        w.emit(channel, kind, s);
    }
}

/// Calls `f` on each element of `v` when it is an array.
fn each(w: &mut Walker, v: &Value, f: impl Fn(&mut Walker, &Value)) {
    if let Value::Array(items) = v {
        for (i, item) in items.iter().enumerate() {
            w.at_index(i, |w| f(w, item));
        }
    }
}

/// Calls `f` on `v` when it is an object.
fn object(w: &mut Walker, v: &Value, f: impl FnOnce(&mut Walker, &Map<String, Value>)) {
    if let Value::Object(obj) = v {
        f(w, obj);
    }
}

fn type_of(obj: &Map<String, Value>) -> Option<&str> {
    obj.get("type").and_then(Value::as_str)
}

/// Every string leaf of `v`, to [`MAX_DEPTH`] below the root of the body.
fn string_leaves(w: &mut Walker, v: &Value, channel: Channel, kind: SegmentKind) {
    match v {
        Value::String(s) => w.emit(channel, kind, s),
        Value::Array(items) if w.path.len() < MAX_DEPTH => {
            for (i, item) in items.iter().enumerate() {
                w.at_index(i, |w| string_leaves(w, item, channel, kind));
            }
        }
        Value::Object(obj) if w.path.len() < MAX_DEPTH => {
            for (key, item) in obj {
                w.at_key(key, |w| string_leaves(w, item, channel, kind));
            }
        }
        _ => {}
    }
}

/// Every `description` string inside a tool's JSON Schema (the model reads
/// parameter descriptions as instructions too), to [`MAX_DEPTH`].
fn schema_descriptions(w: &mut Walker, v: &Value) {
    if w.path.len() >= MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(obj) => {
            for (key, item) in obj {
                match item {
                    Value::String(s) if key == "description" => {
                        w.at_key(key, |w| w.emit(Channel::System, SegmentKind::Text, s));
                    }
                    Value::Object(_) | Value::Array(_) => {
                        w.at_key(key, |w| schema_descriptions(w, item));
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                w.at_index(i, |w| schema_descriptions(w, item));
            }
        }
        _ => {}
    }
}

/// The channel and kind of an OpenAI message's text, by its role. An unknown
/// or missing role is scanned as user text.
fn openai_role(role: Option<&str>) -> (Channel, SegmentKind) {
    match role {
        Some("system" | "developer") => (Channel::System, SegmentKind::Text),
        Some("assistant") => (Channel::Assistant, SegmentKind::Text),
        Some("tool" | "function") => (Channel::Tool, SegmentKind::ToolResult),
        _ => (Channel::User, SegmentKind::Text),
    }
}

/// OpenAI `content`: a string, or an array of content parts.
fn openai_content(w: &mut Walker, v: &Value, channel: Channel, kind: SegmentKind) {
    match v {
        Value::String(s) => w.emit(channel, kind, s),
        Value::Array(_) => each(w, v, |w, part| openai_part(w, part, channel, kind)),
        _ => {}
    }
}

/// One OpenAI content part: text of the text-like types, the refusal of a
/// refusal; images, audio and files are skipped.
fn openai_part(w: &mut Walker, part: &Value, channel: Channel, kind: SegmentKind) {
    object(w, part, |w, p| match type_of(p) {
        None | Some("text" | "input_text" | "output_text" | "summary_text" | "reasoning_text") => {
            w.string_field(p, "text", channel, kind);
        }
        Some("refusal") => w.string_field(p, "refusal", channel, kind),
        Some(_) => {}
    });
}

/// The arguments of one entry of `tool_calls`.
fn openai_tool_call(w: &mut Walker, call: &Value) {
    object(w, call, |w, call| {
        for (key, v) in call {
            match key.as_str() {
                "function" => w.at_key(key, |w| openai_function_call(w, v)),
                "custom" => w.at_key(key, |w| {
                    object(w, v, |w, custom| {
                        w.string_field(
                            custom,
                            "input",
                            Channel::Assistant,
                            SegmentKind::ToolCallArguments,
                        );
                    });
                }),
                _ => {}
            }
        }
    });
}

/// `{name, arguments}`: `arguments` is a JSON-encoded string.
fn openai_function_call(w: &mut Walker, v: &Value) {
    object(w, v, |w, f| {
        w.string_field(
            f,
            "arguments",
            Channel::Assistant,
            SegmentKind::ToolCallArguments,
        );
    });
}

/// A function definition `{name, description, parameters}`.
fn function_definition(w: &mut Walker, v: &Value) {
    object(w, v, |w, f| {
        for (key, v) in f {
            match key.as_str() {
                "description" => {
                    w.at_key(key, |w| string(w, v, Channel::System, SegmentKind::Text))
                }
                "parameters" => w.at_key(key, |w| schema_descriptions(w, v)),
                _ => {}
            }
        }
    });
}

// ---- OpenAI Chat Completions ----

fn chat_request(w: &mut Walker, obj: &Map<String, Value>) {
    for (key, v) in obj {
        match key.as_str() {
            "messages" => w.at_key(key, |w| {
                each(w, v, |w, m| {
                    let role = m.get("role").and_then(Value::as_str);
                    let (channel, kind) = openai_role(role);
                    chat_message(w, m, channel, kind);
                });
            }),
            "tools" => w.at_key(key, |w| {
                each(w, v, |w, tool| {
                    object(w, tool, |w, tool| {
                        for (key, v) in tool {
                            if key == "function" || key == "custom" {
                                w.at_key(key, |w| function_definition(w, v));
                            }
                        }
                    });
                });
            }),
            "functions" => w.at_key(key, |w| each(w, v, function_definition)),
            _ => {}
        }
    }
}

fn chat_response(w: &mut Walker, obj: &Map<String, Value>) {
    w.field(obj, "choices", |w, v| {
        each(w, v, |w, choice| {
            object(w, choice, |w, choice| {
                w.field(choice, "message", |w, m| {
                    chat_message(w, m, Channel::Assistant, SegmentKind::Text);
                });
            });
        });
    });
}

/// A chat message: its content, refusal and tool call arguments.
fn chat_message(w: &mut Walker, m: &Value, channel: Channel, kind: SegmentKind) {
    object(w, m, |w, m| {
        for (key, v) in m {
            match key.as_str() {
                "content" => w.at_key(key, |w| openai_content(w, v, channel, kind)),
                "refusal" => w.at_key(key, |w| string(w, v, channel, SegmentKind::Text)),
                "tool_calls" => w.at_key(key, |w| each(w, v, openai_tool_call)),
                "function_call" => w.at_key(key, |w| openai_function_call(w, v)),
                _ => {}
            }
        }
    });
}

// ---- OpenAI Responses ----

fn responses_request(w: &mut Walker, obj: &Map<String, Value>) {
    for (key, v) in obj {
        match key.as_str() {
            "instructions" => w.at_key(key, |w| match v {
                Value::String(s) => w.emit(Channel::System, SegmentKind::Text, s),
                _ => each(w, v, |w, item| responses_item(w, item, Direction::Request)),
            }),
            "input" => w.at_key(key, |w| match v {
                Value::String(s) => w.emit(Channel::User, SegmentKind::Text, s),
                _ => each(w, v, |w, item| match item {
                    Value::String(s) => w.emit(Channel::User, SegmentKind::Text, s),
                    _ => responses_item(w, item, Direction::Request),
                }),
            }),
            "tools" => w.at_key(key, |w| each(w, v, function_definition)),
            "prompt" => w.at_key(key, |w| {
                object(w, v, |w, prompt| {
                    w.field(prompt, "variables", |w, vars| {
                        object(w, vars, |w, vars| {
                            for (name, var) in vars {
                                w.at_key(name, |w| match var {
                                    Value::String(s) => w.emit(Channel::User, SegmentKind::Text, s),
                                    _ => openai_part(w, var, Channel::User, SegmentKind::Text),
                                });
                            }
                        });
                    });
                });
            }),
            _ => {}
        }
    }
}

fn responses_response(w: &mut Walker, obj: &Map<String, Value>) {
    for (key, v) in obj {
        match key.as_str() {
            "output" => {
                w.at_key(key, |w| {
                    each(w, v, |w, item| responses_item(w, item, Direction::Response))
                });
            }
            "output_text" => w.at_key(key, |w| string(w, v, Channel::Assistant, SegmentKind::Text)),
            _ => {}
        }
    }
}

/// One item of a Responses `input` or `output`. Reasoning summaries are read in
/// responses only: in a request they are the model's own earlier output.
fn responses_item(w: &mut Walker, item: &Value, dir: Direction) {
    object(w, item, |w, item| match type_of(item) {
        None | Some("message") => {
            let (channel, kind) = match dir {
                Direction::Request => openai_role(item.get("role").and_then(Value::as_str)),
                Direction::Response => (Channel::Assistant, SegmentKind::Text),
            };
            w.field(item, "content", |w, v| openai_content(w, v, channel, kind));
        }
        Some("function_call") => {
            w.string_field(
                item,
                "arguments",
                Channel::Assistant,
                SegmentKind::ToolCallArguments,
            );
        }
        Some("custom_tool_call") => {
            w.string_field(
                item,
                "input",
                Channel::Assistant,
                SegmentKind::ToolCallArguments,
            );
        }
        Some("function_call_output" | "custom_tool_call_output") => {
            w.field(item, "output", |w, v| {
                openai_content(w, v, Channel::Tool, SegmentKind::ToolResult);
            });
        }
        Some("mcp_call") => {
            for (key, v) in item {
                match key.as_str() {
                    "arguments" => w.at_key(key, |w| {
                        string(w, v, Channel::Assistant, SegmentKind::ToolCallArguments);
                    }),
                    "output" => w.at_key(key, |w| {
                        string(w, v, Channel::Tool, SegmentKind::ToolResult);
                    }),
                    _ => {}
                }
            }
        }
        Some("reasoning") if dir == Direction::Response => {
            w.field(item, "summary", |w, v| {
                openai_content(w, v, Channel::Assistant, SegmentKind::Text);
            });
        }
        Some(_) => {}
    });
}

// ---- OpenAI legacy Completions and Embeddings ----

/// A string, or the strings of an array (token-id arrays are skipped).
fn strings(w: &mut Walker, v: &Value, channel: Channel) {
    match v {
        Value::String(s) => w.emit(channel, SegmentKind::Text, s),
        Value::Array(_) => each(w, v, |w, item| string(w, item, channel, SegmentKind::Text)),
        _ => {}
    }
}

fn completions_request(w: &mut Walker, obj: &Map<String, Value>) {
    for (key, v) in obj {
        if key == "prompt" || key == "suffix" {
            w.at_key(key, |w| strings(w, v, Channel::User));
        }
    }
}

fn completions_response(w: &mut Walker, obj: &Map<String, Value>) {
    w.field(obj, "choices", |w, v| {
        each(w, v, |w, choice| {
            object(w, choice, |w, choice| {
                w.string_field(choice, "text", Channel::Assistant, SegmentKind::Text);
            });
        });
    });
}

/// Embeddings inputs are documents on their way into a vector store (OWASP
/// LLM08): scanned on the `document` channel, whose injection thresholds
/// are those of retrieved text.
fn embeddings_request(w: &mut Walker, obj: &Map<String, Value>) {
    w.field(obj, "input", |w, v| strings(w, v, Channel::Document));
}

// ---- Anthropic Messages ----

fn anthropic(w: &mut Walker, obj: &Map<String, Value>, dir: Direction) {
    if dir == Direction::Response {
        w.field(obj, "content", |w, v| {
            each(w, v, |w, block| {
                anthropic_block(w, block, Channel::Assistant, dir)
            });
        });
        return;
    }
    for (key, v) in obj {
        match key.as_str() {
            "system" => w.at_key(key, |w| {
                text_blocks(w, v, Channel::System, SegmentKind::Text)
            }),
            "messages" => w.at_key(key, |w| {
                each(w, v, |w, m| {
                    object(w, m, |w, m| {
                        let channel = match m.get("role").and_then(Value::as_str) {
                            Some("assistant") => Channel::Assistant,
                            _ => Channel::User,
                        };
                        w.field(m, "content", |w, content| match content {
                            Value::String(s) => w.emit(channel, SegmentKind::Text, s),
                            _ => each(w, content, |w, block| {
                                anthropic_block(w, block, channel, dir)
                            }),
                        });
                    });
                });
            }),
            "tools" => w.at_key(key, |w| {
                each(w, v, |w, tool| {
                    object(w, tool, |w, tool| {
                        for (key, v) in tool {
                            match key.as_str() {
                                "description" => w.at_key(key, |w| {
                                    string(w, v, Channel::System, SegmentKind::Text);
                                }),
                                "input_schema" => w.at_key(key, |w| schema_descriptions(w, v)),
                                _ => {}
                            }
                        }
                    });
                });
            }),
            _ => {}
        }
    }
}

/// One content block of a message on `channel`. Thinking is read in responses
/// only: in a request it is signed earlier output that must not change.
fn anthropic_block(w: &mut Walker, block: &Value, channel: Channel, dir: Direction) {
    object(w, block, |w, b| match type_of(b) {
        None | Some("text") => w.string_field(b, "text", channel, SegmentKind::Text),
        Some("tool_use" | "server_tool_use") => w.field(b, "input", |w, input| {
            string_leaves(w, input, Channel::Assistant, SegmentKind::ToolCallArguments);
        }),
        Some("tool_result") => w.field(b, "content", |w, content| {
            nested_blocks(w, content, Channel::Tool, SegmentKind::ToolResult);
        }),
        Some("document") => anthropic_document(w, b, Channel::Document, SegmentKind::Text),
        Some("search_result") => w.field(b, "content", |w, content| {
            text_blocks(w, content, Channel::Document, SegmentKind::Text);
        }),
        Some("thinking") if dir == Direction::Response => {
            w.string_field(b, "thinking", Channel::Assistant, SegmentKind::Text);
        }
        Some(_) => {}
    });
}

/// The content of a `tool_result`: a string, or text, document and search
/// result blocks, all of it the tool's.
fn nested_blocks(w: &mut Walker, v: &Value, channel: Channel, kind: SegmentKind) {
    match v {
        Value::String(s) => w.emit(channel, kind, s),
        Value::Array(_) => each(w, v, |w, block| {
            object(w, block, |w, b| match type_of(b) {
                None | Some("text") => w.string_field(b, "text", channel, kind),
                Some("document") => anthropic_document(w, b, channel, kind),
                Some("search_result") => {
                    w.field(b, "content", |w, content| {
                        text_blocks(w, content, channel, kind)
                    });
                }
                Some(_) => {}
            });
        }),
        _ => {}
    }
}

/// A string, or the text of an array of text blocks.
fn text_blocks(w: &mut Walker, v: &Value, channel: Channel, kind: SegmentKind) {
    match v {
        Value::String(s) => w.emit(channel, kind, s),
        Value::Array(_) => each(w, v, |w, block| {
            object(w, block, |w, b| {
                if matches!(type_of(b), None | Some("text")) {
                    w.string_field(b, "text", channel, kind);
                }
            });
        }),
        _ => {}
    }
}

/// A `document` block's text: `source.data` of a text source, or the text
/// blocks of a content source. PDFs, images and URLs are skipped.
fn anthropic_document(w: &mut Walker, b: &Map<String, Value>, channel: Channel, kind: SegmentKind) {
    w.field(b, "source", |w, source| {
        object(w, source, |w, source| match type_of(source) {
            Some("text") => w.string_field(source, "data", channel, kind),
            Some("content") => {
                w.field(source, "content", |w, content| {
                    text_blocks(w, content, channel, kind)
                });
            }
            _ => {}
        });
    });
}
