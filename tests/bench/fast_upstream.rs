//! A minimal, fast LLM upstream for the A/B load test (`tests/bench/ab.py`).
//!
//! std only, HTTP/1.1, one thread per connection, keep-alive. It reads each
//! request's body (Content-Length or chunked) and always answers 200 with a
//! fixed small OpenAI `chat.completion` JSON. It must never be the bottleneck,
//! so it does no JSON work and writes each response with a single `write`.
//!
//! Usage: `tollgate-bench-upstream [--port N]` (0, the default, picks a free
//! port). Prints `READY <port>` on stdout once listening. Any error on a
//! connection (malformed request, I/O error) closes that connection.
//!
//! With `x-bench-stream: N` it streams instead: an OpenAI Chat SSE reply of N
//! content deltas (one word each), then the finish chunk and `[DONE]`, each
//! event in its own HTTP chunk and `write`, `x-bench-chunk-delay-us: D`
//! microseconds apart (default 0), so the filter sees one event per callback.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;

const RESPONSE_BODY: &str = concat!(
    r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"#,
    r#""model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","#,
    r#""content":"OK."},"logprobs":null,"finish_reason":"stop"}],"#,
    r#""usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}"#
);

/// Longest request line or header line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 200;

fn main() -> ExitCode {
    let port = match parse_port(std::env::args().skip(1)) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("tollgate-bench-upstream: {msg}");
            eprintln!("usage: tollgate-bench-upstream [--port N]");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tollgate-bench-upstream: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bound = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => {
            eprintln!("tollgate-bench-upstream: {e}");
            return ExitCode::FAILURE;
        }
    };
    let response = build_response();
    let mut out = io::stdout();
    if writeln!(out, "READY {bound}")
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let response = response.clone();
        // A failed spawn (out of threads) drops the connection, nothing more.
        let _ = thread::Builder::new()
            .name("conn".into())
            .spawn(move || serve(stream, &response));
    }
    ExitCode::SUCCESS
}

fn parse_port(mut args: impl Iterator<Item = String>) -> Result<u16, String> {
    let mut port = 0u16;
    while let Some(arg) = args.next() {
        let value = if arg == "--port" {
            args.next().ok_or("--port needs a value")?
        } else if let Some(v) = arg.strip_prefix("--port=") {
            v.to_string()
        } else {
            return Err(format!("unknown argument {arg:?}"));
        };
        port = value.parse().map_err(|_| format!("bad port {value:?}"))?;
    }
    Ok(port)
}

fn build_response() -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        RESPONSE_BODY.len()
    )
    .into_bytes();
    r.extend_from_slice(RESPONSE_BODY.as_bytes());
    r
}

/// Serve one connection until the peer closes it or an error happens.
fn serve(stream: TcpStream, response: &[u8]) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = Vec::with_capacity(256);
    loop {
        match read_request(&mut reader, &mut line) {
            Ok(Some(req)) => {
                let sent = match req.stream {
                    Some((n, delay)) => write_stream(&mut writer, n, delay),
                    None => writer.write_all(response),
                };
                if sent.is_err() || !req.keep_alive {
                    return;
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

const WORDS: &[&str] = &[
    "The ",
    "answer ",
    "to ",
    "your ",
    "question ",
    "depends ",
    "on ",
    "the ",
    "context, ",
    "but ",
    "in ",
    "most ",
    "cases ",
    "it ",
    "is ",
    "fine. ",
];

/// An SSE reply of `n` one-word deltas, one HTTP chunk per event.
fn write_stream(w: &mut TcpStream, n: usize, delay_us: u64) -> io::Result<()> {
    w.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
    )?;
    let chunk = |w: &mut TcpStream, ev: &str| -> io::Result<()> {
        w.write_all(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes())
    };
    let head = r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":"#;
    chunk(
        w,
        &format!(
            "{head}{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n"
        ),
    )?;
    for i in 0..n {
        if delay_us > 0 {
            thread::sleep(std::time::Duration::from_micros(delay_us));
        }
        let word = WORDS.get(i % WORDS.len()).copied().unwrap_or("x ");
        chunk(
            w,
            &format!("{head}{{\"content\":\"{word}\"}},\"finish_reason\":null}}]}}\n\n"),
        )?;
    }
    chunk(
        w,
        &format!("{head}{{}},\"finish_reason\":\"stop\"}}]}}\n\n"),
    )?;
    chunk(w, "data: [DONE]\n\n")?;
    w.write_all(b"0\r\n\r\n")
}

/// What a request asks of the upstream.
struct Request {
    keep_alive: bool,
    /// `x-bench-stream` deltas and `x-bench-chunk-delay-us`.
    stream: Option<(usize, u64)>,
}

/// How the request body is framed.
enum Framing {
    Length(u64),
    Chunked,
}

/// Read one request (head and body, body discarded). `Ok(None)` is a clean
/// close before a new request.
fn read_request(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> io::Result<Option<Request>> {
    // Request line (tolerate blank lines before it, as RFC 9112 allows).
    let request_line = loop {
        if !read_line(r, line)? {
            return Ok(None);
        }
        let l = trim_crlf(line);
        if !l.is_empty() {
            break String::from_utf8_lossy(l).into_owned();
        }
    };
    let http10 = request_line.ends_with("HTTP/1.0");
    let mut keep_alive = !http10;
    let mut framing = Framing::Length(0);
    let mut headers = 0usize;
    let mut stream: Option<usize> = None;
    let mut delay_us = 0u64;
    loop {
        if !read_line(r, line)? {
            return Err(bad("connection closed inside the headers"));
        }
        let l = trim_crlf(line);
        if l.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(bad("too many headers"));
        }
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            return Err(bad("header without a colon"));
        };
        let (name, rest) = l.split_at(colon);
        let value = String::from_utf8_lossy(rest.get(1..).unwrap_or_default());
        let value = value.trim();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = value.parse().map_err(|_| bad("bad content-length"))?;
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if value.to_ascii_lowercase().contains("chunked") {
                framing = Framing::Chunked;
            }
        } else if name.eq_ignore_ascii_case(b"x-bench-stream") {
            stream = Some(value.parse().map_err(|_| bad("bad x-bench-stream"))?);
        } else if name.eq_ignore_ascii_case(b"x-bench-chunk-delay-us") {
            delay_us = value
                .parse()
                .map_err(|_| bad("bad x-bench-chunk-delay-us"))?;
        } else if name.eq_ignore_ascii_case(b"connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                keep_alive = false;
            } else if v.contains("keep-alive") {
                keep_alive = true;
            }
        }
    }
    match framing {
        Framing::Length(n) => discard(r, n)?,
        Framing::Chunked => read_chunked(r, line)?,
    }
    Ok(Some(Request {
        keep_alive,
        stream: stream.map(|n| (n.min(100_000), delay_us.min(1_000_000))),
    }))
}

fn read_chunked(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> io::Result<()> {
    loop {
        if !read_line(r, line)? {
            return Err(bad("connection closed inside a chunked body"));
        }
        let l = String::from_utf8_lossy(trim_crlf(line)).into_owned();
        let size_hex = l.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers until the empty line.
            loop {
                if !read_line(r, line)? {
                    return Err(bad("connection closed inside the trailers"));
                }
                if trim_crlf(line).is_empty() {
                    return Ok(());
                }
            }
        }
        discard(r, size)?;
        if !read_line(r, line)? || !trim_crlf(line).is_empty() {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

/// Read and drop exactly `n` bytes.
fn discard(r: &mut BufReader<TcpStream>, mut n: u64) -> io::Result<()> {
    while n > 0 {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Err(bad("connection closed inside the body"));
        }
        let take = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        r.consume(take);
        n -= take as u64;
    }
    Ok(())
}

/// Read one line (up to and including `\n`) into `line`. `Ok(false)` at EOF
/// before any byte.
fn read_line(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    let n = r.by_ref().take(MAX_LINE as u64).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(false);
    }
    if line.last() != Some(&b'\n') {
        return Err(bad("line too long or truncated"));
    }
    Ok(true)
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
