#!/usr/bin/env bash
# The low-bit bar (issue 19): on the 256-wide trained test model (scripts/train_test_model.py,
# cached in $QSENSE_CACHE), at the file sizes of llama.cpp's IQ2_XS, IQ3_XXS, Q3_K_S and Q4_K_M
# recipes made *with an imatrix from the same text* qsense calibrates on (the `debian` set's
# files), compares the KL divergence of llama.cpp's recipe and of qsense's plan on held-out text
# (WikiText-2 test, not in the training text nor the calibration), both measured by llama.cpp's
# llama-perplexity --kl-divergence against the f32 model. Prints one line per size and the
# ratio; the bar is qsense <= 0.8 x llama.cpp at each size.
#   bench/lowbit_vs_llamacpp.sh [BUILD_DIR] [WORK_DIR]
# Needs scripts/fetch_models.sh's venv and llama.cpp's tools in $QSENSE_CACHE/llama.cpp
# (llama-perplexity, llama-quantize, llama-imatrix, built from PyPI llama-cpp-python 0.3.36's
# source). About 40 minutes on 2 cores, most of it the exact sensitivity sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WORK=${2:-$(mktemp -d)}
CACHE=${QSENSE_CACHE:-$HOME/.cache/qsense}
SHARED=${QSENSE_MODELS:-../shared/models}
DATA=${QSENSE_DATA:-../shared/datasets}
QS="$BUILD/qsense"
LCPP="$CACHE/llama.cpp"
MODEL="$CACHE/qsense-test-256.gguf"
CTX=256
CHUNKS=${CHUNKS:-40}
FORMATS=${FORMATS:-q8_0,q6_k,q5_k-w,q4_k-w,iq4_xs-w,q3_k-w,iq3_s-w,iq3_xxs-w,q2_k-w,iq2_s-w,iq2_xs-w,iq2_xxs-w,iq1_m-w}
mkdir -p "$WORK"
for tool in llama-perplexity llama-quantize llama-imatrix; do
  [ -x "$LCPP/$tool" ] || { echo "missing $LCPP/$tool (build llama.cpp's tools from llama-cpp-python 0.3.36's source)" >&2; exit 2; }
done
if [ ! -f "$MODEL" ]; then
  echo "training the 256-wide test model -> $MODEL" >&2
  "$CACHE/venv/bin/python" scripts/train_test_model.py "$QS" "$SHARED/stories260K.gguf" "$DATA" "$MODEL.part" --steps 400
  mv "$MODEL.part" "$MODEL"
fi
# the calibration text, as one file for llama-imatrix: the debian set's files in its order
calib="$WORK/debian-calib.txt"
python3 - "$calib" <<'EOF'
import glob, json, sys
out = open(sys.argv[1], "w")
for d in json.load(open("datasets/debian.json"))["domains"]:
    for pat in d["files"]:
        for f in sorted(glob.glob(pat)):
            out.write(open(f, errors="replace").read())
EOF
heldout="$WORK/heldout.txt"
cp "$DATA/wiki.test.tokens" "$heldout"
[ -f "$WORK/imatrix.dat" ] || "$LCPP/llama-imatrix" -m "$MODEL" -f "$calib" -c $CTX -o "$WORK/imatrix.dat" >"$WORK/imatrix.log" 2>&1
[ -f "$WORK/base.kld" ] || "$LCPP/llama-perplexity" -m "$MODEL" -f "$heldout" -c $CTX --chunks "$CHUNKS" \
  --kl-divergence-base "$WORK/base.kld" >"$WORK/base.log" 2>&1
kl_of() {
  "$LCPP/llama-perplexity" -m "$1" -f "$heldout" -c $CTX --chunks "$CHUNKS" --kl-divergence-base "$WORK/base.kld" \
    --kl-divergence >"$1.kld.log" 2>&1 || true
  local v
  v=$(sed -n 's/^Mean *KLD: *\([0-9.e+-]*\).*/\1/p' "$1.kld.log")
  [ -n "$v" ] || { echo "llama-perplexity gave no KL for $1:" >&2; tail -5 "$1.kld.log" >&2; return 1; }
  echo "$v"
}
# qsense: calibration + exact sweep on the debian set (resumes if interrupted)
"$QS" profile "$MODEL" --db "$WORK/t.db" --data debian --formats q8_0 --sensitivity --eval debian \
  --sens-formats "$FORMATS" --quiet >"$WORK/profile.log" 2>&1
printf '%-8s %12s %14s %14s %7s\n' recipe bytes llama.cpp_KL qsense_KL ratio
for recipe in IQ2_XS IQ3_XXS Q3_K_S Q4_K_M; do
  r="$WORK/recipe-$recipe.gguf"
  [ -f "$r" ] || "$LCPP/llama-quantize" --imatrix "$WORK/imatrix.dat" "$MODEL" "$r" "$recipe" >"$WORK/quantize-$recipe.log" 2>&1
  bytes=$(stat -c %s "$r")
  "$QS" plan --db "$WORK/t.db" --budget-bytes "$bytes" --target llama.cpp --out "$WORK/plan-$recipe.json" >"$WORK/plan-$recipe.log" 2>&1
  "$QS" quantize "$MODEL" --plan "$WORK/plan-$recipe.json" --db "$WORK/t.db" -o "$WORK/qsense-$recipe.gguf" >/dev/null
  a=$(kl_of "$r") && b=$(kl_of "$WORK/qsense-$recipe.gguf") || exit 1
  printf '%-8s %12s %14s %14s %7.3f\n' "$recipe" "$bytes" "$a" "$b" "$(python3 -c "print($b / $a)")"
done
# the KL-vs-bits-per-weight figure: every file measured by qsense check into the database (held-out
# text, llama.cpp numerics), drawn by the report beside the uniform formats and the Pareto front
head -c 60000 "$heldout" >"$WORK/heldout-head.txt"
for f in "$WORK"/recipe-*.gguf "$WORK"/qsense-*.gguf; do
  "$QS" check --model "$f" --base "$MODEL" --data "$WORK/heldout-head.txt" --ctx $CTX --db "$WORK/t.db" --llamacpp-numerics \
    >"$f.check.log" 2>&1 || true   # exit 1: over the default thresholds, still recorded
done
rm -rf "$WORK/report"
"$QS" report --db "$WORK/t.db" --out "$WORK/report" >/dev/null
echo "report with the KL vs bits per weight figure (pareto.png): $WORK/report/index.html"
