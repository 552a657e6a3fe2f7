#!/usr/bin/env python3
"""The added latency of the rate-limit call: the same Envoy and wasm with a policy
without limits and one with limits, side by side in one run.

Both Envoys start from envoy/bench-with.yaml with the plugin configuration
replaced: "base" has no detectors and no limits; "limits" has no detectors and
three limits (requests, tokens and cost: three ShouldRateLimit calls in
parallel per request) against the rate-limit service (`tollgate-ratelimit`,
in memory, release build) over HTTP/2. One keep-alive connection each,
requests alternating between the two, 4 KB chat bodies; medians and p99 of the
difference.

    limits_ab.py [--requests 1000] [--out target/bench/limits.json]
"""

import argparse
import http.client
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab  # noqa: E402

RATELIMIT_BIN = ab.ROOT / "target/release/tollgate-ratelimit"
LIMITS_POLICY = {
    "schemaVersion": 1,
    "detectors": [],
    "rateLimit": {
        "cluster": "ratelimit",
        "limits": [
            {"name": "tenant-rpm", "kind": "requests", "per": ["tenant"]},
            {"name": "tokens", "kind": "tokens", "per": ["tenant"]},
            {"name": "team-budget", "kind": "cost", "per": ["tenant", "team"]},
        ],
        "prices": {"*": {"input": 1, "output": 1}},
    },
}
BASE_POLICY = {"schemaVersion": 1, "detectors": []}
RL_CLUSTER = """  - name: ratelimit
    connect_timeout: 1s
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: ratelimit
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}
"""


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1000, help="requests per Envoy (default 1000)")
    ap.add_argument("--envoy", help="Envoy binary (default .venv/bin/envoy)")
    ap.add_argument("--out", type=Path, default=ab.ROOT / "target/bench/limits.json")
    a = ap.parse_args()
    a.requests = max(50, min(a.requests, 20000))
    if not RATELIMIT_BIN.exists():
        raise SystemExit(f"{RATELIMIT_BIN} missing: cargo build --release -p tollgate-ratelimit")
    envoy = ab.find_envoy(a.envoy)
    workdir = ab.ROOT / "target/bench"
    workdir.mkdir(parents=True, exist_ok=True)
    body = ab.make_body(4096)
    try:
        up, up_port = ab.start_upstream(None)
        rl = ab.spawn([str(RATELIMIT_BIN), "--config", str(ab.ROOT / "tests/e2e/ratelimit.yaml"),
                       "--port", "0"], stdout=ab.subprocess.PIPE)
        line = rl.stdout.readline()
        if not line.startswith(b"READY "):
            raise ab.BenchError(f"tollgate-ratelimit did not start: {line!r}")
        rl_port = int(line.split()[1])
        src = ab.CONFIGS["with"].read_text()
        envoys = {}
        for name, policy in (("base", BASE_POLICY), ("limits", LIMITS_POLICY)):
            text = ab.with_policy(src, policy).rstrip("\n") + "\n" + RL_CLUSTER % rl_port
            cfg = workdir / f"limits-src-{name}.yaml"
            cfg.write_text(text)
            ab.CONFIGS[f"limits-{name}"] = cfg
            envoys[name] = ab.Envoy(f"limits-{name}", envoy, up_port, workdir, 0, None)
        for e in envoys.values():
            e.wait_ready(timeout=120)
        conns = {n: http.client.HTTPConnection("127.0.0.1", e.port, timeout=10) for n, e in envoys.items()}
        headers = {"content-type": "application/json", "x-tenant-id": "bench", "x-team-id": "t"}
        lat = {n: [] for n in envoys}
        for i in range(a.requests + 50):
            for n, c in conns.items():
                t0 = time.perf_counter()
                c.request("POST", ab.PATH, body=body, headers=headers)
                r = c.getresponse()
                r.read()
                dt = (time.perf_counter() - t0) * 1e6
                if r.status != 200:
                    raise ab.BenchError(f"{n}: status {r.status}")
                if i >= 50:  # warm-up
                    lat[n].append(dt)
    finally:
        ab.stop_all()
    p50 = {n: statistics.median(v) for n, v in lat.items()}
    p99 = {n: pct(v, 0.99) for n, v in lat.items()}
    summary = {
        "requests": a.requests,
        "p50_us": {n: round(v, 1) for n, v in p50.items()},
        "p99_us": {n: round(v, 1) for n, v in p99.items()},
        "added_p50_us": round(p50["limits"] - p50["base"], 1),
        "added_p99_us": round(p99["limits"] - p99["base"], 1),
    }
    a.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"rate-limit call, 4 KB chat, one connection, {a.requests} requests each: "
          f"p50 {p50['base']:.0f} -> {p50['limits']:.0f} us (added {summary['added_p50_us']:.0f} us), "
          f"p99 {p99['base']:.0f} -> {p99['limits']:.0f} us (added {summary['added_p99_us']:.0f} us)")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
