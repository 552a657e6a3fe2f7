#!/usr/bin/env python3
"""The Markdown table of the OWASP regression suite, from tests/owasp/cases/*.json.

    python3 tests/owasp/table.py           print the table
    python3 tests/owasp/table.py --check   exit 1 if README.md's table (between the
                                           owasp-table markers) differs from it
    python3 tests/owasp/table.py --write   rewrite README.md's table

One row per OWASP id (all ten, with the 2025 names): cases, of which attacks and
benign look-alikes, known failures of the shipped filter (run, reported, not failing
the suite), and the skipped ones with their reasons. Standard library only.
"""

import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
README = os.path.join(ROOT, "README.md")
START = "<!-- owasp-table:start -->"
END = "<!-- owasp-table:end -->"

NAMES = {
    "LLM01": "Prompt Injection",
    "LLM02": "Sensitive Information Disclosure",
    "LLM03": "Supply Chain",
    "LLM04": "Data and Model Poisoning",
    "LLM05": "Improper Output Handling",
    "LLM06": "Excessive Agency",
    "LLM07": "System Prompt Leakage",
    "LLM08": "Vector and Embedding Weaknesses",
    "LLM09": "Misinformation",
    "LLM10": "Unbounded Consumption",
}

# What the filter cannot do for a category without cases (a proxy sees requests and answers only).
NOT_COVERED = {
    "LLM09": "not a proxy's to act on: whether an answer is true needs grounding the filter does not have",
}


def load(cases_dir=None):
    cases = []
    for path in sorted(glob.glob(os.path.join(cases_dir or os.path.join(HERE, "cases"), "*.json"))):
        with open(path, encoding="utf-8") as f:
            cases.extend(json.load(f))
    return cases


def table(cases):
    rows = ["| OWASP | name | cases | attacks | benign | known failures | skipped |", "|---|---|---|---|---|---|---|"]
    total = [0, 0, 0, 0, 0]
    for oid, name in NAMES.items():
        mine = [c for c in cases if c.get("owasp") == oid]
        if not mine:
            rows.append("| %s | %s | 0 | 0 | 0 | 0 | %s |" % (oid, name, NOT_COVERED.get(oid, "no cases")))
            continue
        attacks = sum(1 for c in mine if c.get("attack"))
        skipped = [c for c in mine if c.get("skip")]
        reasons = {}
        for c in skipped:
            reasons.setdefault(c["skip"], []).append(c["id"])
        skip_text = "; ".join("%s (%s)" % (ids[0] if len(ids) == 1 else "%d cases" % len(ids), why)
                              for why, ids in sorted(reasons.items())) or "0"
        if skipped:
            skip_text = "%d: %s" % (len(skipped), skip_text)
        known = [c for c in mine if c.get("known") and not c.get("skip")]
        rows.append("| %s | %s | %d | %d | %d | %d | %s |" % (oid, name, len(mine), attacks, len(mine) - attacks,
                                                             len(known), skip_text))
        total[0] += len(mine)
        total[1] += attacks
        total[2] += len(mine) - attacks
        total[3] += len(known)
        total[4] += len(skipped)
    rows.append("| all | | %d | %d | %d | %d | %d |" % tuple(total))
    known = [c for c in cases if c.get("known") and not c.get("skip")]
    if known:
        rows.append("")
        rows.append("Known failures (run and reported on every run; each passes again once its detector improves):")
        rows.append("")
        for c in sorted(known, key=lambda c: c["id"]):
            rows.append("- %s %s: %s" % (c["id"], c.get("title", ""), c["known"]))
    return "\n".join(rows) + "\n"


def readme_table(text):
    start = text.find(START)
    end = text.find(END)
    if start < 0 or end < start:
        return None
    return text[start + len(START):end].strip("\n") + "\n"


def main(argv):
    current = table(load())
    if "--check" in argv or "--write" in argv:
        with open(README, encoding="utf-8") as f:
            text = f.read()
        found = readme_table(text)
        if found is None:
            print("README.md has no %s ... %s section" % (START, END))
            return 1
        if "--write" in argv:
            start = text.find(START) + len(START)
            text = text[:start] + "\n" + current + text[text.find(END):]
            with open(README, "w", encoding="utf-8") as f:
                f.write(text)
            return 0
        if found != current:
            print("README.md's table is stale; it should be:\n" + current)
            return 1
        return 0
    sys.stdout.write(current)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
