"""Writes a GGUF whose every tensor is the input's, dequantized to f32 by gguf-py (llama.cpp's
own Python package), with every metadata key copied: llama.cpp evaluating that file computes
the exact f32 forward pass of the input's weights, the oracle qsense's exact arithmetic is
compared with.
    python gguf_to_f32.py IN.gguf OUT.gguf"""
import sys

import gguf
import numpy as np

src, dst = sys.argv[1], sys.argv[2]
r = gguf.GGUFReader(src)
w = gguf.GGUFWriter(dst, r.fields["general.architecture"].contents())
for key, field in r.fields.items():
    if key.startswith("GGUF.") or key == "general.architecture":
        continue
    vtype = field.types[0]
    if vtype == gguf.GGUFValueType.ARRAY:
        w.add_key_value(key, field.contents(), vtype, sub_type=field.types[-1])
    else:
        w.add_key_value(key, field.contents(), vtype)
for t in r.tensors:
    values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    w.add_tensor(t.name, values, raw_dtype=gguf.GGMLQuantizationType.F32)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
