//! The OWASP Top 10 for LLM Applications (2025) regression suite: the cases in
//! `tests/owasp/cases/*.json` (format: `tests/owasp/README.md`) run through real
//! Envoy with the built wasm (`envoy/owasp.yaml`), the mock upstream and Phoenix,
//! each started once. Every case sends `x-request-id: owasp-<id>`; the spans are
//! fetched once at the end and the cases' `trace` expectations checked by id.
//!
//! `cargo test -p tollgate-e2e --test owasp [-- ID_PREFIX...]`; `TOLLGATE_OWASP_CASES=DIR`
//! runs the case files of DIR too.
//!
//! A listener whose policy this build rejects (a feature not built yet) is left
//! out of the Envoy that runs, and its cases fail naming the rejection.

// Test code (never part of the filter): a bad index fails the test that made it.
#![allow(clippy::indexing_slicing)]

use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_e2e::*;

const CONFIG: &str = "envoy/owasp.yaml";
const PROJECT: &str = "tollgate-owasp";
const CASE_KEYS: &[&str] = &[
    "id", "owasp", "title", "tags", "listener", "request", "upstream", "expect", "skip", "known",
    "attack",
];
const REQUEST_KEYS: &[&str] = &["method", "path", "headers", "body", "bodyText"];
const UPSTREAM_KEYS: &[&str] = &[
    "reply",
    "toolCall",
    "chunkBytes",
    "replyFrom",
    "repeat",
    "status",
];
const EXPECT_KEYS: &[&str] = &[
    "status",
    "errorCode",
    "bodyContains",
    "bodyNotContains",
    "headers",
    "upstreamReached",
    "upstreamBodyUnchanged",
    "upstreamBodyContains",
    "upstreamBodyNotContains",
    "upstreamJson",
    "upstreamHeaders",
    "responseUnchanged",
    "streamError",
    "trace",
    "stats",
];

struct Case {
    id: String,
    owasp: String,
    file: String,
    v: Value,
}

impl Case {
    fn skip(&self) -> Option<&str> {
        self.v["skip"].as_str()
    }
    /// A known failure of the shipped filter (a detector's miss or false
    /// positive): run and reported, not counted as a failure of the suite.
    fn known(&self) -> Option<&str> {
        self.v["known"].as_str()
    }
    fn listener(&self) -> &str {
        self.v["listener"].as_str().unwrap_or("main")
    }
    fn expect(&self) -> &Value {
        &self.v["expect"]
    }
    fn is_attack(&self) -> bool {
        self.v["attack"].as_bool().unwrap_or(false)
    }
}

/// A listener of the config: its name, the placeholder port, and whether it runs.
struct Listener {
    name: String,
    placeholder: u16,
    rejected: Option<String>,
    /// Left out (its policy neutered) because no selected case needs it.
    unused: bool,
}

fn main() {
    let prefixes: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    match run(&prefixes) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            println!("owasp suite could not run: {e}");
            std::process::exit(1);
        }
    }
}

fn run(prefixes: &[String]) -> Result<bool> {
    let started = Instant::now();
    let mut cases = load_cases(&root().join("tests/owasp/cases"))?;
    if let Some(dir) = std::env::var_os("TOLLGATE_OWASP_CASES") {
        let extra = load_cases(Path::new(&dir))?;
        println!(
            "{} extra cases from {}",
            extra.len(),
            Path::new(&dir).display()
        );
        cases.extend(extra);
    }
    let mut listeners = config_listeners()?;
    preflight(&cases, &listeners)?;
    cases.retain(|c| prefixes.is_empty() || prefixes.iter().any(|p| c.id.starts_with(p.as_str())));
    let to_run: Vec<&Case> = cases.iter().filter(|c| c.skip().is_none()).collect();
    let wanted: BTreeSet<String> = to_run.iter().map(|c| c.listener().to_string()).collect();
    let up = Upstream::start()?;
    let phoenix = Phoenix::start()?;
    let clusters = [(18084, phoenix.port)];
    // The whole config first (one compile of the module); only when this build
    // rejects a policy is each listener validated alone.
    let envoy = match Envoy::start_with(CONFIG, up.port, &clusters) {
        Ok(e) => e,
        Err(e) if e.contains("configuration rejected") => {
            let config = runnable_config(&mut listeners, &wanted)?;
            Envoy::start_with(&config, up.port, &clusters)?
        }
        Err(e) => return Err(e),
    };
    println!(
        "owasp: {} cases ({} skipped), listeners: {}",
        cases.len(),
        cases.len() - to_run.len(),
        listeners
            .iter()
            .map(|l| match (&l.rejected, l.unused) {
                (Some(_), _) => format!("{} (REJECTED by this build)", l.name),
                (None, true) => format!("{} (not started: no selected case)", l.name),
                (None, false) => l.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ctx = Ctx {
        up: &up,
        envoy: &envoy,
        listeners: &listeners,
    };
    let mut results: BTreeMap<String, std::result::Result<(), String>> = BTreeMap::new();
    for c in &to_run {
        results.insert(c.id.clone(), run_case(&ctx, c));
    }
    // The stored traces, once, for every case that expects something of its span.
    let traced: Vec<&&Case> = to_run
        .iter()
        .filter(|c| c.expect()["trace"].is_object() && results[&c.id].is_ok())
        .collect();
    if !traced.is_empty() {
        let rids: Vec<String> = traced.iter().map(|c| request_id(c)).collect();
        let spans = wait_for_spans(&phoenix, &rids)?;
        for c in traced {
            if let Err(e) = check_trace(&spans, c) {
                results.insert(c.id.clone(), Err(e));
            }
        }
    }
    // Stats (build artifacts), once.
    let stats_cases: Vec<&&Case> = to_run
        .iter()
        .filter(|c| c.expect()["stats"].is_array() && results[&c.id].is_ok())
        .collect();
    if !stats_cases.is_empty() {
        let stats = envoy.stats("tollgate")?;
        for c in stats_cases {
            for s in strings(&c.expect()["stats"]) {
                if !stats.contains(&s) {
                    results.insert(c.id.clone(), Err(format!("no stat containing {s:?}")));
                    break;
                }
            }
        }
    }
    // One line per case, then the summary per category.
    let mut per: BTreeMap<String, [usize; 6]> = BTreeMap::new();
    for c in &cases {
        let e = per.entry(c.owasp.clone()).or_default();
        let title = c.v["title"].as_str().unwrap_or("");
        if let Some(why) = c.skip() {
            e[2] += 1;
            println!("skip {} {title} ({why})", c.id);
            continue;
        }
        if c.is_attack() {
            e[3] += 1;
        }
        match (&results[&c.id], c.known()) {
            (Ok(()), None) => {
                e[0] += 1;
                println!("ok {} {title}", c.id);
            }
            (Ok(()), Some(known)) => {
                e[0] += 1;
                e[5] += 1;
                println!(
                    "ok {} {title} (passes now: remove its \"known\": {known})",
                    c.id
                );
            }
            (Err(why), Some(known)) => {
                e[4] += 1;
                println!("known {} {title} ({known}): {}", c.id, clip(why));
            }
            (Err(why), None) => {
                e[1] += 1;
                println!(
                    "FAIL {} {title} [{}]: {}",
                    c.id,
                    c.file,
                    why.replace('\n', "\n    ")
                );
            }
        }
    }
    println!(
        "\n| OWASP | passed | failed | known failures | skipped | attacks run |\n|---|---|---|---|---|---|"
    );
    let mut failed = 0;
    for (k, [p, f, s, a, kn, _]) in &per {
        println!("| {k} | {p} | {f} | {kn} | {s} | {a} |");
        failed += f;
    }
    for l in &listeners {
        if let Some(why) = &l.rejected {
            println!("listener {} was left out: {why}", l.name);
        }
    }
    println!(
        "\nowasp result: {}. {} passed; {failed} failed; {} known failures; {} skipped ({:.0} s)",
        if failed == 0 { "ok" } else { "FAILED" },
        per.values().map(|v| v[0]).sum::<usize>(),
        per.values().map(|v| v[4]).sum::<usize>(),
        per.values().map(|v| v[2]).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    Ok(failed == 0)
}

struct Ctx<'a> {
    up: &'a Upstream,
    envoy: &'a Envoy,
    listeners: &'a [Listener],
}

fn load_cases(dir: &Path) -> Result<Vec<Case>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        let arr = v
            .as_array()
            .ok_or_else(|| format!("{}: not a JSON array of cases", f.display()))?;
        let file = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (i, c) in arr.iter().enumerate() {
            let id = c["id"]
                .as_str()
                .ok_or_else(|| format!("{file}[{i}]: no id"))?
                .to_string();
            let owasp = c["owasp"]
                .as_str()
                .ok_or_else(|| format!("{file}: {id}: no owasp"))?
                .to_string();
            out.push(Case {
                id,
                owasp,
                file: file.clone(),
                v: c.clone(),
            });
        }
    }
    Ok(out)
}

fn unknown_keys(v: &Value, known: &[&str], at: &str) -> Result<()> {
    if let Some(m) = v.as_object() {
        for k in m.keys() {
            if !known.contains(&k.as_str()) {
                return Err(format!("{at}: unknown key {k:?} (known: {known:?})"));
            }
        }
    } else if !v.is_null() {
        return Err(format!("{at}: not an object"));
    }
    Ok(())
}

/// The case files are well formed, and the README's table is current.
fn preflight(cases: &[Case], listeners: &[Listener]) -> Result<()> {
    let mut ids = BTreeSet::new();
    for c in cases {
        let at = format!("{}: {}", c.file, c.id);
        if !ids.insert(c.id.clone()) {
            return Err(format!("{at}: duplicate id"));
        }
        unknown_keys(&c.v, CASE_KEYS, &at)?;
        if !c.id.starts_with(&format!("{}-", c.owasp)) {
            return Err(format!("{at}: id does not start with its owasp id"));
        }
        if c.v["title"].as_str().is_none_or(str::is_empty) {
            return Err(format!("{at}: no title"));
        }
        if !c.v["attack"].is_boolean() {
            return Err(format!("{at}: attack must be true or false"));
        }
        unknown_keys(&c.v["request"], REQUEST_KEYS, &format!("{at}.request"))?;
        unknown_keys(&c.v["upstream"], UPSTREAM_KEYS, &format!("{at}.upstream"))?;
        unknown_keys(c.expect(), EXPECT_KEYS, &format!("{at}.expect"))?;
        if c.v["request"]["path"].as_str().is_none() {
            return Err(format!("{at}: request.path missing"));
        }
        if c.expect()["status"].as_u64().is_none() {
            return Err(format!("{at}: expect.status missing"));
        }
        if !listeners.iter().any(|l| l.name == c.listener()) {
            return Err(format!(
                "{at}: listener {:?} is not in {CONFIG}",
                c.listener()
            ));
        }
    }
    // The README table, from the committed case files only.
    let out = Command::new(venv_bin("python3"))
        .args(["tests/owasp/table.py", "--check"])
        .current_dir(root())
        .output()
        .map_err(|e| format!("table.py: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "README.md's OWASP table is stale (python3 tests/owasp/table.py --write): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The listeners of the config: `  - name: X` then its `port_value`.
fn config_listeners() -> Result<Vec<Listener>> {
    let text = std::fs::read_to_string(root().join(CONFIG)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut name: Option<String> = None;
    let mut in_listeners = false;
    for line in text.lines() {
        if line == "  listeners:" {
            in_listeners = true;
        } else if line == "  clusters:" {
            in_listeners = false;
        } else if in_listeners {
            if let Some(n) = line.strip_prefix("  - name: ") {
                name = Some(n.trim().to_string());
            } else if let (Some(n), Some(i)) = (&name, line.find("port_value: ")) {
                let port = line[i + 12..]
                    .trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .map_err(|_| format!("{CONFIG}: bad port in {line:?}"))?;
                out.push(Listener {
                    name: n.clone(),
                    placeholder: port,
                    rejected: None,
                    unused: false,
                });
                name = None;
            }
        }
    }
    if out.is_empty() {
        return Err(format!("{CONFIG}: no listeners found"));
    }
    Ok(out)
}

/// `text` with only the listeners in `keep` (by name).
fn config_with(text: &str, keep: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::new();
    let mut in_listeners = false;
    let mut keeping = true;
    for line in text.lines() {
        if line == "  listeners:" {
            in_listeners = true;
        } else if line == "  clusters:" {
            in_listeners = false;
            keeping = true;
        } else if in_listeners {
            if let Some(n) = line.strip_prefix("  - name: ") {
                keeping = keep(n.trim());
            }
        }
        if keeping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `text` with the policy of every listener not in `keep` replaced by the
/// empty policy (the listener stays, so its port exists; no case is sent to it).
fn config_neutered(text: &str, keep: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::new();
    let mut in_listeners = false;
    let mut keeping = true;
    let mut skipping = false;
    for line in text.lines() {
        if skipping {
            if line.starts_with("                    ") || line.trim().is_empty() {
                continue;
            }
            skipping = false;
        }
        if line == "  listeners:" {
            in_listeners = true;
        } else if line == "  clusters:" {
            in_listeners = false;
            keeping = true;
        } else if in_listeners {
            if let Some(n) = line.strip_prefix("  - name: ") {
                keeping = keep(n.trim());
            }
        }
        out.push_str(line);
        out.push('\n');
        if !keeping && line.trim_end().ends_with("value: |") {
            out.push_str("                    {\"schemaVersion\": 1}\n");
            skipping = true;
        }
    }
    out
}

/// The config Envoy runs when the whole file is rejected: each listener the
/// cases need is validated alone (in parallel), and only those this build
/// accepts are kept.
fn runnable_config(listeners: &mut [Listener], wanted: &BTreeSet<String>) -> Result<String> {
    let text = std::fs::read_to_string(root().join(CONFIG)).map_err(|e| e.to_string())?;
    let dir = root().join("target/e2e");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let wasm = format!("filename: {}", wasm_path().display());
    let verdicts: Vec<(String, Result<(bool, String)>)> = std::thread::scope(|s| {
        let handles: Vec<_> = listeners
            .iter()
            .filter(|l| wanted.contains(&l.name))
            .map(|l| {
                let name = l.name.clone();
                let one = config_with(&text, &|n| n == name)
                    .replace("filename: target/tollgate.wasm", &wasm);
                let path = dir.join(format!("owasp-validate-{name}.yaml"));
                s.spawn(move || {
                    let r = std::fs::write(&path, one)
                        .map_err(|e| e.to_string())
                        .and_then(|()| envoy_validate(&path));
                    (name, r)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for (name, r) in verdicts {
        let (ok, log) = r?;
        if ok {
            continue;
        }
        let why = log
            .lines()
            .find(|l| l.contains("configuration rejected"))
            .map(|l| l.split("tollgate: ").last().unwrap_or(l).trim().to_string())
            .unwrap_or_else(|| format!("envoy --mode validate failed:\n{log}"));
        if let Some(l) = listeners.iter_mut().find(|l| l.name == name) {
            l.rejected = Some(why);
        }
    }
    for l in listeners.iter_mut() {
        l.unused = !wanted.contains(&l.name);
    }
    let runs = |n: &str| {
        wanted.contains(n)
            && listeners
                .iter()
                .any(|l| l.name == n && l.rejected.is_none())
    };
    if !listeners.iter().any(|l| runs(&l.name)) {
        return Err(format!(
            "this build rejects the policy of every listener the cases need: {}",
            listeners
                .iter()
                .filter_map(|l| l.rejected.as_ref().map(|w| format!("{}: {w}", l.name)))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let path = dir.join("owasp-runnable.yaml");
    std::fs::write(&path, config_neutered(&text, &runs)).map_err(|e| e.to_string())?;
    Ok(path.display().to_string())
}

fn request_id(c: &Case) -> String {
    format!("owasp-{}", c.id)
}

fn url_of(ctx: &Ctx, listener: &str, path: &str) -> Result<String> {
    let l = ctx
        .listeners
        .iter()
        .find(|l| l.name == listener)
        .ok_or_else(|| format!("no listener {listener}"))?;
    if let Some(why) = &l.rejected {
        return Err(format!(
            "listener {listener} is not running: this build rejects its policy ({why})"
        ));
    }
    let e = ctx.envoy;
    let port = match l.placeholder {
        10000 => e.listener,
        10001 => e.alt_listener,
        10002 => e.inj_listener,
        10003 => e.pii_listener,
        p => {
            return Ok(e.url_at(p, path));
        }
    };
    Ok(format!("http://127.0.0.1:{port}{path}"))
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// The exact bytes a case sends.
fn request_body(c: &Case) -> Option<Vec<u8>> {
    let r = &c.v["request"];
    if let Some(t) = r["bodyText"].as_str() {
        return Some(t.as_bytes().to_vec());
    }
    if r["body"].is_null() {
        return None;
    }
    Some(r["body"].to_string().into_bytes())
}

/// The mock's control headers from the case's `upstream`.
fn mock_headers(c: &Case) -> Vec<String> {
    let u = &c.v["upstream"];
    let mut h = Vec::new();
    if let Some(r) = u["reply"].as_str() {
        h.push(format!("x-mock-reply: {}", b64(r)));
    }
    if u["toolCall"].is_object() {
        let t = json!({"name": u["toolCall"]["name"], "arguments": u["toolCall"]["arguments"]});
        h.push(format!("x-mock-tool-call: {}", b64(&t.to_string())));
    }
    if let Some(n) = u["chunkBytes"].as_u64() {
        h.push(format!("x-mock-chunk-bytes: {n}"));
    }
    if let Some(s) = u["replyFrom"].as_str() {
        h.push(format!("x-mock-reply-from: {s}"));
    }
    if let Some(n) = u["repeat"].as_u64() {
        h.push(format!("x-mock-reply-repeat: {n}"));
    }
    if let Some(n) = u["status"].as_u64() {
        h.push(format!("x-mock-status: {n}"));
    }
    h
}

fn send(url: &str, c: &Case, with_rid: bool) -> Result<Response> {
    let r = &c.v["request"];
    let method = r["method"].as_str().unwrap_or("POST").to_string();
    let mut headers: Vec<String> = Vec::new();
    let mut has_ct = false;
    if let Some(m) = r["headers"].as_object() {
        for (k, v) in m {
            has_ct |= k.eq_ignore_ascii_case("content-type");
            headers.push(format!("{k}: {}", v.as_str().unwrap_or_default()));
        }
    }
    let body = request_body(c);
    if body.is_some() && !has_ct {
        headers.push("content-type: application/json".into());
    }
    if with_rid {
        headers.push(format!("x-request-id: {}", request_id(c)));
    }
    headers.extend(mock_headers(c));
    let mut args: Vec<&str> = vec!["-X", &method, url];
    for h in &headers {
        args.push("-H");
        args.push(h);
    }
    curl(&args, body.as_deref())
}

fn is_stream(c: &Case) -> bool {
    c.v["request"]["body"]["stream"] == json!(true)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One SSE event: its name and data.
struct Event {
    name: Option<String>,
    data: String,
}

fn sse_events(raw: &str) -> Vec<Event> {
    let raw = raw.replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in raw.split("\n\n") {
        let mut name = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = Some(n.trim().to_string());
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        if name.is_some() || !data.is_empty() {
            out.push(Event {
                name,
                data: data.join("\n"),
            });
        }
    }
    out
}

/// The text deltas of a stream (Chat, Completions, Responses, Anthropic) concatenated.
fn stream_text(events: &[Event]) -> String {
    let mut s = String::new();
    for e in events {
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            continue;
        };
        if let Some(choices) = v["choices"].as_array() {
            for ch in choices {
                if let Some(t) = ch["delta"]["content"].as_str() {
                    s.push_str(t);
                }
                if let Some(t) = ch["text"].as_str() {
                    s.push_str(t);
                }
            }
        }
        match v["type"].as_str() {
            Some("content_block_delta") => {
                if let Some(t) = v["delta"]["text"].as_str() {
                    s.push_str(t);
                }
            }
            Some("response.output_text.delta") => {
                if let Some(t) = v["delta"].as_str() {
                    s.push_str(t);
                }
            }
            _ => {}
        }
    }
    s
}

/// The error event of a stream, if it has one: its index and its code.
fn stream_error(events: &[Event]) -> Option<(usize, String)> {
    events.iter().enumerate().find_map(|(i, e)| {
        let v: Value = serde_json::from_str(&e.data).ok()?;
        let is_err = e.name.as_deref() == Some("error")
            || v["type"] == "error"
            || v.get("error").is_some_and(|x| x.is_object()) && v.get("choices").is_none();
        if !is_err {
            return None;
        }
        let code = v["error"]["code"]
            .as_str()
            .or(v["code"].as_str())
            .or(v["error"]["type"].as_str())
            .unwrap_or_default()
            .to_string();
        Some((i, code))
    })
}

fn header_ok(actual: Option<&str>, want: &Value) -> bool {
    match want {
        Value::Null => actual.is_none(),
        Value::String(s) => actual.is_some_and(|a| a.contains(s.as_str())),
        Value::Bool(b) => actual.is_some() == *b,
        _ => false,
    }
}

fn run_case(ctx: &Ctx, c: &Case) -> std::result::Result<(), String> {
    let ex = c.expect();
    let url = url_of(
        ctx,
        c.listener(),
        c.v["request"]["path"].as_str().unwrap_or("/"),
    )?;
    // What the upstream answers for the same request without the filter.
    let direct = if ex["responseUnchanged"] == json!(true) {
        ctx.up.reset()?;
        let path = c.v["request"]["path"].as_str().unwrap_or("/");
        let d = send(&format!("http://127.0.0.1:{}{path}", ctx.up.port), c, true)?;
        Some(d)
    } else {
        None
    };
    ctx.up.reset()?;
    let r = send(&url, c, true)?;
    let reqs = ctx.up.requests()?;
    let text = r.text();
    let mut errs: Vec<String> = Vec::new();
    let want_status = ex["status"].as_u64().unwrap_or(0);
    if u64::from(r.status) != want_status {
        errs.push(format!("status {} (wanted {want_status})", r.status));
    }
    let stream = is_stream(c) && r.status == 200;
    let events = if stream {
        sse_events(&text)
    } else {
        Vec::new()
    };
    let assembled = stream_text(&events);
    let serr = stream_error(&events);
    if let Some(code) = ex["errorCode"].as_str() {
        let got = if stream {
            serr.as_ref().map(|(_, c)| c.clone())
        } else {
            let v = r.json();
            v["error"]["code"]
                .as_str()
                .or(v["error"]["type"].as_str())
                .map(str::to_string)
        };
        if got.as_deref() != Some(code) {
            errs.push(format!("error code {got:?} (wanted {code:?})"));
        }
    }
    if let Some(want) = ex["streamError"].as_bool() {
        match (&serr, want) {
            (None, true) => errs.push("the stream has no error event".into()),
            (Some((_, code)), false) => {
                errs.push(format!("the stream ended with an error ({code})"))
            }
            (Some((i, _)), true) => {
                // Nothing but the API's closing events after the error.
                let after = stream_text(&events[i + 1..]);
                if !after.is_empty() {
                    errs.push(format!("text after the error event: {after:?}"));
                }
            }
            (None, false) => {}
        }
    }
    for s in strings(&ex["bodyContains"]) {
        if !text.contains(&s) && !assembled.contains(&s) {
            errs.push(format!("body lacks {s:?}"));
        }
    }
    for s in strings(&ex["bodyNotContains"]) {
        if text.contains(&s) || assembled.contains(&s) {
            errs.push(format!("body contains {s:?}"));
        }
    }
    if let Some(m) = ex["headers"].as_object() {
        for (k, want) in m {
            if !header_ok(r.header(k), want) {
                errs.push(format!("header {k}: {:?} (wanted {want})", r.header(k)));
            }
        }
    }
    if let Some(want) = ex["upstreamReached"].as_bool() {
        if want == reqs.is_empty() {
            errs.push(format!("upstream got {} requests", reqs.len()));
        }
    }
    let up_body = reqs.first().map(recorded_body);
    let up_text = up_body
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned());
    let needs_upstream = ex["upstreamBodyUnchanged"] == json!(true)
        || ex["upstreamBodyContains"].is_array()
        || ex["upstreamBodyNotContains"].is_array()
        || ex["upstreamJson"].is_object()
        || ex["upstreamHeaders"].is_object();
    if needs_upstream && reqs.len() != 1 {
        errs.push(format!(
            "upstream got {} requests (wanted 1 to check)",
            reqs.len()
        ));
    }
    if let (Some(ub), Some(ut)) = (&up_body, &up_text) {
        if ex["upstreamBodyUnchanged"] == json!(true) && Some(ub) != request_body(c).as_ref() {
            errs.push(format!("upstream body changed: {ut}"));
        }
        for s in strings(&ex["upstreamBodyContains"]) {
            if !ut.contains(&s) {
                errs.push(format!("upstream body lacks {s:?}: {ut}"));
            }
        }
        for s in strings(&ex["upstreamBodyNotContains"]) {
            if ut.contains(&s) {
                errs.push(format!("upstream body contains {s:?}"));
            }
        }
        if let Some(m) = ex["upstreamJson"].as_object() {
            let v: Value = serde_json::from_slice(ub).unwrap_or(Value::Null);
            for (ptr, want) in m {
                let got = v.pointer(ptr).cloned().unwrap_or(Value::Null);
                if &got != want {
                    errs.push(format!("upstream {ptr} = {got} (wanted {want})"));
                }
            }
        }
        if let Some(m) = ex["upstreamHeaders"].as_object() {
            for (k, want) in m {
                let got = recorded_header(&reqs[0], k);
                if !header_ok(got.as_deref(), want) {
                    errs.push(format!("upstream header {k}: {got:?} (wanted {want})"));
                }
            }
        }
    }
    if let Some(d) = direct {
        if d.body != r.body {
            errs.push(format!(
                "response differs from the upstream's:\n  got:  {}\n  want: {}",
                clip(&text),
                clip(&d.text())
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; body: {}", errs.join("; "), clip(&text)))
    }
}

/// `s` cut to 300 bytes (all of it with `TOLLGATE_OWASP_VERBOSE=1`).
fn clip(s: &str) -> String {
    if s.len() <= 300 || std::env::var_os("TOLLGATE_OWASP_VERBOSE").is_some() {
        return s.to_string();
    }
    let mut end = 300;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn span_for<'a>(spans: &'a [Value], rid: &str) -> Option<&'a Value> {
    spans
        .iter()
        .find(|s| s["attributes"]["tollgate.request_id"] == rid)
}

fn wait_for_spans(phoenix: &Phoenix, rids: &[String]) -> Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = phoenix.spans(PROJECT)?;
        let missing = rids
            .iter()
            .filter(|r| span_for(&spans, r).is_none())
            .count();
        if missing == 0 || Instant::now() > deadline {
            return Ok(spans);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A stored attribute against the case's expectation: a string equals (or, for
/// a list attribute, is one element), `"*"` is present,
/// `null` is absent, numbers and booleans equal.
fn attr_ok(actual: Option<&Value>, want: &Value) -> bool {
    match (actual, want) {
        (None, Value::Null) => true,
        (Some(_), Value::Null) => false,
        (None, _) => false,
        (Some(_), Value::String(w)) if w == "*" => true,
        (Some(Value::String(a)), Value::String(w)) => a == w || a.split(',').any(|x| x == w),
        (Some(Value::Array(a)), Value::String(w)) => {
            a.iter().any(|x| x.as_str().is_some_and(|x| x == w))
        }
        (Some(a), w) => a == w,
    }
}

fn check_trace(spans: &[Value], c: &Case) -> std::result::Result<(), String> {
    let rid = request_id(c);
    let span = span_for(spans, &rid)
        .ok_or_else(|| format!("no span with tollgate.request_id {rid} in Phoenix"))?;
    let attrs: &Map<String, Value> = span["attributes"]
        .as_object()
        .ok_or("span without attributes")?;
    let mut errs = Vec::new();
    if let Some(m) = c.expect()["trace"].as_object() {
        for (k, want) in m {
            if !attr_ok(attrs.get(k), want) {
                errs.push(format!("trace {k}: {:?} (wanted {want})", attrs.get(k)));
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}
