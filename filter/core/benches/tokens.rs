//! Native benchmarks of the token counter: `cargo bench -p tollgate-core --bench tokens`.
//!
//! 4 KB of English prose, of code and of Chinese, counted whole with each
//! encoding; the prose streamed through a `Counter` in 20-byte deltas; the
//! worst case (a quarter megabyte of one letter); and tiktoken-rs's
//! `encode_ordinary` on the same texts for comparison.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tollgate_core::tokens::{count, preload, Counter, Encoding};

const PROSE: &str = "Thanks for the summary of the quarterly report. Could you rewrite the \
second paragraph so that it reads more naturally, keep the tone friendly but professional, \
and add a short list of three next steps for the field team? Also, the committee wants to \
know how the river ecosystems changed over the seasons, so please mention the main risks. ";

const CODE: &str = "fn main() -> Result<(), Box<dyn std::error::Error>> {\n    let args: Vec<String> = \
std::env::args().collect();\n    for (i, a) in args.iter().enumerate() {\n        println!(\"{i}: {a:?}\");\n    }\n    Ok(())\n}\n";

const CHINESE: &str = "请总结这份季度报告的第二段，使其读起来更自然，语气友好而专业，并为现场团队列出三个后续步骤。\n";

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
    for e in [Encoding::Cl100kBase, Encoding::O200kBase] {
        if !preload(e) {
            eprintln!("{} is not compiled in (feature `tokenizer`)", e.name());
        }
    }
    let mut group = c.benchmark_group("tokens");
    for (name, para) in [("prose", PROSE), ("code", CODE), ("chinese", CHINESE)] {
        let text = body(para, 4096);
        group.throughput(Throughput::Bytes(text.len() as u64));
        for model in ["gpt-4o", "gpt-4"] {
            group.bench_function(format!("count/{model}/4KB {name}"), |b| {
                b.iter(|| count(black_box(model), black_box(&text)))
            });
        }
    }
    let text = body(PROSE, 4096);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("counter/gpt-4o/4KB prose in 20-byte deltas", |b| {
        b.iter(|| {
            let mut c = Counter::new("gpt-4o");
            for d in text.as_bytes().chunks(20) {
                c.push(std::str::from_utf8(d).unwrap_or_default());
            }
            black_box(c.finish())
        })
    });
    // The worst case: 256 KiB without a space (16 KiB merged, the rest estimated).
    let run = "a".repeat(256 << 10);
    group.throughput(Throughput::Bytes(run.len() as u64));
    group.bench_function("count/gpt-4o/256KB of one letter", |b| {
        b.iter(|| count("gpt-4o", black_box(&run)))
    });
    group.finish();
}

criterion_group!(name = tokens; config = Criterion::default().sample_size(30); targets = benches);

fn reference(c: &mut Criterion) {
    let mut group = c.benchmark_group("tiktoken-rs");
    for (name, para) in [("prose", PROSE), ("code", CODE), ("chinese", CHINESE)] {
        let text = body(para, 4096);
        group.throughput(Throughput::Bytes(text.len() as u64));
        let o = tiktoken_rs::o200k_base_singleton();
        group.bench_function(format!("encode_ordinary/o200k/4KB {name}"), |b| {
            b.iter(|| o.encode_ordinary(black_box(&text)).len())
        });
    }
    group.finish();
}
criterion_group!(name = refs; config = Criterion::default().sample_size(20); targets = reference);
criterion_main!(tokens, refs);
