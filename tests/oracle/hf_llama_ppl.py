#!/usr/bin/env python3
"""Independent forward-pass oracle: perplexity of a Hugging Face llama directory (config.json,
safetensors, tokenizer.json) computed with numpy in float64, in the Hugging Face convention
(rotate-half RoPE, unpermuted q/k), tokenized by the `tokenizers` library, scored with
llama-perplexity's chunk convention. Prints {"ppl": ..., "n_tokens": ...} as JSON.
usage: hf_llama_ppl.py HF_DIR TEXTFILE CTX N_CHUNKS"""
import glob
import json
import os
import sys

import numpy as np
from tokenizers import Tokenizer

d, text_path, ctx, n_chunks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = json.load(open(os.path.join(d, "config.json")))
W = {}
for path in glob.glob(os.path.join(d, "*.safetensors")):
    raw = open(path, "rb").read()
    hlen = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + hlen])
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = raw[8 + hlen + a: 8 + hlen + b]
        if info["dtype"] == "F32":
            x = np.frombuffer(buf, "<f4")
        elif info["dtype"] == "F16":
            x = np.frombuffer(buf, "<f2").astype(np.float32)
        else:
            x = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        W[name] = x.reshape(info["shape"]).astype(np.float64)

dim, L = cfg["hidden_size"], cfg["num_hidden_layers"]
nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
hd, eps, base = dim // nh, cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
out_w = W.get("lm_head.weight", W["model.embed_tokens.weight"])

def rms(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

def rope(x, n):  # x: (n, heads, hd), rotate halves
    inv = base ** (-np.arange(0, hd, 2) / hd)
    ang = np.arange(n)[:, None] * inv[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return np.concatenate([x1 * c - x2 * s, x1 * s + x2 * c], -1)

def forward(tokens):
    n = len(tokens)
    x = W["model.embed_tokens.weight"][tokens]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(L):
        p = "model.layers.%d." % l
        h = rms(x, W[p + "input_layernorm.weight"])
        q = rope((h @ W[p + "self_attn.q_proj.weight"].T).reshape(n, nh, hd), n)
        k = rope((h @ W[p + "self_attn.k_proj.weight"].T).reshape(n, nkv, hd), n)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).reshape(n, nkv, hd)
        k, v = np.repeat(k, nh // nkv, axis=1), np.repeat(v, nh // nkv, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = np.einsum("hqk,khd->qhd", s, v).reshape(n, dim)
        x = x + a @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g = h @ W[p + "mlp.gate_proj.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    return rms(x, W["model.norm.weight"]) @ out_w.T

tok_cfg = json.load(open(os.path.join(d, "tokenizer_config.json")))
tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
ids = tok.encode(open(text_path, encoding="utf-8", errors="replace").read(), add_special_tokens=False).ids
bos = tok.token_to_id(tok_cfg["bos_token"]) if tok_cfg.get("add_bos_token") else None
if bos is not None:
    ids = [bos] + ids
nll, count, first = 0.0, 0, ctx // 2
for c in range(n_chunks):
    chunk = list(ids[c * ctx:(c + 1) * ctx])
    if bos is not None:
        chunk[0] = bos
    logits = forward(np.array(chunk))
    for i in range(first, ctx - 1):
        row = logits[i]
        m = row.max()
        nll -= row[ids[c * ctx + i + 1]] - m - np.log(np.exp(row - m).sum())
        count += 1
json.dump({"ppl": float(np.exp(nll / count)), "n_tokens": len(ids), "n_scored": count}, sys.stdout)
