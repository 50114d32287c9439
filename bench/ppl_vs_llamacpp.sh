#!/usr/bin/env bash
# Evaluation speed and peak memory of `qsense ppl` next to llama.cpp's llama-perplexity on the
# same file, text, context, chunks and threads, in one run: qsense layer-major (its default:
# a batch of chunks through each layer) and chunk-major (--batch 1); llama-perplexity with its
# default batch (2048: four 512-token chunks share one unified KV cache) and with -b CTX (one
# chunk per pass, its fastest on CPU). Evaluation time excludes loading: qsense's JSON
# "seconds"; llama-perplexity's log time from "calculating perplexity" to "Final estimate".
#   bench/ppl_vs_llamacpp.sh [MODEL.gguf] [TEXT] [CTX] [CHUNKS]
# The 8B-shaped file: build/qsense_make_model 8b $QSENSE_CACHE/bench-8b-q4_k_m.gguf (5.2 GB).
# Needs GNU time and llama-perplexity built by scripts/check_in_llamacpp.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${QSENSE_CACHE:-$HOME/.cache/qsense}
MODEL=${1:-$CACHE/bench-8b-q4_k_m.gguf} TEXT=${2:-/usr/share/common-licenses/GPL-3}
CTX=${3:-512} CHUNKS=${4:-4}
Q=${QSENSE_BUILD_DIR:-build}/qsense LP=$CACHE/llama.cpp/llama-perplexity T=$(nproc)
[ -x "$LP" ] || { echo "build llama-perplexity first: scripts/check_in_llamacpp.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $T threads; $("$Q" --version | grep -i blas)"
echo "model:   $MODEL ($(du -m "$MODEL" | cut -f1) MB), text $TEXT, ctx $CTX, $CHUNKS chunks"
tokens=$((CTX * CHUNKS))
# runs a command under GNU time; peak RSS in MB and wall seconds into $work/t
run() { /usr/bin/time -f "%M %e" -o "$work/t" "$@" > "$work/out" 2>&1 || { tail -5 "$work/out" >&2; exit 1; }; }
peak_mb() { awk '{printf "%.0f", $1 / 1024}' "$work/t"; }
wall_s() { awk '{print $2}' "$work/t"; }
# llama.cpp's log stamps are minutes.seconds.milliseconds.microseconds
stamp_s() { grep -m1 "$1" "$work/out" | awk '{split($1, p, "."); printf "%.3f", p[1] * 60 + p[2] + p[3] / 1e3}'; }
printf '\n| run | peak RSS | evaluation | tokens/s | vs llama-perplexity -b %s | PPL |\n| --- | --- | --- | --- | --- | --- |\n' "$CTX"
declare -A tps
for b in "$CTX" 2048; do
    run "$LP" -m "$MODEL" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t "$T" -b "$b"
    s=$(awk -v a="$(stamp_s 'calculating perplexity')" -v b="$(stamp_s 'Final estimate')" 'BEGIN {printf "%.1f", b - a}')
    tps[lp$b]=$(awk -v n="$tokens" -v s="$s" 'BEGIN {printf "%.2f", n / s}')
    ppl=$(grep -oE 'Final estimate: PPL = [0-9.]+' "$work/out" | awk '{print $NF}')
    printf '| llama-perplexity -b %s | %s MB | %s s | %s | %.2f | %s (q8 activations) |\n' "$b" "$(peak_mb)" "$s" \
        "${tps[lp$b]}" "$(awk -v a="${tps[lp$b]}" -v b="${tps[lp$CTX]}" 'BEGIN {print a / b}')" "$ppl"
done
for b in "" "--batch 1"; do
    # shellcheck disable=SC2086 # $b: no option, or the option and its value
    run "$Q" ppl "$MODEL" --text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" --threads "$T" $b --json --quiet
    s=$(grep -oE '"seconds": [0-9.]+' "$work/out" | awk '{printf "%.1f", $2}')
    t=$(awk -v n="$tokens" -v s="$s" 'BEGIN {printf "%.2f", n / s}')
    nb=$(grep -oE '"batch": [0-9]+' "$work/out" | awk '{print $2}')
    ppl=$(grep -oE '"ppl": [0-9.]+' "$work/out" | awk '{print $2}')
    printf '| qsense ppl (%s chunks a pass) | %s MB | %s s | %s | %.2f | %s (exact f32) |\n' "$nb" "$(peak_mb)" "$s" "$t" \
        "$(awk -v a="$t" -v b="${tps[lp$CTX]}" 'BEGIN {print a / b}')" "$ppl"
done
