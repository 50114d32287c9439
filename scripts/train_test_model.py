#!/usr/bin/env python3
"""Trains qsense's 256-wide test model: a small llama (dim 256, 4 layers, 4 heads of 64, FFN 768,
untied output) whose every matrix has rows of a multiple of 256 values, so every llama.cpp block
type (K-quants, i-quants, tq*) applies to every tensor, which stories260K's 64-wide and
SmolLM2's 576-wide rows do not allow. numpy only (forward and backward written out below),
seeded, a few minutes on 2 cores; the vocabulary is stories260K's 512-token SentencePiece one
(its tokenizer.ggml.* keys are copied into the GGUF, so llama.cpp runs the file).
Training text: ../shared/datasets' wiki.valid.tokens, tinyshakespeare.txt and sotu.txt,
tokenized by `qsense tokenize`. Held-out text for measurements: anything else (the `debian` set).

usage: train_test_model.py QSENSE_BIN STORIES260K.GGUF DATASETS_DIR OUT.gguf [--steps N] [--seed S]

Reproducible to the seed on one machine; another BLAS may sum in another order (weights then
differ in the last bits, and so will every figure measured on them)."""
import argparse
import subprocess
import sys
import time

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

DIM, LAYERS, HEADS, FFN, VOCAB, CTX = 256, 4, 4, 768, 512, 256
HD = DIM // HEADS
EPS, THETA = 1e-5, 10000.0


def tokenize(qsense, vocab_gguf, path):
    out = subprocess.run([qsense, "tokenize", vocab_gguf, "--text", path, "--no-special"], check=True,
                         capture_output=True, text=True).stdout
    return np.array(out.split(), dtype=np.int32)


def init_params(rng):
    def normal(*shape, std=0.02):
        return (rng.standard_normal(shape) * std).astype(np.float32)
    p = {"token_embd.weight": normal(VOCAB, DIM), "output_norm.weight": np.ones(DIM, np.float32),
         "output.weight": normal(VOCAB, DIM)}
    proj = 0.02 / np.sqrt(2 * LAYERS)
    for l in range(LAYERS):
        b = "blk.%d." % l
        p[b + "attn_norm.weight"] = np.ones(DIM, np.float32)
        p[b + "ffn_norm.weight"] = np.ones(DIM, np.float32)
        for n in ("attn_q", "attn_k", "attn_v"):
            p[b + n + ".weight"] = normal(DIM, DIM)
        p[b + "attn_output.weight"] = normal(DIM, DIM, std=proj)
        p[b + "ffn_gate.weight"] = normal(FFN, DIM)
        p[b + "ffn_up.weight"] = normal(FFN, DIM)
        p[b + "ffn_down.weight"] = normal(DIM, FFN, std=proj)
    return p


def rope_tables(T):
    # llama.cpp's llama architecture rotates adjacent pairs (2i, 2i+1) of each head
    inv = THETA ** (-np.arange(0, HD, 2, dtype=np.float64) / HD)
    ang = np.arange(T)[:, None] * inv[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def rope(x, cos, sin, inverse=False):
    # x: (B, H, T, HD); returns the rotated copy (inverse: the transpose, for the backward pass)
    a, b = x[..., 0::2], x[..., 1::2]
    s = -sin if inverse else sin
    y = np.empty_like(x)
    y[..., 0::2] = a * cos - b * s
    y[..., 1::2] = a * s + b * cos
    return y


def rmsnorm(x, g):
    r = 1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + EPS)
    return x * r * g, r


def rmsnorm_back(dy, x, r, g):
    dxh = dy * g
    dg = (dy * x * r).reshape(-1, x.shape[-1]).sum(0)
    dx = r * dxh - x * r ** 3 * (dxh * x).mean(-1, keepdims=True)
    return dx, dg


def forward_backward(p, ids, targets, cos, sin, mask):
    B, T = ids.shape
    g = {k: np.zeros_like(v) for k, v in p.items()}
    x = p["token_embd.weight"][ids]
    cache = []
    for l in range(LAYERS):
        b = "blk.%d." % l
        xn, r1 = rmsnorm(x, p[b + "attn_norm.weight"])
        q = (xn @ p[b + "attn_q.weight"].T).reshape(B, T, HEADS, HD).transpose(0, 2, 1, 3)
        k = (xn @ p[b + "attn_k.weight"].T).reshape(B, T, HEADS, HD).transpose(0, 2, 1, 3)
        v = (xn @ p[b + "attn_v.weight"].T).reshape(B, T, HEADS, HD).transpose(0, 2, 1, 3)
        qr, kr = rope(q, cos, sin), rope(k, cos, sin)
        s = qr @ kr.transpose(0, 1, 3, 2) * np.float32(1 / np.sqrt(HD)) + mask
        s -= s.max(-1, keepdims=True)
        pr = np.exp(s)
        pr /= pr.sum(-1, keepdims=True)
        o = (pr @ v).transpose(0, 2, 1, 3).reshape(B, T, DIM)
        h = x + o @ p[b + "attn_output.weight"].T
        hn, r2 = rmsnorm(h, p[b + "ffn_norm.weight"])
        a = hn @ p[b + "ffn_gate.weight"].T
        u = hn @ p[b + "ffn_up.weight"].T
        sg = 1.0 / (1.0 + np.exp(-a))
        act = a * sg * u
        xo = h + act @ p[b + "ffn_down.weight"].T
        cache.append((x, xn, r1, qr, kr, v, pr, o, h, hn, r2, a, u, sg, act))
        x = xo
    xf, rf = rmsnorm(x, p["output_norm.weight"])
    logits = xf @ p["output.weight"].T
    logits -= logits.max(-1, keepdims=True)
    e = np.exp(logits)
    prob = e / e.sum(-1, keepdims=True)
    n = B * T
    flat = prob.reshape(n, VOCAB)
    loss = -np.log(flat[np.arange(n), targets.reshape(-1)] + 1e-30).mean()
    # backward
    dlog = flat.copy()
    dlog[np.arange(n), targets.reshape(-1)] -= 1.0
    dlog = (dlog / n).reshape(B, T, VOCAB).astype(np.float32)
    g["output.weight"] += dlog.reshape(n, VOCAB).T @ xf.reshape(n, DIM)
    dx, dgf = rmsnorm_back(dlog @ p["output.weight"], x, rf, p["output_norm.weight"])
    g["output_norm.weight"] += dgf
    for l in reversed(range(LAYERS)):
        b = "blk.%d." % l
        xin, xn, r1, qr, kr, v, pr, o, h, hn, r2, a, u, sg, act = cache[l]
        # FFN
        g[b + "ffn_down.weight"] += dx.reshape(n, DIM).T @ act.reshape(n, FFN)
        dact = dx @ p[b + "ffn_down.weight"]
        du = dact * a * sg
        da = dact * u * sg * (1.0 + a * (1.0 - sg))
        g[b + "ffn_gate.weight"] += da.reshape(n, FFN).T @ hn.reshape(n, DIM)
        g[b + "ffn_up.weight"] += du.reshape(n, FFN).T @ hn.reshape(n, DIM)
        dhn = da @ p[b + "ffn_gate.weight"] + du @ p[b + "ffn_up.weight"]
        dh_norm, dg2 = rmsnorm_back(dhn, h, r2, p[b + "ffn_norm.weight"])
        g[b + "ffn_norm.weight"] += dg2
        dh = dx + dh_norm
        # attention
        g[b + "attn_output.weight"] += dh.reshape(n, DIM).T @ o.reshape(n, DIM)
        do = (dh @ p[b + "attn_output.weight"]).reshape(B, T, HEADS, HD).transpose(0, 2, 1, 3)
        dpr = do @ v.transpose(0, 1, 3, 2)
        dv = pr.transpose(0, 1, 3, 2) @ do
        ds = pr * (dpr - (dpr * pr).sum(-1, keepdims=True)) * np.float32(1 / np.sqrt(HD))
        dqr = ds @ kr
        dkr = ds.transpose(0, 1, 3, 2) @ qr
        dq, dk = rope(dqr, cos, sin, inverse=True), rope(dkr, cos, sin, inverse=True)
        dxn = np.zeros_like(xn)
        for name, d in (("attn_q", dq), ("attn_k", dk), ("attn_v", dv)):
            d2 = d.transpose(0, 2, 1, 3).reshape(n, DIM)
            g[b + name + ".weight"] += d2.T @ xn.reshape(n, DIM)
            dxn += (d2 @ p[b + name + ".weight"]).reshape(B, T, DIM)
        dx_norm, dg1 = rmsnorm_back(dxn, xin, r1, p[b + "attn_norm.weight"])
        g[b + "attn_norm.weight"] += dg1
        dx = dh + dx_norm
    np.add.at(g["token_embd.weight"], ids.reshape(-1), dx.reshape(n, DIM))
    return loss, g


def write_gguf(p, vocab_gguf, out):
    w = GGUFWriter(out, arch="llama")
    w.add_name("qsense-test-256")
    w.add_context_length(CTX)
    w.add_embedding_length(DIM)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(HD)
    w.add_rope_freq_base(THETA)
    w.add_layer_norm_rms_eps(EPS)
    w.add_file_type(0)
    for f in GGUFReader(vocab_gguf).fields.values():
        if not f.name.startswith("tokenizer."):
            continue
        vt = f.types[0]
        if vt == GGUFValueType.ARRAY:
            et = f.types[1]
            vals = [f.parts[i] for i in f.data]
            if et == GGUFValueType.STRING:
                w.add_array(f.name, [bytes(v).decode("utf-8") for v in vals])
            else:
                w.add_array(f.name, [v.tolist()[0] for v in vals])
        elif vt == GGUFValueType.STRING:
            w.add_string(f.name, bytes(f.parts[f.data[0]]).decode("utf-8"))
        elif vt == GGUFValueType.UINT32:
            w.add_uint32(f.name, int(f.parts[f.data[0]][0]))
        elif vt == GGUFValueType.BOOL:
            w.add_bool(f.name, bool(f.parts[f.data[0]][0]))
        else:
            raise SystemExit("unexpected tokenizer key type %s for %s" % (vt, f.name))
    order = ["token_embd.weight"]
    for l in range(LAYERS):
        b = "blk.%d." % l
        order += [b + n + ".weight" for n in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                                             "ffn_gate", "ffn_up", "ffn_down")]
    order += ["output_norm.weight", "output.weight"]
    for name in order:
        w.add_tensor(name, np.ascontiguousarray(p[name], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qsense")
    ap.add_argument("vocab_gguf")
    ap.add_argument("datasets")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    data = np.concatenate([tokenize(a.qsense, a.vocab_gguf, "%s/%s" % (a.datasets, f))
                           for f in ("wiki.valid.tokens", "tinyshakespeare.txt", "sotu.txt")])
    print("training text: %d tokens" % len(data), file=sys.stderr)
    p = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    s2 = {k: np.zeros_like(v) for k, v in p.items()}
    cos, sin = rope_tables(CTX)
    mask = np.triu(np.full((CTX, CTX), -1e9, np.float32), 1)
    lr_max, lr_min, warm = 3e-3, 3e-4, 20
    t0 = time.time()
    for step in range(1, a.steps + 1):
        starts = rng.integers(0, len(data) - CTX - 1, a.batch)
        ids = np.stack([data[s:s + CTX] for s in starts])
        tgt = np.stack([data[s + 1:s + CTX + 1] for s in starts])
        loss, g = forward_backward(p, ids, tgt, cos, sin, mask)
        lr = lr_max * step / warm if step <= warm else \
            lr_min + 0.5 * (lr_max - lr_min) * (1 + np.cos(np.pi * (step - warm) / max(1, a.steps - warm)))
        norm = np.sqrt(sum(float((v * v).sum()) for v in g.values()))
        clip = min(1.0, 1.0 / (norm + 1e-6))
        for k in p:  # AdamW (decay on matrices only), gradients clipped to norm 1
            gk = g[k] * clip
            m[k] = 0.9 * m[k] + 0.1 * gk
            s2[k] = 0.95 * s2[k] + 0.05 * gk * gk
            mh, vh = m[k] / (1 - 0.9 ** step), s2[k] / (1 - 0.95 ** step)
            if p[k].ndim == 2:
                p[k] *= 1 - lr * 0.1
            p[k] -= (lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
        if step % 20 == 0 or step == 1:
            el = time.time() - t0
            print("step %d/%d  loss %.4f  lr %.2e  %.0fs (ETA %.0fs)" % (step, a.steps, loss, lr, el, el / step * (a.steps - step)),
                  file=sys.stderr)
    write_gguf(p, a.vocab_gguf, a.out)
    print("wrote %s" % a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
