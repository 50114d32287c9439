#!/usr/bin/env python3
"""Converts a llama GGUF into a Hugging Face model directory (config.json, safetensors shards
with model.safetensors.index.json, tokenizer.json, tokenizer_config.json), written with numpy
and the safetensors file layout directly - independent of qsense's code - so tests can check
that qsense reads HF models exactly as it reads the GGUF.

usage: gguf_to_hf.py MODEL.gguf OUTDIR [--dtype f32|f16|bf16] [--shards N]

GGUF stores attn_q/attn_k permuted for llama.cpp's adjacent-pair RoPE; HF stores them for
rotate-half RoPE, so they are permuted back here (the inverse of llama.cpp's converter)."""
import argparse
import json
import os

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

ap = argparse.ArgumentParser()
ap.add_argument("gguf")
ap.add_argument("out")
ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
ap.add_argument("--shards", type=int, default=1)
args = ap.parse_args()

r = GGUFReader(args.gguf)

def field(key, default=None):
    f = r.fields.get(key)
    if f is None:
        return default
    if f.types and f.types[0].name == "STRING" and len(f.types) == 1:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    if f.types and f.types[0].name == "ARRAY":
        if f.types[-1].name == "STRING":
            return [bytes(f.parts[i]).decode("utf-8", errors="surrogateescape") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    return f.parts[f.data[0]][0].item()

arch = field("general.architecture")
assert arch == "llama", arch
n_head = field("llama.attention.head_count")
n_kv = field("llama.attention.head_count_kv", n_head)
dim = field("llama.embedding_length")
tensors = {t.name: dequantize(t.data, t.tensor_type).astype(np.float32).reshape(
    [int(x) for x in reversed(t.shape)]) for t in r.tensors}

def unpermute(w, heads):
    # inverse of llama.cpp's permute: reshape(heads, 2, hd/2, in).swapaxes(1, 2)
    out_dim, in_dim = w.shape
    return w.reshape(heads, out_dim // heads // 2, 2, in_dim).swapaxes(1, 2).reshape(out_dim, in_dim)

names = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
         "output.weight": "lm_head.weight"}
per_layer = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
             "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj"}
hf = {}
for name, w in tensors.items():
    if name in names:
        hf[names[name]] = w
        continue
    _, layer, kind, _ = name.split(".")
    if kind == "attn_q":
        w = unpermute(w, n_head)
    elif kind == "attn_k":
        w = unpermute(w, n_kv)
    hf["model.layers.%s.%s.weight" % (layer, per_layer[kind])] = w

def encode(w):
    if args.dtype == "f32":
        return "F32", w.astype("<f4").tobytes()
    if args.dtype == "f16":
        return "F16", w.astype("<f2").tobytes()
    u = w.astype("<f4").view("<u4").astype(np.uint64)
    b = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")  # round to nearest even
    return "BF16", b.tobytes()

os.makedirs(args.out, exist_ok=True)
keys = sorted(hf)
shards = [keys[i::args.shards] for i in range(args.shards)]
weight_map = {}
for i, part in enumerate(shards):
    fname = "model.safetensors" if args.shards == 1 else "model-%05d-of-%05d.safetensors" % (i + 1, args.shards)
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k in part:
        dt, blob = encode(hf[k])
        header[k] = {"dtype": dt, "shape": list(hf[k].shape), "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
        weight_map[k] = fname
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(args.out, fname), "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)
if args.shards > 1:
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)

config = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim,
    "intermediate_size": field("llama.feed_forward_length"), "num_hidden_layers": field("llama.block_count"),
    "num_attention_heads": n_head, "num_key_value_heads": n_kv,
    "vocab_size": int(tensors["token_embd.weight"].shape[0]),
    "rms_norm_eps": field("llama.attention.layer_norm_rms_epsilon", 1e-5),
    "rope_theta": field("llama.rope.freq_base", 10000.0),
    "max_position_embeddings": field("llama.context_length", 2048),
    "tie_word_embeddings": "output.weight" not in tensors, "rope_scaling": None,
}
with open(os.path.join(args.out, "config.json"), "w") as f:
    json.dump(config, f, indent=1)

tokens = field("tokenizer.ggml.tokens")
types = field("tokenizer.ggml.token_type", [1] * len(tokens))
model = field("tokenizer.ggml.model")
added = [{"id": i, "content": t, "special": True, "single_word": False, "lstrip": False, "rstrip": False,
          "normalized": False} for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 3]
if model == "gpt2":
    merges = field("tokenizer.ggml.merges")
    pre = field("tokenizer.ggml.pre", "gpt2")
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    pretok = ({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
              if pre == "smollm" else byte_level)
    tok = {"version": "1.0", "added_tokens": added, "normalizer": None, "pre_tokenizer": pretok,
           "post_processor": None, "decoder": dict(byte_level),
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                     "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges}}
    bos = tokens[field("tokenizer.ggml.bos_token_id")] if field("tokenizer.ggml.bos_token_id") is not None else None
    add_bos = bool(field("tokenizer.ggml.add_bos_token", False))
else:
    # SentencePiece vocabulary: merges as HF's SentencePieceExtractor derives them (every split of
    # a piece into two pieces, ordered by the piece's score)
    scores = field("tokenizer.ggml.scores")
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece, score in sorted(zip(tokens, scores), key=lambda x: -x[1]):
        if types[vocab[piece]] != 1:
            continue
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        local.sort(key=lambda lr: (vocab[lr[0]], vocab[lr[1]]))
        merges.extend("%s %s" % lr for lr in local)
    tok = {"version": "1.0", "added_tokens": added,
           "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                               {"type": "Replace", "pattern": {"String": " "},
                                                                "content": "\u2581"}]},
           "pre_tokenizer": None, "post_processor": None, "decoder": None,
           "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "vocab": vocab,
                     "merges": merges}}
    bos, add_bos = "<s>", True
with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
    json.dump(tok, f, ensure_ascii=False)
with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
    json.dump({"bos_token": bos, "add_bos_token": add_bos}, f)
