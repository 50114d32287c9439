#!/usr/bin/env bash
# Regenerates tests/oracle/family_models_llamacpp.json: llama.cpp's perplexity of the small
# qwen2 and qwen3 models that tests/oracle/make_family_models.py writes from stories260K.gguf
# (GPL-3, ctx 128, f32 weights). llama-perplexity from scripts/check_in_llamacpp.sh's build
# (llama-cpp-python 0.3.36's llama.cpp). Seconds; not part of CI (the build is not).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${QSENSE_CACHE:-$HOME/.cache/qsense}
MODELS=${QSENSE_MODELS:-$HERE/../../../shared/models}
BIN="$CACHE/llama.cpp/llama-perplexity"
[ -x "$BIN" ] || { echo "build llama-perplexity first: scripts/check_in_llamacpp.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$CACHE/venv/bin/python" "$HERE/make_family_models.py" "$MODELS/stories260K.gguf" "$work"
{
  echo '{'
  echo '  "about": "llama-perplexity (llama-cpp-python 0.3.36 llama.cpp, CPU, 1 thread) on GPL-3 at ctx 128 of the models tests/oracle/make_family_models.py writes; regenerate with tests/oracle/family_models_reference.sh",'
  sep=''
  for fam in qwen2 qwen3; do
    "$BIN" -m "$work/$fam-stories260K.gguf" -f /usr/share/common-licenses/GPL-3 -c 128 -b 128 -t 1 > "$work/$fam.log" 2>&1
    running=$(grep -oE '\[[0-9]+\][0-9.]+' "$work/$fam.log" | sed -E 's/\[[0-9]+\]//' | paste -sd, -)
    final=$(grep -oE 'Final estimate: PPL = [0-9.]+' "$work/$fam.log" | grep -oE '[0-9.]+$')
    printf '%s  "%s": {"n_ctx": 128, "f32_ppl": %s, "per_chunk_running_ppl": [%s]}' "$sep" "$fam" "$final" "$running"
    sep=$',\n'
  done
  echo
  echo '}'
} > "$HERE/family_models_llamacpp.json.part"
mv "$HERE/family_models_llamacpp.json.part" "$HERE/family_models_llamacpp.json"
