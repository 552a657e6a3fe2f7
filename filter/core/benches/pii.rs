//! Native benchmarks of the PII and secret patterns:
//! `cargo bench -p tollgate-core --bench pii`.
//!
//! Three 4 KB bodies (goal in the filter: <= 50 us inside Envoy's V8, about
//! 15 us native): benign chat prose, a body dense with PII and secrets, and
//! a body of hard negatives (order numbers, timestamps, hashes, versions,
//! prices, base64).
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tollgate_core::detect::pii::{PiiPatterns, PiiType};

const PROSE: &str = "Thanks for the summary of the quarterly report. Could you rewrite the \
second paragraph so that it reads more naturally, keep the tone friendly but professional, \
and add a short list of three next steps for the field team? Also, the committee wants to \
know how the river ecosystems changed over the seasons, so please mention the main risks. ";

const DENSE: &str = "Name: Jane Doe, email jane.doe@example.com, phone +44 20 7946 0958, \
card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, SSN 536-22-8726, \
NI number AB 12 34 56 C, NHS 943 476 5919, DNI 12345678Z, born on 15 March 1985, \
server 192.168.1.34, mac 00:1A:2B:3C:4D:5E, AKIAIOSFODNN7EXAMPLE, \
api_key=9f8B7c6D5e4F3a2B1c0D, call (415) 555-0132, Steuer-ID 86095742719. ";

const NEGATIVES: &str = "Order #4829301756 shipped at 2024-03-15T10:22:33Z (epoch 1710498153), \
commit a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 fixes 9fceb02 in v10.4.1.2 and 4.19.0-21-amd64, \
id 123e4567-e89b-12d3-a456-426614174000 costs $1,299.99 or 1.299,00 EUR, ISBN 978-3-16-148410-0, \
colour #ff5733, data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg== ";

fn body(para: &str, size: usize) -> String {
    let mut t = String::new();
    while t.len() < size {
        t.push_str(para);
    }
    let mut end = size;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    t.truncate(end);
    t
}

fn benches(c: &mut Criterion) {
    let Ok(all) = PiiPatterns::all() else {
        eprintln!("the PII patterns failed to build");
        return;
    };
    let Ok(emails) = PiiPatterns::new(&[PiiType::Email, PiiType::Phone]) else {
        return;
    };
    for (name, para) in [
        ("4KB benign prose", PROSE),
        ("4KB dense PII", DENSE),
        ("4KB hard negatives", NEGATIVES),
    ] {
        let text = body(para, 4096);
        let mut out = Vec::with_capacity(64);
        c.bench_function(&format!("pii/all types/{name}"), |b| {
            b.iter(|| {
                out.clear();
                all.scan(black_box(&text), 0.5, &mut out);
                black_box(out.len())
            })
        });
    }
    let text = body(PROSE, 4096);
    let mut out = Vec::new();
    c.bench_function("pii/email+phone/4KB benign prose", |b| {
        b.iter(|| {
            out.clear();
            emails.scan(black_box(&text), 0.5, &mut out);
            black_box(out.len())
        })
    });
    c.bench_function("pii/build all", |b| {
        b.iter(|| black_box(PiiPatterns::all().is_ok()))
    });
}

criterion_group!(pii, benches);
criterion_main!(pii);
