#!/usr/bin/env python3
"""Writes tiny Hugging Face checkpoints (config.json + model.safetensors) of each family qsense
runs, with weights from a counter-based hash so that every machine and numpy version writes the
same bytes (numpy only: CI regenerates them; tests/oracle/hf_family_reference.py runs them through
transformers once and stores the logits in tests/oracle/hf_family_logits.json).

Each configuration exercises what its family adds: llama with Llama 3 RoPE scaling and GQA,
mistral with a sliding window shorter than the text, qwen2 with q/k/v biases and a tied head in
f16, qwen3 with per-head q/k norms, a head wider than hidden/heads and transformers 5's
rope_parameters, gemma3_text in bf16 with (1 + w) norms, sliding and global layers with their
two RoPE bases (Gemma 3's pattern: every sixth layer global, the one llama.cpp assumes),
phi3 with q, k, v fused, gate and up stacked and a sliding window, qwen3_moe with 8 experts
(2 per token) stored one by one as on the Hub, mixtral with 6 (its w1/w2/w3 names), query_pre_attn_scalar and a final logit soft-cap. gemma3_mm holds the same
weights as gemma3 in a multimodal checkpoint's layout (text_config, "model.language_model."
names, a vision tensor) for qsense to read to the same logits. Every model has a byte-level BPE
tokenizer.json of its vocabulary size (Llama 3's, Qwen2's or GPT-2's pre-tokenizer), so that
`qsense quantize` and llama.cpp's convert_hf_to_gguf.py can write it as GGUF.

usage: make_hf_family_models.py OUT_DIR
"""
import json
import os
import struct
import sys

import numpy as np

N_TOKENS = 256
MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x):
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & MASK
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & MASK
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & MASK
    return x ^ (x >> np.uint64(31))


def uniform(seed, n):
    """n values in [-1, 1) from (seed, index): the same on every machine"""
    with np.errstate(over="ignore"):
        idx = np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(1 << 32)
        h = splitmix64(idx)
    return ((h >> np.uint64(11)).astype(np.float64) * 2.0**-53 * 2.0 - 1.0).astype(np.float32)


def to_bf16_bits(a):
    """f32 -> bf16 bit patterns, round to nearest even"""
    b = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    b = (b + np.uint64(0x7FFF) + ((b >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    return b.astype(np.uint16)


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {}, [], 0
    for name, a in tensors:
        if dtype == "BF16":
            raw = to_bf16_bits(a).tobytes()
        elif dtype == "F16":
            raw = a.astype(np.float16).tobytes()
        else:
            raw = a.astype(np.float32).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class Weights:
    def __init__(self, seed):
        self.seed, self.items = seed, []

    def add(self, name, shape, scale, offset=0.0):
        self.seed += 1
        n = int(np.prod(shape))
        self.items.append((name, (offset + scale * uniform(self.seed, n)).reshape(shape)))


def linear_scale(fan_in):
    return float(np.sqrt(3.0 / fan_in))  # uniform with variance 1 / fan_in


def build(c, seed, gemma_norms=False):
    d, ff, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim", d // nh)
    w = Weights(seed)
    norm = (0.0, 0.2) if gemma_norms else (1.0, 0.2)  # Gemma stores w of (1 + w)
    w.add("model.embed_tokens.weight", (c["vocab_size"], d), 1.0)
    for l in range(L):
        p = "model.layers.%d." % l
        w.add(p + "input_layernorm.weight", (d,), norm[1], norm[0])
        fused = c["model_type"] == "phi3"  # q|k|v in one matrix, gate|up stacked
        if fused:
            w.add(p + "self_attn.qkv_proj.weight", ((nh + 2 * nkv) * hd, d), linear_scale(d))
        else:
            w.add(p + "self_attn.q_proj.weight", (nh * hd, d), linear_scale(d))
            w.add(p + "self_attn.k_proj.weight", (nkv * hd, d), linear_scale(d))
            w.add(p + "self_attn.v_proj.weight", (nkv * hd, d), linear_scale(d))
        w.add(p + "self_attn.o_proj.weight", (d, nh * hd), linear_scale(nh * hd))
        if c["model_type"] == "qwen2":
            for x, rows in (("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd)):
                w.add(p + "self_attn.%s_proj.bias" % x, (rows,), 0.5)
        if c["model_type"] in ("qwen3", "gemma3_text", "qwen3_moe"):
            w.add(p + "self_attn.q_norm.weight", (hd,), norm[1], norm[0])
            w.add(p + "self_attn.k_norm.weight", (hd,), norm[1], norm[0])
        w.add(p + "post_attention_layernorm.weight", (d,), norm[1], norm[0])
        if gemma_norms:
            w.add(p + "pre_feedforward_layernorm.weight", (d,), norm[1], norm[0])
            w.add(p + "post_feedforward_layernorm.weight", (d,), norm[1], norm[0])
        if fused:
            w.add(p + "mlp.gate_up_proj.weight", (2 * ff, d), linear_scale(d))
        elif c["model_type"] == "mixtral":  # block_sparse_moe: w1 gate, w3 up, w2 down, each expert apart
            w.add(p + "block_sparse_moe.gate.weight", (c["num_local_experts"], d), 4 * linear_scale(d))
            for x in range(c["num_local_experts"]):
                w.add(p + "block_sparse_moe.experts.%d.w1.weight" % x, (ff, d), linear_scale(d))
                w.add(p + "block_sparse_moe.experts.%d.w2.weight" % x, (d, ff), linear_scale(ff))
                w.add(p + "block_sparse_moe.experts.%d.w3.weight" % x, (ff, d), linear_scale(d))
        elif c["model_type"] == "qwen3_moe":  # the router, then each expert apart (the Hub's layout)
            fe = c["moe_intermediate_size"]
            w.add(p + "mlp.gate.weight", (c["num_experts"], d), 4 * linear_scale(d))
            for x in range(c["num_experts"]):
                w.add(p + "mlp.experts.%d.gate_proj.weight" % x, (fe, d), linear_scale(d))
                w.add(p + "mlp.experts.%d.up_proj.weight" % x, (fe, d), linear_scale(d))
                w.add(p + "mlp.experts.%d.down_proj.weight" % x, (d, fe), linear_scale(fe))
        else:
            w.add(p + "mlp.gate_proj.weight", (ff, d), linear_scale(d))
            w.add(p + "mlp.up_proj.weight", (ff, d), linear_scale(d))
        if c["model_type"] not in ("qwen3_moe", "mixtral"):
            w.add(p + "mlp.down_proj.weight", (d, ff), linear_scale(ff))
    w.add("model.norm.weight", (d,), norm[1], norm[0])
    if not c.get("tie_word_embeddings", False):
        w.add("lm_head.weight", (c["vocab_size"], d), linear_scale(d))
    return w.items


COMMON = {"hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 4,
          "max_position_embeddings": 512, "rms_norm_eps": 1e-5}

MODELS = {
    "llama": (dict(COMMON, architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=384, num_key_value_heads=2,
                   hidden_act="silu", tie_word_embeddings=False, rope_theta=10000.0,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 64}), 100, "F32"),
    "mistral": (dict(COMMON, architectures=["MistralForCausalLM"], model_type="mistral", vocab_size=320,
                     num_key_value_heads=1, hidden_act="silu", tie_word_embeddings=False, rope_theta=100000.0,
                     sliding_window=24), 200, "F32"),
    "qwen2": (dict(COMMON, architectures=["Qwen2ForCausalLM"], model_type="qwen2", vocab_size=448, num_key_value_heads=2,
                   hidden_act="silu", tie_word_embeddings=True, rope_theta=1000000.0, use_sliding_window=False,
                   sliding_window=None), 300, "F16"),
    "qwen3": (dict(COMMON, architectures=["Qwen3ForCausalLM"], model_type="qwen3", vocab_size=400, num_key_value_heads=2,
                   head_dim=32, hidden_act="silu", tie_word_embeddings=False, attention_bias=False,
                   rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), 400, "F32"),
    "gemma3": (dict(COMMON, architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", vocab_size=512,
                    num_hidden_layers=7, num_key_value_heads=1, head_dim=32, hidden_activation="gelu_pytorch_tanh",
                    query_pre_attn_scalar=32, sliding_window=16, sliding_window_pattern=6, rope_theta=1000000.0,
                    rope_local_base_freq=10000.0, final_logit_softcapping=30.0, attn_logit_softcapping=None,
                    tie_word_embeddings=True, rms_norm_eps=1e-6), 500, "BF16"),
    "phi3": (dict(COMMON, architectures=["Phi3ForCausalLM"], model_type="phi3", vocab_size=352, num_key_value_heads=2,
                  hidden_act="silu", tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, sliding_window=20,
                  original_max_position_embeddings=4096, pad_token_id=351), 600, "BF16"),
    "qwen3moe": (dict(COMMON, architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", vocab_size=416,
                      num_key_value_heads=2, head_dim=16, hidden_act="silu", tie_word_embeddings=False,
                      rope_theta=1000000.0, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=64,
                      norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[]), 700, "BF16"),
    "mixtral": (dict(COMMON, architectures=["MixtralForCausalLM"], model_type="mixtral", vocab_size=368,
                     intermediate_size=64, num_key_value_heads=2, hidden_act="silu", tie_word_embeddings=False,
                     rope_theta=1000000.0, num_local_experts=6, num_experts_per_tok=2, sliding_window=None,
                     router_jitter_noise=0.0), 800, "BF16"),
}


LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")


def byte_chars():
    """GPT-2's printable stand-in for each byte"""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def tokenizer_json(vocab_size, kind):
    """A byte-level BPE tokenizer.json of exactly vocab_size tokens: the 256 bytes, merges of
    pairs of common letters, and <|endoftext|> last (BOS and EOS). kind picks the pre-tokenizer:
    gpt2 (ByteLevel's own regex), llama3 or qwen2 (their Split patterns)."""
    chars = byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    letters = "etaoinshrdlucmfw"
    merges = []
    for a in letters:
        for b in letters:
            if len(vocab) == vocab_size - 1:
                break
            vocab[a + b] = len(vocab)
            merges.append(a + " " + b)
    special = "<|endoftext|>"
    vocab[special] = len(vocab)
    assert len(vocab) == vocab_size
    if kind == "gpt2":
        pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    else:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT if kind == "llama3" else QWEN2_SPLIT},
             "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": vocab_size - 1, "content": special, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None, "pre_tokenizer": pre, "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": kind == "llama3", "vocab": vocab, "merges": merges},
    }


TOKENIZER_KIND = {"llama": "llama3", "mistral": "gpt2", "qwen2": "qwen2", "qwen3": "qwen2", "gemma3": "gpt2", "phi3": "gpt2",
                  "qwen3moe": "qwen2", "mixtral": "gpt2"}


def tokens(vocab):
    u = uniform(999, N_TOKENS).astype(np.float64)
    return [int(x) for x in np.floor((u + 1.0) / 2.0 * vocab).astype(np.int64)]


def write(out, name, cfg, seed, dtype):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    items = build(cfg, seed, gemma_norms=cfg["model_type"] == "gemma3_text")
    write_safetensors(os.path.join(d, "model.safetensors"), items, dtype)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(dict(cfg, torch_dtype="float32", bos_token_id=cfg["vocab_size"] - 1, eos_token_id=cfg["vocab_size"] - 1), f,
                  indent=1)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(cfg["vocab_size"], TOKENIZER_KIND[name]), f, ensure_ascii=False)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "add_bos_token": False,
                   # Phi-4's class: llama.cpp's Phi-3 converter reads a GPT-2 BPE vocabulary then
                   "tokenizer_class": "GPT2Tokenizer" if name == "phi3" else "PreTrainedTokenizerFast"}, f)
    return items


def main():
    out = sys.argv[1]
    for name, (cfg, seed, dtype) in MODELS.items():
        items = write(out, name, cfg, seed, dtype)
        if name == "gemma3":
            d = os.path.join(out, "gemma3_mm")
            os.makedirs(d, exist_ok=True)
            mm = [("model.language_model." + n[len("model."):], a) for n, a in items]
            mm.append(("model.vision_tower.vision_model.embeddings.patch_embedding.weight", uniform(7, 48).reshape(16, 3)))
            write_safetensors(os.path.join(d, "model.safetensors"), mm, dtype)
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
                           "text_config": cfg, "vision_config": {"model_type": "siglip_vision_model"}}, f, indent=1)
    with open(os.path.join(out, "tokens.json"), "w") as f:
        json.dump({name: tokens(cfg["vocab_size"]) for name, (cfg, _, _) in MODELS.items()}, f)


if __name__ == "__main__":
    main()
