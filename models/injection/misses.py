"""Misses and false alarms of the combined detector at the FPR-1% threshold of a split.

    target/release/tollgate eval --task injection target/model-data/dev.jsonl --scores /tmp/dev.scores
    python3 models/injection/misses.py target/model-data/dev.jsonl /tmp/dev.scores [--fpr 0.01] [--key combined]

For tuning on dev (or train); test is only measured with `tollgate eval`.
"""
import argparse
import json
import math


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("scores")
    ap.add_argument("--fpr", type=float, default=0.01)
    ap.add_argument("--key", default="combined")
    ap.add_argument("--width", type=int, default=160)
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.data, encoding="utf-8") if l.strip()]
    scores = [json.loads(l) for l in open(a.scores, encoding="utf-8") if l.strip()]
    assert len(rows) == len(scores), (len(rows), len(scores))
    neg = sorted((s[a.key] for s in scores if s["label"] == 0), reverse=True)
    allowed = math.floor(a.fpr * len(neg))
    # The smallest threshold with at most `allowed` benign texts at or above it.
    thr = neg[allowed] if allowed < len(neg) else 0.0
    thr = math.nextafter(thr, math.inf)
    miss = [(s, r) for s, r in zip(scores, rows) if s["label"] == 1 and s[a.key] < thr]
    fa = [(s, r) for s, r in zip(scores, rows) if s["label"] == 0 and s[a.key] >= thr]
    pos = sum(1 for s in scores if s["label"] == 1)
    print(f"threshold {thr:.4f}: TPR {1 - len(miss) / max(pos, 1):.3f} ({len(miss)} of {pos} missed), "
          f"{len(fa)} of {len(neg)} benign above")
    for title, items in (("missed", miss), ("benign above", fa)):
        print(f"\n## {title}")
        for s, r in sorted(items, key=lambda x: -x[0][a.key]):
            t = " ".join(r["text"].split())[: a.width]
            src = r.get("source", r.get("family", ""))
            print(f"{s[a.key]:.3f} r{s['rules']:.2f} g{s['ngram']:.2f} t{(s['tiny'] if s['tiny'] is not None else -1):.2f} {src} | {t}")


if __name__ == "__main__":
    main()
