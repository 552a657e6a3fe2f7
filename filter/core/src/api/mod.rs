//! LLM API shapes: which API a request speaks, where its scannable text lives,
//! how to write changed text back, and the API's own error shape.
//!
//! Text is addressed by a [`JsonPath`] into the parsed body, so a redaction
//! changes exactly one string and leaves every other value as it was.

mod shapes;
pub mod splice;

pub use shapes::{extract, write_back, MAX_DEPTH};

use crate::detect::Channel;
use serde::{Deserialize, Serialize};

/// The API a body speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum ApiKind {
    /// `POST /v1/chat/completions`
    OpenaiChat,
    /// `POST /v1/responses`
    OpenaiResponses,
    /// `POST /v1/completions` (legacy)
    OpenaiCompletions,
    /// `POST /v1/embeddings`
    OpenaiEmbeddings,
    /// `POST /v1/messages`
    AnthropicMessages,
    /// Any other JSON: every string value is text (or nothing, per policy).
    UnknownJson,
}

impl ApiKind {
    /// The API chosen by path when the config has no override. Query strings
    /// are ignored; a trailing slash is tolerated; any prefix before `/v1/` is
    /// allowed (`/openai/v1/chat/completions`).
    pub fn for_path(path: &str) -> ApiKind {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let path = path.trim_end_matches('/');
        if path.ends_with("/chat/completions") {
            ApiKind::OpenaiChat
        } else if path.ends_with("/responses") {
            ApiKind::OpenaiResponses
        } else if path.ends_with("/completions") {
            ApiKind::OpenaiCompletions
        } else if path.ends_with("/embeddings") {
            ApiKind::OpenaiEmbeddings
        } else if path.ends_with("/messages") {
            ApiKind::AnthropicMessages
        } else {
            ApiKind::UnknownJson
        }
    }

    /// Which error shape local replies for this API use.
    pub fn error_style(self) -> ErrorStyle {
        match self {
            ApiKind::AnthropicMessages => ErrorStyle::Anthropic,
            _ => ErrorStyle::Openai,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::OpenaiChat => "openaiChat",
            ApiKind::OpenaiResponses => "openaiResponses",
            ApiKind::OpenaiCompletions => "openaiCompletions",
            ApiKind::OpenaiEmbeddings => "openaiEmbeddings",
            ApiKind::AnthropicMessages => "anthropicMessages",
            ApiKind::UnknownJson => "unknownJson",
        }
    }
}

/// The error body format of local replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `{"error":{"message","type","param","code"}}`
    Openai,
    /// `{"type":"error","error":{"type","message"}}`
    Anthropic,
}

/// Request or response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// One step into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

/// The location of one string value inside a parsed body.
pub type JsonPath = Vec<PathStep>;

/// What a piece of text is, beyond the channel it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Message text, prompt, instructions, embeddings input.
    Text,
    /// Arguments of a tool/function call (a JSON-encoded string for OpenAI,
    /// a string leaf inside `input` for Anthropic `tool_use`).
    ToolCallArguments,
    /// The result of a tool call sent back to the model.
    ToolResult,
}

/// One scannable string of a body.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub path: JsonPath,
    pub channel: Channel,
    pub kind: SegmentKind,
    pub text: String,
}

/// Errors when writing text back into a body.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApiError {
    #[error("path {0} does not lead to a string in the body")]
    BadPath(String),
}
