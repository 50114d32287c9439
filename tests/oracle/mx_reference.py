#!/usr/bin/env python3
"""Microscaling formats by the book, for tests/test_mx_matches_ml_dtypes.c: the element
rounding is ml_dtypes' (PyPI: round to nearest even in each OCP element type); the scale rules
are written here from their definitions, independently of qsense's C:
  OCP MX v1.0 (section 6.3): blocks of 32, X = 2^(floor(log2(amax)) - emax_elem) clamped to
  E8M0's [2^-127, 2^127]; P = V / X clamped to the element's largest normal, then rounded.
  NVFP4 (as NVIDIA's ModelOpt quantizes): g = amax(tensor) / (6 * 448); blocks of 16 with
  s = e4m3(amax_block / 6 / g) * g; P = e2m1(V / s) * s (in float32, as the values are).
Usage: mx_reference.py FORMAT IN.f32 OUT.f32 (rows of COLS values: the block runs along them)."""
import sys

import ml_dtypes
import numpy as np

ELEMENTS = {  # name: (ml_dtypes type, largest normal)
    "ocp-mxfp4": (ml_dtypes.float4_e2m1fn, 6.0),
    "mxfp6-e2m3": (ml_dtypes.float6_e2m3fn, 7.5),
    "mxfp6-e3m2": (ml_dtypes.float6_e3m2fn, 28.0),
    "mxfp8-e4m3": (ml_dtypes.float8_e4m3fn, 448.0),
    "mxfp8-e5m2": (ml_dtypes.float8_e5m2, 57344.0),
}


def to_elem(x, dtype, top):
    x = np.clip(x, -top, top)  # the specification saturates; ml_dtypes' casts would overflow
    return x.astype(dtype).astype(np.float32)


def mx(v, name):
    dtype, top = ELEMENTS[name]
    emax = int(np.floor(np.log2(top)))
    out = np.zeros_like(v)
    for b in range(0, v.size, 32):
        blk = v[b:b + 32]
        amax = float(np.max(np.abs(blk)))
        if amax == 0:
            continue
        _, e = np.frexp(amax)  # amax = m 2^e, m in [0.5, 1): floor(log2 amax) = e - 1
        shared = int(min(127, max(-127, int(e) - 1 - emax)))
        scaled = (blk.astype(np.float64) / 2.0 ** shared).astype(np.float32)  # exact: a power of two
        out[b:b + 32] = (to_elem(scaled, dtype, top).astype(np.float64) * 2.0 ** shared).astype(np.float32)
    return out


def nvfp4(v):
    amax = np.float32(np.max(np.abs(v)))
    g = np.float32(amax / np.float32(6.0 * 448.0)) if amax > 0 else np.float32(1.0)
    out = np.zeros_like(v)
    for b in range(0, v.size, 16):
        blk = v[b:b + 16]
        bmax = np.float32(np.max(np.abs(blk)))
        s = to_elem(np.array([bmax / np.float32(6.0) / g], np.float32), ml_dtypes.float8_e4m3fn, 448.0)[0] * g
        if s > 0:
            out[b:b + 16] = to_elem((blk / s).astype(np.float32), ml_dtypes.float4_e2m1fn, 6.0) * s
    return out


def main():
    name, src, dst = sys.argv[1:4]
    v = np.fromfile(src, dtype=np.float32)
    out = nvfp4(v) if name == "nvidia-nvfp4" else mx(v, name)
    out.astype(np.float32).tofile(dst)


if __name__ == "__main__":
    main()
