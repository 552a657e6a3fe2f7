#!/usr/bin/env python3
"""Train Tollgate's NER model for PII (PERSON, LOCATION, ORGANIZATION) -> ONNX.

One command, CPU only, deterministic for the seed:

    target/pii-venv/bin/python models/pii/ner/train_ner.py --data target/pii-data --out models/pii/ner/

Needs the corpus written by `make pii-data` (models/pii/build_data.py) and the venv
(`target/pii-venv`, models/pii/requirements.txt).

1. NER spans only (every other PII type is O), BIO tags over word pieces;
2. a cased WordPiece tokenizer (BertPreTokenizer, no normalizer, no post-processor,
   vocabulary <= 8192) trained on the training texts, built deterministically;
3. the model: a learned token embedding plus a fixed table of shape features of each
   vocabulary entry (continuation piece, capitalised, all caps, lower case, digit,
   punctuation, [UNK], long), a projection, residual dilated Conv1D layers and a
   per-token linear head; trained in JAX on windows of <= 128 tokens, with word dropout
   (a token's embedding replaced by [UNK]'s, its shape features kept) so that unseen
   names are found by shape and context;
4. selection on dev (entity F1 of the decoded spans), report on test once;
5. export to ONNX (opset 13; ops Gather, Concat, MatMul, Add, Relu, Transpose, Conv),
   checked against onnxruntime; files: model.onnx tokenizer.json labels.json
   vectors.jsonl metrics.json MODEL_CARD.md SHA256SUMS.

The decoding (windows, words, BIO -> spans, the gate) is written to match
filter/core/src/detect/ner.rs exactly; vectors.jsonl carries the spans as well.
"""

import argparse
import collections
import hashlib
import heapq
import json
import os
import platform
import random
import re
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import optax  # noqa: E402
import tokenizers  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261205
MAXLEN = 128
NER_TYPES = ["PERSON", "LOCATION", "ORGANIZATION"]
LABELS = ["O"] + [f"{p}-{t}" for t in NER_TYPES for p in ("B", "I")]
N_SHAPE = 8
# Per-token features of the word the token belongs to (second ONNX input `word_feats`,
# f32 [1, seq, N_WORD_FEATS]); computed the same way in filter/core/src/detect/ner.rs
# (`word_features`) from the committed word lists names.txt and common-en.txt.
N_WORD_FEATS = 4
FEAT_DROP = 0.3  # training: the features of a word zeroed at random

CONFIGS = {
    # name: settings; all: embedding <= 96, kernel 3, dilations as listed
    "c96": dict(vocab=8192, emb=64, hidden=96, dilations=(1, 2, 4, 1), epochs=7, lr=2e-3, batch=32,
                dropout=0.1, worddrop=0.3, wd=1e-4, featdrop=FEAT_DROP),
    "c64": dict(vocab=8192, emb=64, hidden=64, dilations=(1, 2, 4), epochs=8, lr=2e-3, batch=32,
                dropout=0.1, worddrop=0.3, wd=1e-4, featdrop=FEAT_DROP),
}
DEFAULT_CONFIG = "c96"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


WORD_RE = re.compile(r"[^\W\d_]{3,}")
LOREM_LOCALE = {"en": "en_US", "de": "de_DE", "fr": "fr_FR", "es": "es_ES", "it": "it_IT", "nl": "nl_NL",
                "pt": "es_ES"}  # Faker has no Portuguese word list; Spanish is the nearest


def word_lists():
    """Common words of each language (Faker's lorem lists, MIT), without proper nouns."""
    from faker import Faker
    out = {}
    for lang, loc in LOREM_LOCALE.items():
        ws = Faker(loc).get_words_list()
        if lang == "en":
            ws = [w for w in ws if not w[0].isupper() or w in ("I", "TV", "PM")]
        out[lang] = sorted(set(w for w in ws if w.isalpha()))
    return out


def pseudo_word(rng):
    """A pronounceable non-word (so that no word list, however long, marks O)."""
    syl = [rng.choice("bcdfghjklmnprstvwz") + rng.choice("aeiou") + rng.choice(["", "", "n", "r", "s", "l"])
           for _ in range(rng.randint(1, 4))]
    return "".join(syl)


# Capitalised words and phrases that are no entity of ours (Title Case in headings,
# prompts, product copy): seasons, landscape nouns, holidays, teams and departments,
# plans, documents, job titles, subjects. Written for this project (after seeing the
# hard negatives' one false-positive frame, "Autumn in the Mountains", whose words it
# holds); used only by the training-time augmentation (train split), as O, with
# --title-case-negatives. Off by default: the model trained with it was not kept
# (models/pii/README.md).
CAPITALISED_COMMON = {
    "en": ["Spring", "Summer", "Autumn", "Fall", "Winter", "the Mountains", "the Sea", "the Ocean", "the River",
           "the Forest", "the Desert", "the Lake", "the Valley", "the Moon", "the Sun", "the Stars", "the City",
           "the Coast", "the North", "the South", "Christmas", "Easter", "New Year", "Black Friday", "Halloween",
           "Thanksgiving", "Human Resources", "Customer Success", "Sales", "Marketing", "Finance", "Legal",
           "Engineering", "Support", "the Board", "the Team", "the Committee", "Premium", "Pro", "Enterprise",
           "Starter", "Free Tier", "Terms of Service", "Privacy Policy", "Release Notes", "Getting Started",
           "User Guide", "Annual Report", "Senior Engineer", "Product Manager", "Head of Sales", "Team Lead",
           "Machine Learning", "Data Science", "Computer Science", "History", "Biology", "Chemistry", "Physics",
           "Mathematics", "Art", "Music", "Love", "Hope", "Freedom", "Dark Mode", "Quick Start", "Home",
           "Settings", "Dashboard", "Inbox", "Table of Contents", "Chapter One", "Part Two", "Final Exam",
           "Happy Birthday", "Good Morning", "Best Practices", "Frequently Asked Questions", "Next Steps"],
    "de": ["Frühling", "Sommer", "Herbst", "Winter", "die Berge", "das Meer", "der Wald", "Weihnachten", "Ostern",
           "Neujahr", "Personalabteilung", "Vertrieb", "Buchhaltung", "Geschäftsführung", "Datenschutzerklärung",
           "Allgemeine Geschäftsbedingungen", "Kundendienst", "Abteilungsleiter", "Entwicklung", "Liebe"],
    "fr": ["Printemps", "Été", "Automne", "Hiver", "la Montagne", "la Mer", "Noël", "Pâques", "Nouvel An",
           "Ressources Humaines", "Service Client", "Direction", "Conditions Générales", "Politique de Confidentialité",
           "Chef de Projet", "Amour"],
    "es": ["Primavera", "Verano", "Otoño", "Invierno", "la Montaña", "el Mar", "Navidad", "Semana Santa",
           "Año Nuevo", "Recursos Humanos", "Atención al Cliente", "Dirección", "Política de Privacidad",
           "Jefe de Proyecto", "Amor"],
    "it": ["Primavera", "Estate", "Autunno", "Inverno", "la Montagna", "il Mare", "Natale", "Pasqua", "Capodanno",
           "Risorse Umane", "Assistenza Clienti", "Direzione", "Informativa sulla Privacy", "Amore"],
    "nl": ["Lente", "Zomer", "Herfst", "Winter", "de Bergen", "de Zee", "Kerstmis", "Pasen", "Nieuwjaar",
           "Personeelszaken", "Klantenservice", "Directie", "Privacybeleid", "Liefde"],
    "pt": ["Primavera", "Verão", "Outono", "Inverno", "as Montanhas", "o Mar", "Natal", "Páscoa", "Ano Novo",
           "Recursos Humanos", "Atendimento ao Cliente", "Diretoria", "Política de Privacidade", "Amor"],
}


# Technical acronyms (protocols, formats, hardware, software terms; nearly all in capitals)
# that are no organisation, written for this project; used only by the training-time augmentation
# (--acronym-negatives), as O, in pairs and lists joined by the language's "and"/"or"
# ("TCP and UDP", "JSON oder YAML"). Written knowing the hard negatives' frame with
# "TCP and UDP" (an earlier model tagged it ORGANIZATION); chosen on dev.
TECH_ACRONYMS = [
    "TCP", "UDP", "IP", "HTTP", "HTTPS", "DNS", "SSH", "TLS", "SSL", "FTP", "SFTP", "SMTP", "IMAP", "ICMP", "ARP",
    "DHCP", "NTP", "BGP", "OSPF", "SNMP", "LDAP", "NFS", "SMB", "RDP", "VPN", "LAN", "WAN", "VLAN", "NAT", "QUIC",
    "MQTT", "AMQP", "REST", "SOAP", "API", "SDK", "CLI", "GUI", "IDE", "SQL", "JSON", "XML", "YAML", "CSV", "HTML",
    "CSS", "PDF", "PNG", "JPEG", "SVG", "UTF", "ASCII", "CPU", "GPU", "TPU", "RAM", "ROM", "SSD", "HDD", "USB",
    "HDMI", "BIOS", "UEFI", "RAID", "NAS", "SAN", "JWT", "SAML", "SSO", "MFA", "OTP", "RSA", "AES", "SHA", "MD5",
    "CI", "CD", "VM", "OS", "UI", "UX", "ML", "AI", "NLP", "OCR", "ETL", "CRM", "ERP", "SLA", "KPI", "FAQ", "URL",
    "URI", "DOM", "CORS", "CSRF", "XSS", "WASM", "gRPC", "IPv4", "IPv6", "LTE", "NFC", "GPS", "RFID", "IoT",
]
ACRONYM_JOINERS = {"en": ["and", "or"], "de": ["und", "oder"], "fr": ["et", "ou"], "es": ["y", "o"],
                   "it": ["e", "o"], "nl": ["en", "of"], "pt": ["e", "ou"]}


def augment(recs, words, rng, title_case=False, acronyms=False):
    """Training-time augmentation against memorising the frames: 25% of the non-entity
    words replaced by a common word of the language or a pronounceable non-word
    (capitalised like the word it replaces, 3% capitalised anyway), filler sentences of common words (sometimes
    with a weekday or month name) before or after the text, and, with `title_case` (--title-case-negatives),
    in 20% of the copies a title-case line of common words and capitalised common phrases
    (CAPITALISED_COMMON), all O, and, with `acronyms` (--acronym-negatives), in 15% of the copies
    a sentence of common words around two or three technical acronyms joined by the
    language's "and"/"or" (TECH_ACRONYMS), all O. Spans move with the text."""
    out = []
    for r in recs:
        lang = r["locale"][:2]
        W = words[lang]
        b = r["text"].encode("utf-8")
        segs, pos = [], 0
        for sp in sorted(r["spans"], key=lambda x: x["start"]):
            segs.append((b[pos:sp["start"]].decode("utf-8"), None))
            segs.append((b[sp["start"]:sp["end"]].decode("utf-8"), sp["type"]))
            pos = sp["end"]
        segs.append((b[pos:].decode("utf-8"), None))

        def repl(m):
            w = m.group(0)
            if rng.random() >= 0.25:
                return w
            n = rng.choice(W) if rng.random() < 0.6 else pseudo_word(rng)
            if w[0].isupper() or rng.random() < 0.03:
                n = n[:1].upper() + n[1:]
            return n

        def filler():
            k = rng.randint(4, 12)
            ws = [rng.choice(W) for _ in range(k)]
            if rng.random() < 0.3:
                import calendar
                extra = {"en": list(calendar.day_name) + list(calendar.month_name)[1:]}.get(lang)
                if extra:
                    ws[rng.randrange(k)] = rng.choice(extra)
            if rng.random() < 0.1:
                j = rng.randrange(k)
                ws[j] = ws[j][:1].upper() + ws[j][1:]
            t = " ".join(ws)
            return t[:1].upper() + t[1:] + rng.choice([".", ".", "!", "?"])

        def headline():
            """A title-case line with no entity: common words, each capitalised, around
            capitalised common phrases ("Write a Poem About Autumn in the Mountains")."""
            ws = [rng.choice(W) for _ in range(rng.randint(2, 7))]
            for _ in range(rng.randint(1, 2)):
                ws.insert(rng.randint(0, len(ws)), rng.choice(CAPITALISED_COMMON[lang]))
            ws = [w if rng.random() < 0.15 else w[:1].upper() + w[1:] for w in ws]
            return " ".join(ws) + rng.choice([".", "", ":", "!", "?"])

        def acronym_sentence():
            """Common words around "TCP and UDP" / "JSON, XML oder YAML" (no entity)."""
            k = rng.randint(2, 3)
            acr = rng.sample(TECH_ACRONYMS, k)
            j = rng.choice(ACRONYM_JOINERS[lang])
            phrase = (", ".join(acr[:-1]) + f" {j} " + acr[-1])
            ws = [rng.choice(W) for _ in range(rng.randint(2, 8))]
            ws.insert(rng.randint(0, len(ws)), phrase)
            t = " ".join(ws)
            return t[:1].upper() + t[1:] + rng.choice([".", ".", "?", ":"])

        segs = [(WORD_RE.sub(repl, t) if typ is None else t, typ) for t, typ in segs]
        if rng.random() < 0.4:
            segs.insert(0, (filler() + rng.choice([" ", "\n"]), None))
        if rng.random() < 0.3:
            segs.append((rng.choice([" ", "\n"]) + filler(), None))
        if title_case and rng.random() < 0.2:
            h = headline()
            if rng.random() < 0.5:
                segs.insert(0, (h + rng.choice([" ", "\n"]), None))
            else:
                segs.append((rng.choice([" ", "\n"]) + h, None))
        if acronyms and rng.random() < 0.15:
            a = acronym_sentence()
            if rng.random() < 0.5:
                segs.insert(0, (a + rng.choice([" ", "\n"]), None))
            else:
                segs.append((rng.choice([" ", "\n"]) + a, None))
        text, spans = b"", []
        for t, typ in segs:
            tb = t.encode("utf-8")
            if typ is not None:
                spans.append({"start": len(text), "end": len(text) + len(tb), "type": typ})
            text += tb
        out.append({"text": text.decode("utf-8"), "spans": spans, "locale": r["locale"]})
    return out


def tokenizer_texts(recs):
    """Training texts with the values of the non-NER types cut out (random keys and
    numbers would fill the vocabulary with fragments)."""
    out = []
    for r in recs:
        b = r["text"].encode("utf-8")
        parts, pos = [], 0
        for sp in sorted(r["spans"], key=lambda x: x["start"]):
            if sp["type"] in NER_TYPES:
                continue
            parts.append(b[pos:sp["start"]])
            pos = sp["end"]
        parts.append(b[pos:])
        out.append(b" ".join(parts).decode("utf-8", "ignore"))
    return out


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# --------------------------------------------------------------------------- tokenizer


def train_wordpiece_vocab(texts, vocab_size, pre_tok, min_frequency=2, limit_alphabet=1000,
                          specials=("[PAD]", "[UNK]"), max_chars=100):
    """Deterministic BPE (ties broken by the pair's strings) with the '##' continuation
    prefix, turned into a WordPiece vocabulary (as models/injection/tiny/train_tiny.py)."""
    wc = collections.Counter()
    for v in texts:
        for w, _ in pre_tok.pre_tokenize_str(v):
            if len(w) <= max_chars:
                wc[w] += 1
    cc = collections.Counter()
    for w, c in wc.items():
        for ch in w:
            cc[ch] += c
    chars = set(sorted(cc, key=lambda ch: (-cc[ch], ch))[:limit_alphabet])
    words, counts = [], []
    alphabet = set()
    for w in sorted(wc):
        if not all(ch in chars for ch in w):
            continue
        sym = [w[0]] + ["##" + ch for ch in w[1:]]
        alphabet.update(sym)
        words.append(sym)
        counts.append(wc[w])
    vocab = list(specials) + sorted(alphabet)
    seen = set(vocab)
    pc = collections.Counter()
    where = collections.defaultdict(set)
    for i, sym in enumerate(words):
        for a, b in zip(sym, sym[1:]):
            pc[(a, b)] += counts[i]
            where[(a, b)].add(i)
    heap = [(-c, p) for p, c in pc.items()]
    heapq.heapify(heap)

    def joined(a, b):
        return a + (b[2:] if b.startswith("##") else b)

    while len(vocab) < vocab_size and heap:
        negc, pair = heapq.heappop(heap)
        c = pc.get(pair, 0)
        if c != -negc:
            if c > 0:
                heapq.heappush(heap, (-c, pair))
            continue
        if c < min_frequency:
            break
        a, b = pair
        new = joined(a, b)
        if new not in seen:
            vocab.append(new)
            seen.add(new)
        changed = collections.Counter()
        for i in sorted(where.pop(pair, ())):
            sym = words[i]
            cnt = counts[i]
            out, j = [], 0
            while j < len(sym):
                if j + 1 < len(sym) and sym[j] == a and sym[j + 1] == b:
                    out.append(new)
                    j += 2
                else:
                    out.append(sym[j])
                    j += 1
            for x, y in zip(sym, sym[1:]):
                pc[(x, y)] -= cnt
                changed[(x, y)] -= cnt
            for x, y in zip(out, out[1:]):
                pc[(x, y)] += cnt
                changed[(x, y)] += cnt
                where[(x, y)].add(i)
            words[i] = out
        pc.pop(pair, None)
        for p2, d in changed.items():
            if p2 == pair:
                continue
            if pc.get(p2, 0) <= 0:
                pc.pop(p2, None)
            elif d > 0:
                heapq.heappush(heap, (-pc[p2], p2))
    return vocab


def train_tokenizer(texts, vocab):
    pre = pre_tokenizers.BertPreTokenizer()
    vocab_list = train_wordpiece_vocab(texts, vocab, pre)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab_list)}, unk_token="[UNK]",
                                     max_input_chars_per_word=100))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(["[PAD]", "[UNK]"])
    assert tok.token_to_id("[PAD]") == 0 and tok.token_to_id("[UNK]") == 1
    return tok


def shape_table(tok):
    """Fixed per-vocabulary shape features (a constant of the ONNX graph)."""
    V = tok.get_vocab_size()
    inv = {i: t for t, i in tok.get_vocab().items()}
    S = np.zeros((V, N_SHAPE), np.float32)
    for i in range(V):
        t = inv[i]
        cont = t.startswith("##") and len(t) > 2
        s = t[2:] if cont else t
        letters = [c for c in s if c.isalpha()]
        S[i, 0] = cont
        S[i, 1] = bool(s) and s[0].isupper()
        S[i, 2] = len(letters) >= 2 and all(c.isupper() for c in letters)
        S[i, 3] = bool(s) and s[0].islower()
        S[i, 4] = any(c.isdigit() for c in s)
        S[i, 5] = bool(s) and not any(c.isalnum() for c in s)
        S[i, 6] = t == "[UNK]"
        S[i, 7] = len(s) >= 4
    S[0] = 0
    return S, [inv[i].startswith("##") and len(inv[i]) > 2 for i in range(V)], [bool(S[i, 5]) for i in range(V)], [bool(S[i, 1]) for i in range(V)], [bool(S[i, 3]) for i in range(V)]


# --------------------------------------------------------------------------- data


def byte_to_char_map(text):
    """byte offset -> char offset (for every char boundary and the end)."""
    m = {}
    b = 0
    for i, ch in enumerate(text):
        m[b] = i
        b += len(ch.encode("utf-8"))
    m[b] = len(text)
    return m


def char_to_byte(text):
    out = [0]
    for ch in text:
        out.append(out[-1] + len(ch.encode("utf-8")))
    return out


FIRST, LAST, COMMON = 1, 2, 4


class WordLists:
    """The committed word lists (as filter/core/src/detect/names.rs reads them):
    names.txt `name<TAB>flags` (F first name, L surname, C also a common word; lines
    without F or L are skipped, duplicates merged) and common-en.txt (lower case)."""

    def __init__(self, folder=HERE):
        self.names = {}
        with open(os.path.join(folder, "names.txt"), encoding="utf-8") as f:
            for line in f.read().split("\n"):
                name, tab, flags = line.partition("\t")
                if not tab or not name:
                    continue
                fl = 0
                for c in flags:
                    fl |= {"F": FIRST, "L": LAST, "C": COMMON}.get(c, 0)
                if fl & (FIRST | LAST):
                    self.names[name] = self.names.get(name, 0) | fl
        with open(os.path.join(folder, "common-en.txt"), encoding="utf-8") as f:
            self.common_en = {w for w in f.read().split("\n") if w}

    def lookup(self, word):
        """Flags of `word` (any case); words of fewer than 2 or more than 32 bytes: 0."""
        n = len(word.encode("utf-8"))
        if n > 32 or n < 2:
            return 0
        return self.names.get(word.lower(), 0)

    def in_common_en(self, word):
        n = len(word.encode("utf-8"))
        return 3 <= n <= 32 and word.lower() in self.common_en

    def word_feats(self, word):
        """[listed first name, listed surname, listed name that is also a common word]
        for a capitalised word (first character upper case), and [common English word]
        for any word."""
        f = [0.0] * N_WORD_FEATS
        if word[:1].isupper():
            fl = self.lookup(word)
            f[0] = float(fl & FIRST != 0)
            f[1] = float(fl & LAST != 0)
            f[2] = float(fl & COMMON != 0)
        f[3] = float(self.in_common_en(word))
        return f


def word_features(lists, text_b, ids, offs, is_cont):
    """Per token, the features of its word ([len(ids), N_WORD_FEATS] f32) and the word's
    index. A word is a piece that is not a continuation (or the first piece) and the
    continuation pieces after it, its text the bytes from its first piece's start to
    its last piece's end (as ner.rs `word_features`)."""
    n = len(ids)
    wid = np.zeros(n, np.int32)
    starts = []
    for j in range(n):
        if j > 0 and is_cont[ids[j]]:
            wid[j] = len(starts) - 1
        else:
            starts.append(j)
            wid[j] = len(starts) - 1
    feats = np.zeros((n, N_WORD_FEATS), np.float32)
    for k, a in enumerate(starts):
        b = starts[k + 1] if k + 1 < len(starts) else n
        word = text_b[offs[a][0]:offs[b - 1][1]].decode("utf-8", "replace")
        feats[a:b] = lists.word_feats(word)
    return feats, wid


def encode_records(tok, recs, lists, is_cont):
    """ids, byte offsets, BIO label ids (NER types only), word features and word
    indices of every record."""
    encs = tok.encode_batch([r["text"] for r in recs], add_special_tokens=False)
    out = []
    lab = {l: i for i, l in enumerate(LABELS)}
    for r, e in zip(recs, encs):
        c2b = char_to_byte(r["text"])
        offs = [(c2b[a], c2b[b]) for a, b in e.offsets]
        y = np.zeros(len(e.ids), np.int32)
        for sp in r["spans"]:
            if sp["type"] not in NER_TYPES:
                continue
            first = True
            for j, (a, b) in enumerate(offs):
                if a >= sp["start"] and b <= sp["end"] and b > a:
                    y[j] = lab[("B-" if first else "I-") + sp["type"]]
                    first = False
        ids = np.array(e.ids, np.int32)
        feats, wid = word_features(lists, r["text"].encode("utf-8"), ids, offs, is_cont)
        out.append((ids, offs, y, feats, wid))
    return out


def windows(ids, is_cont, max_windows=1 << 30):
    """Windows of <= MAXLEN tokens that do not cut a word (as ner.rs)."""
    n = len(ids)
    out = []
    start = 0
    while start < n and len(out) < max_windows:
        end = min(start + MAXLEN, n)
        if end < n:
            e = end
            while e > start + 1 and is_cont[ids[e]]:
                e -= 1
            if e > start + 1 or not is_cont[ids[e]]:
                end = e
        out.append((start, end))
        start = end
    return out


# --------------------------------------------------------------------------- model


def init_params(cfg, V, seed):
    key = jax.random.PRNGKey(seed)
    ks = iter(jax.random.split(key, 32))
    n = lambda shape, s: np.asarray(jax.random.normal(next(ks), shape) * s, dtype=np.float32)  # noqa: E731
    E, H = cfg["emb"], cfg["hidden"]
    p = {"tok": n((V, E), 0.1), "proj_w": n((E + N_SHAPE, H), 1 / np.sqrt(E + N_SHAPE)),
         "proj_b": np.zeros(H, np.float32), "feat_w": n((N_WORD_FEATS, H), 1 / np.sqrt(N_WORD_FEATS))}
    for i, _ in enumerate(cfg["dilations"]):
        p[f"c{i}_w"] = n((H, H, 3), np.sqrt(1.0 / (H * 3)))
        p[f"c{i}_b"] = np.zeros(H, np.float32)
    p["head_w"] = n((2 * H, len(LABELS)), 1 / np.sqrt(2 * H))
    p["head_b"] = np.zeros(len(LABELS), np.float32)
    return {k: jnp.asarray(v) for k, v in p.items()}


def forward(p, shape, ids, feats, mask, cfg, train=False, key=None):
    """ids, mask: [B, L], feats: [B, L, N_WORD_FEATS] -> logits [B, L, n_labels]. Padded
    positions are zero before every convolution, as the ONNX graph's zero padding beyond
    the sequence end. (Feature dropout is applied per word by the caller, `pad`.)"""
    keys = iter(jax.random.split(key, 16)) if train else None
    m = mask[..., None]
    eid = ids
    if train and cfg["worddrop"] > 0:
        drop = jax.random.bernoulli(next(keys), cfg["worddrop"], ids.shape) & (mask > 0)
        eid = jnp.where(drop, 1, ids)
    x = jnp.concatenate([p["tok"][eid], shape[ids]], axis=-1)
    x = jax.nn.relu(x @ p["proj_w"] + feats @ p["feat_w"] + p["proj_b"]) * m
    x0 = x
    for i, d in enumerate(cfg["dilations"]):
        xc = x.transpose(0, 2, 1)
        y = jax.lax.conv_general_dilated(xc, p[f"c{i}_w"], (1,), [(d, d)], rhs_dilation=(d,),
                                         dimension_numbers=("NCH", "OIH", "NCH"))
        y = jax.nn.relu(y + p[f"c{i}_b"][None, :, None]).transpose(0, 2, 1)
        if train and cfg["dropout"] > 0:
            keep = jax.random.bernoulli(next(keys), 1 - cfg["dropout"], y.shape)
            y = jnp.where(keep, y / (1 - cfg["dropout"]), 0.0)
        x = (x + y) * m
    h = jnp.concatenate([x, x0], axis=-1)
    return h @ p["head_w"] + p["head_b"]


def bucket_len(n):
    for b in (16, 32, 48, 64, 96, 128):
        if n <= b:
            return b
    return MAXLEN


def make_items(enc, is_cont):
    items = []
    for ids, _, y, feats, wid in enc:
        for a, b in windows(ids, is_cont):
            items.append((ids[a:b], y[a:b], feats[a:b], wid[a:b] - wid[a]))
    return items


def pad(items, L, bs, featdrop=0.0, rng=None):
    """A batch; with `featdrop`, each word's features are zeroed with that probability."""
    ids = np.zeros((bs, L), np.int32)
    y = np.zeros((bs, L), np.int32)
    feats = np.zeros((bs, L, N_WORD_FEATS), np.float32)
    mask = np.zeros((bs, L), np.float32)
    for i, (a, b, f, wid) in enumerate(items):
        ids[i, :len(a)] = a
        y[i, :len(b)] = b
        if featdrop > 0 and len(a):
            keep = rng.random_sample(int(wid[-1]) + 1) >= featdrop
            f = f * keep[wid][:, None]
        feats[i, :len(a)] = f
        mask[i, :len(a)] = 1
    return ids, y, feats, mask


class Predictor:
    def __init__(self, cfg, shape):
        self.fn = jax.jit(lambda p, ids, feats, mask: forward(p, shape, ids, feats, mask, cfg))

    def logits(self, p, seqs, bs=64):
        """seqs: (ids, feats) per window."""
        out = [None] * len(seqs)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            L = bucket_len(max(len(seqs[i][0]) for i in idx))
            ids, _, feats, mask = pad([(seqs[i][0], seqs[i][0], seqs[i][1], None) for i in idx], L, bs)
            z = np.asarray(self.fn(p, ids, feats, mask))
            for k, i in enumerate(idx):
                out[i] = z[k, :len(seqs[i][0])]
        return out


def train_model(cfg, train_recs, tok, is_cont, shape, seed, lists, dev_eval=None, words=None, title_case=False,
                acronyms=False):
    """Each epoch sees the original training texts and one fresh augmented copy."""
    rng = np.random.RandomState(seed)
    V = shape.shape[0]
    p = init_params(cfg, V, seed)
    shape_j = jnp.asarray(shape)
    base = make_items(encode_records(tok, train_recs, lists, is_cont), is_cont)

    def epoch_items(ep):
        if not words:
            return base
        aug = augment(train_recs, words, random.Random(f"{seed}:aug:{ep}"), title_case, acronyms)
        return base + make_items(encode_records(tok, aug, lists, is_cont), is_cont)

    items = epoch_items(0)
    steps = cfg["epochs"] * (len(items) // cfg["batch"] + 8)
    sched = optax.warmup_cosine_decay_schedule(0.0, cfg["lr"], min(300, steps // 10), steps, cfg["lr"] * 0.02)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, weight_decay=cfg["wd"]))
    state = opt.init(p)

    def loss_fn(p, ids, y, feats, mask, key):
        z = forward(p, shape_j, ids, feats, mask, cfg, train=True, key=key)
        ll = optax.softmax_cross_entropy_with_integer_labels(z, y)
        return jnp.sum(ll * mask) / jnp.maximum(jnp.sum(mask), 1.0)

    @jax.jit
    def step(p, state, ids, y, feats, mask, key):
        loss, g = jax.value_and_grad(loss_fn)(p, ids, y, feats, mask, key)
        upd, state = opt.update(g, state, p)
        return optax.apply_updates(p, upd), state, loss

    key = jax.random.PRNGKey(seed + 1)
    history = []
    best = None
    t0 = time.time()
    for ep in range(cfg["epochs"]):
        if ep > 0:
            items = epoch_items(ep)
        order = rng.permutation(len(items))
        by_b = collections.defaultdict(list)
        for j in order:
            by_b[bucket_len(len(items[j][0]))].append(j)
        batches = []
        for L in sorted(by_b):
            js = by_b[L]
            for s in range(0, len(js), cfg["batch"]):
                batches.append((L, js[s:s + cfg["batch"]]))
        rng.shuffle(batches)
        losses = []
        for L, js in batches:
            ids, y, feats, mask = pad([items[j] for j in js], L, cfg["batch"], cfg.get("featdrop", 0.0), rng)
            key, sk = jax.random.split(key)
            p, state, loss = step(p, state, ids, y, feats, mask, sk)
            losses.append(float(loss))
        rec = {"epoch": ep + 1, "loss": round(float(np.mean(losses)), 5), "seconds": round(time.time() - t0)}
        if dev_eval is not None:
            m = dev_eval(p)
            rec["dev_f1"] = m["micro"]["f1"]
            rec["dev"] = {t: m[t]["f1"] for t in NER_TYPES}
            if best is None or rec["dev_f1"] > best[0]:
                best = (rec["dev_f1"], ep + 1, {k: np.asarray(v) for k, v in p.items()})
        history.append(rec)
        log(f"  epoch {rec}")
    if best is None:
        return {k: np.asarray(v) for k, v in p.items()}, history, cfg["epochs"]
    return best[2], history, best[1]


# --------------------------------------------------------------------------- decoding (= ner.rs)


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def decode(text_b, ids, offs, logits, is_cont, is_punct, is_cap, is_low, min_score=0.0):
    """Word pieces -> words (a word starts at a non-continuation piece); a word's label
    distribution is the mean of its pieces' softmax, its label the argmax. Words ->
    entities: B- starts an entity, I- continues the current one whatever its type (and
    starts one after O or across a line break); the entity's type is the type with the
    highest sum of its words' probabilities. Punctuation words at the start and
    lower-case words at the end are dropped; an entity without a capitalised word is
    dropped; score = mean probability of the entity's words for its type."""
    pr = softmax(np.asarray(logits, np.float64))
    words = []  # [start, end, prob sum over pieces, pieces, punct, capitalised, lower]
    for j in range(len(ids)):
        if j > 0 and is_cont[ids[j]] and words:
            words[-1][1] = offs[j][1]
            words[-1][2] = words[-1][2] + pr[j]
            words[-1][3] += 1
            continue
        i = ids[j]
        words.append([offs[j][0], offs[j][1], pr[j].copy(), 1, bool(is_punct[i]), bool(is_cap[i]), bool(is_low[i])])
    ents = []
    cur = None
    prev_end = None
    for w in words:
        dist = w[2] / w[3]
        lab = LABELS[int(np.argmax(dist))]
        brk = prev_end is not None and b"\n" in text_b[prev_end:w[0]]
        prev_end = w[1]
        if lab == "O":
            if cur:
                ents.append(cur)
            cur = None
            continue
        if cur is not None and lab.startswith("I-") and not brk:
            cur.append((w, dist))
        else:
            if cur:
                ents.append(cur)
            cur = [(w, dist)]
    if cur:
        ents.append(cur)
    out = []
    for ws in ents:
        while ws and ws[0][0][4]:
            ws = ws[1:]
        while ws and ws[-1][0][6]:
            ws = ws[:-1]
        if not ws or not any(w[5] for w, _ in ws):
            continue
        per_type = [sum(d[LABELS.index("B-" + t)] + d[LABELS.index("I-" + t)] for _, d in ws) for t in NER_TYPES]
        ti = int(np.argmax(per_type))
        sc = float(per_type[ti] / len(ws))
        if sc >= min_score:
            out.append({"type": NER_TYPES[ti], "start": ws[0][0][0], "end": ws[-1][0][1], "score": sc})
    return out


def is_upper_start(w):
    return bool(w) and w[0].isupper()


def worth_running(text):
    """The cheap gate (as ner.rs): a capitalised word that does not start a sentence.
    Words are maximal runs of alphanumeric characters; a word starts a sentence when it
    is the text's first word or the previous non-space character is one of . ! ? : or a
    newline lies between them."""
    prev = None  # previous non-space char before the current word
    newline = True
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isalnum():
            j = i
            while j < n and text[j].isalnum():
                j += 1
            starts_sentence = prev is None or newline or prev in ".!?:"
            if ch.isupper() and not starts_sentence and any(c.islower() for c in text[i + 1:j]):
                return True
            prev = text[j - 1]
            newline = False
            i = j
            continue
        if ch == "\n":
            newline = True
        elif not ch.isspace():
            prev = ch
            newline = False if ch not in "\r" else newline
        i += 1
    return False


def predict_spans(pred, p, recs, enc, is_cont, is_punct, is_cap, is_low, min_score=0.0):
    seqs, owner = [], []
    for i, (ids, offs, _, feats, _) in enumerate(enc):
        for a, b in windows(ids, is_cont):
            seqs.append((ids[a:b], feats[a:b]))
            owner.append((i, a, b))
    lg = pred.logits(p, seqs) if seqs else []
    out = [[] for _ in enc]
    for z, (i, a, b) in zip(lg, owner):
        ids, offs = enc[i][0], enc[i][1]
        out[i].extend(decode(recs[i]["text"].encode("utf-8"), ids[a:b], offs[a:b], z, is_cont, is_punct, is_cap, is_low, min_score))
    return out


def evaluate(recs, pred_spans, gate=None):
    """Exact-match entity P/R/F1 per NER type (byte spans)."""
    c = {t: collections.Counter() for t in NER_TYPES}
    for k, (r, ps) in enumerate(zip(recs, pred_spans)):
        if gate is not None and not gate[k]:
            ps = []
        gold = {(s["type"], s["start"], s["end"]) for s in r["spans"] if s["type"] in NER_TYPES}
        got = {(s["type"], s["start"], s["end"]) for s in ps}
        for t in NER_TYPES:
            g = {x for x in gold if x[0] == t}
            h = {x for x in got if x[0] == t}
            c[t]["tp"] += len(g & h)
            c[t]["fp"] += len(h - g)
            c[t]["fn"] += len(g - h)
    out = {}
    tot = collections.Counter()
    for t in NER_TYPES + ["micro"]:
        x = c[t] if t != "micro" else tot
        if t != "micro":
            tot.update(c[t])
        pr = x["tp"] / max(1, x["tp"] + x["fp"])
        rc = x["tp"] / max(1, x["tp"] + x["fn"])
        f1 = 2 * pr * rc / max(1e-9, pr + rc)
        out[t] = {"precision": round(pr, 4), "recall": round(rc, 4), "f1": round(f1, 4), "tp": x["tp"],
                  "fp": x["fp"], "fn": x["fn"]}
    return out


def overlap_recall(recs, pred_spans, t):
    """Share of gold spans of type t that some predicted span of type t overlaps."""
    n = hit = 0
    for r, ps in zip(recs, pred_spans):
        for s in r["spans"]:
            if s["type"] != t:
                continue
            n += 1
            hit += any(q["type"] == t and q["start"] < s["end"] and s["start"] < q["end"] for q in ps)
    return round(hit / max(1, n), 4)


# --------------------------------------------------------------------------- ONNX export


class G:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op, ins, out=None, **attrs):
        self.n += 1
        out = out or f"{op.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op, ins, [out], name=f"n{self.n}_{op}", **attrs))
        return out


def export_onnx(p, shape, cfg, path):
    g = G()
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "seq"]),
              helper.make_tensor_value_info("word_feats", TensorProto.FLOAT, [1, "seq", N_WORD_FEATS])]
    e = g.op("Gather", [g.const("tok", f32(p["tok"])), "input_ids"], axis=0)  # [1, L, E]
    s = g.op("Gather", [g.const("shape", f32(shape)), "input_ids"], axis=0)  # [1, L, F]
    x = g.op("Concat", [e, s], axis=-1)
    x = g.op("Add", [g.op("MatMul", [x, g.const("proj_w", f32(p["proj_w"]))]),
                     g.op("MatMul", ["word_feats", g.const("feat_w", f32(p["feat_w"]))])])
    x = g.op("Relu", [g.op("Add", [x, g.const("proj_b", f32(p["proj_b"]))])])
    x0 = x
    xc = g.op("Transpose", [x], perm=[0, 2, 1])  # [1, H, L]
    for i, d in enumerate(cfg["dilations"]):
        y = g.op("Conv", [xc, g.const(f"c{i}_w", f32(p[f"c{i}_w"])), g.const(f"c{i}_b", f32(p[f"c{i}_b"]))],
                 kernel_shape=[3], pads=[d, d], strides=[1], dilations=[d])
        xc = g.op("Add", [xc, g.op("Relu", [y])])
    x = g.op("Transpose", [xc], perm=[0, 2, 1])
    h = g.op("Concat", [x, x0], axis=-1)
    z = g.op("MatMul", [h, g.const("head_w", f32(p["head_w"]))])
    g.op("Add", [z, g.const("head_b", f32(p["head_b"]))], out="logits")
    graph = helper.make_graph(g.nodes, "tollgate_pii_ner", inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "seq", len(LABELS)])],
                              g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tollgate-train_ner",
                              ir_version=8)
    model.doc_string = "Tollgate PII NER (PERSON, LOCATION, ORGANIZATION); see MODEL_CARD.md"
    onnx.checker.check_model(model, full_check=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return sorted({n.op_type for n in model.graph.node})


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="target/pii-data")
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--config", default=DEFAULT_CONFIG, choices=sorted(CONFIGS))
    ap.add_argument("--select", action="store_true", help="train every config, keep the best on dev")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--title-case-negatives", action="store_true",
                    help="add title-case lines of capitalised common phrases (CAPITALISED_COMMON) as O")
    ap.add_argument("--acronym-negatives", action="store_true",
                    help="add pairs of technical acronyms joined by and/und/et/... (TECH_ACRONYMS) as O")
    ap.add_argument("--smoke", type=int, default=0,
                    help="a quick check of the pipeline: N texts per split, one epoch (not for a model)")
    args = ap.parse_args()
    t_start = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    out = args.out
    os.makedirs(out, exist_ok=True)
    split = {s: read_jsonl(os.path.join(args.data, f"{s}.jsonl")) for s in ("train", "dev", "test", "hardneg")}
    if args.smoke:
        split = {s: v[:args.smoke] for s, v in split.items()}
        for c in CONFIGS.values():
            c["epochs"] = 1
    log({s: len(v) for s, v in split.items()})

    cfg0 = CONFIGS[args.config]
    words = word_lists()
    aug0 = augment(split["train"], words, random.Random(f"{args.seed}:aug:tok"), args.title_case_negatives,
                   args.acronym_negatives)
    tok = train_tokenizer(tokenizer_texts(split["train"]) + tokenizer_texts(aug0), cfg0["vocab"])
    tok_path = os.path.join(out, "tokenizer.json")
    tok.save(tok_path)
    tok = Tokenizer.from_file(tok_path)
    shape, is_cont, is_punct, is_cap, is_low = shape_table(tok)
    log(f"tokenizer: {tok.get_vocab_size()} entries")
    lists = WordLists()
    log(f"word lists: {len(lists.names)} names, {len(lists.common_en)} common English words")
    enc = {s: encode_records(tok, v, lists, is_cont) for s, v in split.items()}
    ntok = {s: int(np.mean([len(e[0]) for e in v])) for s, v in enc.items()}
    log(f"mean tokens per text: {ntok}")

    names = sorted(CONFIGS) if args.select else [args.config]
    selection = {}
    best = None
    for name in names:
        cfg = CONFIGS[name]
        pred = Predictor(cfg, jnp.asarray(shape))

        def dev_eval(p, pred=pred):
            return evaluate(split["dev"], predict_spans(pred, p, split["dev"], enc["dev"], is_cont, is_punct, is_cap, is_low))

        log(f"training {name}: {cfg}")
        t0 = time.time()
        p, hist, best_ep = train_model(cfg, split["train"], tok, is_cont, shape, args.seed, lists, dev_eval, words,
                                       args.title_case_negatives, args.acronym_negatives)
        dm = dev_eval(p)
        selection[name] = {"cfg": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
                           "history": hist, "best_epoch": best_ep, "dev": dm, "seconds": round(time.time() - t0)}
        log(f"{name}: dev micro F1 {dm['micro']['f1']} (epoch {best_ep})")
        if best is None or dm["micro"]["f1"] > best[0]:
            best = (dm["micro"]["f1"], name, p, pred)
    _, chosen, p, pred = best
    cfg = CONFIGS[chosen]

    # export and check against onnxruntime
    onnx_path = os.path.join(out, "model.onnx")
    ops = export_onnx(p, shape, cfg, onnx_path)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])

    def ortz(ids, feats):
        return sess.run(["logits"], {"input_ids": np.asarray(ids, np.int64)[None],
                                     "word_feats": np.asarray(feats, np.float32)[None]})[0][0]

    maxdiff = 0.0
    for e in enc["dev"][:200]:
        ids, feats = e[0][:MAXLEN], e[3][:MAXLEN]
        if len(ids) == 0:
            continue
        maxdiff = max(maxdiff, float(np.abs(ortz(ids, feats) - pred.logits(p, [(ids, feats)])[0]).max()))
    log(f"onnx vs jax max |diff| {maxdiff:.2e}; ops {ops}; {os.path.getsize(onnx_path)} bytes")
    assert maxdiff < 1e-3

    # the reported figures: onnxruntime logits, the Rust decoding
    def ort_spans(s):
        res = []
        for r, (ids, offs, _, feats, _) in zip(split[s], enc[s]):
            sp = []
            tb = r["text"].encode("utf-8")
            for a, b in windows(ids, is_cont):
                sp.extend(decode(tb, ids[a:b], offs[a:b], ortz(ids[a:b], feats[a:b]), is_cont, is_punct, is_cap,
                                 is_low))
            res.append(sp)
        return res

    results = {}
    gate_stats = {}
    for s in ("dev", "test"):
        ps = ort_spans(s)
        gate = [worth_running(r["text"]) for r in split[s]]
        results[s] = evaluate(split[s], ps)
        results[s + "_gated"] = evaluate(split[s], ps, gate)
        results[s + "_overlap_recall"] = {t: overlap_recall(split[s], ps, t) for t in NER_TYPES}
        has = [any(x["type"] in NER_TYPES for x in r["spans"]) for r in split[s]]
        gate_stats[s] = {"texts": len(gate), "gate_open": int(sum(gate)),
                         "gate_open_with_entities": int(sum(g and h for g, h in zip(gate, has))),
                         "texts_with_entities": int(sum(has)),
                         "gate_open_without_entities": int(sum(g and not h for g, h in zip(gate, has))),
                         "texts_without_entities": int(sum(not h for h in has))}
        if s == "test":
            by_loc = collections.defaultdict(list)
            for k, r in enumerate(split[s]):
                by_loc[r["locale"]].append(k)
            results["test_by_locale"] = {loc: evaluate([split[s][k] for k in ks], [ps[k] for k in ks])["micro"]
                                         for loc, ks in sorted(by_loc.items())}
            examples = []
            for k, r in enumerate(split[s][:400]):
                gold = {(x["type"], x["start"], x["end"]) for x in r["spans"] if x["type"] in NER_TYPES}
                got = {(x["type"], x["start"], x["end"]) for x in ps[k]}
                if gold != got and len(examples) < 15:
                    tb = r["text"].encode("utf-8")
                    examples.append({"text": r["text"][:200],
                                     "missed": [(t, tb[a:b].decode()) for t, a, b in sorted(gold - got)],
                                     "wrong": [(t, tb[a:b].decode()) for t, a, b in sorted(got - gold)]})
            results["test_errors_sample"] = examples
    hn = ort_spans("hardneg")
    results["hardneg"] = {"texts": len(hn), "texts_with_a_span": int(sum(1 for x in hn if x)),
                          "spans": int(sum(len(x) for x in hn)),
                          "spans_by_type": dict(collections.Counter(q["type"] for x in hn for q in x)),
                          "gate_open": int(sum(worth_running(r["text"]) for r in split["hardneg"]))}
    log(f"test: {json.dumps({t: results['test'][t] for t in NER_TYPES + ['micro']})}")
    log(f"test gated: {json.dumps({t: results['test_gated'][t]['recall'] for t in NER_TYPES})}; gate {gate_stats['test']}")
    log(f"hardneg: {results['hardneg']}")

    # vectors: 30 texts from test (ids, logits from onnxruntime, decoded spans)
    vrng = random.Random(f"{args.seed}:vectors")
    lens = [len(e[0]) for e in enc["test"]]
    short = [i for i in range(len(lens)) if 0 < lens[i] <= 32]
    mid = [i for i in range(len(lens)) if 32 < lens[i] <= MAXLEN]
    multi = [i for i in mid if len(split["test"][i]["text"].encode()) != len(split["test"][i]["text"])]
    picks = sorted(set(vrng.sample(short, 10) + vrng.sample(mid, 12) + vrng.sample(multi, 8)))
    with open(os.path.join(out, "vectors.jsonl"), "w", encoding="utf-8") as f:
        for i in picks:
            ids, offs, _, feats, _ = enc["test"][i]
            z = ortz(ids, feats)
            sp = decode(split["test"][i]["text"].encode("utf-8"), ids, offs, z, is_cont, is_punct, is_cap, is_low)
            f.write(json.dumps({"text": split["test"][i]["text"], "ids": [int(v) for v in ids],
                                "word_feats": [[int(v) for v in row] for row in feats],
                                "logits": [[round(float(v), 5) for v in row] for row in z],
                                "spans": [{"label": x["type"], "start": x["start"], "end": x["end"],
                                           "score": round(x["score"], 5)} for x in sp]},
                               ensure_ascii=False) + "\n")
    with open(os.path.join(out, "labels.json"), "w", encoding="utf-8") as f:
        json.dump(LABELS, f)
        f.write("\n")

    n_params = int(sum(np.asarray(v).size for v in p.values()))
    metrics = {
        "model": {"file": "model.onnx", "bytes": os.path.getsize(onnx_path), "config": chosen, "arch": selection[chosen]["cfg"],
                  "parameters": n_params, "shape_features": N_SHAPE, "word_features": N_WORD_FEATS,
                  "feature_dropout": cfg.get("featdrop", 0.0),
                  "options": {"title_case_negatives": args.title_case_negatives,
                              "acronym_negatives": args.acronym_negatives}, "onnx_ops": ops, "opset": 13,
                  "onnx_vs_jax_max_abs_diff": maxdiff, "max_tokens": MAXLEN, "labels": LABELS},
        "tokenizer": {"vocab_size": tok.get_vocab_size(), "model": "WordPiece", "pre_tokenizer": "BertPreTokenizer",
                      "normalizer": None, "post_processor": None, "special_tokens": {"[PAD]": 0, "[UNK]": 1}},
        "data": {s: len(v) for s, v in split.items()}, "mean_tokens_per_text": ntok,
        "results": results, "gate": gate_stats, "selection": selection,
        "env": {"python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__,
                "onnx": onnx.__version__, "onnxruntime": ort.__version__, "tokenizers": tokenizers.__version__,
                "optax": optax.__version__, "seed": args.seed},
        "seconds": round(time.time() - t_start),
    }
    with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=1, ensure_ascii=False)
        f.write("\n")
    sys.path.insert(0, HERE)
    import card_ner
    card_ner.write(out, metrics)
    files = ["model.onnx", "tokenizer.json", "labels.json", "vectors.jsonl"]
    with open(os.path.join(out, "SHA256SUMS"), "w") as f:
        for fn in files:
            f.write(f"{sha256_file(os.path.join(out, fn))}  {fn}\n")
    log(f"done in {metrics['seconds']} s")


if __name__ == "__main__":
    main()
