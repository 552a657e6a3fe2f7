"""Spell a rule pattern as the filter's normalised view does.

The normaliser folds confusable letters (Cyrillic and Greek letters that look
Latin become Latin ones), and the rule loader only accepts literals in normal
form, so a pattern written in Cyrillic must be stored folded. This runs every
run of non-ASCII letters of a pattern through `tollgate normalize` (the
filter's own code) and prints the pattern with them replaced:

    python3 tools/fold_rule.py 'забудь(?:те)? все инструкции'
    -> зaбyдь(?:te)? bce инctpykuии

Needs target/release/tollgate (`make cli`).
"""
import json
import re
import subprocess
import sys

WORD = re.compile(r"[^\x00-\x7f]+[a-z]*|[a-z]*[^\x00-\x7f]+")


def fold_words(words, tollgate="target/release/tollgate"):
    inp = "".join(json.dumps({"text": w}, ensure_ascii=False) + "\n" for w in words)
    out = subprocess.run([tollgate, "normalize"], input=inp, capture_output=True,
                         text=True, check=True).stdout
    return [json.loads(line)["view"] for line in out.splitlines()]


def fold_pattern(pattern, tollgate="target/release/tollgate"):
    words = sorted(set(WORD.findall(pattern)))
    folded = dict(zip(words, fold_words(words, tollgate)))
    return WORD.sub(lambda m: folded[m.group(0)], pattern)


if __name__ == "__main__":
    print(fold_pattern(sys.argv[1]))
