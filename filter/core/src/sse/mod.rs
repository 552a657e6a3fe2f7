//! Server-Sent Events in responses: an incremental, WHATWG-conformant parser
//! ([`SseParser`]) and the streamed shapes of the OpenAI and Anthropic APIs
//! ([`classify`], [`rebuild`], [`error_event`]).
//!
//! The filter sees a streamed response as chunks split anywhere. It pushes
//! each chunk into one [`SseParser`] per response and gets whole
//! [`SseEvent`]s back, each with its exact bytes in [`SseEvent::raw`]:
//!
//! ```
//! use tollgate_core::sse::{classify, Piece, SseParser, StreamApi, StreamKey};
//!
//! let mut parser = SseParser::default();
//! let mut events = Vec::new();
//! parser.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel", &mut events).unwrap();
//! assert!(events.is_empty()); // mid-line: nothing yet
//! parser.push(b"lo\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n", &mut events).unwrap();
//! let pieces = classify(StreamApi::OpenaiChat, &events[0]);
//! assert_eq!(pieces, [Piece::Text { key: StreamKey::Content { choice: 0 }, text: "Hello".into() }]);
//! assert_eq!(classify(StreamApi::OpenaiChat, &events[1]), [Piece::Done]);
//! assert!(parser.finish(&mut events).is_empty());
//! ```
//!
//! Forwarding contract: the `raw` bytes of every emitted event, in order,
//! followed by what [`SseParser::finish`] returns, are exactly the bytes
//! pushed. Blocks the standard does not dispatch (keep-alive comments, blocks
//! without `data`) are emitted as events too, with `dispatch == false` and
//! empty `data`, so nothing is lost or reordered. An event the filter leaves
//! alone is forwarded as `raw`; a changed one as [`rebuild`]/[`rebuild_with`]
//! return it.
//!
//! [`StreamScanner`] puts it together for one response: a hold-back window
//! per [`StreamKey`] ([`hold_from`]), the response detectors run on each
//! text as it grows, redaction and pseudonym restoring across chunk
//! borders, tool calls held until complete, usage, and the error event that
//! ends a blocked stream.

mod formats;
mod parser;
mod scanner;
mod window;

pub use formats::{
    cached_tokens, classify, error_event, rebuild, rebuild_with, remove_member, with_data, Piece,
    StreamApi, StreamErrorKind, StreamKey,
};
pub use parser::{SseError, SseEvent, SseParser, DEFAULT_MAX_EVENT_BYTES};
pub use scanner::{StreamFinding, StreamOutcome, StreamScanner, Usage};
pub use window::hold_from;
