//! `tollgate-ratelimit --config FILE [--config FILE ...] [--port N] [--redis URL]`
//!
//! Serves `envoy.service.ratelimit.v3.RateLimitService` over HTTP/2 cleartext on
//! 127.0.0.1 and prints `READY <port>` on stdout once listening.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_stream::wrappers::TcpListenerStream;
use tollgate_ratelimit::config::Limits;
use tollgate_ratelimit::limiter::Store;
use tollgate_ratelimit::rate_limit_service_server::RateLimitServiceServer;
use tollgate_ratelimit::service::{Grpc, Service};

const USAGE: &str = "usage: tollgate-ratelimit --config FILE [--config FILE ...] [--port N (0: any free port)] [--redis redis://HOST:PORT]";

struct Args {
    configs: Vec<PathBuf>,
    port: u16,
    redis: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        configs: Vec::new(),
        port: 0,
        redis: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--config" => args.configs.push(PathBuf::from(value("--config")?)),
            "--port" => {
                let v = value("--port")?;
                args.port = v
                    .parse()
                    .map_err(|_| format!("--port: not a port: {v:?}"))?;
            }
            "--redis" => args.redis = Some(value("--redis")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.configs.is_empty() {
        return Err("--config is required".into());
    }
    Ok(args)
}

async fn run(args: Args) -> Result<(), String> {
    let limits = Limits::load(&args.configs).map_err(|e| e.to_string())?;
    let store = match &args.redis {
        Some(url) => Store::redis(url).await?,
        None => Store::memory(),
    };
    let service = Arc::new(Service::new(limits, store));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| format!("bind 127.0.0.1:{}: {e}", args.port))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?
        .port();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY {port}").map_err(|e| format!("stdout: {e}"))?;
        out.flush().map_err(|e| format!("stdout: {e}"))?;
    }
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    // TCP_NODELAY on every connection: without it a small answer waits for the
    // peer's delayed ACK (~40 ms per call, measured with limits_ab.py).
    let incoming = tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    });
    tonic::transport::Server::builder()
        .add_service(RateLimitServiceServer::new(Grpc(service)))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| format!("serve: {e}"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("tollgate-ratelimit: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate-ratelimit: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate-ratelimit: {e}");
            ExitCode::FAILURE
        }
    }
}
