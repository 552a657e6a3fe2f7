//! Incremental Server-Sent Events parser after the WHATWG HTML standard,
//! "event stream interpretation" (section 9.2.6).
//!
//! Bytes arrive in chunks split anywhere: inside a line, between the CR and
//! LF of one line end, inside a multi-byte UTF-8 sequence. The parser keeps
//! the bytes of the event in progress and decodes a line only once it is
//! complete, so the result never depends on where the stream was split.
//!
//! Every byte pushed ends up in exactly one place: the [`SseEvent::raw`] of an
//! emitted event, or what [`SseParser::finish`] returns. Blocks the standard
//! does not dispatch (comments-only keep-alives, blocks without a `data`
//! field) are emitted too, with [`SseEvent::dispatch`] false, so a filter can
//! forward them byte for byte.

use std::borrow::Cow;
use std::mem;

/// The default bound on one event (its lines, comments and line ends): 1 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One block of the stream, up to and including the blank line that ends it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SseEvent {
    /// The `event` field (last one wins); `None` when absent or empty, which
    /// the standard reads as `message`.
    pub event: Option<String>,
    /// The `data` fields joined with `\n`.
    pub data: String,
    /// The `id` field of this block (last valid one wins; an `id` containing
    /// NUL is ignored). `Some("")` resets the last event id. The id carried
    /// over from earlier blocks is [`SseParser::last_event_id`].
    pub id: Option<String>,
    /// The `retry` field when it is all ASCII digits and fits a `u64`.
    pub retry: Option<u64>,
    /// Whether a browser would fire a `message` event for this block: true
    /// when it had at least one `data` field (even an empty one). False for
    /// keep-alive comments, blank lines and blocks of other fields only.
    pub dispatch: bool,
    /// The exact bytes of the block as received, from its first line to the
    /// blank line included (with a leading BOM if this is the stream's first).
    pub raw: Vec<u8>,
}

/// Why the parser stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line or an event grew past the bound without a blank line.
    #[error("SSE event larger than {limit} bytes (no blank line within the limit)")]
    EventTooLarge { limit: usize },
}

/// Fields of the event in progress.
#[derive(Debug, Default)]
struct Fields {
    data: String,
    event: String,
    id: Option<String>,
    retry: Option<u64>,
}

/// The incremental parser. One per response stream.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// Bytes of the event in progress not yet emitted, the partial line included.
    pending: Vec<u8>,
    /// Where the partial (unterminated) line starts in `pending`.
    line_start: usize,
    fields: Fields,
    /// The last byte consumed was a CR ending a line: a LF next is part of it.
    after_cr: bool,
    /// That CR ended a blank line: the event is emitted once the next byte
    /// (or the end of the stream) shows whether a LF belongs to it.
    held: bool,
    /// No line has been completed yet (a BOM is skipped only on the first).
    at_start: bool,
    last_event_id: String,
    failed: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser that fails once one event (or line) exceeds `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            pending: Vec::new(),
            line_start: 0,
            fields: Fields::default(),
            after_cr: false,
            held: false,
            at_start: true,
            last_event_id: String::new(),
            failed: false,
        }
    }

    /// The standard's "last event ID" after the blocks parsed so far.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Bytes received and not yet emitted in an event.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feed the next chunk; completed events are appended to `out`.
    ///
    /// On [`SseError::EventTooLarge`], `out` holds the events completed
    /// before the bound was hit, [`finish`](Self::finish) returns every other
    /// byte pushed so far (the rest of this chunk included), and later pushes
    /// fail again without keeping their bytes: the caller forwards those
    /// itself or ends the stream.
    ///
    /// A blank line ended by a CR that is the last byte of `bytes` is held
    /// until the next push (or `finish`), since a LF may follow.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.failed {
            return Err(self.too_large());
        }
        let mut rest = bytes;
        if self.after_cr {
            let Some((&first, tail)) = rest.split_first() else {
                return Ok(());
            };
            self.after_cr = false;
            if first == b'\n' {
                self.reserve(1, rest)?;
                self.pending.push(b'\n');
                self.line_start = self.pending.len();
                rest = tail;
            }
            if self.held {
                self.held = false;
                self.emit(out);
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (is_cr, term_len) = match (rest.get(pos), rest.get(pos + 1)) {
                (Some(b'\r'), Some(b'\n')) => (false, 2),
                (Some(b'\r'), _) => (true, 1),
                _ => (false, 1),
            };
            let take = pos + term_len;
            self.reserve(take, rest)?;
            let Some((line, tail)) = split_at(rest, take) else {
                break;
            };
            self.pending.extend_from_slice(line);
            rest = tail;
            let content_end = self.pending.len() - term_len;
            let blank = self.complete_line(content_end);
            // A lone CR that ends the chunk may be the first half of a CRLF.
            let cr_at_end = is_cr && rest.is_empty();
            self.after_cr = cr_at_end;
            if blank {
                if cr_at_end {
                    self.held = true;
                } else {
                    self.emit(out);
                }
            }
        }
        if !rest.is_empty() {
            self.reserve(rest.len(), rest)?;
            self.pending.extend_from_slice(rest);
        }
        Ok(())
    }

    /// End of stream. A held event (blank line ended by a final CR) is
    /// emitted to `out`. The bytes of an unterminated event are returned
    /// unparsed: the standard does not dispatch an event without its blank
    /// line, so the caller forwards them as they are. The parser is then
    /// ready for a new stream.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Vec<u8> {
        if self.held && !self.failed {
            self.emit(out);
        }
        let rest = mem::take(&mut self.pending);
        *self = SseParser::new(self.max_event_bytes);
        rest
    }

    fn too_large(&self) -> SseError {
        SseError::EventTooLarge {
            limit: self.max_event_bytes,
        }
    }

    /// Check that `n` more bytes fit the bound; if not, keep `unconsumed` (the
    /// rest of the chunk) for `finish` and fail.
    fn reserve(&mut self, n: usize, unconsumed: &[u8]) -> Result<(), SseError> {
        if self.pending.len().saturating_add(n) <= self.max_event_bytes {
            return Ok(());
        }
        self.failed = true;
        self.held = false;
        self.pending.extend_from_slice(unconsumed);
        Err(self.too_large())
    }

    /// The line `pending[line_start..content_end]` is complete: interpret it.
    /// Returns true for a blank line.
    fn complete_line(&mut self, content_end: usize) -> bool {
        let mut line = self
            .pending
            .get(self.line_start..content_end)
            .unwrap_or(&[]);
        self.line_start = self.pending.len();
        if mem::take(&mut self.at_start) {
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            return true;
        }
        apply_line(line, &mut self.fields, &mut self.last_event_id);
        false
    }

    /// Emit the pending block as an event (a blank line just ended it).
    fn emit(&mut self, out: &mut Vec<SseEvent>) {
        let raw = mem::take(&mut self.pending);
        self.line_start = 0;
        let fields = mem::take(&mut self.fields);
        let dispatch = !fields.data.is_empty();
        let mut data = fields.data;
        if data.ends_with('\n') {
            data.pop();
        }
        out.push(SseEvent {
            event: (!fields.event.is_empty()).then_some(fields.event),
            data,
            id: fields.id,
            retry: fields.retry,
            dispatch,
            raw,
        });
    }
}

fn split_at(bytes: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    Some((bytes.get(..at)?, bytes.get(at..)?))
}

/// Interpret one non-blank line (without its line end).
fn apply_line(line: &[u8], fields: &mut Fields, last_event_id: &mut String) {
    let (name, value) = match line.iter().position(|&b| b == b':') {
        Some(0) => return, // comment
        Some(colon) => {
            let name = line.get(..colon).unwrap_or(&[]);
            let value = line.get(colon + 1..).unwrap_or(&[]);
            (name, value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &[][..]),
    };
    match name {
        b"data" => {
            fields.data.push_str(&decode(value));
            fields.data.push('\n');
        }
        b"event" => fields.event = decode(value).into_owned(),
        // An id containing NUL is ignored.
        b"id" if !value.contains(&0) => {
            let id = decode(value).into_owned();
            last_event_id.clone_from(&id);
            fields.id = Some(id);
        }
        // Digits only; an overflow (the only parse failure left) is ignored too.
        b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
            if let Ok(ms) = decode(value).parse::<u64>() {
                fields.retry = Some(ms);
            }
        }
        _ => {}
    }
}

/// UTF-8 decode with U+FFFD for invalid sequences, as the standard's decoder.
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn parse_all(input: &[u8]) -> (Vec<SseEvent>, Vec<u8>) {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.push(input, &mut out).unwrap();
        let rest = p.finish(&mut out);
        (out, rest)
    }

    fn dispatched(input: &[u8]) -> Vec<SseEvent> {
        parse_all(input)
            .0
            .into_iter()
            .filter(|e| e.dispatch)
            .collect()
    }

    fn datas(input: &[u8]) -> Vec<String> {
        dispatched(input).into_iter().map(|e| e.data).collect()
    }

    /// Parse `input` split at the given (sorted) offsets.
    pub(crate) fn parse_split(input: &[u8], cuts: &[usize]) -> (Vec<SseEvent>, Vec<u8>) {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            p.push(&input[start..c], &mut out).unwrap();
            start = c;
        }
        let rest = p.finish(&mut out);
        (out, rest)
    }

    fn concat(events: &[SseEvent], rest: &[u8]) -> Vec<u8> {
        let mut all: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
        all.extend_from_slice(rest);
        all
    }

    /// Deterministic xorshift64* PRNG.
    pub(crate) struct XorShift(pub u64);
    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    // --- WHATWG examples -------------------------------------------------

    #[test]
    fn whatwg_stock_example() {
        // "data: YHOO\ndata: +2\ndata: 10\n\n" -> one event "YHOO\n+2\n10"
        assert_eq!(
            datas(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
            ["YHOO\n+2\n10"]
        );
    }

    #[test]
    fn whatwg_comment_and_ids() {
        let input = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n";
        let (all, rest) = parse_all(input);
        assert!(rest.is_empty());
        assert_eq!(all.len(), 4);
        assert!(!all[0].dispatch);
        assert_eq!(all[0].raw, b": test stream\n\n");
        assert_eq!(all[1].data, "first event");
        assert_eq!(all[1].id.as_deref(), Some("1"));
        assert_eq!(all[2].data, "second event");
        assert_eq!(all[2].id.as_deref(), Some(""));
        // Only one space is removed.
        assert_eq!(all[3].data, " third event");
        assert_eq!(all[3].id, None);
        assert_eq!(concat(&all, &rest), input);
    }

    #[test]
    fn whatwg_empty_data_fields() {
        // "data\n\ndata\ndata\n\ndata:" -> "", "\n", and the last is never dispatched.
        let (all, rest) = parse_all(b"data\n\ndata\ndata\n\ndata:");
        let d: Vec<&str> = all
            .iter()
            .filter(|e| e.dispatch)
            .map(|e| e.data.as_str())
            .collect();
        assert_eq!(d, ["", "\n"]);
        assert_eq!(rest, b"data:");
    }

    #[test]
    fn whatwg_space_after_colon_is_optional() {
        assert_eq!(datas(b"data:test\n\ndata: test\n\n"), ["test", "test"]);
    }

    #[test]
    fn field_without_colon_and_unknown_fields() {
        let all = dispatched(b"event\ndata\nfoo: bar\nDATA: no\n\n");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].event, None);
        assert_eq!(all[0].data, "");
    }

    #[test]
    fn event_type_and_reset() {
        let all = dispatched(b"event: add\ndata: 1\n\ndata: 2\n\n");
        assert_eq!(all[0].event.as_deref(), Some("add"));
        assert_eq!(all[1].event, None);
    }

    #[test]
    fn event_field_without_data_is_not_dispatched_and_does_not_leak() {
        let (all, _) = parse_all(b"event: x\n\ndata: y\n\n");
        assert!(!all[0].dispatch);
        assert_eq!(all[0].event.as_deref(), Some("x"));
        assert_eq!(all[1].event, None);
        assert_eq!(all[1].data, "y");
    }

    #[test]
    fn line_ends_cr_lf_crlf_mixed() {
        let input = b"data: a\rdata: b\r\ndata: c\n\r\ndata: d\r\rdata: e\n\n";
        let (all, rest) = parse_all(input);
        let d: Vec<&str> = all.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(d, ["a\nb\nc", "d", "e"]);
        assert_eq!(all[0].raw, b"data: a\rdata: b\r\ndata: c\n\r\n");
        assert_eq!(concat(&all, &rest), input);
    }

    #[test]
    fn crlf_split_between_cr_and_lf_is_one_line_end() {
        let input = b"data: a\r\n\r\ndata: b\r\n\r\n";
        for cut in 0..=input.len() {
            let (all, rest) = parse_split(input, &[cut]);
            assert_eq!(all.len(), 2, "cut {cut}");
            assert_eq!(all[0].raw, b"data: a\r\n\r\n", "cut {cut}");
            assert_eq!(concat(&all, &rest), input);
        }
    }

    #[test]
    fn held_cr_event_is_released_by_next_push_or_finish() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.push(b"data: a\r\r", &mut out).unwrap();
        assert!(out.is_empty());
        p.push(b"data: b", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].raw, b"data: a\r\r");
        let mut out = Vec::new();
        p.push(b"\r\r", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(p.finish(&mut out).is_empty());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, "b");
    }

    #[test]
    fn bom_skipped_once_at_start_only() {
        let all = dispatched(b"\xEF\xBB\xBFdata: x\n\n\xEF\xBB\xBFdata: y\n\ndata: z\n\n");
        // The second BOM makes the field name "\u{FEFF}data": ignored.
        let d: Vec<&str> = all.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(d, ["x", "z"]);
        assert!(all[0].raw.starts_with(BOM));
        // Split inside the BOM.
        let input = b"\xEF\xBB\xBFdata: x\n\n";
        for cut in 0..input.len() {
            let (all, _) = parse_split(input, &[cut]);
            assert_eq!(all[0].data, "x");
        }
    }

    #[test]
    fn bom_alone_then_blank_line() {
        let (all, rest) = parse_all(b"\xEF\xBB\xBF\ndata: x\n\n");
        assert_eq!(all.len(), 2);
        assert!(!all[0].dispatch);
        assert_eq!(all[1].data, "x");
        assert!(rest.is_empty());
    }

    #[test]
    fn retry_digits_only() {
        let all =
            parse_all(b"retry: 1500\n\nretry: 15x\n\nretry:\n\nretry: 99999999999999999999999\n\n")
                .0;
        assert_eq!(all[0].retry, Some(1500));
        assert_eq!(all[1].retry, None);
        assert_eq!(all[2].retry, None);
        assert_eq!(all[3].retry, None);
        assert!(all.iter().all(|e| !e.dispatch));
    }

    #[test]
    fn id_with_nul_ignored_and_last_event_id_persists() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.push(b"id: 7\ndata: a\n\nid: 8\x009\ndata: b\n\n", &mut out)
            .unwrap();
        assert_eq!(out[0].id.as_deref(), Some("7"));
        assert_eq!(out[1].id, None);
        assert_eq!(p.last_event_id(), "7");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        let all = dispatched(b"data: a\xFFb\xE6\x97\n\n");
        assert_eq!(all[0].data, "a\u{FFFD}b\u{FFFD}");
        // A multi-byte character split across chunks stays whole.
        let input = "data: 日本é😀\n\n".as_bytes();
        for cut in 0..=input.len() {
            let (all, _) = parse_split(input, &[cut]);
            assert_eq!(all[0].data, "日本é😀", "cut {cut}");
        }
    }

    #[test]
    fn unterminated_event_is_returned_by_finish() {
        let (all, rest) = parse_all(b"data: a\n\ndata: b\n");
        assert_eq!(all.len(), 1);
        assert_eq!(rest, b"data: b\n");
    }

    #[test]
    fn empty_pushes_change_nothing() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.push(b"", &mut out).unwrap();
        p.push(b"data: a\r", &mut out).unwrap();
        p.push(b"", &mut out).unwrap();
        p.push(b"\n\r", &mut out).unwrap();
        p.push(b"", &mut out).unwrap();
        p.push(b"\n", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].raw, b"data: a\r\n\r\n");
    }

    // --- property: any split gives the same result ------------------------

    /// A stream with everything at once: BOM, mixed line ends, comments,
    /// ids, retry, unknown fields, invalid UTF-8, an unterminated tail.
    fn odd_stream() -> Vec<u8> {
        let mut v =
            b"\xEF\xBB\xBF: hello\r\nretry: 3000\r\n\r\nid: 1\rdata: a\xFF\xE6\x97\r\rdata\n\n"
                .to_vec();
        v.extend_from_slice(
            "event: x\r\ndata: é日本😀\r\ndata:  two\ncustom: 1\r\n\r\n".as_bytes(),
        );
        v.extend_from_slice(b"data: [DONE]\r\n\r\n\r\n\n\rdata: tail without end");
        v
    }

    fn check_splits(input: &[u8], rng: &mut XorShift, rounds: usize) {
        let want = parse_all(input);
        assert_eq!(concat(&want.0, &want.1), input);
        for cut in 0..=input.len() {
            assert!(parse_split(input, &[cut]) == want, "cut {cut}");
        }
        let bytes: Vec<usize> = (1..input.len()).collect();
        assert!(parse_split(input, &bytes) == want, "byte by byte");
        for round in 0..rounds {
            let max_cuts = if round % 2 == 0 { 8 } else { 200 };
            let n = 1 + rng.below(max_cuts);
            let mut cuts: Vec<usize> = (0..n).map(|_| rng.below(input.len() + 1)).collect();
            cuts.sort_unstable();
            assert!(parse_split(input, &cuts) == want, "cuts {cuts:?}");
        }
    }

    #[test]
    fn any_split_of_recorded_streams_gives_the_same_events() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let corpus = crate::sse::formats::tests::corpus();
        assert_eq!(corpus.len(), 9);
        for (_, input) in &corpus {
            let (events, rest) = parse_all(input);
            assert!(rest.is_empty());
            assert!(events.len() > 10);
            check_splits(input, &mut rng, 2000);
        }
    }

    #[test]
    fn any_split_of_an_odd_stream_gives_the_same_events() {
        let input = odd_stream();
        let (all, rest) = parse_all(&input);
        let d: Vec<&str> = all
            .iter()
            .filter(|e| e.dispatch)
            .map(|e| e.data.as_str())
            .collect();
        assert_eq!(d, ["a\u{FFFD}\u{FFFD}", "", "é日本😀\n two", "[DONE]"]);
        assert_eq!(all[0].retry, Some(3000));
        assert_eq!(all[3].event.as_deref(), Some("x"));
        assert_eq!(all[1].id.as_deref(), Some("1"));
        assert_eq!(rest, b"data: tail without end");
        check_splits(&input, &mut XorShift(42), 2000);
    }

    // --- the bound -------------------------------------------------------

    #[test]
    fn line_over_the_bound_fails_and_keeps_bytes() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.push(b"data: ok\n\n", &mut out).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut pushed = 0;
        let err = loop {
            match p.push(&chunk, &mut out) {
                Ok(()) => pushed += chunk.len(),
                Err(e) => break e,
            }
            assert!(pushed <= DEFAULT_MAX_EVENT_BYTES);
        };
        assert_eq!(
            err,
            SseError::EventTooLarge {
                limit: DEFAULT_MAX_EVENT_BYTES
            }
        );
        assert_eq!(out.len(), 1);
        // Further pushes fail and keep nothing.
        assert!(p.push(b"\n\n", &mut out).is_err());
        let rest = p.finish(&mut out);
        assert_eq!(rest.len(), pushed + chunk.len());
        assert!(err.to_string().contains("1048576"));
    }

    #[test]
    fn event_of_many_short_lines_over_the_bound_fails() {
        let mut p = SseParser::new(1000);
        let mut out = Vec::new();
        let line = b"data: 0123456789\n";
        let mut res = Ok(());
        for _ in 0..100 {
            res = p.push(line, &mut out);
            if res.is_err() {
                break;
            }
        }
        assert!(res.is_err());
        assert!(p.pending_len() <= 1000 + line.len());
        assert!(out.is_empty());
    }

    #[test]
    fn events_exactly_at_the_bound_pass() {
        let mut p = SseParser::new(12);
        let mut out = Vec::new();
        for _ in 0..3 {
            p.push(b"data: 1234\n\n", &mut out).unwrap();
        }
        assert_eq!(out.len(), 3);
        assert!(p.push(b"data: 12345\n\n", &mut out).is_err());
        let rest = p.finish(&mut out);
        assert_eq!(rest, b"data: 12345\n\n");
    }

    #[test]
    fn finish_resets_for_a_new_stream() {
        let mut p = SseParser::new(12);
        let mut out = Vec::new();
        assert!(p.push(b"data: 0123456789", &mut out).is_err());
        assert_eq!(p.finish(&mut out).len(), 16);
        p.push(b"\xEF\xBB\xBFdata: x\n\n", &mut out).unwrap();
        assert_eq!(out[0].data, "x");
    }
}
