"""Self-test for the mock LLM upstream and the SDK client check scripts.

Run from the repository root:

    python3 -m unittest tests/upstream/test_mock_llm.py

The SDK check tests need the ``openai`` / ``anthropic`` packages. They use the
interpreter named by $TOLLGATE_SDK_PYTHON if set, else the interpreter running
the tests, and are skipped if neither can import the SDK.
"""

import base64
import hashlib
import http.client
import http.server
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "mock_llm.py")
CLIENTS = os.path.join(os.path.dirname(HERE), "clients")

sys.path.insert(0, HERE)
import mock_llm  # noqa: E402


def b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def parse_sse(raw):
    """Parse an SSE body into a list of (event name or None, data string)."""
    text = raw.decode("utf-8")
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
            else:
                raise AssertionError("unexpected SSE line %r" % line)
        events.append((name, "\n".join(data)))
    return events


def start_mock(*extra):
    proc = subprocess.Popen(
        [sys.executable, MOCK, "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError("mock did not start: %r %s" % (line, proc.stderr.read()))
    return proc, int(line.split()[1])


def sdk_python(module):
    candidates = [os.environ.get("TOLLGATE_SDK_PYTHON"), sys.executable]
    for py in candidates:
        if not py:
            continue
        r = subprocess.run([py, "-c", "import %s" % module], capture_output=True)
        if r.returncode == 0:
            return py
    return None


class MockTestBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.record_file = os.path.join(cls.tmp.name, "records.jsonl")
        cls.proc, cls.port = start_mock("--record-file", cls.record_file)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(5)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait()
        cls.proc.stdout.close()
        cls.proc.stderr.close()
        cls.tmp.cleanup()

    def setUp(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def tearDown(self):
        self.conn.close()

    def request(self, method, path, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        self.conn.request(method, path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp, data

    def post_json(self, path, body, headers=None):
        resp, data = self.request("POST", path, body, headers)
        self.assertEqual(resp.getheader("Content-Type"), "application/json")
        self.assertEqual(int(resp.getheader("Content-Length")), len(data))
        return resp.status, json.loads(data)

    def post_sse(self, path, body, headers=None):
        resp, data = self.request("POST", path, body, headers)
        self.assertEqual(resp.status, 200, data)
        self.assertTrue(resp.getheader("Content-Type").startswith("text/event-stream"))
        self.assertEqual(resp.getheader("Transfer-Encoding"), "chunked")
        return parse_sse(data)

    def records(self):
        resp, data = self.request("GET", "/__mock/requests")
        self.assertEqual(resp.status, 200)
        return json.loads(data)["requests"]

    def reset(self):
        resp, _ = self.request("POST", "/__mock/reset", b"")
        self.assertEqual(resp.status, 200)


class TestEndpoints(MockTestBase):
    def test_healthz(self):
        resp, data = self.request("GET", "/healthz")
        self.assertEqual((resp.status, data), (200, b"ok"))

    def test_chat_completion(self):
        status, obj = self.post_json("/v1/chat/completions", {
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": [{"type": "text", "text": "hello "},
                                             {"type": "image_url", "image_url": {"url": "x"}},
                                             {"type": "text", "text": "there world"}]},
            ],
        })
        self.assertEqual(status, 200)
        self.assertTrue(obj["id"].startswith("chatcmpl-mock-"))
        self.assertEqual(obj["object"], "chat.completion")
        self.assertEqual(obj["created"], mock_llm.CREATED)
        self.assertEqual(obj["model"], "gpt-test")
        choice = obj["choices"][0]
        self.assertEqual(choice["message"]["role"], "assistant")
        self.assertEqual(choice["message"]["content"], "hello there world")
        self.assertEqual(choice["finish_reason"], "stop")
        self.assertEqual(obj["usage"]["prompt_tokens"], 2 + 2 + 2 + 3)
        self.assertEqual(obj["usage"]["completion_tokens"], 3)
        self.assertEqual(obj["usage"]["total_tokens"], 12)

    def test_path_prefix(self):
        status, obj = self.post_json("/some/prefix/v1/chat/completions",
                                     {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(status, 200)
        self.assertEqual(obj["choices"][0]["message"]["content"], "hi")

    def check_chat_stream(self, reply, chunk_bytes, include_usage):
        headers = {"x-mock-reply": b64(reply)}
        if chunk_bytes is not None:
            headers["x-mock-chunk-bytes"] = str(chunk_bytes)
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "ignored"}]}
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        events = self.post_sse("/v1/chat/completions", body, headers)
        self.assertEqual(events[-1], (None, "[DONE]"))
        chunks = [json.loads(d) for _, d in events[:-1]]
        for c in chunks:
            self.assertEqual(c["object"], "chat.completion.chunk")
            self.assertEqual(c["id"], chunks[0]["id"])
            self.assertEqual(c["created"], mock_llm.CREATED)
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        if include_usage:
            usage_chunk = chunks.pop()
            self.assertEqual(usage_chunk["choices"], [])
            self.assertEqual(usage_chunk["usage"]["completion_tokens"], len(reply.split()))
            self.assertTrue(all(c["usage"] is None for c in chunks))
        else:
            self.assertTrue(all("usage" not in c for c in chunks))
        last = chunks.pop()
        self.assertEqual(last["choices"][0]["finish_reason"], "stop")
        self.assertEqual(last["choices"][0]["delta"], {})
        deltas = [c["choices"][0]["delta"].get("content", "") for c in chunks[1:]]
        self.assertEqual("".join(deltas), reply)
        limit = chunk_bytes or mock_llm.DEFAULT_CHUNK_BYTES
        for d in deltas:
            n = len(d.encode("utf-8"))
            self.assertTrue(n <= limit or len(d) == 1, (d, n, limit))
            self.assertTrue(d)
        return deltas

    def test_chat_stream_default_chunking(self):
        reply = "The quick brown fox jumps over the lazy dog, twice over."
        deltas = self.check_chat_stream(reply, None, include_usage=False)
        self.assertEqual(len(deltas), -(-len(reply) // 16))
        self.assertTrue(all(len(d) == 16 for d in deltas[:-1]))

    def test_chat_stream_usage(self):
        self.check_chat_stream("usage chunk please", 5, include_usage=True)

    def test_chat_stream_multibyte(self):
        reply = "héllo 日本語 ünïcödé 😀🎉 ok"
        deltas = self.check_chat_stream(reply, 4, include_usage=False)
        self.assertIn("😀", deltas)  # a 4-byte character fills a whole delta
        # chunk size smaller than a character: each such character is sent alone
        deltas = self.check_chat_stream("日本😀", 2, include_usage=False)
        self.assertEqual(deltas, ["日", "本", "😀"])
        deltas = self.check_chat_stream("aé日😀", 1, include_usage=False)
        self.assertEqual(deltas, ["a", "é", "日", "😀"])

    def test_legacy_completions(self):
        status, obj = self.post_json("/v1/completions", {"model": "davinci", "prompt": "say this"})
        self.assertEqual(status, 200)
        self.assertEqual(obj["object"], "text_completion")
        self.assertEqual(obj["choices"][0]["text"], "say this")
        self.assertEqual(obj["choices"][0]["finish_reason"], "stop")
        self.assertEqual(obj["usage"]["total_tokens"], 4)
        events = self.post_sse("/v1/completions",
                               {"model": "davinci", "prompt": ["a", "streamed legacy prompt text"], "stream": True,
                                "stream_options": {"include_usage": True}},
                               {"x-mock-chunk-bytes": "6"})
        self.assertEqual(events[-1], (None, "[DONE]"))
        chunks = [json.loads(d) for _, d in events[:-1]]
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-2]["choices"][0]["finish_reason"], "stop")
        text = "".join(c["choices"][0]["text"] for c in chunks[:-2])
        self.assertEqual(text, "streamed legacy prompt text")
        self.assertTrue(all(len(c["choices"][0]["text"]) <= 6 for c in chunks[:-2]))

    def test_responses(self):
        status, obj = self.post_json("/v1/responses", {"model": "gpt-r", "input": "plain input"})
        self.assertEqual(status, 200)
        self.assertEqual(obj["object"], "response")
        self.assertEqual(obj["status"], "completed")
        self.assertEqual(obj["model"], "gpt-r")
        out = obj["output"][0]
        self.assertEqual((out["type"], out["role"]), ("message", "assistant"))
        self.assertEqual(out["content"][0], {"type": "output_text", "text": "plain input", "annotations": [],
                                             "logprobs": []})
        self.assertEqual(obj["usage"]["input_tokens"], 2)
        self.assertEqual(obj["usage"]["output_tokens"], 2)
        status, obj = self.post_json("/v1/responses", {"model": "gpt-r", "input": [
            {"role": "user", "content": "older"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "x"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "newest"}]},
        ]})
        self.assertEqual(obj["output"][0]["content"][0]["text"], "newest")

    def test_responses_stream(self):
        reply = "streamed responses reply ✓ done"
        events = self.post_sse("/v1/responses", {"model": "gpt-r", "input": "x", "stream": True},
                               {"x-mock-reply": b64(reply), "x-mock-chunk-bytes": "7"})
        names = [n for n, _ in events]
        datas = [json.loads(d) for _, d in events]
        for name, data in zip(names, datas):
            self.assertEqual(name, data["type"])
        self.assertEqual([d["sequence_number"] for d in datas], list(range(len(datas))))
        collapsed = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
        self.assertEqual(collapsed, [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.content_part.added", "response.output_text.delta", "response.output_text.done",
            "response.content_part.done", "response.output_item.done", "response.completed",
        ])
        deltas = [d["delta"] for d in datas if d["type"] == "response.output_text.delta"]
        self.assertEqual("".join(deltas), reply)
        self.assertTrue(all(len(d.encode()) <= 7 for d in deltas))
        done = [d for d in datas if d["type"] == "response.output_text.done"][0]
        self.assertEqual(done["text"], reply)
        completed = datas[-1]["response"]
        self.assertEqual(completed["status"], "completed")
        self.assertEqual(completed["output"][0]["content"][0]["text"], reply)
        self.assertEqual(datas[0]["response"]["status"], "in_progress")

    def test_embeddings(self):
        status, obj = self.post_json("/v1/embeddings", {"model": "emb", "input": ["one", "two"]})
        self.assertEqual(status, 200)
        self.assertEqual(obj["object"], "list")
        self.assertEqual([d["index"] for d in obj["data"]], [0, 1])
        v1 = obj["data"][0]["embedding"]
        self.assertEqual(len(v1), 8)
        self.assertTrue(all(isinstance(x, float) and -1.0 <= x <= 1.0 for x in v1))
        self.assertNotEqual(v1, obj["data"][1]["embedding"])
        _, again = self.post_json("/v1/embeddings", {"model": "emb", "input": "one"})
        self.assertEqual(again["data"][0]["embedding"], v1)  # deterministic
        _, b = self.post_json("/v1/embeddings", {"model": "emb", "input": "one", "encoding_format": "base64"})
        floats = struct.unpack("<8f", base64.b64decode(b["data"][0]["embedding"]))
        for x, y in zip(floats, v1):
            self.assertAlmostEqual(x, y, places=5)
        _, d = self.post_json("/v1/embeddings", {"model": "emb", "input": "one", "dimensions": 20})
        self.assertEqual(len(d["data"][0]["embedding"]), 20)

    def test_anthropic_messages(self):
        status, obj = self.post_json("/v1/messages", {
            "model": "claude-test", "max_tokens": 10, "system": "sys prompt",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "block one "},
                                                      {"type": "text", "text": "block two"}]}],
        }, {"anthropic-version": "2023-06-01"})
        self.assertEqual(status, 200)
        self.assertTrue(obj["id"].startswith("msg_mock_"))
        self.assertEqual(obj["type"], "message")
        self.assertEqual(obj["role"], "assistant")
        self.assertEqual(obj["model"], "claude-test")
        self.assertEqual(obj["content"], [{"type": "text", "text": "block one block two"}])
        self.assertEqual(obj["stop_reason"], "end_turn")
        self.assertEqual(obj["usage"]["input_tokens"], 6)
        self.assertEqual(obj["usage"]["output_tokens"], 4)

    def test_anthropic_stream(self):
        reply = "Anthropic streaming — with ünïcode 🎉"
        events = self.post_sse("/v1/messages", {"model": "c", "max_tokens": 10, "stream": True,
                                                "messages": [{"role": "user", "content": "x"}]},
                               {"x-mock-reply": b64(reply), "x-mock-chunk-bytes": "3"})
        names = [n for n, _ in events]
        datas = [json.loads(d) for _, d in events]
        for name, data in zip(names, datas):
            self.assertEqual(name, data["type"])
        collapsed = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
        self.assertEqual(collapsed, ["message_start", "content_block_start", "ping", "content_block_delta",
                                     "content_block_stop", "message_delta", "message_stop"])
        deltas = [d["delta"]["text"] for d in datas if d["type"] == "content_block_delta"]
        self.assertEqual("".join(deltas), reply)
        self.assertTrue(all(len(d.encode()) <= 3 or len(d) == 1 for d in deltas))
        self.assertEqual(datas[0]["message"]["content"], [])
        md = [d for d in datas if d["type"] == "message_delta"][0]
        self.assertEqual(md["delta"]["stop_reason"], "end_turn")
        self.assertEqual(md["usage"]["output_tokens"], len(reply.split()))

    def test_tool_call_streams(self):
        tool = {"name": "send_mail", "arguments": json.dumps({"to": "ops", "body": "hi"})}
        hdrs = {"x-mock-reply": b64("ok"), "x-mock-chunk-bytes": "4",
                "x-mock-tool-call": b64(json.dumps(tool))}
        events = self.post_sse("/v1/chat/completions", {"model": "m", "stream": True,
                                                       "messages": [{"role": "user", "content": "x"}]}, hdrs)
        datas = [json.loads(d) for _, d in events if d != "[DONE]"]
        calls = [c for d in datas for c in d["choices"][0]["delta"].get("tool_calls", [])]
        self.assertEqual(calls[0]["function"]["name"], "send_mail")
        self.assertEqual("".join(c["function"]["arguments"] for c in calls), tool["arguments"])
        self.assertEqual(datas[-1]["choices"][0]["finish_reason"], "tool_calls")
        events = self.post_sse("/v1/messages", {"model": "c", "max_tokens": 10, "stream": True,
                                                "messages": [{"role": "user", "content": "x"}]}, hdrs)
        datas = [json.loads(d) for _, d in events]
        start = [d for d in datas if d["type"] == "content_block_start" and d["index"] == 1][0]
        self.assertEqual(start["content_block"]["name"], "send_mail")
        parts = [d["delta"]["partial_json"] for d in datas
                 if d["type"] == "content_block_delta" and d["index"] == 1]
        self.assertEqual("".join(parts), tool["arguments"])

    def test_tool_call_json_replies(self):
        tool = {"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})}
        hdrs = {"x-mock-reply": b64("checking"), "x-mock-tool-call": b64(json.dumps(tool))}
        msgs = [{"role": "user", "content": "weather?"}]
        status, obj = self.post_json("/v1/chat/completions", {"model": "m", "messages": msgs}, hdrs)
        self.assertEqual(status, 200)
        choice = obj["choices"][0]
        self.assertEqual(choice["finish_reason"], "tool_calls")
        self.assertEqual(choice["message"]["content"], "checking")
        call = choice["message"]["tool_calls"][0]
        self.assertEqual(call["type"], "function")
        self.assertTrue(call["id"].startswith("call_mock_"))
        self.assertEqual(call["function"], tool)
        status, obj = self.post_json("/v1/messages", {"model": "c", "max_tokens": 10, "messages": msgs}, hdrs)
        self.assertEqual(status, 200)
        self.assertEqual(obj["stop_reason"], "tool_use")
        self.assertEqual(obj["content"][0], {"type": "text", "text": "checking"})
        use = obj["content"][1]
        self.assertEqual((use["type"], use["name"], use["input"]), ("tool_use", "get_weather", {"city": "Oslo"}))
        status, obj = self.post_json("/v1/responses", {"model": "m", "input": "weather?"}, hdrs)
        self.assertEqual(status, 200)
        self.assertEqual([o["type"] for o in obj["output"]], ["message", "function_call"])
        fc = obj["output"][1]
        self.assertEqual((fc["name"], fc["arguments"], fc["status"]), ("get_weather", tool["arguments"], "completed"))
        self.assertTrue(fc["call_id"].startswith("call_mock_"))
        # Without the header the replies are as before.
        status, obj = self.post_json("/v1/chat/completions", {"model": "m", "messages": msgs})
        self.assertNotIn("tool_calls", obj["choices"][0]["message"])
        self.assertEqual(obj["choices"][0]["finish_reason"], "stop")
        # An Anthropic tool_use input must be an object.
        bad = {"x-mock-tool-call": b64(json.dumps({"name": "t", "arguments": "not json"}))}
        status, obj = self.post_json("/v1/messages", {"model": "c", "max_tokens": 10, "messages": msgs}, bad)
        self.assertEqual(status, 400)
        self.assertEqual(obj["error"]["code"], "invalid_mock_header")

    def test_tool_call_responses_stream(self):
        tool = {"name": "search_docs", "arguments": json.dumps({"q": "tollgate release notes"})}
        hdrs = {"x-mock-reply": b64("ok"), "x-mock-chunk-bytes": "5", "x-mock-tool-call": b64(json.dumps(tool))}
        events = self.post_sse("/v1/responses", {"model": "m", "stream": True, "input": "x"}, hdrs)
        names = [n for n, _ in events]
        datas = [json.loads(d) for _, d in events]
        self.assertEqual([d["type"] for d in datas], names)
        self.assertEqual([d["sequence_number"] for d in datas], list(range(len(datas))))
        added = [d for d in datas if d["type"] == "response.output_item.added" and d["output_index"] == 1][0]
        self.assertEqual((added["item"]["type"], added["item"]["name"]), ("function_call", "search_docs"))
        deltas = [d["delta"] for d in datas if d["type"] == "response.function_call_arguments.delta"]
        self.assertGreater(len(deltas), 1)
        self.assertEqual("".join(deltas), tool["arguments"])
        done = [d for d in datas if d["type"] == "response.function_call_arguments.done"][0]
        self.assertEqual(done["arguments"], tool["arguments"])
        self.assertEqual(names[-1], "response.completed")
        out = datas[-1]["response"]["output"]
        self.assertEqual([o["type"] for o in out], ["message", "function_call"])
        self.assertLess(names.index("response.output_item.done"), names.index("response.function_call_arguments.delta"))

    def test_reply_from_system(self):
        hdrs = {"x-mock-reply-from": "system"}
        body = {"model": "m", "messages": [{"role": "system", "content": "You are Ada."},
                                           {"role": "developer", "content": [{"type": "text", "text": "Be terse."}]},
                                           {"role": "user", "content": "who are you?"}]}
        _, obj = self.post_json("/v1/chat/completions", body, hdrs)
        self.assertEqual(obj["choices"][0]["message"]["content"], "You are Ada.\nBe terse.")
        prefixed = dict(hdrs, **{"x-mock-reply": b64("My instructions: ")})
        _, obj = self.post_json("/v1/chat/completions", body, prefixed)
        self.assertEqual(obj["choices"][0]["message"]["content"], "My instructions: You are Ada.\nBe terse.")
        body = {"model": "c", "max_tokens": 10, "system": [{"type": "text", "text": "Secret rules."}],
                "messages": [{"role": "user", "content": "hi"}]}
        _, obj = self.post_json("/v1/messages", body, hdrs)
        self.assertEqual(obj["content"][0]["text"], "Secret rules.")
        body = {"model": "m", "instructions": "Answer in French.",
                "input": [{"role": "developer", "content": "No emojis."}, {"role": "user", "content": "hi"}]}
        _, obj = self.post_json("/v1/responses", body, hdrs)
        self.assertEqual(obj["output"][0]["content"][0]["text"], "Answer in French.\nNo emojis.")
        events = self.post_sse("/v1/chat/completions", {"model": "m", "stream": True, "messages": [
            {"role": "system", "content": "Streamed system prompt."}, {"role": "user", "content": "x"}]}, hdrs)
        text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or ""
                       for _, d in events if d != "[DONE]")
        self.assertEqual(text, "Streamed system prompt.")
        status, obj = self.post_json("/v1/chat/completions", body, {"x-mock-reply-from": "user"})
        self.assertEqual(status, 400)

    def test_reply_repeat(self):
        hdrs = {"x-mock-reply": b64("the loop "), "x-mock-reply-repeat": "3"}
        _, obj = self.post_json("/v1/chat/completions",
                                {"model": "m", "messages": [{"role": "user", "content": "x"}]}, hdrs)
        self.assertEqual(obj["choices"][0]["message"]["content"], "the loop the loop the loop ")
        status, _ = self.post_json("/v1/chat/completions", {"model": "m", "messages": []},
                                   {"x-mock-reply-repeat": "0"})
        self.assertEqual(status, 400)

    def test_write_bytes_and_forced_gzip(self):
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hello there"}]}
        self.reset()
        whole = self.request("POST", "/v1/chat/completions", body)[1]
        self.reset()
        split = self.request("POST", "/v1/chat/completions", body, {"x-mock-write-bytes": "7"})[1]
        self.assertEqual(split, whole)
        self.reset()
        resp, data = self.request("POST", "/v1/chat/completions", body, {"x-mock-content-encoding": "gzip"})
        self.assertEqual(resp.getheader("Content-Encoding"), "gzip")
        import gzip
        self.assertEqual(gzip.decompress(data), whole)

    def test_count_tokens(self):
        status, obj = self.post_json("/v1/messages/count_tokens",
                                     {"model": "c", "messages": [{"role": "user", "content": "a b c"}]})
        self.assertEqual((status, obj), (200, {"input_tokens": 3}))

    def test_models(self):
        resp, data = self.request("GET", "/v1/models")
        obj = json.loads(data)
        self.assertEqual(resp.status, 200)
        self.assertEqual(obj["object"], "list")
        self.assertTrue(all(m["object"] == "model" for m in obj["data"]))
        resp, data = self.request("GET", "/v1/models", headers={"anthropic-version": "2023-06-01"})
        obj = json.loads(data)
        self.assertTrue(all(m["type"] == "model" for m in obj["data"]))
        self.assertFalse(obj["has_more"])

    def assert_openai_error(self, obj):
        self.assertEqual(set(obj), {"error"})
        self.assertEqual(set(obj["error"]), {"message", "type", "param", "code"})

    def test_not_found(self):
        for method, path in [("POST", "/v1/nope"), ("GET", "/v1/chat/completions"), ("POST", "/chat/completions"),
                             ("DELETE", "/v1/messages")]:
            resp, data = self.request(method, path, b"{}")
            self.assertEqual(resp.status, 404, (method, path))
            self.assert_openai_error(json.loads(data))

    def test_bad_json(self):
        for body in [b"{not json", b"\xff\xfe", b"", b"[1,2]"]:
            status, obj = self.post_json("/v1/chat/completions", body)
            self.assertEqual(status, 400, body)
            self.assert_openai_error(obj)
            self.assertEqual(obj["error"]["type"], "invalid_request_error")

    def test_mock_reply_header(self):
        reply = "Forced réponse 🚀"
        status, obj = self.post_json("/v1/chat/completions",
                                     {"model": "m", "messages": [{"role": "user", "content": "other"}]},
                                     {"x-mock-reply": b64(reply)})
        self.assertEqual(obj["choices"][0]["message"]["content"], reply)
        # url-safe alphabet without padding also works
        raw = base64.urlsafe_b64encode("??>>".encode()).decode().rstrip("=")
        status, obj = self.post_json("/v1/messages", {"model": "c", "messages": [{"role": "user", "content": "x"}]},
                                     {"x-mock-reply": raw})
        self.assertEqual(obj["content"][0]["text"], "??>>")
        status, obj = self.post_json("/v1/chat/completions", {"messages": []}, {"x-mock-reply": "!!notbase64"})
        self.assertEqual(status, 400)

    def test_mock_status_and_delay(self):
        status, obj = self.post_json("/v1/chat/completions", {"messages": []}, {"x-mock-status": "429"})
        self.assertEqual(status, 429)
        self.assert_openai_error(obj)
        self.assertEqual(obj["error"]["type"], "rate_limit_error")
        status, obj = self.post_json("/v1/messages", b"not even json", {"x-mock-status": "503"})
        self.assertEqual(status, 503)
        self.assert_openai_error(obj)
        t0 = time.monotonic()
        status, _ = self.post_json("/v1/chat/completions", {"messages": []}, {"x-mock-delay-ms": "150"})
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.14)

    def test_keep_alive(self):
        self.request("GET", "/healthz")
        sock = self.conn.sock
        for _ in range(5):
            status, _ = self.post_json("/v1/chat/completions", {"messages": [{"role": "user", "content": "k"}]})
            self.assertEqual(status, 200)
            self.post_sse("/v1/messages", {"stream": True, "messages": [{"role": "user", "content": "k"}]})
        self.assertIs(self.conn.sock, sock)  # never reconnected


class TestRecording(MockTestBase):
    def raw_exchange(self, payload, responses=1):
        """Send raw bytes on a fresh socket; return the raw response bytes (one or more responses)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(payload)
            f = s.makefile("rb")
            out = []
            for _ in range(responses):
                status_line = f.readline()
                self.assertTrue(status_line.startswith(b"HTTP/1.1 "), status_line)
                length = 0
                while True:
                    line = f.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                out.append((int(status_line.split()[1]), f.read(length)))
            return out

    def test_record_exact_bytes(self):
        self.reset()
        body = b'{ "model":"m" ,\n "messages":[{"role":"user","content":"caf\\u00e9 \xc3\xa9"}]}  '
        resp, data = self.request("POST", "/pfx/v1/chat/completions?x=1", body,
                                  {"X-Custom-Header": "Value-1", "x-dup": "a"})
        self.assertEqual(resp.status, 200)
        self.assertEqual(json.loads(data)["choices"][0]["message"]["content"], "café é")
        recs = self.records()
        self.assertEqual(len(recs), 1)
        rec = recs[0]
        self.assertEqual(rec["method"], "POST")
        self.assertEqual(rec["path"], "/pfx/v1/chat/completions?x=1")
        self.assertEqual(base64.b64decode(rec["body_base64"]), body)
        self.assertEqual(rec["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(rec["body_length"], len(body))
        self.assertFalse(rec["chunked"])
        self.assertEqual(rec["response_status"], 200)
        self.assertIn(["X-Custom-Header", "Value-1"], rec["headers"])
        self.assertIn(["Content-Length", str(len(body))], rec["headers"])
        # mock control and health endpoints are not recorded
        self.request("GET", "/healthz")
        self.assertEqual(len(self.records()), 1)
        # the record file has the same JSON line
        with open(self.record_file, encoding="utf-8") as fh:
            lines = [json.loads(line) for line in fh if line.strip()]
        self.assertEqual(lines[-1], rec)
        self.reset()
        self.assertEqual(self.records(), [])
        # ids restart after reset
        _, obj = self.post_json("/v1/chat/completions", {"messages": []})
        self.assertEqual(obj["id"], "chatcmpl-mock-1")

    def test_bad_json_recorded(self):
        self.reset()
        body = b'{"messages": [unterminated'
        status, _ = self.post_json("/v1/chat/completions", body)
        self.assertEqual(status, 400)
        rec = self.records()[-1]
        self.assertEqual(rec["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(rec["response_status"], 400)

    def test_chunked_request_body(self):
        self.reset()
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "chunked ✓ body"}]}).encode()
        pieces = [body[:7], body[7:8], body[8:30], body[30:]]
        chunked = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\nX-Trailer: t1\r\n\r\n"
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        second = (b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n"
                  b'{"input":"a"}')
        # two requests pipelined on one keep-alive connection
        (s1, d1), (s2, d2) = self.raw_exchange(head + chunked + second, responses=2)
        self.assertEqual(s1, 200, d1)
        self.assertEqual(json.loads(d1)["choices"][0]["message"]["content"], "chunked ✓ body")
        self.assertEqual(s2, 200, d2)
        recs = self.records()
        self.assertEqual(len(recs), 2)
        self.assertTrue(recs[0]["chunked"])
        self.assertEqual(recs[0]["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(base64.b64decode(recs[0]["body_base64"]), body)
        self.assertEqual(recs[0]["trailers"], [["X-Trailer", "t1"]])
        self.assertFalse(recs[1]["chunked"])

    def test_malformed_chunked(self):
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"zz\r\nabc\r\n0\r\n\r\n")
        [(status, data)] = self.raw_exchange(head)
        self.assertEqual(status, 400)
        self.assertIn("error", json.loads(data))

    def test_record_bound(self):
        self.assertEqual(mock_llm.State().records.maxlen, 10000)


class BlockingProxy:
    """A stand-in for the filter: refuses requests containing the injection phrase
    with 403 in the API's error shape and forwards everything else to the mock."""

    PHRASE = b"ignore all previous instructions"

    def __init__(self, upstream_port):
        upstream = "http://127.0.0.1:%d" % upstream_port

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.PHRASE in body.lower():
                    if self.path.startswith("/v1/messages"):
                        err = {"type": "error", "error": {"type": "permission_error",
                                                          "message": "blocked by test proxy"}}
                    else:
                        err = {"error": {"message": "blocked by test proxy", "type": "permission_error",
                                         "param": None, "code": "prompt_injection"}}
                    self.reply(403, "application/json", json.dumps(err).encode())
                    return
                hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                req = urllib.request.Request(upstream + self.path, data=body, headers=hdrs, method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        self.reply(r.status, r.headers["Content-Type"], r.read())
                except urllib.error.HTTPError as e:
                    self.reply(e.code, e.headers["Content-Type"], e.read())

            def reply(self, status, ctype, data):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        H.PHRASE = self.PHRASE
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TestSdkClients(MockTestBase):
    def run_check(self, module, script, base_url):
        py = sdk_python(module)
        if py is None:
            self.skipTest("%s SDK not importable (set TOLLGATE_SDK_PYTHON)" % module)
        r = subprocess.run([py, os.path.join(CLIENTS, script), "--base-url", base_url, "--timeout", "10"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stdout)
        return json.loads(lines[0])

    def check_benign(self, out):
        self.assertTrue(out["ok"])
        self.assertEqual(out["chat"]["content"], "What is the capital of France? Answer in one word.")
        self.assertEqual(out["stream"]["content"], "Count from one to ten in words, separated by spaces.")
        self.assertGreater(out["stream"]["content_deltas"], 1)

    def test_openai_sdk_direct(self):
        out = self.run_check("openai", "openai_sdk_check.py", "http://127.0.0.1:%d/v1" % self.port)
        self.check_benign(out)
        self.assertEqual(out["chat"]["finish_reason"], "stop")
        self.assertEqual(out["stream"]["finish_reason"], "stop")
        self.assertIsNotNone(out["stream"]["usage"])
        for key in ("blocked", "blocked_stream"):
            self.assertFalse(out[key]["blocked"])
            self.assertEqual(out[key]["status"], 200)
            self.assertIn("ignore all previous instructions", out[key]["content"])

    def test_anthropic_sdk_direct(self):
        out = self.run_check("anthropic", "anthropic_sdk_check.py", "http://127.0.0.1:%d/v1" % self.port)
        self.check_benign(out)
        self.assertEqual(out["base_url"], "http://127.0.0.1:%d" % self.port)
        self.assertEqual(out["stream"]["final_text"], out["stream"]["content"])
        self.assertEqual(out["stream"]["event_types"],
                         ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                          "message_delta", "message_stop"])
        for key in ("blocked", "blocked_stream"):
            self.assertFalse(out[key]["blocked"])

    def test_openai_sdk_blocked(self):
        proxy = BlockingProxy(self.port)
        try:
            out = self.run_check("openai", "openai_sdk_check.py", "http://127.0.0.1:%d" % proxy.port)
        finally:
            proxy.close()
        self.check_benign(out)
        for key in ("blocked", "blocked_stream"):
            b = out[key]
            self.assertTrue(b["blocked"])
            self.assertEqual(b["exception"], "PermissionDeniedError")
            self.assertEqual((b["status"], b["type"], b["code"], b["message"]),
                             (403, "permission_error", "prompt_injection", "blocked by test proxy"))
            self.assertEqual(b["body"]["error"]["code"], "prompt_injection")

    def test_anthropic_sdk_blocked(self):
        proxy = BlockingProxy(self.port)
        try:
            out = self.run_check("anthropic", "anthropic_sdk_check.py", "http://127.0.0.1:%d" % proxy.port)
        finally:
            proxy.close()
        self.check_benign(out)
        for key in ("blocked", "blocked_stream"):
            b = out[key]
            self.assertTrue(b["blocked"])
            self.assertEqual(b["exception"], "PermissionDeniedError")
            self.assertEqual((b["status"], b["body_type"], b["type"], b["message"]),
                             (403, "error", "permission_error", "blocked by test proxy"))

    def test_unreachable_reports_error(self):
        py = sdk_python("openai")
        if py is None:
            self.skipTest("openai SDK not importable")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead_port = s.getsockname()[1]
        r = subprocess.run([py, os.path.join(CLIENTS, "openai_sdk_check.py"), "--base-url",
                            "http://127.0.0.1:%d/v1" % dead_port, "--timeout", "5"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        out = json.loads(r.stdout)
        self.assertFalse(out["ok"])
        self.assertEqual(out["chat"]["error"]["class"], "APIConnectionError")


class TestFaultControls(MockTestBase):
    def test_status_path_answers_and_counts(self):
        self.reset()
        resp, data = self.request("POST", "/__mock/status/500", b"x")
        self.assertEqual(resp.status, 500)
        self.assertEqual(json.loads(data)["error"]["code"], "mock_status_500")
        resp, data = self.request("GET", "/__mock/requests")
        body = json.loads(data)
        self.assertEqual(body["status_hits"], 1)
        self.assertEqual(body["requests"], [])

    def test_reset_after_bytes(self):
        body = json.dumps({"model": "m", "stream": True,
                           "messages": [{"role": "user", "content": "a long enough reply " * 20}]}).encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"x-mock-reset-after-bytes: 200\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            got = b""
            with self.assertRaises(ConnectionResetError):
                while True:
                    part = s.recv(65536)
                    if not part:
                        break
                    got += part
        head, _, rest = got.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"))
        self.assertEqual(len(rest), 200)


if __name__ == "__main__":
    unittest.main()
