#!/usr/bin/env python3
"""Independent tokenizer oracle: token ids of a text file from Hugging Face's `tokenizers`
library (Rust) given a tokenizer.json. Prints a JSON list (no special tokens added).
usage: hf_tokenize.py tokenizer.json TEXTFILE [MAX_BYTES]"""
import json
import sys

from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    data = f.read()
if len(sys.argv) > 3:
    data = data[: int(sys.argv[3])]
text = data.decode("utf-8", errors="replace")
json.dump(tok.encode(text, add_special_tokens=False).ids, sys.stdout)
