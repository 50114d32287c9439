#!/usr/bin/env python3
"""Independent oracle for qsense's dequantizers: dequantizes every tensor of a GGUF file with
gguf-py (llama.cpp's own Python package, numpy ports of ggml's reference code) and prints
{"tensor name": "sha256 of the float32 little-endian values"} as JSON."""
import hashlib
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

out = {}
for t in GGUFReader(sys.argv[1]).tensors:
    values = dequantize(t.data, t.tensor_type).astype("<f4", copy=False)
    out[t.name] = hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()
json.dump(out, sys.stdout)
