#!/usr/bin/env python3
"""Streaming A/B: the same SSE stream through Envoy without and with the filter.

Three Envoys run side by side: envoy/bench-without.yaml; envoy/bench-with.yaml,
the shipped wasm with the default policy; and the same with only the PII
patterns (`stage-pii`, no injection model on the request), which separates
the streaming scanner's cost from the request-side check. They run in front of the fast upstream, which
streams an OpenAI Chat reply of N one-word deltas, one event per HTTP chunk
(`x-bench-stream: N`). A client on a raw keep-alive socket sends the request
and times, per stream, the first content delta (time to first token) and the
end of the stream. Requests alternate between the two Envoys, so both see the
same machine noise. Reported, as differences of medians:

  * added time to first token (goal <= 1 ms), which includes the request's
    own check (with the default policy, the injection model), and the part of
    it after the response head arrived (the stream scanner's share);
  * added time per chunk: (stream time with - without) / events (goal p50 <= 10 us).

The request asks for no usage, so the filter also adds
`stream_options.include_usage` and removes the usage chunk: the full path.

    stream_ab.py [--streams 200] [--chunks 200] [--out target/bench/stream.json]
"""

import argparse
import json
import re
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab  # noqa: E402  (the same process handling, configs and upstream)

# A content delta with text (the role chunk's "content":"" is not one).
CONTENT = re.compile(rb'"content":"[^"]')
GOAL_TTFT_ADDED_MS = 1.0
VARIANTS = ("without", "with", "stage-pii")
GOAL_CHUNK_ADDED_US = 10.0


def read_stream(sock: socket.socket, buf: bytearray) -> tuple[float, float, float, bytes]:
    """Read one chunked SSE response; (time of the response head, of the first
    content delta, of the end, body). Times are time.perf_counter() values."""
    first = 0.0
    body = bytearray()
    # Head.
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ab.BenchError("connection closed in the response head")
        buf += data
    t_head = time.perf_counter()
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ab.BenchError(f"bad response: {head[:200]!r}")
    buf[:] = rest
    # Chunks until the last one.
    while True:
        while b"\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                raise ab.BenchError("connection closed inside the body")
            buf += data
        line, _, rest = bytes(buf).partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        while len(rest) < size + 2:
            data = sock.recv(65536)
            if not data:
                raise ab.BenchError("connection closed inside a chunk")
            rest += data
        chunk = rest[:size]
        buf[:] = rest[size + 2:]
        if size == 0:
            return t_head, first, time.perf_counter(), bytes(body)
        body += chunk
        if not first and CONTENT.search(chunk):
            first = time.perf_counter()


def one(sock, buf, port: int, payload: bytes, chunks: int) -> tuple[float, float, float, bytes]:
    """(first token after the request was sent in ms, first token after the
    response head in ms, whole stream in us, body)."""
    req = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
           f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n"
           f"x-bench-stream: {chunks}\r\n\r\n").encode() + payload
    t0 = time.perf_counter()
    sock.sendall(req)
    head, first, end, body = read_stream(sock, buf)
    return (first - t0) * 1e3, (first - head) * 1e3, (end - t0) * 1e6, body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=200, help="streams per Envoy (default 200)")
    ap.add_argument("--chunks", type=int, default=200, help="content deltas per stream (default 200)")
    ap.add_argument("--envoy", help="Envoy binary (default .venv/bin/envoy)")
    ap.add_argument("--out", type=Path, default=ab.ROOT / "target/bench/stream.json")
    a = ap.parse_args()
    a.streams = max(10, min(a.streams, 2000))
    a.chunks = max(10, min(a.chunks, 5000))
    envoy = ab.find_envoy(a.envoy)
    workdir = ab.ROOT / "target/bench"
    workdir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [
        {"role": "user", "content": "Summarise the meeting notes in three short points."}]}).encode()
    try:
        up, up_port = ab.start_upstream(None)
        envoys = {v: ab.Envoy(v, envoy, up_port, workdir, 0, None) for v in VARIANTS}
        for e in envoys.values():
            e.wait_ready(timeout=120)
        socks = {}
        for v, e in envoys.items():
            s = socket.create_connection(("127.0.0.1", e.port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks[v] = (s, bytearray())
        # Warm-up, and the two answers must carry the same text.
        bodies = {}
        for _ in range(10):
            for v, e in envoys.items():
                bodies[v] = one(*socks[v], e.port, payload, a.chunks)[3]
        for v in VARIANTS[1:]:
            if bodies[v] != bodies["without"]:
                raise ab.BenchError(f"the stream through {v} differs from the upstream's")
        ttft = {v: [] for v in envoys}
        after_head = {v: [] for v in envoys}
        total = {v: [] for v in envoys}
        for _ in range(a.streams):
            for v, e in envoys.items():
                t, h, d, _ = one(*socks[v], e.port, payload, a.chunks)
                ttft[v].append(t)
                after_head[v].append(h)
                total[v].append(d)
        stats = envoys["with"].stats()
    finally:
        ab.stop_all()
    med = {v: (statistics.median(ttft[v]), statistics.median(total[v]),
               statistics.median(after_head[v])) for v in ttft}
    events = a.chunks + 3
    summary = {
        "streams": a.streams,
        "events_per_stream": events,
        "ttft_ms_median": {v: round(med[v][0], 3) for v in med},
        "stream_us_median": {v: round(med[v][1], 1) for v in med},
        "first_token_after_head_ms_median": {v: round(med[v][2], 3) for v in med},
        "goal_ttft_ms": GOAL_TTFT_ADDED_MS,
        "goal_us_per_chunk": GOAL_CHUNK_ADDED_US,
        "streams_scanned": stats.get("tollgate_streams_scanned"),
        "added": {},
    }
    print(f"streams: {a.streams} per Envoy, {events} events each (one per HTTP chunk), "
          f"medians; without the filter: first token {med['without'][0]:.3f} ms, "
          f"stream {med['without'][1]:.0f} us")
    for v in VARIANTS[1:]:
        added_ttft = med[v][0] - med["without"][0]
        added_chunk = (med[v][1] - med["without"][1]) / events
        added_head = med[v][2] - med["without"][2]
        summary["added"][v] = {"ttft_ms": round(added_ttft, 3), "us_per_chunk": round(added_chunk, 2),
                               "first_token_after_head_ms": round(added_head, 3)}
        print(f"  {v:10} first token +{added_ttft:.3f} ms (goal <= {GOAL_TTFT_ADDED_MS} ms: "
              f"{'met' if added_ttft <= GOAL_TTFT_ADDED_MS else 'MISSED'}; of which after the "
              f"response head +{added_head:.3f} ms), "
              f"+{added_chunk:.2f} us per chunk (goal <= {GOAL_CHUNK_ADDED_US} us: "
              f"{'met' if added_chunk <= GOAL_CHUNK_ADDED_US else 'MISSED'})")
    a.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
