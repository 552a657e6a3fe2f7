"""Phoenix as our trace store: an OTLP/HTTP protobuf export in, the same spans back out.

    target/phoenix-venv/bin/python tests/phoenix/otlp_roundtrip.py --url http://127.0.0.1:6006
    target/phoenix-venv/bin/python tests/phoenix/otlp_roundtrip.py --start   (make phoenix-check)

--url talks to a running Phoenix; --start runs one (tests/phoenix/serve.py, free loopback
ports, a fresh working dir and SQLite DB), checks that every socket it listens on is on
loopback, and stops it at the end. What it checks, and what the e2e harness relies on:

  * POST /v1/traces, content-type application/x-protobuf, an ExportTraceServiceRequest:
    200, content-type application/x-protobuf, an empty ExportTraceServiceResponse. The
    same with content-encoding gzip. An OTLP JSON body is refused with 415.
  * The project is the resource attribute `openinference.project.name` (an x-project-name
    request header overrides it; neither: project "default").
  * GET /v1/projects/{name}/spans?limit=N gives {"data": [span...], "next_cursor": str|null};
    spans keep their ids, parent, times, status, and typed attributes and events.
Exit status 0 when all hold; the last line is `OK` or the first failure.
"""

import argparse
import gzip
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = "tollgate-e2e"


def http(method, url, body=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def kv(key, value):
    if isinstance(value, list):
        v = AnyValue()
        v.array_value.values.extend(kv("", x).value for x in value)
    elif isinstance(value, bool):
        v = AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = AnyValue(int_value=value)
    elif isinstance(value, float):
        v = AnyValue(double_value=value)
    else:
        v = AnyValue(string_value=value)
    return KeyValue(key=key, value=v)


def export(project, spans, service="tollgate"):
    resource = [kv("service.name", service)]
    if project is not None:
        resource.append(kv("openinference.project.name", project))
    req = ExportTraceServiceRequest()
    rs = ResourceSpans()
    rs.resource.attributes.extend(resource)
    ss = ScopeSpans()
    ss.scope.name = "tollgate"
    ss.spans.extend(spans)
    rs.scope_spans.append(ss)
    req.resource_spans.append(rs)
    return req.SerializeToString()


def new_span(name, trace_id, parent=b"", attrs=(), events=(), status=Status.STATUS_CODE_OK, message=""):
    now = time.time_ns()
    s = Span(trace_id=trace_id, span_id=random.randbytes(8), parent_span_id=parent, name=name,
             kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=now - 5_000_000, end_time_unix_nano=now)
    s.attributes.extend(kv(k, v) for k, v in attrs)
    for ev_name, ev_attrs in events:
        e = s.events.add()
        e.name = ev_name
        e.time_unix_nano = now - 1_000_000
        e.attributes.extend(kv(k, v) for k, v in ev_attrs)
    s.status.code = status
    s.status.message = message
    return s


def spans(base, project, page=100, max_pages=50):
    """Every span of the project, following next_cursor (bounded)."""
    out, cursor = [], None
    for _ in range(max_pages):
        q = {"limit": str(page)}
        if cursor:
            q["cursor"] = cursor
        status, _, body = http("GET", f"{base}/v1/projects/{urllib.parse.quote(project)}/spans?"
                               + urllib.parse.urlencode(q))
        if status == 404:
            return []
        if status != 200:
            raise SystemExit(f"FAIL: GET spans of {project}: {status} {body[:300]!r}")
        j = json.loads(body)
        out.extend(j["data"])
        cursor = j.get("next_cursor")
        if not cursor:
            return out
    raise SystemExit(f"FAIL: more than {max_pages} pages of spans in {project}")


def wait_spans(base, project, want_ids, seconds=10):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        got = {s["context"]["span_id"]: s for s in spans(base, project)}
        if want_ids <= got.keys():
            return got, time.monotonic() - t0
        time.sleep(0.02)
    raise SystemExit(f"FAIL: spans {sorted(want_ids)} not in {project} after {seconds} s")


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    print(f"  ok  {what}")


def roundtrip(base):
    base = base.removesuffix("/").removesuffix("/v1/traces")
    traces = base + "/v1/traces"
    trace_id = random.randbytes(16)
    root = new_span(
        "tollgate.request", trace_id,
        attrs=[("openinference.span.kind", "GUARDRAIL"), ("tollgate.action", "deny"), ("tollgate.tokens", 1234), ("tollgate.score", 0.875),
               ("tollgate.blocked", True), ("http.route", "/v1/chat/completions"),
               ("tollgate.detectors", ["injection", "pii"])],
        events=[("tollgate.finding", [("detector", "injection"), ("offset", 17), ("score", 0.93),
                                      ("redacted", False)])])
    child = new_span("tollgate.scan", trace_id, parent=root.span_id, attrs=[("stage", "request")],
                     status=Status.STATUS_CODE_ERROR, message="detector timed out")
    body = export(PROJECT, [root, child])

    print(f"POST {traces} (application/x-protobuf, {len(body)} bytes, 2 spans)")
    t0 = time.monotonic()
    status, hdrs, resp = http("POST", traces, body, {"content-type": "application/x-protobuf"})
    check(status == 200, f"protobuf export -> {status} {resp[:200]!r}")
    check(hdrs.get("content-type") == "application/x-protobuf",
          f"response content-type {hdrs.get('content-type')!r}")
    ExportTraceServiceResponse().ParseFromString(resp)
    check(resp == b"", f"response body is an empty ExportTraceServiceResponse ({len(resp)} bytes)")
    got, _ = wait_spans(base, PROJECT, {root.span_id.hex(), child.span_id.hex()})
    print(f"  ok  readable through GET /v1/projects/{PROJECT}/spans {time.monotonic() - t0:.3f} s after the POST")

    r, c = got[root.span_id.hex()], got[child.span_id.hex()]
    print("the root span as GET /v1/projects/{name}/spans returns it:")
    print(json.dumps(r, indent=2))
    print("the child span:")
    print(json.dumps(c, indent=2))
    check(r["context"] == {"trace_id": trace_id.hex(), "span_id": root.span_id.hex()},
          "context.trace_id / context.span_id are lowercase hex of the OTLP ids")
    check(r["parent_id"] is None and c["parent_id"] == root.span_id.hex(),
          "parent_id: null on the root, the parent's span id (hex) on the child")
    check(r["name"] == "tollgate.request" and r["span_kind"] == "GUARDRAIL" and c["span_kind"] == "UNKNOWN",
          "span_kind is the attribute openinference.span.kind (UNKNOWN without; the OTLP kind is dropped)")
    check("openinference.span.kind" not in r["attributes"], "openinference.span.kind is not repeated in attributes")
    check(r["status_code"] == "OK" and c["status_code"] == "ERROR" and c["status_message"] == "detector timed out",
          "status_code OK / ERROR, status_message")
    a = r["attributes"]
    check(a.get("tollgate.action") == "deny", "string attribute")
    check(a.get("tollgate.tokens") == 1234 and type(a.get("tollgate.tokens")) is int, "int attribute is a JSON integer")
    check(a.get("tollgate.score") == 0.875, "double attribute is a JSON number")
    check(a.get("tollgate.blocked") is True, "bool attribute is a JSON boolean")
    check(a.get("http.route") == "/v1/chat/completions", "dotted keys stay flat (not nested objects)")
    check(a.get("tollgate.detectors") == ["injection", "pii"], "array attribute is a JSON array")
    check(len(r["events"]) == 1 and r["events"][0]["name"] == "tollgate.finding", "events: one, by name")
    check(r["events"][0]["attributes"] == {"detector": "injection", "offset": 17, "score": 0.93, "redacted": False},
          "event attributes come back with their types")
    check(all(k in r for k in ("start_time", "end_time")) and r["start_time"].endswith("+00:00"),
          f"start_time / end_time are ISO 8601 UTC strings ({r['start_time']})")

    print("pagination: limit=1")
    paged = spans(base, PROJECT, page=1)
    check(sorted(s["context"]["span_id"] for s in paged) == sorted(got),
          f"following next_cursor with limit=1 gives all {len(got)} spans")

    gz_span = new_span("tollgate.gzip", random.randbytes(16), attrs=[("encoding", "gzip")])
    status, hdrs, resp = http("POST", traces, gzip.compress(export(PROJECT, [gz_span])),
                              {"content-type": "application/x-protobuf", "content-encoding": "gzip"})
    check(status == 200 and resp == b"", f"gzip protobuf export -> {status} {resp[:200]!r}")
    wait_spans(base, PROJECT, {gz_span.span_id.hex()})
    print("  ok  the gzip span is readable")

    other = new_span("tollgate.header", random.randbytes(16))
    status, _, _ = http("POST", traces, export(PROJECT, [other]),
                        {"content-type": "application/x-protobuf", "x-project-name": "tollgate-other"})
    check(status == 200, "export with x-project-name: tollgate-other")
    wait_spans(base, "tollgate-other", {other.span_id.hex()})
    print("  ok  x-project-name overrides the resource attribute")
    anon = new_span("tollgate.anon", random.randbytes(16))
    http("POST", traces, export(None, [anon]), {"content-type": "application/x-protobuf"})
    wait_spans(base, "default", {anon.span_id.hex()})
    print("  ok  without either, the span goes to project \"default\"")

    otlp_json = json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "openinference.project.name", "value": {"stringValue": PROJECT}}]},
        "scopeSpans": [{"spans": [{"traceId": trace_id.hex(), "spanId": "00000000000000aa",
                                   "name": "json", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}).encode()
    status, hdrs, resp = http("POST", traces, otlp_json, {"content-type": "application/json"})
    check(status == 415, f"OTLP JSON body -> {status} {hdrs.get('content-type')} {resp.decode()!r}")
    status, _, resp = http("POST", traces, b"\xff\xff\xff", {"content-type": "application/x-protobuf"})
    check(status == 422, f"bytes that are no protobuf -> {status} {resp.decode()!r}")
    ids = [s["context"]["span_id"] for s in spans(base, PROJECT)]
    check(len(ids) == len(set(ids)) and "00000000000000aa" not in ids, "no span stored twice, none from the refused bodies")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(pid):
    """The local addresses of the TCP and UDP sockets `pid` listens on (from `ss`)."""
    out = subprocess.run(["ss", "-Hltunp"], capture_output=True, text=True, check=True).stdout
    return [line.split()[4] for line in out.splitlines() if f"pid={pid}," in line]


def start():
    work = tempfile.mkdtemp(prefix="phoenix-")
    port, grpc_port = free_port(), free_port()
    env = dict(os.environ, PHOENIX_HOST="127.0.0.1", PHOENIX_PORT=str(port), PHOENIX_GRPC_PORT=str(grpc_port),
               PHOENIX_WORKING_DIR=work, PHOENIX_SQL_DATABASE_URL=f"sqlite:///{work}/phoenix.db",
               PHOENIX_TELEMETRY_ENABLED="false", PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
               PHOENIX_LOG_MIGRATIONS="false")
    log = open(os.path.join(work, "phoenix.log"), "w")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "serve.py")], env=env, cwd=work,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None or time.monotonic() - t0 > 90:
            tail = open(log.name).read()[-3000:]
            stop(proc, work)
            raise SystemExit(f"FAIL: Phoenix not ready in 90 s (exit {proc.returncode}); log:\n{tail}")
        try:
            if http("GET", base + "/healthz", timeout=2)[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    print(f"Phoenix up at {base} in {time.monotonic() - t0:.1f} s (working dir {work})")
    addrs = listening(proc.pid)
    print(f"  it listens on: {', '.join(addrs)}")
    loopback = ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")
    check(sorted(addrs) == sorted({f"127.0.0.1:{port}", f"[::ffff:127.0.0.1]:{grpc_port}"})
          and all(a.startswith(loopback) for a in addrs),
          "only the HTTP port and the OTLP gRPC port, both on loopback")
    return proc, work, base


def stop(proc, work):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--url", help="a running Phoenix (its base URL or its /v1/traces URL)")
    g.add_argument("--start", action="store_true", help="start a throwaway Phoenix on loopback, then stop it")
    args = ap.parse_args()
    if args.url:
        roundtrip(args.url)
    else:
        proc, work, base = start()
        try:
            roundtrip(base)
        finally:
            stop(proc, work)
    print("OK")


if __name__ == "__main__":
    main()
