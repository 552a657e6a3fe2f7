//! Time scan_body on a body file: `cargo run --release -p tollgate-core --example body_timing -- FILE [N]`.
use std::time::Instant;
use tollgate_core::api::{ApiKind, Direction};
use tollgate_core::scan::scan_body;
use tollgate_core::Policy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let body = std::fs::read(args.get(1).ok_or("usage: body_timing FILE [N]")?)?;
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(2000);
    let policy = Policy::default_policy()?;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(scan_body(
            &policy,
            ApiKind::OpenaiChat,
            Direction::Request,
            &body,
        )?);
    }
    println!(
        "{} B: {:.1} us per scan_body",
        body.len(),
        t.elapsed().as_secs_f64() / n as f64 * 1e6
    );
    Ok(())
}
