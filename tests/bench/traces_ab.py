#!/usr/bin/env python3
"""The collector going down costs no request anything: the same Envoy and wasm
(the default policy of envoy/bench-with.yaml) with and without span export,
side by side in one run.

Four Envoys (three with --no-live) run at once, from envoy/bench-with.yaml
with the plugin configuration and a `collector` cluster generated into a
temporary directory:

  A  none  no `traces` key (no span export);
  B  down  traces to a cluster where nothing listens (the collector stopped);
  C  hung  traces to a listener that accepts TCP, reads and never answers
           (a hung collector; every batch waits out the 2 s timeout);
  D  live  traces to a collector answering 200 to POST /v1/traces.

The collectors of C and D are threads of this script. Every Envoy is checked
(one request, 200 chat.completion, counted by the filter) and warmed up; then,
round after round, each in turn gets wrk at 8 connections (throughput and
loaded latency), then each in turn wrk at 1 connection (latency without
queueing; each round starts one variant later), POSTing the 4 KB chat body of
ab.py to the fast upstream. Figures are medians over rounds, with the ratios
B/A, C/A and D/A; beside them, from each Envoy's Prometheus stats, the spans
exported, dropped (by reason) and retried, and the batches by result, and the
share of the CPU other work on the machine took during each timing (noise).

Timings are reported, never asserted: the script fails (exit 1) only when a
request was not answered 200 (wrk's non-2xx answers or socket errors, a
timeout among them: wrk gives up on a request after 2 s, the collector's
timeout), the filter missed requests, or a variant did not do what it stands
for (B or C with no failed batch, D with no span exported, A with any trace
activity).

Writes target/bench/traces_summary.json and prints a table. Builds nothing:
target/tollgate.wasm and target/release/tollgate-bench-upstream must exist.

    traces_ab.py [--quick] [--rounds 3] [--duration 5] [--no-live] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab  # noqa: E402  (processes, Envoy, wrk, bodies and the upstream)

OUT = ab.ROOT / "target/bench/traces_summary.json"
BODY_BYTES = 4096
VARIANTS = {  # name: (letter, description)
    "none": ("A", "no traces"),
    "down": ("B", "collector down"),
    "hung": ("C", "collector hung"),
    "live": ("D", "collector live"),
}
# The exporter's settings (the defaults, spelled out) with the collector's cluster.
TRACES = {"cluster": "collector", "project": "tollgate-bench", "timeout": "2s",
          "flushInterval": "1s", "batchSpans": 64, "maxQueueSpans": 2048,
          "maxRetries": 3, "retryBackoff": "500ms"}
# The tags of envoy/e2e.yaml's stats_config, so the reasons and results are labels.
TRACE_TAGS = r"""  - tag_name: reason
    regex: "^(?:wasmcustom\\.)?tollgate\\.trace_spans_dropped(\\.reason\\.([a-z_]+))$"
  - tag_name: result
    regex: "^(?:wasmcustom\\.)?tollgate\\.trace_batches(\\.result\\.([a-z_]+))$"
"""
COLLECTOR_CLUSTER = """  - name: collector
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: collector
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}
"""
DROP_REASONS = ("queue_full", "too_large", "collector", "rejected")
BATCH_RESULTS = ("ok", "failed", "rejected")
RATIOS = ("c8_rps", "c8_p50_us", "c8_p99_us", "c8_cpu_us_per_req", "c1_p50_us", "c1_p99_us",
          "c1_rps")


# --------------------------------------------------------------------------
# Collectors (threads of this process)


class HungCollector:
    """Accepts TCP connections and reads what comes; never answers."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hung-collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(0.2):
                    if key.fileobj is self.sock:
                        try:
                            conn, _ = self.sock.accept()
                        except BlockingIOError:
                            continue
                        conn.setblocking(False)
                        sel.register(conn, selectors.EVENT_READ)
                        self.accepted += 1
                        continue
                    try:
                        data = key.fileobj.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if data:
                        self.bytes += len(data)
                    else:  # Envoy gave up on the batch and closed
                        sel.unregister(key.fileobj)
                        key.fileobj.close()
            for key in list(sel.get_map().values()):
                key.fileobj.close()

    def stats(self) -> dict:
        return {"connections_accepted": self.accepted, "bytes_received": self.bytes}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


class LiveCollector:
    """OTLP/HTTP: 200 (an empty ExportTraceServiceResponse) to every POST /v1/traces."""

    def __init__(self):
        counts = self.counts = {"batches_received": 0, "bytes_received": 0}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real collector

            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                self.rfile.read(n)
                ok = self.path == "/v1/traces"
                if ok:
                    with lock:
                        counts["batches_received"] += 1
                        counts["bytes_received"] += n
                self.send_response(200 if ok else 404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="live-collector",
                                        daemon=True)
        self._thread.start()

    def stats(self) -> dict:
        return dict(self.counts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A loopback port where nothing listens (the stopped collector)."""
    port = ab.free_port()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except ConnectionRefusedError:
        return port
    raise ab.BenchError(f"port {port} was free a moment ago and now accepts connections")


# --------------------------------------------------------------------------
# Envoy configs and stats


def bench_policy(src: str) -> dict:
    """The plugin configuration (JSON under `value: |`) of envoy/bench-with.yaml."""
    lines = src.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "value: |":
            indent = len(line) - len(line.lstrip()) + 2
            block = []
            for l in lines[i + 1:]:
                if l.strip() and len(l) - len(l.lstrip()) < indent:
                    break
                block.append(l)
            return json.loads("\n".join(block))
    raise ab.BenchError("no `value: |` plugin configuration in envoy/bench-with.yaml")


def variant_config(src: str, collector_port: int | None) -> str:
    """bench-with.yaml with the trace tags and, given a collector port, `traces` and its cluster."""
    if "  stats_tags:\n" not in src:
        raise ab.BenchError("envoy/bench-with.yaml: no `stats_tags:` under stats_config")
    src = src.replace("  stats_tags:\n", "  stats_tags:\n" + TRACE_TAGS, 1)
    if collector_port is None:
        return src
    policy = bench_policy(src)
    policy["traces"] = TRACES
    return ab.with_policy(src, policy).rstrip("\n") + "\n" + COLLECTOR_CLUSTER % collector_port


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)$")
LABEL = re.compile(r'([a-zA-Z_]\w*)="([^"]*)"')


def trace_stats(e: ab.Envoy) -> dict:
    """Requests and the exporter's counters from /stats/prometheus, tagged
    (tollgate_trace_batches{result="ok"}) or not (tollgate_trace_batches_result_ok)."""
    status, body = ab.http("GET", f"http://127.0.0.1:{e.admin}/stats/prometheus")
    if status != 200:
        raise e.fail(f"/stats/prometheus answered {status}")
    out = {"requests": 0.0, "exported": 0.0, "retried": 0.0,
           "dropped": dict.fromkeys(DROP_REASONS, 0.0), "batches": dict.fromkeys(BATCH_RESULTS, 0.0)}
    plain = {"tollgate_requests": "requests", "tollgate_trace_spans_exported": "exported",
             "tollgate_trace_spans_retried": "retried"}
    by_tag = (("dropped", "tollgate_trace_spans_dropped", "reason"),
              ("batches", "tollgate_trace_batches", "result"))
    for line in body.decode(errors="replace").splitlines():
        m = SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))
        if name in plain and not labels:
            out[plain[name]] += value
        for key, stat, tag in by_tag:
            if name == stat and tag in labels:
                out[key][labels[tag]] = out[key].get(labels[tag], 0.0) + value
            elif name.startswith(f"{stat}_{tag}_"):
                k = name[len(stat) + len(tag) + 2:]
                out[key][k] = out[key].get(k, 0.0) + value
    return out


def delta(after: dict, before: dict) -> dict:
    return {k: delta(v, before.get(k, {})) if isinstance(v, dict) else v - before.get(k, 0.0)
            for k, v in after.items()}


def ints(d: dict) -> dict:
    return {k: ints(v) if isinstance(v, dict) else int(v) for k, v in d.items()}


# --------------------------------------------------------------------------
# Runs


def cpu_snapshot(pids: list[int]) -> list[float]:
    """Seconds: [wall clock, the machine's busy CPU, this script's CPU (its threads
    and the children it waited for, wrk), then the CPU of each of `pids`]."""
    t = ab.cpu_times()
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return ([time.monotonic(), (sum(t[:8]) - t[3] - t[4]) / os.sysconf("SC_CLK_TCK"),
             me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime]
            + [ab.proc_cpu_seconds(p) for p in pids])


def timing(e: ab.Envoy, others: list[int], wrk: str, script: Path, conns: int,
           seconds: float) -> dict:
    """One wrk run at `conns` connections, with the change of the trace counters
    over it and its CPU accounting (`others`: the pids of the other Envoys, then
    the upstream's)."""
    before = trace_stats(e)
    cpu0 = cpu_snapshot([e.proc.pid] + others)
    w = ab.parse_wrk(ab.run_wrk(wrk, e.url, script, 1, conns, seconds, True, None))
    cpu = [b - a for a, b in zip(cpu0, cpu_snapshot([e.proc.pid] + others))]
    d = delta(trace_stats(e), before)
    capacity = cpu[0] * (os.cpu_count() or 1)
    errors = []
    if w["non2xx"] or w["socket_errors"]:
        errors.append(f"{conns} conn: {w['non2xx']} non-2xx answers, {w['socket_errors']} socket "
                      f"errors of {w['requests']} requests")
    if d["requests"] < w["requests"]:
        errors.append(f"{conns} conn: the filter counted {d['requests']:.0f} requests, wrk "
                      f"completed {w['requests']}")
    return {
        "conns": conns, "rps": w["rps"], "p50_us": w["p50_us"], "p99_us": w["p99_us"],
        "requests": w["requests"], "non2xx": w["non2xx"], "socket_errors": w["socket_errors"],
        "cpu_us_per_req": round(cpu[3] * 1e6 / max(1, w["requests"]), 1),
        # The CPU share of the other Envoys (idle, or draining their queues) and of work
        # that is not this benchmark's (noise: other processes on the machine).
        "other_envoys_cpu_share": round(sum(cpu[4:-1]) / capacity, 3),
        "foreign_cpu_share": round(max(0.0, cpu[1] - sum(cpu[2:])) / capacity, 3),
        "traces": ints(d), "errors": errors,
    }


def condition_errors(name: str, t: dict, collector: dict) -> list[str]:
    """Did the variant do what it stands for? (Not timings.)"""
    failed, exported = t["batches"].get("failed", 0), t["exported"]
    activity = exported + failed + sum(t["dropped"].values()) + sum(t["batches"].values())
    if name == "none" and activity:
        return ["span export ran without a `traces` key"]
    if name in ("down", "hung") and (not failed or exported):
        return [f"expected failed batches and nothing exported, got {failed} failed, {exported} exported"]
    if name == "hung" and not collector.get("connections_accepted"):
        return ["the hung collector accepted no connection"]
    if name == "live" and (not exported or not collector.get("batches_received")):
        return [f"expected spans exported, got {exported} ({collector})"]
    return []


def fmt_traces(t: dict) -> str:
    dropped = ", ".join(f"{k} {v:,}" for k, v in t["dropped"].items() if v) or "none"
    batches = ", ".join(f"{k} {v:,}" for k, v in t["batches"].items() if v) or "none"
    return f"spans exported {t['exported']:,}, dropped: {dropped}; batches: {batches}"


# --------------------------------------------------------------------------
# Main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s timings")
    ap.add_argument("--rounds", type=int, help="rounds (default 3)")
    ap.add_argument("--duration", type=float,
                    help="seconds of each timing, at 8 and at 1 connection (default 5)")
    ap.add_argument("--no-live", dest="live", action="store_false", help="leave out D (live collector)")
    ap.add_argument("--envoy", help="Envoy binary (default .venv/bin/envoy, then /tmp/venv/bin/envoy)")
    ap.add_argument("--out", type=Path, default=OUT,
                    help=f"summary file (default {OUT.relative_to(ab.ROOT)})")
    a = ap.parse_args()
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.duration = a.duration or (2.0 if a.quick else 5.0)
    if not 1 <= a.rounds <= 20 or not 1 <= a.duration <= 60:
        ap.error("--rounds between 1 and 20, --duration between 1 and 60 seconds")
    return a


def main() -> int:
    a = parse_args()
    envoy_bin, wrk = ab.preflight(argparse.Namespace(pin=False, envoy=a.envoy))
    names = [n for n in VARIANTS if a.live or n != "live"]
    version = ab.envoy_version(envoy_bin)
    wasm_sha = ab.sha256(ab.WASM)
    t0 = ab.cpu_times()
    time.sleep(1.0)
    busy_before, _ = ab.busy_share(t0, ab.cpu_times())
    if busy_before > 0.15:
        print(f"warning: the machine was {busy_before:.0%} busy before the start: other work "
              "on it will distort the figures", file=sys.stderr)
    shown = ", ".join(f"{VARIANTS[n][0]} {VARIANTS[n][1]}" for n in names)
    print(f"Tollgate traces A/B: envoy {version}, {shown}; "
          f"{a.rounds} round(s) of wrk -t1 -c8 -d{a.duration:g}s and -c1 -d{a.duration:g}s each, "
          f"{BODY_BYTES} B body; about {len(names) * a.rounds * 2 * a.duration + 30:.0f}s", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="tollgate-traces-"))
    collectors: dict[str, HungCollector | LiveCollector] = {}
    ok = False
    try:
        upstream, up_port = ab.start_upstream(None)
        body = ab.make_body(BODY_BYTES)
        body_file = workdir / "body.json"
        body_file.write_bytes(body)
        script = ab.wrk_script(workdir, "4KB", body_file)

        collectors["hung"] = HungCollector()
        if "live" in names:
            collectors["live"] = LiveCollector()
        ports = {"none": None, "down": closed_port(), "hung": collectors["hung"].port}
        if "live" in names:
            ports["live"] = collectors["live"].port
        src = ab.CONFIGS["with"].read_text()
        envoys: dict[str, ab.Envoy] = {}
        for n in names:
            cfg = workdir / f"traces-src-{n}.yaml"
            cfg.write_text(variant_config(src, ports[n]))
            ab.CONFIGS[f"traces-{n}"] = cfg
            envoys[n] = ab.Envoy(f"traces-{n}", envoy_bin, up_port, workdir, 0, None)
        ready = {n: round(e.wait_ready(timeout=240), 2) for n, e in envoys.items()}
        errors: dict[str, list[str]] = {n: [] for n in names}
        for n, e in envoys.items():  # checked and warmed up; every warm-up answer must be 200 too
            e.check(body)
            w = ab.parse_wrk(ab.run_wrk(wrk, e.url, script, 1, 8, 1.0, True, None))
            if w["non2xx"] or w["socket_errors"]:
                errors[n].append(f"warm-up: {w['non2xx']} non-2xx, {w['socket_errors']} socket errors")

        runs: dict[str, list[dict]] = {n: [] for n in names}
        c_start = ab.cpu_times()
        for rnd in range(1, a.rounds + 1):
            # Each round starts one variant later: A B C D, B C D A, ... (no variant always
            # first); the variants' timings at a connection count follow each other.
            order = names[(rnd - 1) % len(names):] + names[:(rnd - 1) % len(names)]
            for conns in (8, 1):
                for n in order:
                    others = [x.proc.pid for m, x in envoys.items() if m != n] + [upstream.pid]
                    r = timing(envoys[n], others, wrk, script, conns, a.duration)
                    r["round"] = rnd
                    runs[n].append(r)
                    errors[n] += [f"round {rnd}: {m}" for m in r["errors"]]
                    letter, desc = VARIANTS[n]
                    print(f"  round {rnd} {conns} conn {letter} {desc:<15}: {r['rps']:>6,.0f} req/s "
                          f"p50 {r['p50_us']:>6,.0f} p99 {r['p99_us']:>6,.0f} us | "
                          f"{fmt_traces(r['traces']) if n != 'none' else 'no export'}"
                          f" | other work {r['foreign_cpu_share']:.0%} cpu"
                          + (f" | ERRORS: {'; '.join(r['errors'])}" if r["errors"] else ""),
                          flush=True)
        busy_run, steal_run = ab.busy_share(c_start, ab.cpu_times())
        totals = {n: ints(trace_stats(e)) for n, e in envoys.items()}
        coll = {n: c.stats() for n, c in collectors.items()}
        for n in names:
            errors[n] += condition_errors(n, totals[n], coll.get(n, {}))
            if envoys[n].proc.poll() is not None:
                errors[n].append(f"envoy exited with status {envoys[n].proc.returncode}")
        if upstream.poll() is not None:
            raise ab.BenchError(f"the upstream exited with status {upstream.returncode} during the run")

        noise = max(r["foreign_cpu_share"] for rs in runs.values() for r in rs)
        med = statistics.median
        variants = {}
        for n in names:
            v = {"letter": VARIANTS[n][0], "description": VARIANTS[n][1],
                 "collector_port": ports[n], "ready_s": ready[n]}
            for conns in (8, 1):
                rs = [r for r in runs[n] if r["conns"] == conns]
                for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req"):
                    v[f"c{conns}_{k}"] = round(med(r[k] for r in rs), 1)
            v["requests"] = sum(r["requests"] for r in runs[n])
            v["non2xx"] = sum(r["non2xx"] for r in runs[n])
            v["socket_errors"] = sum(r["socket_errors"] for r in runs[n])
            v["traces_total"] = totals[n]
            if n in coll:
                v["collector"] = coll[n]
            v["errors"] = errors[n]
            v["runs"] = runs[n]
            variants[n] = v
        base = variants["none"]
        ratios = {f"{VARIANTS[n][0]}/A": {k: round(variants[n][k] / base[k], 3) if base[k] else None
                                          for k in RATIOS}
                  for n in names if n != "none"}
        summary = {
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "envoy": version,
            "machine": {"cpus": os.cpu_count(), "busy_before_start": round(busy_before, 3),
                        "busy_during_run": round(busy_run, 3), "steal_during_run": round(steal_run, 3),
                        "foreign_cpu_share_max": noise,
                        "other_envoys_cpu_share_max": max(r["other_envoys_cpu_share"]
                                                          for rs in runs.values() for r in rs)},
            "build": {"commit": ab.git_commit(), "wasm_sha256": wasm_sha},
            "method": (
                f"Loopback, one run. {len(names)} Envoys (--concurrency 1) from envoy/bench-with.yaml "
                f"(default policy), started together and kept up: A no traces; B traces "
                f"{json.dumps(TRACES)} to a port where nothing listens; C the same to a listener that "
                f"accepts and never answers; D the same to a collector answering 200. Each checked "
                f"(one 200 chat.completion counted by the filter) and warmed up (wrk 1 s, 8 "
                f"connections); then {a.rounds} round(s), each: wrk -t1 -c8 -d{a.duration:g}s "
                f"--latency on each Envoy in turn, then wrk -t1 -c1 -d{a.duration:g}s --latency on "
                f"each in turn (order A B C D, then B C D A, ...), POSTing a {BODY_BYTES} B OpenAI "
                f"chat body (ab.py's) to the fast upstream (tollgate-bench-upstream). Figures are "
                f"medians over rounds; ratios are variant/A (1.0 = no difference). Trace counters "
                f"are Envoy's Prometheus stats: per timing the change over it, traces_total at the "
                f"end of the run. Errors (non-2xx, socket errors, requests the filter missed, a "
                f"variant not in its condition) fail the run; timings never do. foreign_cpu_share: "
                f"the machine's busy CPU during a timing not used by this benchmark's processes "
                f"(other work, noise), as a share of all CPUs."),
            "variants": variants,
            "ratios": ratios,
            "ok": not any(errors.values()),
        }
        if ab.sha256(ab.WASM) != wasm_sha:
            summary["build"]["wasm_changed_during_run"] = True
            print(f"warning: {ab.WASM.relative_to(ab.ROOT)} changed during the run", file=sys.stderr)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(summary, indent=2) + "\n")
        print_tables(summary)
        if noise > 0.05:
            print(f"warning: other work on the machine took up to {noise:.0%} of its CPU during a "
                  "timing (foreign_cpu_share of the runs): the figures are noisier for it",
                  file=sys.stderr)
        try:
            shown = a.out.relative_to(ab.ROOT)
        except ValueError:
            shown = a.out
        print(f"\nwrote {shown}")
        bad = {n: e for n, e in errors.items() if e}
        for n, msgs in bad.items():
            print(f"FAILED {VARIANTS[n][0]} {VARIANTS[n][1]}: " + "; ".join(msgs), file=sys.stderr)
        ok = not bad
        return 0 if ok else 1
    finally:
        ab.stop_all()
        for c in collectors.values():
            c.close()
        if ok or isinstance(sys.exc_info()[1], KeyboardInterrupt):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"(logs and configs kept in {workdir})", file=sys.stderr)


def print_tables(s: dict) -> None:
    vs = s["variants"]
    f = ab.fmt_us
    hdr = (f"{'variant':<18} | {'8 conn req/s':>12} {'p50':>6} {'p99':>6} | {'1 conn p50':>10} "
           f"{'p99':>6} {'req/s':>6} | {'cpu/req':>7} | {'requests':>8} {'errors':>6}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for v in vs.values():
        print(f"{v['letter'] + ' ' + v['description']:<18} | {v['c8_rps']:>12,.0f} {f(v['c8_p50_us']):>6} "
              f"{f(v['c8_p99_us']):>6} | {f(v['c1_p50_us']):>10} {f(v['c1_p99_us']):>6} "
              f"{v['c1_rps']:>6,.0f} | {v['c8_cpu_us_per_req']:>7,.0f} | {v['requests']:>8,} "
              f"{v['non2xx'] + v['socket_errors']:>6}")
    print("(latencies and Envoy CPU per request at 8 connections in microseconds; medians over rounds)")
    if s["ratios"]:
        hdr = (f"{'ratio':<6} | {'8 conn req/s':>12} {'p50':>6} {'p99':>6} {'cpu/req':>7} | "
               f"{'1 conn p50':>10} {'p99':>6} {'req/s':>6}")
        print("\n" + hdr + "\n" + "-" * len(hdr))
        for name, r in s["ratios"].items():
            print(f"{name:<6} | {r['c8_rps']:>12.3f} {r['c8_p50_us']:>6.3f} {r['c8_p99_us']:>6.3f} "
                  f"{r['c8_cpu_us_per_req']:>7.3f} | {r['c1_p50_us']:>10.3f} {r['c1_p99_us']:>6.3f} "
                  f"{r['c1_rps']:>6.3f}")
        print("(variant / A: 1.000 = the same; timings are noisy, see foreign_cpu_share)")
    hdr = (f"{'variant':<18} | {'spans exported':>14} | " + " ".join(f"{d:>10}" for d in DROP_REASONS)
           + f" | {'batches ok':>10} {'failed':>6} {'rejected':>8} | {'retried':>7}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for v in vs.values():
        t = v["traces_total"]
        print(f"{v['letter'] + ' ' + v['description']:<18} | {t['exported']:>14,} | "
              + " ".join(f"{t['dropped'].get(d, 0):>10,}" for d in DROP_REASONS)
              + f" | {t['batches'].get('ok', 0):>10,} {t['batches'].get('failed', 0):>6,} "
              f"{t['batches'].get('rejected', 0):>8,} | {t['retried']:>7,}")
    print("(Prometheus counters at the end of the run; every request of the run, check and warm-up "
          "included, makes one span, and each VM one at start-up)")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, ab._on_sigterm)
    signal.signal(signal.SIGHUP, ab._on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sys.exit(main())
    except ab.BenchError as e:
        print(f"traces bench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\ntraces bench: interrupted; stopped every process it started", file=sys.stderr)
        sys.exit(130)
