//! Rough native timing of one body scan: `cargo run --release -p tollgate-core --example scan_timing`.
use std::time::Instant;
use tollgate_core::api::{ApiKind, Direction};
use tollgate_core::scan::scan_body;
use tollgate_core::Policy;

fn body(size: usize) -> Vec<u8> {
    let para = "The quick brown fox jumps over the lazy dog while the committee reviews\nthe quarterly report on river  ecosystems and their seasonal changes. ";
    let mut text = String::new();
    while text.len() < size {
        text.push_str(para);
    }
    serde_json::json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": text}]})
    .to_string()
    .into_bytes()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = Policy::default_policy()?;
    for size in [1024, 4096, 32768] {
        let b = body(size);
        let n: usize = std::env::var("N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000);
        let t = Instant::now();
        for _ in 0..n {
            let s = scan_body(&policy, ApiKind::OpenaiChat, Direction::Request, &b)?;
            std::hint::black_box(s);
        }
        let per = t.elapsed().as_secs_f64() / n as f64 * 1e6;
        let parse = Instant::now();
        for _ in 0..n {
            let v: serde_json::Value = serde_json::from_slice(&b)?;
            std::hint::black_box(v);
        }
        let parse_us = parse.elapsed().as_secs_f64() / n as f64 * 1e6;
        // The user message's text, as the filter scans it.
        let v: serde_json::Value = serde_json::from_slice(&b)?;
        let text = v
            .pointer("/messages/1/content")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(tollgate_core::detect::normalize::Normalized::new(&text));
        }
        let norm_us = t.elapsed().as_secs_f64() / n as f64 * 1e6;
        let base = tollgate_core::detect::normalize::Normalized::new(&text);
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(tollgate_core::detect::views::derive(&text, &base));
        }
        let derive_us = t.elapsed().as_secs_f64() / n as f64 * 1e6;
        println!("        derive views {derive_us:6.1} us");
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(tollgate_core::scan::scan_text(
                &policy,
                &text,
                tollgate_core::detect::Channel::User,
            ));
        }
        let text_us = t.elapsed().as_secs_f64() / n as f64 * 1e6;
        println!("        normalise {norm_us:6.1} us, scan_text {text_us:6.1} us");
        println!(
            "{size:>6} B body: scan_body {per:8.1} us (of which JSON parse {parse_us:6.1} us)"
        );
    }
    Ok(())
}

#[allow(dead_code)]
fn parts() {}
