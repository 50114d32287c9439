"""Writes small models of other families from stories260K.gguf's trained weights, so that an
independent implementation (llama.cpp's llama-perplexity) and qsense can be compared on each
family's own arithmetic with a model whose perplexity means something:
  qwen2-stories260K.gguf  architecture qwen2: q/k rows reordered for RoPE on halves (the
                          function the llama model computes is kept), plus seeded random biases
                          on q, k and v
  qwen3-stories260K.gguf  architecture qwen3: the same rows, plus seeded per-head RMSNorm
                          weights on q and k
Every other key (the SentencePiece vocabulary included) is copied, renamed from llama.* to the
family's prefix. Deterministic (numpy's PCG64, seed 260).
    python make_family_models.py stories260K.gguf OUTDIR"""
import os
import sys

import gguf
import numpy as np

src, out_dir = sys.argv[1], sys.argv[2]
r = gguf.GGUFReader(src)
n_head = int(r.fields["llama.attention.head_count"].contents())
n_kv = int(r.fields["llama.attention.head_count_kv"].contents())


def halves(w, heads):
    """llama.cpp's llama rows pair (2i, 2i+1) in each head; RoPE on halves pairs (i, i + d/2)"""
    rows, cols = w.shape
    hd = rows // heads
    return w.reshape(heads, hd // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def write(family):
    rng = np.random.default_rng(260)
    path = os.path.join(out_dir, f"{family}-stories260K.gguf")
    w = gguf.GGUFWriter(path, family)
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        name = family + key[5:] if key.startswith("llama.") else key
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(name, field.contents(), vtype, sub_type=field.types[-1])
        else:
            w.add_key_value(name, field.contents(), vtype)
    for t in r.tensors:
        a = np.array(t.data, dtype=np.float32)
        if t.name.endswith("attn_q.weight"):
            a = halves(a, n_head)
        elif t.name.endswith("attn_k.weight"):
            a = halves(a, n_kv)
        w.add_tensor(t.name, a, raw_dtype=gguf.GGMLQuantizationType.F32)
        if t.name.endswith(("attn_q.weight", "attn_k.weight", "attn_v.weight")):
            base = t.name[: -len(".weight")]
            if family == "qwen2":
                w.add_tensor(base + ".bias", (0.1 * rng.standard_normal(a.shape[0])).astype(np.float32))
            elif family == "qwen3" and not t.name.endswith("attn_v.weight"):
                hd = a.shape[1] // n_head
                w.add_tensor(base + "_norm.weight", (1 + 0.2 * rng.standard_normal(hd)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


for fam in ("qwen2", "qwen3"):
    write(fam)
