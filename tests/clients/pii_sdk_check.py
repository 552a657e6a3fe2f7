#!/usr/bin/env python3
"""PII pseudonyms through the filter with the official SDKs.

Sends one chat message holding an email address and a phone number with the
OpenAI SDK and one with the Anthropic SDK. The mock upstream echoes the last
user message; the filter replaced the values with placeholders on the way in
and must put them back on the way out. Prints one JSON line.

    pii_sdk_check.py --base-url http://127.0.0.1:PORT/v1
"""

import argparse
import json
import sys

import anthropic
import openai

PROMPT = "Please reply to jane.roe@example.org or +44 20 7946 0958 today."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    a = ap.parse_args()
    out = {"ok": True, "prompt": PROMPT}
    try:
        oc = openai.OpenAI(base_url=a.base_url, api_key="sk-test-not-a-real-key", max_retries=0, timeout=30)
        r = oc.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
        out["openai"] = r.choices[0].message.content
        ac = anthropic.Anthropic(base_url=a.base_url.removesuffix("/v1"), api_key="test-key", max_retries=0, timeout=30)
        m = ac.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": PROMPT}])
        out["anthropic"] = "".join(b.text for b in m.content if b.type == "text")
    except Exception as e:  # reported, not raised: the Rust side prints it
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
