//! Native benchmarks of the SSE parser and the stream formats:
//! `cargo bench -p tollgate-core --bench sse`.
//!
//! The stream is what the mock upstream sends for a 1.6 KB reply: OpenAI Chat
//! chunks of 16 bytes of text each (about 300 bytes per event), delivered in
//! 100-byte chunks so most chunks end mid-line. Goal: well under 1 us per
//! 100-byte chunk for the parser.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::rc::Rc;
use tollgate_core::redact::Pseudonyms;
use tollgate_core::sse::{classify, rebuild, SseEvent, SseParser, StreamApi, StreamScanner};
use tollgate_core::Policy;

fn chat_stream() -> Vec<u8> {
    let reply = "Here is the summary you asked for: the committee met on Tuesday, \
        reviewed the budget (about 1,2 M€), and agreed on three next steps. 日本語も少し. ";
    let mut out = Vec::new();
    let head = r#"data: {"id":"chatcmpl-mock-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":"#;
    let mut text = String::new();
    while text.len() < 1600 {
        text.push_str(reply);
    }
    let mut piece = String::new();
    let mut pieces = Vec::new();
    for ch in text.chars() {
        if piece.len() + ch.len_utf8() > 16 {
            pieces.push(std::mem::take(&mut piece));
        }
        piece.push(ch);
    }
    pieces.push(piece);
    for p in pieces {
        out.extend_from_slice(head.as_bytes());
        let delta = serde_json::json!({ "content": p }).to_string();
        out.extend_from_slice(delta.as_bytes());
        out.extend_from_slice(br#","logprobs":null,"finish_reason":null}]}"#);
        out.extend_from_slice(b"\n\n");
    }
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(br#"{},"logprobs":null,"finish_reason":"stop"}]}"#);
    out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
    out
}

fn benches(c: &mut Criterion) {
    let stream = chat_stream();
    let chunks: Vec<&[u8]> = stream.chunks(100).collect();
    let mut events: Vec<SseEvent> = Vec::new();
    {
        let mut p = SseParser::default();
        for ch in &chunks {
            p.push(ch, &mut events).unwrap_or_default();
        }
    }

    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Elements(chunks.len() as u64));
    g.bench_function("parse/100-byte chunks (per element = one chunk)", |b| {
        let mut out = Vec::with_capacity(8);
        b.iter(|| {
            let mut p = SseParser::default();
            for ch in &chunks {
                p.push(black_box(ch), &mut out).unwrap_or_default();
                out.clear();
            }
            black_box(p.finish(&mut out));
        })
    });
    g.throughput(Throughput::Elements(events.len() as u64));
    // The floor under classify: serde_json parsing the event's data alone.
    g.bench_function(
        "json parse only/chat event (per element = one event)",
        |b| {
            b.iter(|| {
                for ev in &events {
                    black_box(serde_json::from_str::<serde_json::Value>(black_box(&ev.data)).ok());
                }
            })
        },
    );
    g.bench_function("classify/chat event (per element = one event)", |b| {
        b.iter(|| {
            for ev in &events {
                black_box(classify(StreamApi::OpenaiChat, black_box(ev)));
            }
        })
    });
    g.bench_function("rebuild/chat event (per element = one event)", |b| {
        b.iter(|| {
            for ev in &events {
                black_box(rebuild(StreamApi::OpenaiChat, black_box(ev), "[REDACTED]"));
            }
        })
    });
    // The whole streaming scanner with the default policy (PII patterns on
    // every window, hold-back, rebuild): per event, the filter's cost per chunk.
    let policy = match Policy::default_policy() {
        Ok(p) => Rc::new(p),
        Err(e) => unreachable!("{e}"),
    };
    let event_bytes: Vec<Vec<u8>> = events.iter().map(|e| e.raw.clone()).collect();
    g.bench_function(
        "scanner/default policy, one event per chunk (per element = one event)",
        |b| {
            let mut out = Vec::with_capacity(4096);
            b.iter(|| {
                let mut s = StreamScanner::new(
                    StreamApi::OpenaiChat,
                    policy.clone(),
                    Pseudonyms::default(),
                    false,
                );
                for ev in &event_bytes {
                    s.push(black_box(ev), &mut out);
                    out.clear();
                }
                s.finish(&mut out);
                black_box(&out);
                out.clear();
            })
        },
    );
    g.finish();
}

criterion_group!(sse, benches);
criterion_main!(sse);
