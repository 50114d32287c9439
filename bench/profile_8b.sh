#!/usr/bin/env bash
# Peak resident memory of `qsense profile --sensitivity` (gradient mode) on the 8B-shaped file
# (issue 16): build/qsense_make_model 8b writes it (5.2 GB) into $QSENSE_CACHE.
#   bench/profile_8b.sh [QSENSE] [MODEL] [EVAL_BYTES]
# The evaluation text is the first EVAL_BYTES (default 2500) of GPL-3: two 512-token chunks with
# this model's byte-fallback vocabulary. About 80 minutes on 2 cores; prints the memory estimate,
# the whole-model rows and GNU time's peak.
set -euo pipefail
QS=${1:-build/qsense}
MODEL=${2:-${QSENSE_CACHE:-$HOME/.cache/qsense}/bench-8b-q4_k_m.gguf}
BYTES=${3:-2500}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c "$BYTES" /usr/share/common-licenses/GPL-3 >"$work/eval.txt"
ls -l "$MODEL"
/usr/bin/time -v "$QS" profile "$MODEL" --db "$work/p.db" --formats q4_k --calib-tokens 512 --sensitivity \
    --sens-mode gradient --sens-formats q4_k,int4-g128-asym --eval "$work/eval.txt" --eval-ctx 512 \
    >"$work/out.txt" 2>"$work/err.txt" || echo "qsense exited with $?"
# the estimate, the summary and the peak; progress lines are carriage-return separated
tr '\r' '\n' <"$work/err.txt" | grep -vE "^\s*$|ETA|^\s+[A-Z].*: [0-9.:]+$" | tail -40
grep -E "Maximum resident|Elapsed \(wall" "$work/err.txt"
cat "$work/out.txt"
sqlite3 "$work/p.db" "SELECT f.name, w.domain, w.kl_mean FROM whole_model w JOIN formats f ON f.id = w.format_id" || true
