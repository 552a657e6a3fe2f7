//! Test harness for the end-to-end tests: real Envoy (from the project's venv)
//! with the built wasm, our mock LLM upstream, curl and the official SDKs as
//! clients. Processes are killed when their handle drops.
//
// Test code (never part of the filter): a bad index fails the test that made it.
#![allow(clippy::indexing_slicing)]

use base64::Engine;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub type Result<T> = std::result::Result<T, String>;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A program from the project's venv (`TOLLGATE_VENV`, default `<root>/.venv`).
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("TOLLGATE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"));
    venv.join("bin").join(name)
}

/// The full built wasm, the shipped one (`TOLLGATE_WASM`, default the `wasm-release` build).
pub fn wasm_path() -> PathBuf {
    std::env::var_os("TOLLGATE_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/tollgate.wasm"))
}

/// The model-free wasm (`TOLLGATE_WASM_LITE`, default the `wasm-lite` build),
/// for the listeners whose policies need no second-stage model.
pub fn wasm_lite_path() -> PathBuf {
    std::env::var_os("TOLLGATE_WASM_LITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/wasm32-wasip1/wasm-lite/tollgate.wasm"))
}

/// In an Envoy config: replaced by the sha256 of the full wasm module.
pub const WASM_SHA256_PLACEHOLDER: &str = "@TOLLGATE_WASM_SHA256@";

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `envoy --mode validate` of the config at `path` (a copy under
/// `target/e2e` when it has the moduleSha256 placeholder): whether Envoy
/// accepts it, and its log.
pub fn envoy_validate(path: &Path) -> Result<(bool, String)> {
    // A policy's moduleSha256 placeholder is the loaded module's, as when the
    // harness starts Envoy (validation loads the plugin and its policy).
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let substituted;
    let path = if text.contains(WASM_SHA256_PLACEHOLDER) {
        let dir = root().join("target/e2e");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config.yaml");
        substituted = dir.join(format!("validate-{name}"));
        let text = text.replace(WASM_SHA256_PLACEHOLDER, &sha256_file(&wasm_path())?);
        std::fs::write(&substituted, text).map_err(|e| e.to_string())?;
        substituted.as_path()
    } else {
        path
    };
    let out = Command::new(venv_bin("envoy"))
        .args(["--mode", "validate", "-c"])
        .arg(path)
        .args(["-l", "info", "--disable-hot-restart"])
        // The keys the configs read from Envoy's environment (host_env_keys);
        // a test value, set unless the caller set one.
        .env(
            "TOLLGATE_HASH_KEY",
            std::env::var("TOLLGATE_HASH_KEY")
                .unwrap_or_else(|_| "validate-only-hash-key-not-a-secret".into()),
        )
        .env("TOLLGATE_E2E_HASH_KEY", "e2e-only-hash-key-0123456789")
        .current_dir(root())
        .output()
        .map_err(|e| format!("envoy: {e}"))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), log))
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A child process killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The mock LLM upstream (`tests/upstream/mock_llm.py`).
pub struct Upstream {
    pub port: u16,
    _proc: Proc,
}

impl Upstream {
    pub fn start() -> Result<Upstream> {
        let (proc, port) = start_ready(
            "mock upstream",
            Command::new(venv_bin("python3"))
                .arg(root().join("tests/upstream/mock_llm.py"))
                .args(["--port", "0"]),
        )?;
        Ok(Upstream { port, _proc: proc })
    }

    /// Every request the upstream received since the last reset.
    pub fn requests(&self) -> Result<Vec<Value>> {
        let r = curl(
            &[&format!("http://127.0.0.1:{}/__mock/requests", self.port)],
            None,
        )?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        Ok(v["requests"].as_array().cloned().unwrap_or_default())
    }

    /// How many `/__mock/status/NNN` requests it answered since the last reset
    /// (a failing collector pointed at it).
    pub fn requests_status_hits(&self) -> Result<u64> {
        let r = curl(
            &[&format!("http://127.0.0.1:{}/__mock/requests", self.port)],
            None,
        )?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        Ok(v["status_hits"].as_u64().unwrap_or(0))
    }

    pub fn reset(&self) -> Result<()> {
        curl(
            &[
                "-X",
                "POST",
                &format!("http://127.0.0.1:{}/__mock/reset", self.port),
            ],
            None,
        )
        .map(|_| ())
    }
}

/// Start a process that prints `READY <port>` on stdout once it listens.
pub fn start_ready(name: &str, cmd: &mut Command) -> Result<(Proc, u16)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let proc = Proc {
        name: name.into(),
        child,
    };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let port = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("{name} did not say READY: {line:?}"))?;
    Ok((proc, port))
}

/// A real `redis-server` (Debian) on a free port, persisting to a temporary
/// directory with the append-only file, so a restart keeps the counts.
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl Redis {
    pub fn start() -> Result<Redis> {
        let port = free_port()?;
        let dir = root().join(format!("target/e2e/redis-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut r = Redis {
            port,
            dir,
            proc: None,
        };
        r.spawn()?;
        Ok(r)
    }

    fn spawn(&mut self) -> Result<()> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server (make setup installs it): {e}"))?;
        self.proc = Some(Proc {
            name: "redis".into(),
            child,
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("redis-server did not answer PING in 10 s".into())
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf.get(..n).is_some_and(|b| b.starts_with(b"+PONG")))
    }

    /// Stop Redis and start it again on the same port and directory.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }

    /// Stop Redis (until [`Redis::restart`]): waits until it no longer answers.
    pub fn stop(&mut self) {
        self.proc = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.ping() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// The rate-limit service (`tests/ratelimit`, built by `make e2e`) on Redis.
pub struct Limiter {
    pub port: u16,
    pub redis: Redis,
    _proc: Proc,
}

impl Limiter {
    pub fn start(config: &str) -> Result<Limiter> {
        let redis = Redis::start()?;
        let bin = root().join("target/debug/tollgate-ratelimit");
        if !bin.exists() {
            return Err(format!(
                "{} is missing: build it with `cargo build -p tollgate-ratelimit` (make e2e does)",
                bin.display()
            ));
        }
        let (proc, port) = start_ready(
            "tollgate-ratelimit",
            Command::new(bin)
                .arg("--config")
                .arg(root().join(config))
                .args(["--port", "0", "--redis", &redis.url()]),
        )?;
        Ok(Limiter {
            port,
            redis,
            _proc: proc,
        })
    }
}

/// A TCP port that accepts connections and never answers (a hung service).
pub struct Blackhole {
    pub port: u16,
}

impl Blackhole {
    pub fn start() -> Result<Blackhole> {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in l.incoming().flatten() {
                if held.len() < 1024 {
                    held.push(c);
                }
            }
        });
        Ok(Blackhole { port })
    }
}

/// The venv `make phoenix-venv` installs Arize Phoenix into
/// (`TOLLGATE_PHOENIX_VENV`, default `<root>/target/phoenix-venv`).
pub fn phoenix_venv() -> PathBuf {
    std::env::var_os("TOLLGATE_PHOENIX_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/phoenix-venv"))
}

/// Arize Phoenix, the OTLP trace store: `phoenix serve` (through
/// `tests/phoenix/serve.py`, which keeps its gRPC receiver on loopback too) on
/// free loopback ports, with a fresh working directory and SQLite database under
/// `target/e2e/`. It takes OTLP/HTTP protobuf at [`Phoenix::otlp_url`] and files a
/// span under the project named by the resource attribute
/// `openinference.project.name` (else `default`). Starting takes 10-15 s: share one.
/// The process group is killed, and the directory removed, on drop.
pub struct Phoenix {
    pub port: u16,
    /// The OTLP gRPC receiver (127.0.0.1).
    pub grpc_port: u16,
    pub dir: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Phoenix {
    pub fn start() -> Result<Phoenix> {
        use std::os::unix::process::CommandExt;
        let python = phoenix_venv().join("bin/python");
        if !phoenix_venv().join("bin/phoenix").exists() || !python.exists() {
            return Err(format!(
                "Arize Phoenix is missing from {}: run `make phoenix-venv` (make e2e does)",
                phoenix_venv().display()
            ));
        }
        let (port, grpc_port) = (free_port()?, free_port()?);
        let dir = root().join(format!("target/e2e/phoenix-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let log = dir.join("phoenix.log");
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(python);
        cmd.arg(root().join("tests/phoenix/serve.py"));
        // Only our settings: none from the caller's environment (auth, TLS, a Postgres URL...).
        for (k, _) in std::env::vars_os() {
            if k.to_str()
                .is_some_and(|k| k.starts_with("PHOENIX_") || k.starts_with("OTEL_"))
            {
                cmd.env_remove(k);
            }
        }
        let db = format!("sqlite:///{}", dir.join("phoenix.db").display());
        let child = cmd
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", port.to_string())
            .env("PHOENIX_GRPC_PORT", grpc_port.to_string())
            .env("PHOENIX_WORKING_DIR", &dir)
            .env("PHOENIX_SQL_DATABASE_URL", db)
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .env("PHOENIX_ALLOW_EXTERNAL_RESOURCES", "false")
            .env("PHOENIX_LOG_MIGRATIONS", "false")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start phoenix: {e}"))?;
        let mut phoenix = Phoenix {
            port,
            grpc_port,
            dir,
            log,
            child,
        };
        phoenix.wait_ready()?;
        Ok(phoenix)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return Err(format!("phoenix exited; log:\n{}", self.log_tail()));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let url = format!("http://127.0.0.1:{}/healthz", self.port);
                if curl(&[&url], None).is_ok_and(|r| r.status == 200) {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "phoenix not ready in 90 s; log:\n{}",
            self.log_tail()
        ))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Where OTLP/HTTP exporters send: POST, `content-type: application/x-protobuf`.
    pub fn otlp_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.port)
    }

    /// The UI and REST API.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every span stored under `project` (none if the project does not exist yet),
    /// as `GET /v1/projects/{project}/spans` gives them, all pages, newest first:
    /// `{"id", "name", "context": {"trace_id", "span_id"}, "parent_id", "span_kind",
    /// "start_time", "end_time", "status_code", "status_message", "attributes": {..},
    /// "events": [{"name", "timestamp", "attributes": {..}}]}`. Phoenix stores spans a
    /// moment after the export is answered (~0.1 s): see [`Phoenix::wait_spans`].
    pub fn spans(&self, project: &str) -> Result<Vec<Value>> {
        const PAGE: usize = 500;
        const MAX_PAGES: usize = 100;
        let url = self.url(&format!("/v1/projects/{}/spans", url_path_segment(project)));
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let limit = format!("limit={PAGE}");
            let mut args = vec!["--get", url.as_str(), "--data-urlencode", &limit];
            let c;
            if let Some(cur) = &cursor {
                c = format!("cursor={cur}");
                args.extend(["--data-urlencode", c.as_str()]);
            }
            let r = curl(&args, None)?;
            if r.status == 404 && cursor.is_none() {
                return Ok(all);
            }
            if r.status != 200 {
                return Err(format!(
                    "GET {url} (cursor {cursor:?}): {} {}",
                    r.status,
                    r.text()
                ));
            }
            let v = r.json();
            let Some(data) = v["data"].as_array() else {
                return Err(format!("GET {url}: no data array: {}", r.text()));
            };
            all.extend(data.iter().cloned());
            match v["next_cursor"].as_str() {
                Some(next) if !next.is_empty() => cursor = Some(next.to_string()),
                _ => return Ok(all),
            }
        }
        Err(format!(
            "GET {url}: more than {MAX_PAGES} pages of {PAGE} spans"
        ))
    }

    /// [`Phoenix::spans`] once `project` holds at least `count` spans (polled, up to `within`).
    pub fn wait_spans(&self, project: &str, count: usize, within: Duration) -> Result<Vec<Value>> {
        let deadline = Instant::now() + within;
        loop {
            let spans = self.spans(project)?;
            if spans.len() >= count {
                return Ok(spans);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "phoenix project {project}: {} spans after {within:?}, wanted {count}",
                    spans.len()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        // The whole process group: Phoenix may have started workers of its own.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `s` percent-encoded for one URL path segment.
fn url_path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The exact body bytes of a recorded upstream request.
pub fn recorded_body(req: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(req["body_base64"].as_str().unwrap_or_default())
        .unwrap_or_default()
}

/// A recorded request header (first value).
pub fn recorded_header(req: &Value, name: &str) -> Option<String> {
    req["headers"].as_array()?.iter().find_map(|h| {
        let k = h.get(0)?.as_str()?;
        if k.eq_ignore_ascii_case(name) {
            h.get(1)?.as_str().map(str::to_string)
        } else {
            None
        }
    })
}

/// The port used for `placeholder` (the placeholder itself when not listed).
fn port_for(map: &[(u16, u16)], placeholder: u16) -> u16 {
    map.iter()
        .find(|(p, _)| *p == placeholder)
        .map_or(placeholder, |(_, v)| *v)
}

/// Real Envoy running a config from `envoy/` with its ports replaced.
pub struct Envoy {
    pub listener: u16,
    pub alt_listener: u16,
    pub inj_listener: u16,
    pub pii_listener: u16,
    /// Further listeners of the config: (port in the file, port used).
    pub more_listeners: Vec<(u16, u16)>,
    pub admin: u16,
    pub log: PathBuf,
    proc: Proc,
}

impl Envoy {
    /// Start `config` (relative to the root) in front of `upstream_port`; waits until ready.
    pub fn start(config: &str, upstream_port: u16) -> Result<Envoy> {
        Envoy::start_with(config, upstream_port, &[])
    }

    /// [`Envoy::start`], with more cluster ports replaced: (port in the file, port used).
    pub fn start_with(config: &str, upstream_port: u16, clusters: &[(u16, u16)]) -> Result<Envoy> {
        let (wasm, lite) = (wasm_path(), wasm_lite_path());
        for w in [&wasm, &lite] {
            if !w.exists() {
                return Err(format!(
                    "{} is missing: build it with `make wasm wasm-lite` (make test does)",
                    w.display()
                ));
            }
        }
        let (listener, alt_listener, admin) = (free_port()?, free_port()?, free_port()?);
        let inj_listener = free_port()?;
        let pii_listener = free_port()?;
        let mut more_listeners = Vec::new();
        for placeholder in [10004u16, 10005, 10006, 10007, 10008] {
            more_listeners.push((placeholder, free_port()?));
        }
        let text = std::fs::read_to_string(root().join(config)).map_err(|e| e.to_string())?;
        // A policy's `moduleSha256` is what a deployment pins; here, the module loaded.
        let text = if text.contains(WASM_SHA256_PLACEHOLDER) {
            text.replace(WASM_SHA256_PLACEHOLDER, &sha256_file(&wasm)?)
        } else {
            text
        };
        let text = text
            .replace("port_value: 10000", &format!("port_value: {listener}"))
            .replace("port_value: 10001", &format!("port_value: {alt_listener}"))
            .replace("port_value: 10002", &format!("port_value: {inj_listener}"))
            .replace("port_value: 10003", &format!("port_value: {pii_listener}"))
            .replace("port_value: 9901", &format!("port_value: {admin}"))
            .replace(
                "port_value: 10004",
                &format!("port_value: {}", port_for(&more_listeners, 10004)),
            )
            .replace(
                "port_value: 10005",
                &format!("port_value: {}", port_for(&more_listeners, 10005)),
            )
            .replace(
                "port_value: 10006",
                &format!("port_value: {}", port_for(&more_listeners, 10006)),
            )
            .replace(
                "port_value: 10007",
                &format!("port_value: {}", port_for(&more_listeners, 10007)),
            )
            .replace(
                "port_value: 10008",
                &format!("port_value: {}", port_for(&more_listeners, 10008)),
            )
            .replace("port_value: 18080", &format!("port_value: {upstream_port}"))
            .replace(
                "port_value: 18081",
                &format!("port_value: {}", port_for(clusters, 18081)),
            )
            .replace(
                "port_value: 18082",
                &format!("port_value: {}", port_for(clusters, 18082)),
            )
            .replace(
                "port_value: 18083",
                &format!("port_value: {}", port_for(clusters, 18083)),
            )
            .replace(
                "port_value: 18084",
                &format!("port_value: {}", port_for(clusters, 18084)),
            )
            .replace(
                "filename: target/tollgate.wasm",
                &format!("filename: {}", wasm.display()),
            )
            .replace(
                "filename: target/wasm32-wasip1/wasm-lite/tollgate.wasm",
                &format!("filename: {}", lite.display()),
            );
        let dir = root().join("target/e2e");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let name = Path::new(config)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("envoy");
        let cfg_path = dir.join(format!("{name}-{listener}.yaml"));
        let log = dir.join(format!("{name}-{listener}.log"));
        std::fs::write(&cfg_path, text).map_err(|e| e.to_string())?;
        let child = Command::new(venv_bin("envoy"))
            .arg("-c")
            .arg(&cfg_path)
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", "info"])
            // The audit test reads the log: flush it often (the default is 10 s).
            .args(["--file-flush-interval-msec", "100"])
            // The PII listener's hash key reaches the VM through host_env_keys.
            .env("TOLLGATE_E2E_HASH_KEY", "e2e-only-hash-key-0123456789")
            .arg("--log-path")
            .arg(&log)
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start envoy: {e}"))?;
        let mut envoy = Envoy {
            listener,
            alt_listener,
            inj_listener,
            pii_listener,
            more_listeners,
            admin,
            log,
            proc: Proc {
                name: "envoy".into(),
                child,
            },
        };
        envoy.wait_ready()?;
        Ok(envoy)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if !self.proc.is_running() {
                return Err(format!("envoy exited; log: {}", self.log_tail()));
            }
            if let Ok(r) = curl(&[&format!("http://127.0.0.1:{}/ready", self.admin)], None) {
                if r.status == 200 && TcpStream::connect(("127.0.0.1", self.listener)).is_ok() {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("envoy not ready in 90 s; log: {}", self.log_tail()))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Envoy's whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.listener)
    }

    pub fn inj_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.inj_listener)
    }

    /// The URL of the listener written as `port_value: <placeholder>` in the config.
    pub fn url_at(&self, placeholder: u16, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}{path}",
            port_for(&self.more_listeners, placeholder)
        )
    }

    pub fn pii_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.pii_listener)
    }

    pub fn alt_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.alt_listener)
    }

    /// The admin `/stats/prometheus` text.
    /// Envoy's plain-text stats whose names match `filter` (a regex).
    pub fn stats(&self, filter: &str) -> Result<String> {
        let r = curl(
            &[&format!(
                "http://127.0.0.1:{}/stats?filter={filter}",
                self.admin
            )],
            None,
        )?;
        Ok(String::from_utf8_lossy(&r.body).into_owned())
    }

    pub fn prometheus(&self) -> Result<String> {
        let r = curl(
            &[&format!("http://127.0.0.1:{}/stats/prometheus", self.admin)],
            None,
        )?;
        Ok(String::from_utf8_lossy(&r.body).into_owned())
    }
}

/// The value of one Prometheus sample line (`name{labels} value`), 0 if absent.
pub fn prom_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// An HTTP response as a client sees it.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Run curl with `args` (and `body` sent byte for byte with --data-binary).
pub fn curl(args: &[&str], body: Option<&[u8]>) -> Result<Response> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "-D", "-"]);
    cmd.args(args);
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    // Headers to stdout, the body to a file.
    let body_file = tempfile()?;
    cmd.arg("-o").arg(&body_file);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("curl: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(body.unwrap_or_default())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "curl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut resp = Response::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim_end();
        if line.starts_with("HTTP/") {
            // Last status line wins (e.g. after 100 Continue).
            resp.status = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            resp.headers.clear();
        } else if let Some((k, v)) = line.split_once(':') {
            resp.headers
                .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut f = std::fs::File::open(&body_file).map_err(|e| e.to_string())?;
    f.read_to_end(&mut resp.body).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&body_file);
    Ok(resp)
}

fn tempfile() -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = root().join("target/e2e/tmp");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir.join(format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )))
}

/// POST a JSON body (exact bytes) with extra headers.
pub fn post(url: &str, body: &[u8], extra: &[&str]) -> Result<Response> {
    let mut args: Vec<&str> = vec!["-X", "POST", url, "-H", "content-type: application/json"];
    for h in extra {
        args.push("-H");
        args.push(h);
    }
    curl(&args, Some(body))
}

/// Run a Python script from the venv and parse its one-line JSON output.
pub fn python_json(script: &str, args: &[&str]) -> Result<Value> {
    let out = Command::new(venv_bin("python3"))
        .arg(root().join(script))
        .args(args)
        .output()
        .map_err(|e| format!("{script}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).map_err(|e| {
        format!(
            "{script}: bad output ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Assertion helper returning an error instead of panicking (cases return Result).
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{}:{}: {}", file!(), line!(), format!($($fmt)+)));
        }
    };
}

/// Equality assertion with both values in the message.
#[macro_export]
macro_rules! check_eq {
    ($left:expr, $right:expr) => {
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    return Err(format!(
                        "{}:{}: {} != {}\n  left: {:?}\n right: {:?}",
                        file!(),
                        line!(),
                        stringify!($left),
                        stringify!($right),
                        l,
                        r
                    ));
                }
            }
        }
    };
}

/// A case that needs no shared services.
pub type Standalone = (&'static str, fn() -> Result<()>);

/// A case run against a group's shared context `C`.
pub type GroupCase<C> = (&'static str, fn(&C) -> Result<()>);

/// Runs a test binary's cases: the arguments that do not start with `-` are
/// name substrings (none: every case). The selected standalone cases run
/// first; then, if any grouped case is selected, `start` makes the group's
/// context once (one Envoy start) and each selected case runs after `reset`.
/// One line per case, a summary, and exit status 1 when any failed.
pub fn run_cases<C>(
    standalone: &[Standalone],
    cases: &[GroupCase<C>],
    start_name: &str,
    start: impl FnOnce() -> Result<C>,
    reset: impl Fn(&C) -> Result<()>,
) {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected =
        |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let mut failed = Vec::new();
    let mut passed = 0;
    let mut report = |name: &str, started: Instant, r: Result<()>| match r {
        Ok(()) => {
            passed += 1;
            println!(
                "test {name} ... ok ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
        Err(e) => {
            println!("test {name} ... FAILED\n    {}", e.replace('\n', "\n    "));
            failed.push(name.to_string());
        }
    };
    for (name, f) in standalone {
        if selected(name) {
            report(name, Instant::now(), f());
        }
    }
    if cases.iter().any(|(n, _)| selected(n)) {
        match start() {
            Ok(ctx) => {
                for (name, f) in cases {
                    if selected(name) {
                        let started = Instant::now();
                        report(name, started, reset(&ctx).and_then(|()| f(&ctx)));
                    }
                }
            }
            Err(e) => report(start_name, Instant::now(), Err(e)),
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}
