//! The built `tollgate-ratelimit` binary, started as a process and called over
//! gRPC with a tonic client, as Envoy calls it. The Redis tests start Debian's
//! `redis-server` on a free port with append-only persistence in a temp dir.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tollgate_ratelimit::rate_limit_descriptor::Entry;
use tollgate_ratelimit::rate_limit_response::rate_limit::Unit;
use tollgate_ratelimit::rate_limit_response::{Code, DescriptorStatus};
use tollgate_ratelimit::rate_limit_service_client::RateLimitServiceClient;
use tollgate_ratelimit::{RateLimitDescriptor, RateLimitRequest, RateLimitResponse};
use tonic::transport::Channel;

const CONFIG: &str = r#"
domain: tollgate
descriptors:
  # Any tenant, each counted apart: 3 a minute.
  - key: tenant
    rate_limit: {unit: minute, requests_per_unit: 3}
    descriptors:
      - key: agent
        value: bot-1
        rate_limit: {name: bot-1, unit: minute, requests_per_unit: 2}
      - key: agent
        value: vip
        rate_limit: {unlimited: true}
  - key: tokens
    rate_limit: {unit: hour, requests_per_unit: 10}
  - key: shadow
    shadow_mode: true
    rate_limit: {unit: day, requests_per_unit: 1}
  - key: path
    descriptors:
      - key: method
        value: GET
        rate_limit: {unit: second, requests_per_unit: 100}
"#;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("tollgate-rl-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `tollgate-ratelimit`, killed on drop.
struct Server {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Server {
    fn start(config: &str, redis: Option<u16>) -> Server {
        let dir = TempDir::new("server");
        let path = dir.0.join("config.yaml");
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate-ratelimit"));
        cmd.arg("--config").arg(&path).args(["--port", "0"]);
        if let Some(port) = redis {
            cmd.args(["--redis", &format!("redis://127.0.0.1:{port}")]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tollgate-ratelimit");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("expected `READY <port>`, got {line:?}"));
        Server {
            child,
            port,
            _dir: dir,
        }
    }

    async fn client(&self) -> RateLimitServiceClient<Channel> {
        RateLimitServiceClient::connect(format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        limit: None,
    }
}

async fn call(
    client: &mut RateLimitServiceClient<Channel>,
    descriptors: &[&[(&str, &str)]],
    hits_addend: u32,
) -> RateLimitResponse {
    client
        .should_rate_limit(RateLimitRequest {
            domain: "tollgate".into(),
            descriptors: descriptors.iter().map(|d| descriptor(d)).collect(),
            hits_addend,
        })
        .await
        .unwrap()
        .into_inner()
}

/// One descriptor, one status: (code, limit_remaining).
async fn hit(
    client: &mut RateLimitServiceClient<Channel>,
    entries: &[(&str, &str)],
    hits_addend: u32,
) -> (Code, u32) {
    let response = call(client, &[entries], hits_addend).await;
    assert_eq!(response.statuses.len(), 1);
    let status = &response.statuses[0];
    assert_eq!(response.overall_code, status.code);
    (status.code(), status.limit_remaining)
}

fn reset_secs(status: &DescriptorStatus) -> i64 {
    status
        .duration_until_reset
        .as_ref()
        .expect("duration_until_reset")
        .seconds
}

#[tokio::test]
async fn n_hits_pass_and_the_next_is_over_limit() {
    let server = Server::start(CONFIG, None);
    let mut client = server.client().await;
    for remaining in [2, 1, 0] {
        assert_eq!(
            hit(&mut client, &[("tenant", "acme")], 0).await,
            (Code::Ok, remaining)
        );
    }
    let response = call(&mut client, &[&[("tenant", "acme")]], 0).await;
    assert_eq!(response.overall_code(), Code::OverLimit);
    let status = &response.statuses[0];
    assert_eq!(status.code(), Code::OverLimit);
    assert_eq!(status.limit_remaining, 0);
    let limit = status.current_limit.as_ref().unwrap();
    assert_eq!((limit.requests_per_unit, limit.unit()), (3, Unit::Minute));
    let reset = reset_secs(status);
    assert!((1..=60).contains(&reset), "duration_until_reset {reset}s");
}

#[tokio::test]
async fn hits_addend_charges_that_many_and_over_limit_hits_count() {
    let server = Server::start(CONFIG, None);
    let mut client = server.client().await;
    let t = &[("tokens", "t1")];
    assert_eq!(hit(&mut client, t, 4).await, (Code::Ok, 6));
    assert_eq!(hit(&mut client, t, 6).await, (Code::Ok, 0));
    assert_eq!(hit(&mut client, t, 1).await, (Code::OverLimit, 0));

    // As envoyproxy/ratelimit (increment, then compare): a refused hit is counted,
    // so 8 + 5 (refused) leaves no room for 2 more, though 8 + 2 would fit.
    let t = &[("tokens", "t2")];
    assert_eq!(hit(&mut client, t, 8).await, (Code::Ok, 2));
    assert_eq!(hit(&mut client, t, 5).await, (Code::OverLimit, 0));
    assert_eq!(hit(&mut client, t, 2).await, (Code::OverLimit, 0));

    // Unset (0) counts as 1.
    assert_eq!(
        hit(&mut client, &[("tokens", "t3")], 0).await,
        (Code::Ok, 9)
    );
    assert_eq!(
        hit(&mut client, &[("tokens", "t3")], 1).await,
        (Code::Ok, 8)
    );
}

#[tokio::test]
async fn a_key_without_value_counts_each_value_apart() {
    let server = Server::start(CONFIG, None);
    let mut client = server.client().await;
    for _ in 0..3 {
        hit(&mut client, &[("tenant", "a")], 1).await;
    }
    assert_eq!(
        hit(&mut client, &[("tenant", "a")], 1).await.0,
        Code::OverLimit
    );
    assert_eq!(hit(&mut client, &[("tenant", "b")], 1).await, (Code::Ok, 2));
}

#[tokio::test]
async fn nested_descriptors() {
    let server = Server::start(CONFIG, None);
    let mut client = server.client().await;
    let tenant: &[(&str, &str)] = &[("tenant", "acme")];
    let bot: &[(&str, &str)] = &[("tenant", "acme"), ("agent", "bot-1")];
    // Both descriptors in one request, each with its own limit: 3 and 2.
    let r = call(&mut client, &[tenant, bot], 1).await;
    assert_eq!(r.overall_code(), Code::Ok);
    let remaining: Vec<u32> = r.statuses.iter().map(|s| s.limit_remaining).collect();
    assert_eq!(remaining, [2, 1]);
    assert_eq!(r.statuses[1].current_limit.as_ref().unwrap().name, "bot-1");
    let r = call(&mut client, &[tenant, bot], 1).await;
    assert_eq!(r.overall_code(), Code::Ok);
    // The agent's limit is spent: the request is over, the tenant's status is not.
    let r = call(&mut client, &[tenant, bot], 1).await;
    assert_eq!(r.overall_code(), Code::OverLimit);
    assert_eq!(
        (r.statuses[0].code(), r.statuses[0].limit_remaining),
        (Code::Ok, 0)
    );
    assert_eq!(r.statuses[1].code(), Code::OverLimit);
    // Another agent of the same tenant has no limit of its own (the tree has
    // none for it): OK and nothing counted, as envoyproxy/ratelimit.
    let r = call(&mut client, &[&[("tenant", "acme"), ("agent", "bot-2")]], 1).await;
    assert_eq!(r.overall_code(), Code::Ok);
    assert!(r.statuses[0].current_limit.is_none());
    // The same agent name under another tenant is another counter.
    let other: &[(&str, &str)] = &[("tenant", "other"), ("agent", "bot-1")];
    assert_eq!(hit(&mut client, other, 1).await, (Code::Ok, 1));
    // `unlimited: true`.
    for _ in 0..5 {
        let r = call(&mut client, &[&[("tenant", "acme"), ("agent", "vip")]], 1).await;
        assert_eq!(r.overall_code(), Code::Ok);
        assert!(r.statuses[0].current_limit.is_none());
    }
}

#[tokio::test]
async fn unknown_descriptors_and_domains_are_ok() {
    let server = Server::start(CONFIG, None);
    let mut client = server.client().await;
    for entries in [
        &[("nobody", "x")][..],
        &[("path", "/")][..], // a node without a limit
        &[("path", "/"), ("method", "POST")][..],
        &[("path", "/"), ("method", "GET"), ("extra", "1")][..], // longer than the tree
    ] {
        let r = call(&mut client, &[entries], 1000).await;
        assert_eq!(r.overall_code(), Code::Ok, "{entries:?}");
        assert!(r.statuses[0].current_limit.is_none(), "{entries:?}");
        assert!(r.statuses[0].duration_until_reset.is_none());
    }
    let r = call(&mut client, &[&[("path", "/"), ("method", "GET")]], 1).await;
    assert_eq!(r.statuses[0].limit_remaining, 99);
    let r = client
        .should_rate_limit(RateLimitRequest {
            domain: "elsewhere".into(),
            descriptors: vec![descriptor(&[("tenant", "acme")])],
            hits_addend: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code(), Code::Ok);
    let err = client
        .should_rate_limit(RateLimitRequest {
            domain: String::new(),
            descriptors: vec![descriptor(&[("tenant", "acme")])],
            hits_addend: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn shadow_mode_counts_but_never_refuses() {
    let server = Server::start(CONFIG, None);
    let mut client = server.client().await;
    assert_eq!(hit(&mut client, &[("shadow", "s")], 1).await, (Code::Ok, 0));
    assert_eq!(hit(&mut client, &[("shadow", "s")], 1).await, (Code::Ok, 0));
}

#[test]
fn a_bad_config_fails_to_start_with_the_field() {
    let dir = TempDir::new("bad");
    let path = dir.0.join("bad.yaml");
    std::fs::write(
        &path,
        "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate-ratelimit"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("descriptors[0].rate_limit.unit: unknown unit \"fortnight\""),
        "{stderr}"
    );
}

// --- Redis -------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends one inline command to Redis and returns the first reply line.
fn redis_command(port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(port: u16, dir: &Path) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis_command(port, "PING")
            .map(|r| r != "+PONG")
            .unwrap_or(true)
        {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis { child, port }
    }

    /// A clean stop: Redis writes and fsyncs its append-only file, then exits.
    fn shutdown(mut self) {
        let _ = redis_command(self.port, "SHUTDOWN");
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_installed() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        eprintln!(
            "SKIPPED: redis-server is not installed (Debian package redis-server; `make debs`)"
        );
    }
    found
}

#[tokio::test]
async fn redis_counters_are_shared_and_survive_a_redis_restart() {
    if !redis_installed() {
        return;
    }
    let dir = TempDir::new("redis");
    let port = free_port();
    let redis = Redis::start(port, &dir.0);
    let server = Server::start(CONFIG, Some(port));
    let mut client = server.client().await;
    let acme = &[("tenant", "acme")];
    assert_eq!(hit(&mut client, acme, 1).await, (Code::Ok, 2));
    assert_eq!(hit(&mut client, &[("tokens", "t")], 4).await, (Code::Ok, 6));
    // The counter is in Redis: a second service on the same Redis sees it.
    let second = Server::start(CONFIG, Some(port));
    let mut client2 = second.client().await;
    assert_eq!(hit(&mut client2, acme, 1).await, (Code::Ok, 1));
    assert!(redis_command(port, "DBSIZE").unwrap().starts_with(':'));

    // Restart Redis on the same port and data dir: the append-only file brings
    // the counters back, and the services reconnect.
    redis.shutdown();
    let restarted = Redis::start(port, &dir.0);
    let r = call(&mut client, &[acme], 1).await;
    assert_eq!(
        (r.statuses[0].code(), r.statuses[0].limit_remaining),
        (Code::Ok, 0)
    );
    let reset = reset_secs(&r.statuses[0]);
    assert!((1..=60).contains(&reset), "duration_until_reset {reset}s");
    assert_eq!(hit(&mut client2, acme, 1).await, (Code::OverLimit, 0));
    assert_eq!(hit(&mut client, &[("tokens", "t")], 6).await, (Code::Ok, 0));
    drop(restarted);
}

#[tokio::test]
async fn redis_down_is_an_error_not_an_ok() {
    if !redis_installed() {
        return;
    }
    let dir = TempDir::new("redis-down");
    let port = free_port();
    let redis = Redis::start(port, &dir.0);
    let server = Server::start(CONFIG, Some(port));
    let mut client = server.client().await;
    assert_eq!(hit(&mut client, &[("tenant", "x")], 1).await, (Code::Ok, 2));
    redis.shutdown();
    let err = client
        .should_rate_limit(RateLimitRequest {
            domain: "tollgate".into(),
            descriptors: vec![descriptor(&[("tenant", "x")])],
            hits_addend: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
}
