#!/usr/bin/env python3
"""Deterministic OpenAI- and Anthropic-compatible LLM upstream for Tollgate tests.

Standard library only. Usage:

    python3 mock_llm.py --port N [--host 127.0.0.1] [--record-file PATH]

Once listening it prints exactly one line ``READY <port>`` to stdout (port 0 picks
a free port, and the line carries the real one).

Endpoints (any path prefix before ``/v1/`` is accepted, e.g. ``/openai/v1/...``):

  POST /v1/chat/completions      OpenAI Chat Completions (JSON or SSE)
  POST /v1/completions           OpenAI legacy completions (JSON or SSE)
  POST /v1/responses             OpenAI Responses (JSON or SSE with event: lines)
  POST /v1/embeddings            OpenAI embeddings (float or base64 encoding)
  POST /v1/messages              Anthropic Messages (JSON or SSE with event: lines)
  POST /v1/messages/count_tokens Anthropic token count
  GET  /v1/models                models list (Anthropic shape if anthropic-version is sent)
  GET  /healthz                  200 "ok"
  GET  /__mock/requests          recorded requests as {"requests": [...]}
  POST /__mock/reset             clear the records and the id counter
  ANY  /__mock/status/NNN        answer status NNN (200-599) with an OpenAI-shaped
                               error body, not recorded as a request; the hits are
                               counted in GET /__mock/requests's "status_hits"
                               (a collector that fails, for the fault tests)

The reply text is the base64-decoded ``x-mock-reply`` header if present, else the
text of the last user message. Test-control request headers:

  x-mock-reply: BASE64         reply text (UTF-8 after decoding)
  x-mock-chunk-bytes: N        max bytes of reply per streamed delta (default 16);
                               a UTF-8 character is never split (a character longer
                               than N is sent alone)
  x-mock-status: NNN           reply with this status (>= 400) and an OpenAI-shaped
                               error body instead of a normal answer
  x-mock-delay-ms: N           wait N ms before sending the response head
  x-mock-chunk-delay-ms: N     wait N ms between SSE events
  x-mock-write-bytes: N        write a streamed body in pieces of at most N bytes,
                               each its own HTTP chunk (splits events mid-line)
  x-mock-tool-call: BASE64     base64 of JSON {"name": ..., "arguments": "..."}:
                               the reply ends with this tool call. Streamed (Chat,
                               Anthropic, Responses) its arguments are split like
                               the text; in JSON it is Chat's message.tool_calls,
                               an Anthropic tool_use block (arguments must then be
                               a JSON object) or a Responses function_call item
  x-mock-reply-from: system    reply with the system prompt the upstream received
                               (Chat system/developer messages, Anthropic system,
                               Responses instructions and system/developer items),
                               after the x-mock-reply text if both are sent
  x-mock-reply-repeat: N       the reply text N times over (1 to 10000)
  x-mock-content-encoding: gzip  compress the response body whatever the client
                               accepts (a misbehaving upstream)
  x-mock-reset-after-bytes: N  streamed (SSE) replies only: send the head and the
                               first N bytes of the body (as on the wire, chunk
                               framing included), then reset the connection (RST)

Every request (other than /__mock/* and /healthz) is recorded: method, path,
headers as [name, value] pairs in received order, the exact body bytes as base64,
their sha256 and length, and whether the body came chunked.
"""

import argparse
import base64
import collections
import gzip
import hashlib
import http.server
import json
import socket
import socketserver
import struct
import sys
import threading
import time

CREATED = 1700000000  # fixed, deterministic timestamp
DEFAULT_CHUNK_BYTES = 16
MAX_RECORDS = 10000
MAX_CHUNK_LINE = 65536

OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o4-mini", "text-embedding-3-small"]
ANTHROPIC_MODELS = ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-6"]

ERROR_TYPES = {
    400: ("invalid_request_error", "bad_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    408: ("timeout_error", "timeout"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
    529: ("server_error", "overloaded"),
}


class BadRequest(Exception):
    """A request problem that is answered with 400 and closes the connection."""

    def __init__(self, message, code="bad_request", close=False):
        super().__init__(message)
        self.message = message
        self.code = code
        self.close = close


class State:
    def __init__(self, record_file=None):
        self.lock = threading.Lock()
        self.records = collections.deque(maxlen=MAX_RECORDS)
        self.counter = 0
        self.status_hits = 0
        self.record_fh = open(record_file, "a", encoding="utf-8") if record_file else None

    def next_id(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def record(self, rec):
        with self.lock:
            self.records.append(rec)
            if self.record_fh is not None:
                self.record_fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                self.record_fh.flush()

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def reset(self):
        with self.lock:
            self.records.clear()
            self.counter = 0
            self.status_hits = 0

    def hit_status(self):
        with self.lock:
            self.status_hits += 1


# ---------------------------------------------------------------------------
# Helpers


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def openai_error(message, etype="invalid_request_error", code=None, param=None):
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


def words(text):
    return len(text.split())


def content_text(content, part_types=("text", "input_text", "output_text")):
    """Text of an OpenAI/Anthropic content value: a string or a list of parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and part.get("type", "text") in part_types:
                text = part.get("text")
                if isinstance(text, str):
                    out.append(text)
        return "".join(out)
    return ""


def last_user_text(messages):
    if not isinstance(messages, list):
        return ""
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return content_text(msg.get("content"))
    return ""


def system_text(route, req):
    """The system prompt of a request, as x-mock-reply-from: system echoes it."""
    parts = []
    if route == "messages":
        system = req.get("system")
        if system is not None:
            parts.append(content_text(system))
    elif route == "chat/completions":
        for msg in req.get("messages") or []:
            if isinstance(msg, dict) and msg.get("role") in ("system", "developer"):
                parts.append(content_text(msg.get("content")))
    elif route == "responses":
        if isinstance(req.get("instructions"), str):
            parts.append(req["instructions"])
        inp = req.get("input")
        if isinstance(inp, list):
            for item in inp:
                if isinstance(item, dict) and item.get("role") in ("system", "developer"):
                    parts.append(content_text(item.get("content")))
    return "\n".join(p for p in parts if p)


def all_messages_words(messages):
    total = 0
    if isinstance(messages, list):
        for msg in messages:
            if isinstance(msg, dict):
                total += words(content_text(msg.get("content")))
    return total


def split_utf8(text, max_bytes):
    """Split text into pieces of at most max_bytes UTF-8 bytes, never inside a character.

    A single character longer than max_bytes is emitted on its own.
    """
    max_bytes = max(1, max_bytes)
    pieces = []
    cur = []
    cur_len = 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if cur and cur_len + n > max_bytes:
            pieces.append("".join(cur))
            cur = []
            cur_len = 0
        cur.append(ch)
        cur_len += n
    if cur:
        pieces.append("".join(cur))
    return pieces


def fake_embedding(value, dims):
    if isinstance(value, str):
        seed = value.encode("utf-8")
    else:
        seed = json.dumps(value, separators=(",", ":")).encode("utf-8")
    out = []
    counter = 0
    while len(out) < dims:
        digest = hashlib.sha256(seed + b"\x00" + str(counter).encode()).digest()
        for i in range(0, len(digest), 2):
            if len(out) >= dims:
                break
            v = int.from_bytes(digest[i:i + 2], "big") / 65535.0 * 2.0 - 1.0
            out.append(round(v, 6))
        counter += 1
    return out


def sse(data, event=None):
    head = "event: %s\n" % event if event else ""
    return (head + "data: ").encode("utf-8") + dumps(data) + b"\n\n"


# ---------------------------------------------------------------------------
# Endpoint implementations. Each returns (status, headers, body) where body is
# bytes for a plain response or a list of SSE event bytes for a stream.


def chat_completions(req, reply, n, chunk_bytes, model):
    cid = "chatcmpl-mock-%d" % n
    prompt_tokens = all_messages_words(req.get("messages"))
    completion_tokens = words(reply)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    if not req.get("stream"):
        message = {"role": "assistant", "content": reply, "refusal": None, "annotations": []}
        tool = req.get("_mock_tool_call")
        if tool:
            message["tool_calls"] = [{"id": "call_mock_%d" % n, "type": "function",
                                      "function": {"name": tool["name"], "arguments": tool["arguments"]}}]
        return dumps({
            "id": cid,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool else "stop",
            }],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
        })
    opts = req.get("stream_options")
    include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))

    def chunk(delta, finish=None):
        obj = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            obj["usage"] = None
        return sse(obj)

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    for piece in split_utf8(reply, chunk_bytes):
        events.append(chunk({"content": piece}))
    tool = req.get("_mock_tool_call")
    if tool:
        events.append(chunk({"tool_calls": [{"index": 0, "id": "call_mock_%d" % n, "type": "function",
                                             "function": {"name": tool["name"], "arguments": ""}}]}))
        for piece in split_utf8(tool["arguments"], chunk_bytes):
            events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        events.append(chunk({}, "tool_calls"))
    else:
        events.append(chunk({}, "stop"))
    if include_usage:
        events.append(sse({
            "id": cid,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
            "choices": [],
            "usage": usage,
        }))
    events.append(b"data: [DONE]\n\n")
    return events


def legacy_completions(req, reply, n, chunk_bytes, model):
    cid = "cmpl-mock-%d" % n
    prompt = req.get("prompt")
    if isinstance(prompt, list):
        prompt_words = sum(words(p) if isinstance(p, str) else (len(p) if isinstance(p, list) else 1)
                           for p in prompt)
    elif isinstance(prompt, str):
        prompt_words = words(prompt)
    else:
        prompt_words = 0
    usage = {
        "prompt_tokens": prompt_words,
        "completion_tokens": words(reply),
        "total_tokens": prompt_words + words(reply),
    }
    if not req.get("stream"):
        return dumps({
            "id": cid,
            "object": "text_completion",
            "created": CREATED,
            "model": model,
            "choices": [{"text": reply, "index": 0, "logprobs": None, "finish_reason": "stop"}],
            "usage": usage,
        })
    opts = req.get("stream_options")
    include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))

    def chunk(text, finish=None):
        obj = {
            "id": cid,
            "object": "text_completion",
            "created": CREATED,
            "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            obj["usage"] = None
        return sse(obj)

    events = [chunk(piece) for piece in split_utf8(reply, chunk_bytes)]
    events.append(chunk("", "stop"))
    if include_usage:
        events.append(sse({
            "id": cid,
            "object": "text_completion",
            "created": CREATED,
            "model": model,
            "choices": [],
            "usage": usage,
        }))
    events.append(b"data: [DONE]\n\n")
    return events


def responses_input_text(inp):
    if isinstance(inp, str):
        return inp
    if isinstance(inp, list):
        for item in reversed(inp):
            if isinstance(item, dict) and item.get("role") == "user" and item.get("type", "message") == "message":
                return content_text(item.get("content"))
    return ""


def responses_input_words(inp):
    if isinstance(inp, str):
        return words(inp)
    total = 0
    if isinstance(inp, list):
        for item in inp:
            if isinstance(item, dict):
                total += words(content_text(item.get("content")))
    return total


def responses(req, reply, n, chunk_bytes, model):
    rid = "resp_mock_%d" % n
    mid = "msg_mock_%d" % n
    in_tok = responses_input_words(req.get("input"))
    if isinstance(req.get("instructions"), str):
        in_tok += words(req["instructions"])
    out_tok = words(reply)
    part = {"type": "output_text", "text": reply, "annotations": [], "logprobs": []}
    item_done = {"id": mid, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
    tool = req.get("_mock_tool_call")
    fid = "fc_mock_%d" % n
    call_done = None
    if tool:
        call_done = {"id": fid, "type": "function_call", "status": "completed", "arguments": tool["arguments"],
                     "call_id": "call_mock_%d" % n, "name": tool["name"]}
    output_done = [item_done, call_done] if call_done else [item_done]
    usage = {
        "input_tokens": in_tok,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": out_tok,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": in_tok + out_tok,
    }

    def response_obj(status, output, usage_val):
        return {
            "id": rid,
            "object": "response",
            "created_at": CREATED,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"),
            "model": model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": req.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": bool(req.get("store", True)),
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage_val,
            "user": None,
            "metadata": req.get("metadata") if isinstance(req.get("metadata"), dict) else {},
        }

    if not req.get("stream"):
        return dumps(response_obj("completed", output_done, usage))

    events = []
    seq = [0]

    def ev(etype, **fields):
        obj = {"type": etype, "sequence_number": seq[0]}
        obj.update(fields)
        seq[0] += 1
        events.append(sse(obj, event=etype))

    ev("response.created", response=response_obj("in_progress", [], None))
    ev("response.in_progress", response=response_obj("in_progress", [], None))
    ev("response.output_item.added", output_index=0,
       item={"id": mid, "type": "message", "status": "in_progress", "role": "assistant", "content": []})
    ev("response.content_part.added", item_id=mid, output_index=0, content_index=0,
       part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
    for piece in split_utf8(reply, chunk_bytes):
        ev("response.output_text.delta", item_id=mid, output_index=0, content_index=0, delta=piece, logprobs=[])
    ev("response.output_text.done", item_id=mid, output_index=0, content_index=0, text=reply, logprobs=[])
    ev("response.content_part.done", item_id=mid, output_index=0, content_index=0, part=part)
    ev("response.output_item.done", output_index=0, item=item_done)
    if call_done:
        ev("response.output_item.added", output_index=1,
           item={"id": fid, "type": "function_call", "status": "in_progress", "arguments": "",
                 "call_id": call_done["call_id"], "name": tool["name"]})
        for piece in split_utf8(tool["arguments"], chunk_bytes):
            ev("response.function_call_arguments.delta", item_id=fid, output_index=1, delta=piece)
        ev("response.function_call_arguments.done", item_id=fid, output_index=1, arguments=tool["arguments"])
        ev("response.output_item.done", output_index=1, item=call_done)
    ev("response.completed", response=response_obj("completed", output_done, usage))
    return events


def embeddings(req, model):
    inp = req.get("input")
    if isinstance(inp, str):
        inputs = [inp]
    elif isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
        inputs = [inp]  # one token array
    elif isinstance(inp, list):
        inputs = inp
    else:
        raise BadRequest("'input' is a required property", code="invalid_input")
    dims = req.get("dimensions")
    if not isinstance(dims, int) or dims <= 0 or dims > 4096:
        dims = 8
    b64 = req.get("encoding_format") == "base64"
    data = []
    total = 0
    for i, value in enumerate(inputs):
        vec = fake_embedding(value, dims)
        total += words(value) if isinstance(value, str) else (len(value) if isinstance(value, list) else 1)
        emb = base64.b64encode(struct.pack("<%df" % dims, *vec)).decode("ascii") if b64 else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return dumps({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": total, "total_tokens": total},
    })


def anthropic_input_words(req):
    total = all_messages_words(req.get("messages"))
    system = req.get("system")
    if system is not None:
        total += words(content_text(system))
    return total


def anthropic_messages(req, reply, n, chunk_bytes, model):
    mid = "msg_mock_%d" % n
    in_tok = anthropic_input_words(req)
    out_tok = words(reply)
    tool = req.get("_mock_tool_call")
    if not req.get("stream"):
        content = [{"type": "text", "text": reply}]
        if tool:
            try:
                tool_input = json.loads(tool["arguments"])
            except ValueError:
                tool_input = None
            if not isinstance(tool_input, dict):
                raise BadRequest("x-mock-tool-call: a JSON Anthropic tool_use needs arguments that are a JSON object",
                                 code="invalid_mock_header")
            content.append({"type": "tool_use", "id": "toolu_mock_%d" % n, "name": tool["name"], "input": tool_input})
        return dumps({
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "tool_use" if tool else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": in_tok,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": out_tok,
                "service_tier": "standard",
            },
        })
    events = [
        sse({"type": "message_start", "message": {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": in_tok,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
                "service_tier": "standard",
            },
        }}, event="message_start"),
        sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            event="content_block_start"),
        sse({"type": "ping"}, event="ping"),
    ]
    for piece in split_utf8(reply, chunk_bytes):
        events.append(sse({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "text_delta", "text": piece}}, event="content_block_delta"))
    events.append(sse({"type": "content_block_stop", "index": 0}, event="content_block_stop"))
    if tool:
        events.append(sse({"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_mock_%d" % n, "name": tool["name"], "input": {}}},
            event="content_block_start"))
        for piece in split_utf8(tool["arguments"], chunk_bytes):
            events.append(sse({"type": "content_block_delta", "index": 1,
                               "delta": {"type": "input_json_delta", "partial_json": piece}},
                              event="content_block_delta"))
        events.append(sse({"type": "content_block_stop", "index": 1}, event="content_block_stop"))
    events.append(sse({"type": "message_delta",
                       "delta": {"stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": out_tok}}, event="message_delta"))
    events.append(sse({"type": "message_stop"}, event="message_stop"))
    return events


def models_list(anthropic):
    if anthropic:
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                for m in ANTHROPIC_MODELS]
        return dumps({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "mock"} for m in OPENAI_MODELS]
    return dumps({"object": "list", "data": data})


# ---------------------------------------------------------------------------
# HTTP handling


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-llm/1.0"
    disable_nagle_algorithm = True

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass

    def log_error(self, format, *args):  # noqa: A002
        pass

    # All methods share one dispatcher.
    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_OPTIONS(self):
        self.dispatch()

    # -- body reading -----------------------------------------------------

    def read_body(self):
        """Return (body bytes, chunked flag, trailers)."""
        te = self.headers.get("Transfer-Encoding")
        if te and "chunked" in te.lower():
            return self.read_chunked()
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b"", False, []
        try:
            length = int(cl.strip())
            if length < 0:
                raise ValueError
        except ValueError:
            raise BadRequest("invalid Content-Length", close=True)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise BadRequest("body shorter than Content-Length", close=True)
        return body, False, []

    def read_chunked(self):
        parts = []
        while True:
            line = self.rfile.readline(MAX_CHUNK_LINE + 1)
            if not line or len(line) > MAX_CHUNK_LINE or not line.endswith(b"\n"):
                raise BadRequest("malformed chunk size line", close=True)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest("malformed chunk size %r" % size_text, close=True)
            if size < 0:
                raise BadRequest("negative chunk size", close=True)
            if size == 0:
                break
            data = self.rfile.read(size)
            if len(data) != size:
                raise BadRequest("truncated chunk", close=True)
            parts.append(data)
            crlf = self.rfile.readline(MAX_CHUNK_LINE + 1)
            if crlf not in (b"\r\n", b"\n"):
                raise BadRequest("missing CRLF after chunk data", close=True)
        trailers = []
        while True:
            line = self.rfile.readline(MAX_CHUNK_LINE + 1)
            if not line:
                raise BadRequest("connection closed inside chunked trailers", close=True)
            if line in (b"\r\n", b"\n"):
                break
            text = line.decode("latin-1").rstrip("\r\n")
            name, _, value = text.partition(":")
            trailers.append([name.strip(), value.strip()])
        return b"".join(parts), True, trailers

    # -- response writing -------------------------------------------------

    def send_plain(self, status, body, content_type="application/json", extra_headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, extra_headers=()):
        self.send_plain(status, dumps(obj), extra_headers=extra_headers)

    def send_sse(self, events, chunk_delay, extra_headers=()):
        chunked = self.request_version != "HTTP/1.0"
        write_bytes = self.header_int("x-mock-write-bytes", 0)
        if self.forced_gzip():
            events = [gzip.compress(b"".join(events), mtime=0)]
            extra_headers = list(extra_headers) + [("Content-Encoding", "gzip")]
        elif write_bytes > 0:
            data = b"".join(events)
            events = [data[i:i + write_bytes] for i in range(0, len(data), write_bytes)]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        for name, value in extra_headers:
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        reset_after = self.header_int("x-mock-reset-after-bytes", -1)
        if reset_after >= 0:
            if chunked:
                events = [b"%x\r\n%s\r\n" % (len(ev), ev) for ev in events]
            self.reset_after(b"".join(events)[:reset_after])
            return
        for i, ev in enumerate(events):
            if chunk_delay and i:
                time.sleep(chunk_delay)
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
            else:
                self.wfile.write(ev)
            if write_bytes > 0:
                self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def reset_after(self, data):
        """Write ``data`` (after the head already buffered), then reset the connection."""
        self.wfile.write(data)
        self.wfile.flush()
        time.sleep(0.05)
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        # The file objects hold the socket open; close them first so the RST goes now.
        self.wfile.close()
        self.rfile.close()
        sock.close()

    # -- dispatch ---------------------------------------------------------

    def dispatch(self):
        state = self.server.state
        path = self.path.split("?", 1)[0]
        try:
            body, chunked, trailers = self.read_body()
        except BadRequest as e:
            self.close_connection = True
            self.send_json(400, openai_error(e.message, code=e.code))
            return

        if path == "/healthz" or path.endswith("/healthz"):
            self.send_plain(200, b"ok", content_type="text/plain; charset=utf-8")
            return
        if path.startswith("/__mock/"):
            self.mock_control(path, state)
            return

        n = state.next_id()
        headers = [[k, v] for k, v in self.headers.items()]
        rec = {
            "id": n,
            "method": self.command,
            "path": self.path,
            "http_version": self.request_version,
            "headers": headers,
            "body_base64": base64.b64encode(body).decode("ascii"),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_length": len(body),
            "chunked": chunked,
            "trailers": trailers,
        }
        try:
            status, payload, chunk_delay = self.handle_api(path, body, n)
        except BadRequest as e:
            status, payload, chunk_delay = 400, dumps(openai_error(e.message, code=e.code)), 0
        rec["response_status"] = status
        state.record(rec)

        extra = [("x-request-id", "req_mock_%d" % n), ("request-id", "req_mock_%d" % n)]
        if isinstance(payload, list):
            self.send_sse(payload, chunk_delay, extra)
        else:
            if self.forced_gzip():
                payload = gzip.compress(payload, mtime=0)
                extra.append(("Content-Encoding", "gzip"))
            self.send_plain(status, payload, extra_headers=extra)

    def forced_gzip(self):
        """x-mock-content-encoding: gzip (compress whatever the client accepts)."""
        return self.headers.get("x-mock-content-encoding", "").strip().lower() == "gzip"

    def header_int(self, name, default):
        value = self.headers.get(name)
        if value is None:
            return default
        try:
            return int(value.strip())
        except ValueError:
            raise BadRequest("header %s must be an integer" % name, code="invalid_mock_header")

    def handle_api(self, path, body, n):
        """Return (status, payload, chunk_delay_seconds); payload is bytes or a list of SSE events."""
        delay_ms = self.header_int("x-mock-delay-ms", 0)
        chunk_delay = max(0, self.header_int("x-mock-chunk-delay-ms", 0)) / 1000.0
        chunk_bytes = self.header_int("x-mock-chunk-bytes", DEFAULT_CHUNK_BYTES)
        if chunk_bytes <= 0:
            chunk_bytes = DEFAULT_CHUNK_BYTES
        if delay_ms > 0:
            time.sleep(delay_ms / 1000.0)

        forced = self.header_int("x-mock-status", 0)
        if forced >= 400 and forced <= 599:
            etype, code = ERROR_TYPES.get(forced, ("server_error" if forced >= 500 else "invalid_request_error",
                                                   "mock_status_%d" % forced))
            return forced, dumps(openai_error("mock error forced by x-mock-status: %d" % forced, etype, code)), 0

        idx = path.find("/v1/")
        route = path[idx + 4:].rstrip("/") if idx >= 0 else None
        method = self.command

        if method == "GET" and route == "models":
            return 200, models_list("anthropic-version" in self.headers), 0

        post_routes = ("chat/completions", "completions", "responses", "embeddings", "messages",
                       "messages/count_tokens")
        if method != "POST" or route not in post_routes:
            return 404, dumps(openai_error("Invalid URL (%s %s)" % (method, path), code="unknown_url")), 0

        try:
            req = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return 400, dumps(openai_error(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
                "sent was not valid JSON.)", code="invalid_json")), 0
        if not isinstance(req, dict):
            return 400, dumps(openai_error("The request body must be a JSON object.", code="invalid_json")), 0

        model = req.get("model") if isinstance(req.get("model"), str) else "mock-model"
        tool_header = self.headers.get("x-mock-tool-call")
        if tool_header is not None:
            try:
                raw = tool_header.strip()
                tool = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8"))
                req["_mock_tool_call"] = {"name": str(tool["name"]), "arguments": str(tool["arguments"])}
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                raise BadRequest("x-mock-tool-call must be base64 of JSON {name, arguments}",
                                 code="invalid_mock_header")

        forced_reply = self.headers.get("x-mock-reply")
        reply = None
        if forced_reply is not None:
            try:
                raw = forced_reply.strip()
                raw += "=" * (-len(raw) % 4)
                if "-" in raw or "_" in raw:
                    decoded = base64.urlsafe_b64decode(raw)
                else:
                    decoded = base64.b64decode(raw, validate=True)
                reply = decoded.decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("x-mock-reply must be base64 of UTF-8 text", code="invalid_mock_header")

        if self.headers.get("x-mock-reply-from") is not None:
            source = self.headers.get("x-mock-reply-from").strip().lower()
            if source != "system":
                raise BadRequest("x-mock-reply-from must be 'system'", code="invalid_mock_header")
            reply = (reply or "") + system_text(route, req)
        repeat = self.header_int("x-mock-reply-repeat", 1)
        if repeat != 1:
            if not 1 <= repeat <= 10000:
                raise BadRequest("x-mock-reply-repeat must be between 1 and 10000", code="invalid_mock_header")
            if reply is None:
                reply = {"chat/completions": lambda: last_user_text(req.get("messages")),
                         "messages": lambda: last_user_text(req.get("messages")),
                         "responses": lambda: responses_input_text(req.get("input"))}.get(route, lambda: "")()
            reply = reply * repeat

        if route == "chat/completions":
            if reply is None:
                reply = last_user_text(req.get("messages"))
            payload = chat_completions(req, reply, n, chunk_bytes, model)
        elif route == "completions":
            if reply is None:
                prompt = req.get("prompt")
                if isinstance(prompt, list):
                    strs = [p for p in prompt if isinstance(p, str)]
                    prompt = strs[-1] if strs else ""
                reply = prompt if isinstance(prompt, str) else ""
            payload = legacy_completions(req, reply, n, chunk_bytes, model)
        elif route == "responses":
            if reply is None:
                reply = responses_input_text(req.get("input"))
            payload = responses(req, reply, n, chunk_bytes, model)
        elif route == "embeddings":
            payload = embeddings(req, model)
        elif route == "messages":
            if reply is None:
                reply = last_user_text(req.get("messages"))
            payload = anthropic_messages(req, reply, n, chunk_bytes, model)
        else:  # messages/count_tokens
            payload = dumps({"input_tokens": anthropic_input_words(req)})
        return 200, payload, chunk_delay

    def mock_control(self, path, state):
        if path == "/__mock/requests" and self.command == "GET":
            self.send_json(200, {"requests": state.snapshot(), "status_hits": state.status_hits})
        elif path.startswith("/__mock/status/") and path[len("/__mock/status/"):].isdigit() \
                and 200 <= int(path[len("/__mock/status/"):]) <= 599:
            status = int(path[len("/__mock/status/"):])
            state.hit_status()
            self.send_json(status, openai_error("mock status %d from /__mock/status" % status,
                                                "server_error", "mock_status_%d" % status))
        elif path == "/__mock/reset" and self.command == "POST":
            state.reset()
            self.send_json(200, {"ok": True})
        else:
            self.send_json(404, openai_error("unknown mock control endpoint %s %s" % (self.command, path),
                                             code="unknown_url"))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr, state):
        self.state = state
        super().__init__(addr, Handler)

    def handle_error(self, request, client_address):
        # Client resets and broken pipes are normal under load; stay quiet.
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(description="Deterministic OpenAI/Anthropic-compatible mock LLM upstream")
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0 = pick a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--record-file", default=None, help="also append each request as a JSON line here")
    args = parser.parse_args(argv)

    state = State(args.record_file)
    server = Server((args.host, args.port), state)
    port = server.server_address[1]
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
