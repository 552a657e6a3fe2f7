#!/usr/bin/env python3
"""What the PII detector misses and adds on one split, with the text around each.

    python3 models/pii/misses.py --tollgate target/release/tollgate target/pii-data/dev.jsonl \
        [--types PHONE,SECRET] [--no-ner] [--max 20]

Runs `tollgate scan` with the eval's policy (every type flagged, minScore 0.5) and
compares its spans with the gold ones (exact: same type and bytes), then prints per type
the gold spans not found (MISS, with what was found over them instead) and the found
spans that are not gold (EXTRA), each with 40 bytes of context. For tuning on dev only:
never look at test this way.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

TYPES = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "UK_NIN", "NHS_NUMBER", "ES_DNI", "ES_NIE",
         "IT_FISCAL_CODE", "NL_BSN", "FR_NIR", "DE_TAX_ID", "PASSPORT", "IP_ADDRESS", "MAC_ADDRESS",
         "US_ROUTING_NUMBER", "DATE_OF_BIRTH", "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "GITHUB_TOKEN", "GITLAB_TOKEN",
         "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SLACK_TOKEN", "GOOGLE_API_KEY", "STRIPE_KEY", "JWT", "PRIVATE_KEY",
         "SECRET", "PERSON", "LOCATION", "ORGANIZATION"]


def show(text_b, s, e, ctx=40):
    a = text_b[max(0, s - ctx):s].decode("utf-8", "replace")
    m = text_b[s:e].decode("utf-8", "replace")
    z = text_b[e:e + ctx].decode("utf-8", "replace")
    return json.dumps(a)[1:-1] + " [[" + json.dumps(m)[1:-1] + "]] " + json.dumps(z)[1:-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--tollgate", default="target/release/tollgate")
    ap.add_argument("--types", default="")
    ap.add_argument("--no-ner", action="store_true")
    ap.add_argument("--max", type=int, default=25)
    a = ap.parse_args()
    recs = [json.loads(x) for x in open(a.file, encoding="utf-8") if x.strip()]
    ner_types = ("PERSON", "LOCATION", "ORGANIZATION")
    det = {"type": "pii", "id": "pii", "types": {t: "flag" for t in TYPES if not (a.no_ner and t in ner_types)}}
    if a.no_ner:
        det["ner"] = False
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"schemaVersion": 1, "detectors": [det]}, f)
        policy = f.name
    inp = "".join(json.dumps({"id": i, "text": r["text"]}) + "\n" for i, r in enumerate(recs))
    out = subprocess.run([a.tollgate, "scan", "--config", policy], input=inp, capture_output=True, text=True,
                         check=True).stdout
    os.unlink(policy)
    found = {}
    for line in out.splitlines():
        o = json.loads(line)
        found[o["id"]] = [(p["type"], p["start"], p["end"]) for p in o.get("pii", [])]
    want = set(a.types.split(",")) if a.types else None
    miss = collections.defaultdict(list)
    extra = collections.defaultdict(list)
    counts = collections.Counter()
    for i, r in enumerate(recs):
        tb = r["text"].encode("utf-8")
        gold = {(s["type"], s["start"], s["end"]) for s in r["spans"]}
        pred = set(found.get(i, []))
        for t, s, e in gold - pred:
            over = [p for p in pred if p[1] < e and s < p[2]]
            miss[t].append(f"{r['locale']} {r['template']}: {show(tb, s, e)}  found: {over}")
        for t, s, e in pred - gold:
            over = [g for g in gold if g[1] < e and s < g[2]]
            extra[t].append(f"{r['locale']} {r['template']}: {show(tb, s, e)}  gold: {over}")
        for t, _, _ in gold:
            counts[t, "gold"] += 1
    for t in TYPES:
        if want and t not in want:
            continue
        if not miss[t] and not extra[t]:
            continue
        print(f"== {t}: gold {counts[t, 'gold']}, missed {len(miss[t])}, extra {len(extra[t])}")
        for x in miss[t][:a.max]:
            print("  MISS ", x)
        for x in extra[t][:a.max]:
            print("  EXTRA", x)
    return 0


if __name__ == "__main__":
    sys.exit(main())
