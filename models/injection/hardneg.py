"""Fills the hand-written templates of gen_<lang>.py into records.

Benign records are hard negatives (the vocabulary of attacks in harmless
requests, customer e-mails, code, multi-turn chat); attack records are the
same kinds of phrasing used as injections, in the seven languages, so that the
model does not learn "not English" as a benign signal.

Each template is one split group (`group`), so all fills of a template end up
in the same split.
"""

import base64
import codecs
import random
import string

import gen_de, gen_en, gen_es, gen_fr, gen_it, gen_nl, gen_pt

LANGS = {"en": gen_en, "de": gen_de, "fr": gen_fr, "es": gen_es, "it": gen_it, "pt": gen_pt, "nl": gen_nl}
FILLS_PER_TEMPLATE = 6


def _fields(template):
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _fill(template, slots, rng):
    values = {}
    for f in _fields(template):
        if f in values:
            continue
        if f in ("b64", "hex", "rot13"):
            plain = rng.choice(slots["plain"])
            values["b64"] = base64.b64encode(plain.encode()).decode()
            values["hex"] = plain.encode().hex()
            values["rot13"] = codecs.encode(plain, "rot13")
        else:
            values[f] = rng.choice(slots[f])
    return template.format(**values)


def generate(seed):
    """All generated records, deterministic for a seed."""
    out = []
    for lang, mod in LANGS.items():
        for kind, label, families in (("hardneg", 0, mod.BENIGN), ("genattack", 1, mod.ATTACK)):
            for family, (templates, slots) in sorted(families.items()):
                for ti, template in enumerate(templates):
                    rng = random.Random(f"{seed}:{lang}:{kind}:{family}:{ti}")
                    n = FILLS_PER_TEMPLATE if _fields(template) else 1
                    seen = set()
                    for _ in range(n):
                        text = _fill(template, slots, rng)
                        if text in seen:
                            continue
                        seen.add(text)
                        out.append({
                            "text": text,
                            "label": label,
                            "source": f"generated-{kind}",
                            "family": f"{kind}/{family}",
                            "group": f"{kind}/{lang}/{family}/{ti}",
                            "lang": lang,
                        })
    return out
