#!/usr/bin/env python3
"""Streamed responses through the filter with the official SDKs' streaming clients.

The mock upstream replies in deltas of a few bytes (``x-mock-chunk-bytes``) and
writes its body in pieces that split events mid-line (``x-mock-write-bytes``).
Each case prints what the SDK user got. Prints one JSON line:

  openai_restore / anthropic_restore  the prompt's e-mail and phone went up as
      placeholders (the mock echoes them back, split over deltas): the text the
      client assembles
  openai_mask / anthropic_mask / responses_mask  a reply with an e-mail and a
      phone written by the model: the text the client assembles
  openai_block / anthropic_block  a reply that leaks an AWS key mid-stream: the
      text received before the SDK raised, and the exception
  openai_tool / anthropic_tool  a streamed tool call whose arguments hold an
      e-mail: the arguments the client assembles
  openai_tool_block  a tool call whose arguments leak a token: whether any tool
      call delta arrived before the exception
  openai_usage  without include_usage: whether any chunk carried usage; with it:
      the usage the client got

    stream_sdk_check.py --base-url http://127.0.0.1:PORT/v1
"""

import argparse
import base64
import json
import sys

import anthropic
import openai

PROMPT = "Please reply to jane.roe@example.org or +44 20 7946 0958 today."
MASK_REPLY = "Write to bob.smith@corp.example or call +1 415 555 0100 now."
LEAK_REPLY = "Sure, the deploy key is AKIAIOSFODNN7EXAMPLE and the rest follows here."
TOOL_ARGS = json.dumps({"to": "bob.smith@corp.example", "subject": "status"})
LEAK_ARGS = json.dumps({"token": "ghp_abcdefghijklmnopqrstuvwxyzABCDEF0123"})


def b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def headers(reply=None, tool=None, chunk=3):
    h = {"x-mock-chunk-bytes": str(chunk), "x-mock-write-bytes": "7"}
    if reply is not None:
        h["x-mock-reply"] = b64(reply)
    if tool is not None:
        h["x-mock-tool-call"] = b64(json.dumps({"name": "send_mail", "arguments": tool}))
    return h


def openai_text(oc, prompt, extra, **kw):
    """Content and tool arguments assembled from a chat stream, and the exception if any."""
    text, args, tool_deltas, error = "", "", 0, None
    try:
        s = oc.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}],
                                       stream=True, extra_headers=extra, **kw)
        for chunk in s:
            for ch in chunk.choices:
                if ch.delta.content:
                    text += ch.delta.content
                for tc in ch.delta.tool_calls or []:
                    tool_deltas += 1
                    if tc.function and tc.function.arguments:
                        args += tc.function.arguments
    except openai.APIError as e:
        error = {"exception": type(e).__name__, "message": e.message,
                 "code": getattr(e, "code", None), "type": getattr(e, "type", None)}
    return {"text": text, "args": args, "tool_deltas": tool_deltas, "error": error}


def anthropic_text(ac, prompt, extra):
    text, args, tool_blocks, error = "", "", 0, None
    try:
        with ac.messages.stream(model="claude-haiku-4-5", max_tokens=64,
                                messages=[{"role": "user", "content": prompt}], extra_headers=extra) as s:
            for ev in s:
                if ev.type == "content_block_start" and ev.content_block.type == "tool_use":
                    tool_blocks += 1
                if ev.type == "content_block_delta":
                    if ev.delta.type == "text_delta":
                        text += ev.delta.text
                    elif ev.delta.type == "input_json_delta":
                        args += ev.delta.partial_json
    except anthropic.APIError as e:
        error = {"exception": type(e).__name__, "message": str(e.message)}
    return {"text": text, "args": args, "tool_blocks": tool_blocks, "error": error}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    a = ap.parse_args()
    out = {"ok": True, "prompt": PROMPT, "mask_reply": MASK_REPLY}
    try:
        oc = openai.OpenAI(base_url=a.base_url, api_key="sk-test-not-a-real-key", max_retries=0, timeout=30)
        ac = anthropic.Anthropic(base_url=a.base_url.removesuffix("/v1"), api_key="test-key",
                                 max_retries=0, timeout=30)
        out["openai_restore"] = openai_text(oc, PROMPT, headers())
        out["openai_mask"] = openai_text(oc, "hi", headers(MASK_REPLY))
        out["openai_block"] = openai_text(oc, "hi", headers(LEAK_REPLY, chunk=4))
        out["openai_tool"] = openai_text(oc, "hi", headers("ok", tool=TOOL_ARGS))
        out["openai_tool_block"] = openai_text(oc, "hi", headers("ok", tool=LEAK_ARGS))
        plain = openai_text(oc, "count me", headers())
        usage_seen = []
        s = oc.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "count me"}],
                                       stream=True, extra_headers=headers())
        for chunk in s:
            usage_seen.append(chunk.usage is not None)
        asked = None
        s = oc.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "count me"}],
                                       stream=True, stream_options={"include_usage": True}, extra_headers=headers())
        for chunk in s:
            if chunk.usage is not None:
                asked = chunk.usage.model_dump()
        out["openai_usage"] = {"text": plain["text"], "usage_without_asking": any(usage_seen),
                               "usage_when_asked": asked}
        text = ""
        with oc.responses.stream(model="gpt-4o-mini", input="hi", extra_headers=headers(MASK_REPLY)) as s:
            for ev in s:
                if ev.type == "response.output_text.delta":
                    text += ev.delta
            final = s.get_final_response()
        out["responses_mask"] = {"text": text, "final": final.output_text}
        out["anthropic_restore"] = anthropic_text(ac, PROMPT, headers())
        out["anthropic_mask"] = anthropic_text(ac, "hi", headers(MASK_REPLY))
        out["anthropic_block"] = anthropic_text(ac, "hi", headers(LEAK_REPLY, chunk=4))
        out["anthropic_tool"] = anthropic_text(ac, "hi", headers("ok", tool=TOOL_ARGS))
    except Exception as e:  # reported, not raised: the Rust side prints it
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
