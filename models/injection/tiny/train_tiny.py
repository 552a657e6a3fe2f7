#!/usr/bin/env python3
"""Train Tollgate's second-stage prompt-injection classifier (tiny transformer -> ONNX).

One command, end to end, CPU only, deterministic for the seed:

    target/tiny-venv/bin/python models/injection/tiny/train_tiny.py \\
        --tollgate target/release/tollgate --out models/injection/tiny/

Needs the splits written by `make model` (target/model-data/{train,dev,test}.jsonl)
and the venv: python3 -m venv target/tiny-venv &&
target/tiny-venv/bin/pip install -r models/injection/tiny/requirements.txt

1. the filter's normalised view of every text, its rule and n-gram scores
   (`tollgate normalize`); the model sees the view only;
2. training-split augmentation: injections embedded in benign documents
   (indirect injection), benign documents concatenated (hard negatives);
3. a WordPiece tokenizer (BertPreTokenizer, no normalizer, no post-processor)
   trained on the training views;
4. the tiny model in JAX on windows of <= 128 tokens (long texts: windows of
   128 tokens, stride 64, the last one aligned to the end; training picks the
   highest-scoring window of a long injection, multiple-instance style);
5. export to ONNX (opset 13) with onnx.helper, check against onnxruntime;
6. combinations with the rule and n-gram scores fitted on dev, evaluation
   on test once, outputs: tokenizer.json model.onnx vectors.jsonl combine.json
   metrics.json MODEL_CARD.md SHA256SUMS.
"""

import argparse
import collections
import hashlib
import heapq
import json
import os
import platform
import random
import subprocess
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import optax  # noqa: E402
import sklearn  # noqa: E402
import tokenizers  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261201
MAXLEN = 128
STRIDE = 64
TARGET_FPR = 0.01
EPS_LN = 1e-5

CONFIGS = {
    # name: architecture settings (all <= 2 layers, hidden 128, 4 heads, FFN 256)
    "tf2": dict(arch="transformer", vocab=8192, emb=64, hidden=128, layers=2, heads=4, ffn=256,
                epochs=6, lr=1e-3, batch=32, dropout=0.2, tokdrop=0.1, wd=0.01),
    "tf1": dict(arch="transformer", vocab=8192, emb=64, hidden=128, layers=1, heads=4, ffn=256,
                epochs=6, lr=1e-3, batch=32, dropout=0.2, tokdrop=0.1, wd=0.01),
    "cnn": dict(arch="cnn", vocab=8192, emb=64, hidden=128, kernels=(3, 5), layers=2,
                epochs=8, lr=1e-3, batch=32, dropout=0.3, tokdrop=0.2, wd=0.01),
}
# The exploration that chose the default (dev only, same data and seed; "stacker_cv" is the
# 5-fold cross-validated logistic stacker of rules, n-gram and tiny on dev, the selection
# criterion; pAUC = standardised partial AUC over FPR 0..2%).
EXPLORED = [
    # tag, arch, vocab, epochs, dropout, tokdrop, tiny AUC, tiny pAUC, tiny TPR@1%, stacker_cv pAUC, stacker_cv TPR@1%
    ("A", "transformer 2L", 8192, 6, 0.2, 0.1, 0.96582, 0.85513, 0.73803, 0.92465, 0.86761),
    ("B", "cnn 2L k3+5", 8192, 6, 0.2, 0.1, 0.97151, 0.87222, 0.77746, 0.92214, 0.85634),
    ("C", "transformer 2L", 4096, 6, 0.2, 0.1, 0.96807, 0.85036, 0.69859, 0.90604, 0.84507),
    ("D", "transformer 2L", 8192, 8, 0.3, 0.2, 0.96724, 0.85985, 0.80282, 0.91631, 0.84789),
    ("E", "cnn 2L k3+5", 8192, 8, 0.3, 0.2, 0.96706, 0.86388, 0.74648, 0.92759, 0.87042),
    ("F", "cnn 2L k3+5", 4096, 6, 0.2, 0.1, 0.96878, 0.85852, 0.74930, 0.91810, 0.84507),
]
DEFAULT_CONFIG = "cnn"  # = exploration run E

# --------------------------------------------------------------------------- data


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def normalize(tollgate, texts):
    payload = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts).encode("utf-8")
    res = subprocess.run([tollgate, "normalize"], input=payload, stdout=subprocess.PIPE, check=True)
    lines = res.stdout.decode("utf-8").splitlines()
    if len(lines) != len(texts):
        sys.exit(f"tollgate normalize returned {len(lines)} lines for {len(texts)} texts")
    return [json.loads(x) for x in lines]


def augment(train, seed):
    """Extra training texts (raw; normalised later like everything else)."""
    rng = random.Random(f"{seed}:augment")
    inj = [r["text"] for r in train if r["label"] == 1 and len(r["text"]) <= 1500]
    ben = [r["text"] for r in train if r["label"] == 0 and len(r["text"]) >= 200]
    ben_short = [r["text"] for r in train if r["label"] == 0]
    out = []
    # indirect injection: an injection inside a benign document, at a sentence or line boundary
    for _ in range(700):
        doc, x = rng.choice(ben), rng.choice(inj)
        cuts = [i + 1 for i, c in enumerate(doc) if c in ".\n"] or [len(doc)]
        c = rng.choice(cuts)
        sep = rng.choice([" ", "\n", "\n\n"])
        out.append({"text": doc[:c] + sep + x + sep + doc[c:], "label": 1, "family": "aug/indirect"})
    # benign hard negatives: two benign texts in one document
    for _ in range(500):
        a, b = rng.choice(ben_short), rng.choice(ben_short)
        out.append({"text": a + rng.choice([" ", "\n", "\n\n"]) + b, "label": 0, "family": "aug/benign-concat"})
    return out


def train_tokenizer(views, vocab):
    """WordPiece on the training views. tokenizers' own WordPieceTrainer breaks ties
    between equally frequent pairs by hash-map order (a different vocabulary on every
    run), so the vocabulary is built here by a deterministic BPE (ties broken by the
    pair's strings) and loaded into a plain tokenizers WordPiece model."""
    pre = pre_tokenizers.BertPreTokenizer()
    vocab_list = train_wordpiece_vocab(views, vocab, pre)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab_list)}, unk_token="[UNK]",
                                     max_input_chars_per_word=100))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(["[PAD]", "[UNK]"])
    assert tok.token_to_id("[PAD]") == 0 and tok.token_to_id("[UNK]") == 1
    assert tok.get_vocab_size() == len(vocab_list)
    return tok


def train_wordpiece_vocab(views, vocab_size, pre_tok, min_frequency=2, limit_alphabet=1000, specials=("[PAD]", "[UNK]"),
                          max_chars=100):
    """Deterministic BPE (ties broken by the pair's strings) with the '##' continuation
    prefix, turned into a WordPiece vocabulary like tokenizers' WordPieceTrainer does."""
    wc = collections.Counter()
    for v in views:
        for w, _ in pre_tok.pre_tokenize_str(v):
            if len(w) <= max_chars:
                wc[w] += 1
    cc = collections.Counter()
    for w, c in wc.items():
        for ch in w:
            cc[ch] += c
    chars = sorted(cc, key=lambda ch: (-cc[ch], ch))[:limit_alphabet]
    chars = set(chars)
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


def encode(tok, views):
    return [np.array(e.ids, dtype=np.int32) for e in tok.encode_batch(views, add_special_tokens=False)]


def windows(ids):
    """Windows of <= MAXLEN tokens: starts 0, STRIDE, 2*STRIDE, ... and a last one aligned to the end."""
    n = len(ids)
    if n == 0:
        return [np.array([1], dtype=np.int32)]  # empty view: one [UNK]
    if n <= MAXLEN:
        return [ids]
    starts = list(range(0, n - MAXLEN, STRIDE)) + [n - MAXLEN]
    return [ids[s:s + MAXLEN] for s in starts]


# --------------------------------------------------------------------------- model (JAX)


def init_params(cfg, seed):
    key = jax.random.PRNGKey(seed)
    ks = iter(jax.random.split(key, 64))
    n = lambda shape, s=0.02: np.asarray(jax.random.normal(next(ks), shape) * s, dtype=np.float32)  # noqa: E731
    z = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    o = lambda *shape: np.ones(shape, np.float32)  # noqa: E731
    V, E, H = cfg["vocab"], cfg["emb"], cfg["hidden"]
    p = {"tok": n((V, E)), "proj_w": n((E, H), 1 / np.sqrt(E)), "proj_b": z(H)}
    if cfg["arch"] == "transformer":
        F = cfg["ffn"]
        p["pos"] = n((MAXLEN, H))
        p["ln_e_g"], p["ln_e_b"] = o(H), z(H)
        for i in range(cfg["layers"]):
            for nm in ("q", "k", "v", "o"):
                p[f"l{i}_{nm}_w"], p[f"l{i}_{nm}_b"] = n((H, H), 1 / np.sqrt(H)), z(H)
            p[f"l{i}_ln1_g"], p[f"l{i}_ln1_b"] = o(H), z(H)
            p[f"l{i}_ln2_g"], p[f"l{i}_ln2_b"] = o(H), z(H)
            p[f"l{i}_f1_w"], p[f"l{i}_f1_b"] = n((H, F), 1 / np.sqrt(H)), z(F)
            p[f"l{i}_f2_w"], p[f"l{i}_f2_b"] = n((F, H), 1 / np.sqrt(F) / np.sqrt(2 * cfg["layers"])), z(H)
        p["ln_f_g"], p["ln_f_b"] = o(H), z(H)
    else:
        cin = H
        for i in range(cfg["layers"]):
            for k in cfg["kernels"]:
                p[f"c{i}_{k}_w"] = n((H // len(cfg["kernels"]), cin, k), np.sqrt(2.0 / (cin * k)))
                p[f"c{i}_{k}_b"] = z(H // len(cfg["kernels"]))
            cin = H
    p["cls_w"], p["cls_b"] = n((2 * H, 1), 1 / np.sqrt(2 * H)), z(1)
    return {k: jnp.asarray(v) for k, v in p.items()}


def layernorm(x, g, b):
    m = jnp.mean(x, axis=-1, keepdims=True)
    d = x - m
    v = jnp.mean(d * d, axis=-1, keepdims=True)
    return d / jnp.sqrt(v + EPS_LN) * g + b


def gelu(x):
    return 0.5 * x * (1.0 + jax.lax.erf(x / np.float32(np.sqrt(2.0))))


def dropout(x, rate, key, train):
    if not train or rate == 0:
        return x
    keep = jax.random.bernoulli(key, 1 - rate, x.shape)
    return jnp.where(keep, x / (1 - rate), 0.0)


def forward(p, ids, mask, cfg, train=False, key=None):
    """ids, mask: [B, L]; returns logits [B]. Padding (mask 0) never reaches a
    real position, so a padded row scores exactly like the unpadded sequence."""
    B, L = ids.shape
    keys = iter(jax.random.split(key, 24)) if train else iter([None] * 24)
    rate = cfg["dropout"]
    m = mask[..., None]
    if train and cfg.get("tokdrop", 0) > 0:  # word dropout: a random share of the tokens becomes [UNK]
        drop = jax.random.bernoulli(next(keys), cfg["tokdrop"], ids.shape) & (mask > 0)
        ids = jnp.where(drop, 1, ids)
    x = p["tok"][ids] @ p["proj_w"] + p["proj_b"]
    H = cfg["hidden"]
    if cfg["arch"] == "transformer":
        nh = cfg["heads"]
        dh = H // nh
        x = x + p["pos"][:L][None]
        x = layernorm(x, p["ln_e_g"], p["ln_e_b"])
        x = dropout(x, rate, next(keys), train)
        neg = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(cfg["layers"]):
            h = layernorm(x, p[f"l{i}_ln1_g"], p[f"l{i}_ln1_b"])
            q = (h @ p[f"l{i}_q_w"] + p[f"l{i}_q_b"]).reshape(B, L, nh, dh).transpose(0, 2, 1, 3)
            k = (h @ p[f"l{i}_k_w"] + p[f"l{i}_k_b"]).reshape(B, L, nh, dh).transpose(0, 2, 3, 1)
            v = (h @ p[f"l{i}_v_w"] + p[f"l{i}_v_b"]).reshape(B, L, nh, dh).transpose(0, 2, 1, 3)
            s = (q @ k) / np.float32(np.sqrt(dh)) + neg
            a = jax.nn.softmax(s, axis=-1)
            c = (a @ v).transpose(0, 2, 1, 3).reshape(B, L, H)
            x = x + dropout(c @ p[f"l{i}_o_w"] + p[f"l{i}_o_b"], rate, next(keys), train)
            h = layernorm(x, p[f"l{i}_ln2_g"], p[f"l{i}_ln2_b"])
            f = gelu(h @ p[f"l{i}_f1_w"] + p[f"l{i}_f1_b"]) @ p[f"l{i}_f2_w"] + p[f"l{i}_f2_b"]
            x = x + dropout(f, rate, next(keys), train)
        x = layernorm(x, p["ln_f_g"], p["ln_f_b"])
    else:
        x = jax.nn.relu(x) * m
        for i in range(cfg["layers"]):
            xc = x.transpose(0, 2, 1)  # [B, C, L]
            outs = []
            for kk in cfg["kernels"]:
                y = jax.lax.conv_general_dilated(xc, p[f"c{i}_{kk}_w"], (1,), [(kk // 2, kk // 2)],
                                                 dimension_numbers=("NCH", "OIH", "NCH"))
                outs.append(y + p[f"c{i}_{kk}_b"][None, :, None])
            y = jnp.concatenate(outs, axis=1).transpose(0, 2, 1)
            x = jax.nn.relu(y) * m
            x = dropout(x, rate, next(keys), train) * m
    mean = jnp.sum(x * m, axis=1) / jnp.sum(m, axis=1)
    mx = jnp.max(jnp.where(m > 0, x, -1e9), axis=1)
    pooled = jnp.concatenate([mean, mx], axis=-1)
    pooled = dropout(pooled, rate, next(keys), train)
    return (pooled @ p["cls_w"] + p["cls_b"])[:, 0]


def bucket_len(n):
    for b in (16, 32, 64, 128):
        if n <= b:
            return b
    return MAXLEN


def pad_batch(seqs, L):
    ids = np.zeros((len(seqs), L), np.int32)
    mask = np.zeros((len(seqs), L), np.float32)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    return ids, mask


class Scorer:
    def __init__(self, cfg):
        self.cfg = cfg
        self.fn = jax.jit(lambda p, ids, mask: jax.nn.sigmoid(forward(p, ids, mask, cfg)))

    def windows_probs(self, p, wins, bs=64):
        out = np.zeros(len(wins), np.float64)
        order = sorted(range(len(wins)), key=lambda i: len(wins[i]))
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            L = bucket_len(max(len(wins[i]) for i in idx))
            ids, mask = pad_batch([wins[i] for i in idx], L)
            if len(idx) < bs:  # fixed batch shape: fewer compilations
                ids = np.concatenate([ids, np.zeros((bs - len(idx), L), np.int32)])
                mask = np.concatenate([mask, np.zeros((bs - len(idx), L), np.float32)])
                mask[len(idx):, 0] = 1
            pr = np.asarray(self.fn(p, ids, mask), dtype=np.float64)
            out[idx] = pr[:len(idx)]
        return out

    def text_probs(self, p, enc):
        wins, owner = [], []
        for i, ids in enumerate(enc):
            for w in windows(ids):
                wins.append(w)
                owner.append(i)
        pw = self.windows_probs(p, wins)
        out = np.zeros(len(enc))
        np.maximum.at(out, np.array(owner), pw)
        return out, wins, np.array(owner), pw


def train_model(cfg, enc_tr, y_tr, seed, log, enc_dev=None, y_dev=None):
    rng = np.random.RandomState(seed)
    p = init_params(cfg, seed)
    scorer = Scorer(cfg)
    wins_per_text = [windows(e) for e in enc_tr]
    n_pos = float(np.sum(y_tr == 1))
    n_neg = float(np.sum(y_tr == 0))
    w_pos, w_neg = len(y_tr) / (2 * n_pos), len(y_tr) / (2 * n_neg)
    # steps: one window per injection text, up to 2 per benign text, per epoch
    per_epoch = sum(1 if y == 1 else min(2, len(w)) for w, y in zip(wins_per_text, y_tr))
    steps = cfg["epochs"] * ((per_epoch + cfg["batch"] - 1) // cfg["batch"] + 4)
    sched = optax.warmup_cosine_decay_schedule(0.0, cfg["lr"], min(300, steps // 10), steps, cfg["lr"] * 0.02)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, weight_decay=cfg["wd"]))
    state = opt.init(p)

    def loss_fn(p, ids, mask, y, w, key):
        z = forward(p, ids, mask, cfg, train=True, key=key)
        ll = optax.sigmoid_binary_cross_entropy(z, y)
        return jnp.sum(ll * w) / jnp.sum(w)

    @jax.jit
    def step(p, state, ids, mask, y, w, key):
        loss, g = jax.value_and_grad(loss_fn)(p, ids, mask, y, w, key)
        upd, state = opt.update(g, state, p)
        return optax.apply_updates(p, upd), state, loss

    key = jax.random.PRNGKey(seed + 1)
    long_pos = [i for i, (w, y) in enumerate(zip(wins_per_text, y_tr)) if y == 1 and len(w) > 1]
    choice = {i: int(rng.randint(len(wins_per_text[i]))) for i in long_pos}
    history = []
    t0 = time.time()
    for ep in range(cfg["epochs"]):
        if ep >= 1 and long_pos:
            # multiple-instance step: a long injection trains on its highest-scoring window
            flat = [w for i in long_pos for w in wins_per_text[i]]
            own = [i for i in long_pos for _ in wins_per_text[i]]
            pw = scorer.windows_probs(p, flat)
            off = 0
            for i in long_pos:
                nw = len(wins_per_text[i])
                choice[i] = int(np.argmax(pw[off:off + nw]))
                off += nw
        items = []
        for i, (ws, y) in enumerate(zip(wins_per_text, y_tr)):
            if y == 1:
                items.append((ws[choice.get(i, 0)], 1.0, w_pos))
            else:
                pick = rng.permutation(len(ws))[:2]
                for j in pick:
                    items.append((ws[j], 0.0, w_neg / len(pick)))
        order = rng.permutation(len(items))
        # length-bucketed batches (shuffled within and across buckets)
        by_b = collections.defaultdict(list)
        for j in order:
            by_b[bucket_len(len(items[j][0]))].append(j)
        batches = []
        for L, js in by_b.items():
            for s in range(0, len(js), cfg["batch"]):
                batches.append((L, js[s:s + cfg["batch"]]))
        rng.shuffle(batches)
        losses = []
        for L, js in batches:
            ids, mask = pad_batch([items[j][0] for j in js], L)
            yy = np.array([items[j][1] for j in js], np.float32)
            ww = np.array([items[j][2] for j in js], np.float32)
            if len(js) < cfg["batch"]:  # pad the batch with zero-weight rows
                k = cfg["batch"] - len(js)
                ids = np.concatenate([ids, np.zeros((k, L), np.int32)])
                m2 = np.zeros((k, L), np.float32)
                m2[:, 0] = 1
                mask = np.concatenate([mask, m2])
                yy = np.concatenate([yy, np.zeros(k, np.float32)])
                ww = np.concatenate([ww, np.zeros(k, np.float32)])
            key, sk = jax.random.split(key)
            p, state, loss = step(p, state, ids, mask, yy, ww, sk)
            losses.append(float(loss))
        rec = {"epoch": ep + 1, "loss": round(float(np.mean(losses)), 5)}
        if enc_dev is not None:
            s, *_ = scorer.text_probs(p, enc_dev)
            rec["dev_auc"] = float(roc_auc_score(y_dev, s))
            rec["dev_pauc2"] = float(roc_auc_score(y_dev, s, max_fpr=0.02))
        history.append(rec)
        log(f"  epoch {rec} ({time.time() - t0:.0f}s)")
    return {k: np.asarray(v) for k, v in p.items()}, history


# --------------------------------------------------------------------------- ONNX export


class G:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op, ins, **attrs):
        self.n += 1
        out = f"{op.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op, ins, [out], name=f"n{self.n}_{op}", **attrs))
        return out


def export_onnx(p, cfg, path):
    g = G()
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    H = cfg["hidden"]

    def ln(x, gn, bn):
        m = g.op("ReduceMean", [x], axes=[-1], keepdims=1)
        d = g.op("Sub", [x, m])
        v = g.op("ReduceMean", [g.op("Mul", [d, d])], axes=[-1], keepdims=1)
        s = g.op("Sqrt", [g.op("Add", [v, "eps"])])
        return g.op("Add", [g.op("Mul", [g.op("Div", [d, s]), g.const(gn, f32(p[gn]))]), g.const(bn, f32(p[bn]))])

    def lin(x, wn, bn):
        return g.op("Add", [g.op("MatMul", [x, g.const(wn, f32(p[wn]))]), g.const(bn, f32(p[bn]))])

    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "seq"])]
    x = g.op("Gather", [g.const("tok", f32(p["tok"])), "input_ids"], axis=0)  # [1, seq, E]
    x = lin(x, "proj_w", "proj_b")
    if cfg["arch"] == "transformer":
        inputs.append(helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "seq"]))
        g.const("eps", np.array(EPS_LN, np.float32))
        nh = cfg["heads"]
        dh = H // nh
        x = g.op("Add", [x, g.op("Gather", [g.const("pos", f32(p["pos"])), "position_ids"], axis=0)])
        x = ln(x, "ln_e_g", "ln_e_b")
        g.const("shape_heads", np.array([1, -1, nh, dh], np.int64))
        g.const("shape_hidden", np.array([1, -1, H], np.int64))
        for i in range(cfg["layers"]):
            h = ln(x, f"l{i}_ln1_g", f"l{i}_ln1_b")
            q = g.op("Transpose", [g.op("Reshape", [lin(h, f"l{i}_q_w", f"l{i}_q_b"), "shape_heads"])], perm=[0, 2, 1, 3])
            k = g.op("Transpose", [g.op("Reshape", [lin(h, f"l{i}_k_w", f"l{i}_k_b"), "shape_heads"])], perm=[0, 2, 3, 1])
            v = g.op("Transpose", [g.op("Reshape", [lin(h, f"l{i}_v_w", f"l{i}_v_b"), "shape_heads"])], perm=[0, 2, 1, 3])
            s = g.op("Div", [g.op("MatMul", [q, k]), g.const(f"sqrt_dh_{i}", np.array(np.sqrt(dh), np.float32))])
            a = g.op("Softmax", [s], axis=-1)
            c = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [a, v])], perm=[0, 2, 1, 3]), "shape_hidden"])
            x = g.op("Add", [x, lin(c, f"l{i}_o_w", f"l{i}_o_b")])
            h = ln(x, f"l{i}_ln2_g", f"l{i}_ln2_b")
            f = lin(h, f"l{i}_f1_w", f"l{i}_f1_b")
            f = g.op("Mul", [g.op("Mul", [f, "half"]),
                             g.op("Add", [g.op("Erf", [g.op("Div", [f, "sqrt2"])]), "one"])])
            x = g.op("Add", [x, lin(f, f"l{i}_f2_w", f"l{i}_f2_b")])
        g.const("half", np.array(0.5, np.float32))
        g.const("one", np.array(1.0, np.float32))
        g.const("sqrt2", np.array(np.sqrt(2.0), np.float32))
        x = ln(x, "ln_f_g", "ln_f_b")
    else:
        x = g.op("Relu", [x])
        for i in range(cfg["layers"]):
            xc = g.op("Transpose", [x], perm=[0, 2, 1])
            outs = []
            for kk in cfg["kernels"]:
                outs.append(g.op("Conv", [xc, g.const(f"c{i}_{kk}_w", f32(p[f"c{i}_{kk}_w"])),
                                          g.const(f"c{i}_{kk}_b", f32(p[f"c{i}_{kk}_b"]))],
                                 kernel_shape=[kk], pads=[kk // 2, kk // 2], strides=[1]))
            y = g.op("Concat", outs, axis=1)
            x = g.op("Relu", [g.op("Transpose", [y], perm=[0, 2, 1])])
    mean = g.op("ReduceMean", [x], axes=[1], keepdims=0)  # [1, H]
    mx = g.op("ReduceMax", [x], axes=[1], keepdims=0)
    pooled = g.op("Concat", [mean, mx], axis=-1)
    z = g.op("Gemm", [pooled, g.const("cls_w", f32(p["cls_w"])), g.const("cls_b", f32(p["cls_b"]))])
    g.nodes.append(helper.make_node("Sigmoid", [z], ["prob"], name="out_Sigmoid"))
    graph = helper.make_graph(g.nodes, "tollgate_tiny_injection", inputs,
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tollgate-train_tiny",
                              ir_version=8)
    model.doc_string = "Tollgate tiny injection classifier; see MODEL_CARD.md"
    onnx.checker.check_model(model, full_check=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return sorted({n.op_type for n in model.graph.node})


class OrtScorer:
    def __init__(self, path, arch):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.arch = arch

    def __call__(self, ids):
        ids = np.asarray(ids, np.int64)[None]
        feed = {"input_ids": ids}
        if self.arch == "transformer":
            feed["position_ids"] = np.arange(ids.shape[1], dtype=np.int64)[None]
        return float(self.s.run(["prob"], feed)[0][0, 0])


# --------------------------------------------------------------------------- metrics and combination


def tpr_at_fpr(y, s, fpr_max):
    fpr, tpr, _ = roc_curve(y, s)
    ok = fpr <= fpr_max + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def threshold_for_fpr(s_benign, fpr_max):
    s = np.sort(s_benign)[::-1]
    k = int(np.floor(fpr_max * len(s)))
    if k >= len(s):
        return 0.0
    return float(np.nextafter(s[k], np.inf))


def summary(y, s, t=None, ran=None):
    d = {"auc": float(roc_auc_score(y, s)), "pauc_fpr_2pct": float(roc_auc_score(y, s, max_fpr=0.02)),
         "tpr_at_fpr_1pct": tpr_at_fpr(y, s, 0.01), "tpr_at_fpr_0.1pct": tpr_at_fpr(y, s, 0.001)}
    if t is not None:
        pred = s >= t
        d["at_dev_threshold"] = {"threshold": float(t), "tpr": float(pred[y == 1].mean()),
                                 "fpr": float(pred[y == 0].mean())}
    if ran is not None:
        d["tiny_ran_fraction"] = float(np.mean(ran))
        d["tiny_ran_fraction_benign"] = float(np.mean(ran[y == 0]))
        d["tiny_ran_fraction_injection"] = float(np.mean(ran[y == 1]))
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in d.items()}


def clip_logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def stack_features(rules, ngram, tiny):
    return np.stack([clip_logit(ngram), clip_logit(tiny), np.asarray(rules, np.float64)], axis=1)


def fit_stacker(rules, ngram, tiny, y, C=1.0):
    m = LogisticRegression(C=C, solver="lbfgs", max_iter=5000, tol=1e-8, class_weight="balanced")
    m.fit(stack_features(rules, ngram, tiny), y)
    return float(m.intercept_[0]), [float(v) for v in m.coef_[0]]


def apply_stacker(w0, w, rules, ngram, tiny):
    z = w0 + stack_features(rules, ngram, tiny) @ np.array(w)
    return 1 / (1 + np.exp(-z))


def noisy_or(*ps):
    q = np.ones_like(np.asarray(ps[0], np.float64))
    for p in ps:
        q = q * (1 - np.asarray(p, np.float64))
    return 1 - q


def cv_stacker_pauc(rules, ngram, tiny, y, seed, folds=5):
    """Out-of-fold stacker scores on dev (for model selection only)."""
    rng = np.random.RandomState(seed)
    f = np.zeros(len(y), int)
    for lab in (0, 1):
        idx = np.where(y == lab)[0]
        rng.shuffle(idx)
        f[idx] = np.arange(len(idx)) % folds
    out = np.zeros(len(y))
    for k in range(folds):
        tr, te = f != k, f == k
        w0, w = fit_stacker(rules[tr], ngram[tr], tiny[tr], y[tr])
        out[te] = apply_stacker(w0, w, rules[te], ngram[te], tiny[te])
    return out


def per_family(fams, y, s, t):
    out = {}
    groups = collections.defaultdict(list)
    for i, f in enumerate(fams):
        groups[f].append(i)
    for k in sorted(groups):
        i = np.array(groups[k])
        d = {"n_pos": int((y[i] == 1).sum()), "n_neg": int((y[i] == 0).sum())}
        if d["n_pos"]:
            d["tpr"] = round(float((s[i][y[i] == 1] >= t).mean()), 4)
        if d["n_neg"]:
            d["fpr"] = round(float((s[i][y[i] == 0] >= t).mean()), 4)
        out[k] = d
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
    ap.add_argument("--tollgate", default=os.path.join(repo, "target", "release", "tollgate"))
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--data", default=os.path.join(repo, "target", "model-data"))
    ap.add_argument("--config", default=DEFAULT_CONFIG, choices=sorted(CONFIGS))
    ap.add_argument("--select", action="store_true",
                    help="train every config in CONFIGS, pick the best by dev pAUC(FPR<=2%%) of the "
                         "cross-validated stacker, then continue with it (slow)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--epochs", type=int, default=None, help="override the config's epochs (debugging)")
    args = ap.parse_args()
    t0 = time.time()
    log = lambda msg: print(f"[{time.time()-t0:.0f}s] {msg}", flush=True)  # noqa: E731
    seed = args.seed
    np.random.seed(seed)
    random.seed(seed)
    tollgate = os.path.abspath(args.tollgate)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    # 1. data and normalised views
    split = {s: read_jsonl(os.path.join(args.data, f"{s}.jsonl")) for s in ("train", "dev", "test")}
    aug = augment(split["train"], seed)
    norm = {}
    for s in ("train", "dev", "test"):
        norm[s] = normalize(tollgate, [r["text"] for r in split[s]])
    norm_aug = normalize(tollgate, [r["text"] for r in aug])
    log(f"normalised: train {len(split['train'])} (+{len(aug)} augmented) dev {len(split['dev'])} "
        f"test {len(split['test'])}")
    views_tr = [d["view"] for d in norm["train"]] + [d["view"] for d in norm_aug]
    y_tr = np.array([r["label"] for r in split["train"]] + [r["label"] for r in aug])
    y = {s: np.array([r["label"] for r in split[s]]) for s in ("dev", "test")}
    views = {s: [d["view"] for d in norm[s]] for s in ("dev", "test")}
    rules = {s: np.array([d["rules"] for d in norm[s]], np.float64) for s in ("dev", "test")}
    ngram = {s: np.array([d["ngram"] for d in norm[s]], np.float64) for s in ("dev", "test")}

    cfg_names = sorted(CONFIGS) if args.select else [args.config]
    selection = {}
    trained = {}
    for name in cfg_names:
        cfg = dict(CONFIGS[name])
        if args.epochs:
            cfg["epochs"] = args.epochs
        # 2. tokenizer on the training views (original + augmented)
        tok = train_tokenizer(views_tr, cfg["vocab"])
        enc_tr = encode(tok, views_tr)
        enc = {s: encode(tok, views[s]) for s in ("dev", "test")}
        ntok = np.array([len(e) for e in enc_tr])
        log(f"[{name}] tokenizer: vocab {tok.get_vocab_size()}, train tokens/text median {int(np.median(ntok))} "
            f"p90 {int(np.percentile(ntok, 90))}, > {MAXLEN}: {np.mean(ntok > MAXLEN):.3f}")
        # 3. model
        p, hist = train_model(cfg, enc_tr, y_tr, seed, log, enc["dev"], y["dev"])
        scorer = Scorer(cfg)
        s_dev, *_ = scorer.text_probs(p, enc["dev"])
        cv = cv_stacker_pauc(rules["dev"], ngram["dev"], s_dev, y["dev"], seed)
        selection[name] = {"cfg": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
                           "dev_tiny": summary(y["dev"], s_dev),
                           "dev_stacker_cv": summary(y["dev"], cv),
                           "dev_noisy_or": summary(y["dev"], noisy_or(rules["dev"], ngram["dev"], s_dev)),
                           "history": hist}
        log(f"[{name}] dev tiny {selection[name]['dev_tiny']} stacker(cv) {selection[name]['dev_stacker_cv']}")
        trained[name] = (cfg, tok, p, enc, s_dev)
    chosen = max(cfg_names, key=lambda n: (selection[n]["dev_stacker_cv"]["pauc_fpr_2pct"],
                                           selection[n]["dev_tiny"]["pauc_fpr_2pct"]))
    cfg, tok, p, enc, s_dev = trained[chosen]
    log(f"chosen config {chosen}")

    # 4. export and verify
    tok_path = os.path.join(out, "tokenizer.json")
    tok.save(tok_path, pretty=False)
    tok2 = Tokenizer.from_file(tok_path)
    assert [e.ids for e in tok2.encode_batch(views["dev"][:200], add_special_tokens=False)] == \
        [list(map(int, e)) for e in enc["dev"][:200]]
    onnx_path = os.path.join(out, "model.onnx")
    ops = export_onnx(p, cfg, onnx_path)
    ortm = OrtScorer(onnx_path, cfg["arch"])
    scorer = Scorer(cfg)
    check_wins = [e[:MAXLEN] if len(e) else np.array([1], np.int32) for e in enc["dev"][:200]]
    rng = np.random.RandomState(seed)
    for L in (1, 7, 128):
        for _ in range(5):
            check_wins.append(rng.randint(2, cfg["vocab"], size=L).astype(np.int32))
    pj = scorer.windows_probs(p, check_wins)
    po = np.array([ortm(w) for w in check_wins])
    maxdiff = float(np.max(np.abs(pj - po)))
    log(f"onnx ops {ops}; max |jax - onnxruntime| over {len(check_wins)} windows: {maxdiff:.2e}")
    assert maxdiff < 1e-4, maxdiff

    # the reported tiny scores come from onnxruntime (what the filter will run)
    def ort_text_probs(encs):
        s = np.zeros(len(encs))
        nw = np.zeros(len(encs), int)
        for i, e in enumerate(encs):
            ws = windows(e)
            s[i] = max(ortm(w) for w in ws)
            nw[i] = len(ws)
        return s, nw

    tiny = {}
    nwin = {}
    for s in ("dev", "test"):
        tiny[s], nwin[s] = ort_text_probs(enc[s])
    log("onnxruntime scores done")

    # 5. vectors: 30 dev texts, mixed labels and lengths, ids truncated to 128
    vec = []
    lens = np.array([len(e) for e in enc["dev"]])
    vrng = random.Random(f"{seed}:vectors")
    pools = [[i for i in range(len(lens)) if y["dev"][i] == lab and cond(lens[i])]
             for lab in (0, 1) for cond in (lambda n: n <= 16, lambda n: 16 < n <= MAXLEN, lambda n: n > MAXLEN)]
    picks = []
    for pool in pools:
        picks += vrng.sample(pool, min(5, len(pool)))
    for i in sorted(picks):
        ids = [int(v) for v in enc["dev"][i][:MAXLEN]] or [1]
        vec.append({"view": views["dev"][i], "ids": ids, "prob": ortm(ids), "label": int(y["dev"][i]),
                    "n_tokens_full": int(lens[i])})
    with open(os.path.join(out, "vectors.jsonl"), "w", encoding="utf-8") as f:
        for v in vec:
            f.write(json.dumps(v, ensure_ascii=False) + "\n")

    # 6. combinations, fitted on dev
    yd, yt = y["dev"], y["test"]
    res = {"dev": {}, "test": {}}
    alone = {"rules": rules, "ngram": ngram, "rules+ngram noisy-OR (shipped)":
             {s: noisy_or(rules[s], ngram[s]) for s in ("dev", "test")}, "tiny": tiny}
    for name, sc in alone.items():
        t = threshold_for_fpr(sc["dev"][yd == 0], TARGET_FPR)
        res["dev"][name] = summary(yd, sc["dev"], t)
        res["test"][name] = summary(yt, sc["test"], t)
    # (a) noisy-OR of all three
    nor = {s: noisy_or(rules[s], ngram[s], tiny[s]) for s in ("dev", "test")}
    t_nor = threshold_for_fpr(nor["dev"][yd == 0], TARGET_FPR)
    res["dev"]["noisy_or"] = summary(yd, nor["dev"], t_nor)
    res["test"]["noisy_or"] = summary(yt, nor["test"], t_nor)
    # (b) logistic stacker
    w0, w = fit_stacker(rules["dev"], ngram["dev"], tiny["dev"], yd)
    stk = {s: apply_stacker(w0, w, rules[s], ngram[s], tiny[s]) for s in ("dev", "test")}
    t_stk = threshold_for_fpr(stk["dev"][yd == 0], TARGET_FPR)
    res["dev"]["stacker"] = summary(yd, stk["dev"], t_stk)
    res["dev"]["stacker_5fold_cv"] = summary(yd, cv_stacker_pauc(rules["dev"], ngram["dev"], tiny["dev"], yd, seed))
    res["test"]["stacker"] = summary(yt, stk["test"], t_stk)
    # (c) cascade: tiny runs only if lo <= ngram <= hi; otherwise tiny := ngram; then the stacker
    def cascade(s, lo, hi):
        ran = (ngram[s] >= lo) & (ngram[s] <= hi)
        tv = np.where(ran, tiny[s], ngram[s])
        return apply_stacker(w0, w, rules[s], ngram[s], tv), ran

    full = res["dev"]["stacker"]
    grid_lo = sorted(set([0.0] + [float(v) for v in np.quantile(ngram["dev"][yd == 0], np.linspace(0, 0.95, 39))]))
    grid_hi = sorted(set([1.0] + [float(v) for v in np.quantile(ngram["dev"][yd == 1], np.linspace(0.3, 1.0, 15))]))
    cands = []
    for lo in grid_lo:
        for hi in grid_hi:
            if hi < lo:
                continue
            sc, ran = cascade("dev", lo, hi)
            t = threshold_for_fpr(sc[yd == 0], TARGET_FPR)
            sm = summary(yd, sc, t, ran)
            cands.append((lo, hi, sm))
    ok = [c for c in cands if c[2]["tpr_at_fpr_1pct"] >= full["tpr_at_fpr_1pct"] - 0.005
          and c[2]["pauc_fpr_2pct"] >= full["pauc_fpr_2pct"] - 0.005]
    lo, hi, _ = min(ok, key=lambda c: (c[2]["tiny_ran_fraction"], -c[2]["pauc_fpr_2pct"]))
    cas = {}
    ran = {}
    for s in ("dev", "test"):
        cas[s], ran[s] = cascade(s, lo, hi)
    t_cas = threshold_for_fpr(cas["dev"][yd == 0], TARGET_FPR)
    res["dev"]["cascade"] = summary(yd, cas["dev"], t_cas, ran["dev"])
    res["test"]["cascade"] = summary(yt, cas["test"], t_cas, ran["test"])
    for s in ("dev", "test"):
        res[s]["stacker"]["tiny_ran_fraction"] = 1.0
        res[s]["noisy_or"]["tiny_ran_fraction"] = 1.0
    log(f"dev: {json.dumps({k: v['tpr_at_fpr_1pct'] for k, v in res['dev'].items()})}")
    log(f"test: {json.dumps({k: v['tpr_at_fpr_1pct'] for k, v in res['test'].items()})}")

    # recommendation: by dev only: the cascade (same formula as the stacker), if it loses
    # (nearly) nothing on dev, else the stacker
    combine = {
        "inputs": {"rules": "rule score 0..1 (first stage)", "ngram": "n-gram model score 0..1 (first stage)",
                   "tiny": "tiny model prob: max over its 128-token windows of the normalised view"},
        "clip": [1e-6, 1 - 1e-6],
        "logit": "logit(p) = ln(p / (1 - p)) of p clipped to `clip`",
        "fitted_on": "dev split only (class-balanced logistic regression, C=1, lbfgs)",
        "threshold_rule": "smallest score with dev FPR <= 1%",
        "noisy_or": {"formula": "1 - (1 - rules) * (1 - ngram) * (1 - tiny)", "threshold": t_nor},
        "stacker": {"formula": "sigmoid(w0 + w1*logit(ngram) + w2*logit(tiny) + w3*rules)",
                    "w0": w0, "w1": w[0], "w2": w[1], "w3": w[2], "threshold": t_stk},
        "cascade": {"formula": "ran = lo <= ngram <= hi; tiny_eff = tiny if ran else ngram; "
                               "score = sigmoid(w0 + w1*logit(ngram) + w2*logit(tiny_eff) + w3*rules)",
                    "lo": lo, "hi": hi, "w0": w0, "w1": w[0], "w2": w[1], "w3": w[2],
                    "when_not_run": "tiny := ngram score", "threshold": t_cas,
                    "band_rule": "smallest dev run fraction whose dev TPR@1%FPR and pAUC(FPR<=2%) are within "
                                 "0.5 points of always running the tiny model"},
        "recommended": "cascade",
        "recommended_threshold": t_cas,
        "results": {"dev": {k: res["dev"][k] for k in ("noisy_or", "stacker", "cascade")},
                    "test": {k: res["test"][k] for k in ("noisy_or", "stacker", "cascade")}},
    }
    with open(os.path.join(out, "combine.json"), "w", encoding="utf-8") as f:
        json.dump(combine, f, indent=2)
        f.write("\n")

    # per family on test
    fams = {s: [r["family"] for r in split[s]] for s in ("dev", "test")}
    n_params = int(sum(np.asarray(v).size for v in p.values()))
    metrics = {
        "model": {"file": "model.onnx", "bytes": os.path.getsize(onnx_path), "sha256": sha256_file(onnx_path),
                  "config": chosen, "arch": selection[chosen]["cfg"], "parameters": n_params, "onnx_ops": ops,
                  "opset": 13, "onnx_vs_jax_max_abs_diff": maxdiff, "max_len": MAXLEN, "window_stride": STRIDE},
        "tokenizer": {"file": "tokenizer.json", "bytes": os.path.getsize(tok_path), "sha256": sha256_file(tok_path),
                      "vocab_size": tok.get_vocab_size(), "model": "WordPiece", "pre_tokenizer": "BertPreTokenizer",
                      "normalizer": None, "post_processor": None, "special_tokens": {"[PAD]": 0, "[UNK]": 1}},
        "results": res,
        "test_by_family": {"tiny": per_family(fams["test"], yt, tiny["test"], res["dev"]["tiny"]["at_dev_threshold"]["threshold"]),
                           "cascade": per_family(fams["test"], yt, cas["test"], t_cas),
                           "ngram": per_family(fams["test"], yt, ngram["test"],
                                               res["dev"]["ngram"]["at_dev_threshold"]["threshold"])},
        "dev_by_family": {"cascade": per_family(fams["dev"], yd, cas["dev"], t_cas)},
        "windows_per_text": {s: {"mean": float(nwin[s].mean()), "max": int(nwin[s].max()),
                                 "gt1_fraction": float(np.mean(nwin[s] > 1))} for s in ("dev", "test")},
        "split_sizes": {s: {"benign": int((y[s] == 0).sum()), "injection": int((y[s] == 1).sum())}
                        for s in ("dev", "test")},
        "selection": selection,
        "exploration_dev": [dict(zip(("tag", "arch", "vocab", "epochs", "dropout", "tokdrop", "tiny_auc",
                                      "tiny_pauc_fpr_2pct", "tiny_tpr_at_fpr_1pct", "stacker_cv_pauc_fpr_2pct",
                                      "stacker_cv_tpr_at_fpr_1pct"), e)) for e in EXPLORED],
        "training": {"train_texts": len(split["train"]), "augmented_texts": len(aug),
                     "augmented_by_family": dict(collections.Counter(r["family"] for r in aug))},
        "env": {"python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__,
                "onnx": onnx.__version__, "onnxruntime": ort.__version__, "tokenizers": tokenizers.__version__,
                "optax": optax.__version__, "sklearn": sklearn.__version__, "seed": seed},
    }
    metrics["limitations"] = limitations(metrics)
    with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, ensure_ascii=False)
        f.write("\n")
    write_card(out, metrics, combine)
    files = ["tokenizer.json", "model.onnx", "vectors.jsonl", "combine.json", "metrics.json"]
    with open(os.path.join(out, "SHA256SUMS"), "w") as f:
        for fn in files:
            f.write(f"{sha256_file(os.path.join(out, fn))}  {fn}\n")
    log("done")


def limitations(m):
    tb = m["test_by_family"]["cascade"]
    weak = [f"{k} {v['tpr']:.0%} of {v['n_pos']}" for k, v in tb.items() if v["n_pos"] >= 5 and v["tpr"] < 0.7]
    fp = [f"{k} {v['fpr']:.0%} of {v['n_neg']}" for k, v in tb.items() if v["n_neg"] >= 5 and v["fpr"] > 0.02]
    r = m["results"]["test"]
    out = [
        f"The project's target (combined TPR >= 95% at FPR <= 1% on test) is not met: the recommended combination "
        f"reaches {r['cascade']['tpr_at_fpr_1pct']:.1%} TPR at 1% FPR on test (oracle threshold) and "
        f"{r['cascade']['at_dev_threshold']['tpr']:.1%} TPR at {r['cascade']['at_dev_threshold']['fpr']:.1%} FPR "
        f"at the dev threshold; rules + n-gram alone: {r['rules+ngram noisy-OR (shipped)']['tpr_at_fpr_1pct']:.1%}.",
        "Test families weakest for the recommended combination (TPR < 70%, >= 5 injections): "
        + (", ".join(weak) or "none") + ".",
        "Test families with benign FPR > 2% at the dev threshold: " + (", ".join(fp) or "none") + ".",
        "Trained from scratch on about 4,700 texts (3,505 + augmentation): the model learns vocabulary and "
        "phrasing of these sources, not language; attacks phrased unlike anything in training (new jailbreak "
        "styles, GCG suffixes, low-resource languages) are weak spots, as for the n-gram model.",
        "The dev split is small (517 benign): 1% FPR on dev is 5 benign texts, so thresholds and the stacker "
        "weights carry noticeable variance; FPR on real traffic must be measured there.",
        "Test is only reported, but it was visible: every full run of this script prints it, and two full runs "
        "preceded the final one (a 1-epoch smoke test and candidate A, the transformer). The switch from A to E "
        "followed the dev criterion declared before; no setting was changed after looking at test.",
        "Characters outside the tokenizer's 1000-character alphabet (most CJK, many emoji) make the whole word "
        "`[UNK]`.",
    ]
    return out


def write_card(out, m, comb):
    try:
        import card_tiny
    except ImportError:
        return
    card_tiny.write(out, m, comb)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
