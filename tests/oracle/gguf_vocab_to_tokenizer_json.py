"""Writes a Hugging Face tokenizer.json from a llama.cpp byte-level BPE vocabulary GGUF (tokens
and merges), with the pre-tokenizer Split pattern of Llama 3 or Qwen2 as those models' own
tokenizer.json files give it, so that Hugging Face's `tokenizers` (an implementation
independent of llama.cpp and of qsense) can tokenize with that vocabulary.
    python gguf_vocab_to_tokenizer_json.py VOCAB.gguf llama3|qwen2 OUT.json"""
import json
import sys

import gguf

PATTERNS = {
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
src, kind, out = sys.argv[1], sys.argv[2], sys.argv[3]
r = gguf.GGUFReader(src)
tokens = r.fields["tokenizer.ggml.tokens"].contents()
merges = r.fields["tokenizer.ggml.merges"].contents()
vocab = {}
for i, t in enumerate(tokens):
    vocab.setdefault(t, i)
tok = {
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": PATTERNS[kind]}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
    "post_processor": None,
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
              "ignore_merges": kind == "llama3", "vocab": vocab, "merges": merges},
}
with open(out, "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False)
