#!/usr/bin/env bash
# Regenerates tests/oracle/kv_cache_llamacpp.json: llama.cpp's perplexity of SmolLM2-135M-Instruct
# Q4_1 (scripts/fetch_models.sh) with its KV cache in f16, q8_0, q4_0 and iq4_nl (-ctk = -ctv,
# flash attention on, which a quantized V cache needs), WikiText-2 test, ctx 512, 4 chunks; and
# q4_0 once more with LLAMA_ATTN_ROT_DISABLE=1, without the Walsh-Hadamard rotation llama.cpp
# applies to a quantized cache (so a test can tell whether a simulation rotates).
# llama-perplexity from scripts/check_in_llamacpp.sh's build (llama-cpp-python 0.3.36's
# llama.cpp). ~1 minute on 2 cores; not part of CI (the build is not).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${QSENSE_CACHE:-$HOME/.cache/qsense}
DATA=${QSENSE_DATA:-$HERE/../../../shared/datasets}
BIN="$CACHE/llama.cpp/llama-perplexity"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -x "$BIN" ] || { echo "build llama-perplexity first: scripts/check_in_llamacpp.sh" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() { # NAME TYPE [env] -> one JSON member
  env ${3:-} "$BIN" -m "$MODEL" -f "$DATA/wiki.test.tokens" -c 512 -b 512 -t 2 --chunks 4 -ctk "$2" -ctv "$2" -fa on >"$log" 2>&1
  printf '  "%s": %s' "$1" "$(grep -oE 'Final estimate: PPL = [0-9.]+' "$log" | grep -oE '[0-9.]+$')"
}
{
  echo '{'
  echo '  "about": "llama-perplexity (llama-cpp-python 0.3.36 llama.cpp, CPU, 2 threads, -fa on, -ctk = -ctv) on SmolLM2-135M-Instruct.Q4_1.gguf, wiki.test.tokens, ctx 512, 4 chunks; regenerate with tests/oracle/kv_cache_llamacpp_reference.sh",'
  run f16 f16; echo ','
  run q8_0 q8_0; echo ','
  run q4_0 q4_0; echo ','
  run iq4_nl iq4_nl; echo ','
  run q4_0_unrotated q4_0 LLAMA_ATTN_ROT_DISABLE=1; echo
  echo '}'
} > "$HERE/kv_cache_llamacpp.json.part"
mv "$HERE/kv_cache_llamacpp.json.part" "$HERE/kv_cache_llamacpp.json"
cat "$HERE/kv_cache_llamacpp.json"
