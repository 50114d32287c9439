#!/usr/bin/env python3
"""Runs llama.cpp's own convert_hf_to_gguf.py on a Hugging Face directory, telling it which
byte-level pre-tokenizer the tokenizer.json uses. The converter names a pre-tokenizer by hashing
how a real model's vocabulary splits a test string; the tiny vocabularies of
make_hf_family_models.py match no real model, so the name is given instead. Nothing else of the
converter is changed.

usage: convert_hf_with_llamacpp.py LLAMA_CPP_SRC PRE MODEL_DIR OUT.gguf
       (PRE: llama-bpe, qwen2, gpt2; needs torch and transformers)"""
import sys

src, pre, model, out = sys.argv[1:5]
sys.path.insert(0, src + "/gguf-py")
sys.path.insert(0, src)
import convert_hf_to_gguf  # noqa: E402
from conversion import base  # noqa: E402

base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
sys.argv = ["convert_hf_to_gguf.py", model, "--outtype", "f32", "--outfile", out]
convert_hf_to_gguf.main()
