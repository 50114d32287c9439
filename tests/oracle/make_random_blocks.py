#!/usr/bin/env python3
"""Writes a GGUF holding one tensor of every block type qsense reads, so dequantization can be
checked against gguf-py on formats no real file here uses (q5_1, q2_k, q3_k, q5_k, bf16, the
i-quants, tq1_0, tq2_0, mxfp4, nvfp4).
Types gguf-py can quantize are quantized from Gaussian data; the others are random bytes
with finite fp16 scales (every byte pattern is a valid block)."""
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter
from gguf.quants import quantize

rng = np.random.default_rng(1234)
rows, cols = 8, 512
w = GGUFWriter(sys.argv[1], arch="llama")
for qt in (T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
    data = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    if qt == T.F16:
        w.add_tensor("t_f16", data.astype(np.float16))
    else:
        q = quantize(data, qt)
        w.add_tensor("t_" + qt.name.lower(), q, raw_shape=q.shape, raw_dtype=qt)
# K-quants: (size of block, offsets of fp16 fields)
kq = {T.Q2_K: (84, [80, 82]), T.Q3_K: (110, [108]), T.Q4_K: (144, [0, 2]), T.Q5_K: (176, [0, 2]),
      T.Q6_K: (210, [208])}
# llama.cpp's lookup-table, microscaling and ternary types: random bytes, fp16 scales finite;
# nvfp4's unsigned E4M3 scales keep their (unused) top bit clear
kq.update({T.IQ4_NL: (18, [0]), T.IQ4_XS: (136, [0]), T.TQ1_0: (54, [52]), T.TQ2_0: (66, [64]),
           T.MXFP4: (17, []), T.NVFP4: (36, []),
           T.IQ2_XXS: (66, [0]), T.IQ2_XS: (74, [0]), T.IQ2_S: (82, [0]), T.IQ3_XXS: (98, [0]),
           T.IQ3_S: (110, [0]), T.IQ1_S: (50, [0]), T.IQ1_M: (56, [])})
block_len = {T.IQ4_NL: 32, T.MXFP4: 32, T.NVFP4: 64}
for qt, (size, halves) in kq.items():
    nb = cols // block_len.get(qt, 256)
    blocks = rng.integers(0, 256, size=(rows, nb, size), dtype=np.uint8)
    for off in halves:
        h = (rng.standard_normal((rows, nb)) * 0.01).astype(np.float16)
        blocks[:, :, off:off + 2] = h.view(np.uint8).reshape(rows, nb, 2)
    if qt == T.NVFP4:
        blocks[:, :, :4] &= 0x7F
    if qt == T.IQ1_M:  # its f16 scale is spread over the top nibbles of four u16 sub-scale words
        h = (rng.standard_normal((rows, nb)) * 0.01).astype(np.float16).view(np.uint16)
        words = blocks[:, :, 48:56].copy().view("<u2") & 0x0FFF
        for k in range(4):
            words[:, :, k] |= ((h >> (4 * k)) & 0xF).astype(np.uint16) << 12
        blocks[:, :, 48:56] = words.view(np.uint8)
    raw = blocks.reshape(rows, -1)
    w.add_tensor("t_" + qt.name.lower(), raw, raw_shape=raw.shape, raw_dtype=qt)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
