#!/usr/bin/env bash
# Peak resident memory and speed of qsense's commands on one model, next to llama.cpp's
# llama-perplexity on the same file, text, context and threads, measured in one run.
# The long commands (the sensitivity sweep) are stopped after LIMIT seconds: their peak is
# reached in the first jobs (the base run's caches, one perturbed tensor at a time).
#   bench/memory_vs_llamacpp.sh [MODEL.gguf] [TEXT] [CTX] [CHUNKS] [LIMIT]
# Needs GNU time (apt-get install time) and llama-perplexity built by scripts/check_in_llamacpp.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${QSENSE_CACHE:-$HOME/.cache/qsense}
MODEL=${1:-$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf} TEXT=${2:-/usr/share/common-licenses/GPL-3}
CTX=${3:-512} CHUNKS=${4:-6} LIMIT=${5:-120}
Q=${QSENSE_BUILD_DIR:-build}/qsense LP=$CACHE/llama.cpp/llama-perplexity T=$(nproc)
[ -x "$LP" ] || { echo "build llama-perplexity first: scripts/check_in_llamacpp.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $T threads; $("$Q" --version | tail -1)"
echo "model:   $MODEL ($(du -m "$MODEL" | cut -f1) MB), text $TEXT, ctx $CTX, $CHUNKS chunks"
# peak RSS (MB) and wall seconds of a command: "MB s"
measure() { /usr/bin/time -f "%M %e" -o "$work/t" "$@" > "$work/out" 2>&1 || true; tail -1 "$work/t" | awk '{printf "%.0f %.2f", $1/1024, $2}'; }
read -r lp_mb lp_s <<<"$(measure "$LP" -m "$MODEL" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t "$T")"
lp_ppl=$(grep -oE 'Final estimate: PPL = [0-9.]+' "$work/out" | awk '{print $NF}')
read -r q_mb q_s <<<"$(measure "$Q" ppl "$MODEL" --text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" --json --quiet)"
q_tps=$(grep -oE '"tokens_per_second": [0-9.]+' "$work/out" | awk '{print $2}')
q_ppl=$(grep -oE '"ppl": [0-9.]+' "$work/out" | awk '{print $2}')
lp_tps=$(awk -v n="$CHUNKS" -v c="$CTX" -v s="$lp_s" 'BEGIN {printf "%.1f", n * c / s}')
printf '\n| command | peak RSS | vs llama-perplexity | time |\n| --- | --- | --- | --- |\n'
printf '| llama-perplexity | %s MB | 1.00 | %s s (%s tokens/s incl. loading), PPL %s |\n' "$lp_mb" "$lp_s" "$lp_tps" "$lp_ppl"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
printf '| qsense ppl | %s MB | %s | %s s (%s tokens/s evaluating), PPL %s (exact f32) |\n' "$q_mb" "$(ratio "$q_mb" "$lp_mb")" "$q_s" "$q_tps" "$q_ppl"
read -r mb s <<<"$(measure "$Q" profile "$MODEL" --data "$TEXT" --db "$work/p.db" --formats q8_0,q4_0,int4-g128-asym --quiet)"
printf '| qsense profile (3 formats) | %s MB | %s | %s s |\n' "$mb" "$(ratio "$mb" "$lp_mb")" "$s"
read -r mb s <<<"$(measure timeout "$LIMIT" "$Q" profile "$MODEL" --data "$TEXT" --db "$work/s.db" --formats q8_0 --sensitivity --eval debian --sens-formats q8_0,q4_0 --quiet)"
printf '| qsense profile --sensitivity (first %s s) | %s MB | %s | stopped |\n' "$LIMIT" "$mb" "$(ratio "$mb" "$lp_mb")"
read -r mb s <<<"$(measure "$Q" check --model "$MODEL" --base "$MODEL" --data "$TEXT" --ctx "$CTX")"
printf '| qsense check (model vs itself) | %s MB | %s | %s s |\n' "$mb" "$(ratio "$mb" "$lp_mb")" "$s"
