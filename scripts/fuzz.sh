#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for SECONDS (default 60), then
# prints what each run reached: executions, coverage (edges) and features, from libFuzzer's own
# final line. Seeds: tests/fuzz/corpus/<target>/ (small hand-made cases and every crasher found),
# the real files in $QSENSE_MODELS, and for fuzz_db a real profile database made here with the
# Release build (build/qsense) when there is one. Crashes are written to build-fuzz/crashes/ and
# make the script fail.
# usage: scripts/fuzz.sh [SECONDS]      (CI: 15; a longer local run: scripts/fuzz.sh 600)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
MODELS=${QSENSE_MODELS:-$(cd .. && pwd)/shared/models}
export QSENSE_MODELS=$MODELS
TARGETS="gguf llama2c json tokenize db"
command -v clang >/dev/null || { echo "fuzz: needs clang (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQSENSE_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" $(for t in $TARGETS; do printf -- '--target fuzz_%s ' "$t"; done) >/dev/null
mkdir -p build-fuzz/crashes
seeds() {
  case $1 in
    gguf) echo "$MODELS/stories260K-llamacpp-Q2_K.gguf $MODELS/llamacpp-vocab/ggml-vocab-gpt-2.gguf" ;;
    llama2c) echo "$MODELS/tok512.bin" ;;
    *) echo "" ;;
  esac
}
# a small real database: the profile, a sensitivity sweep and a plan of stories260K
db_seed() {
  local work=$1 q=${QSENSE_BUILD_DIR:-build}/qsense
  [ -x "$q" ] && [ -f "$MODELS/stories260K.gguf" ] || return 0
  printf '{"name": "seed", "domains": [{"name": "gpl", "files": ["/usr/share/common-licenses/GPL-3"], "tokens": 256}]}' \
    > "$work/seed-set.json"
  "$q" profile "$MODELS/stories260K.gguf" --db "$work/seed.db" --formats q8_0 --calib-tokens 128 --sensitivity \
    --eval "$work/seed-set.json" --sens-formats q8_0,q4_0 --quiet >/dev/null 2>&1 &&
    "$q" plan --db "$work/seed.db" --budget-bpw 7 --out "$work/seed-plan.json" >/dev/null 2>&1 || true
  rm -f "$work"/seed-set.json "$work"/seed-plan.json "$work"/seed.db.*.h5 "$work"/seed.db-wal "$work"/seed.db-shm
}
status=0
for t in $TARGETS; do
  work=$(mktemp -d)
  for s in $(seeds $t); do cp "$s" "$work/"; done
  [ "$t" = db ] && db_seed "$work"
  mkdir -p "tests/fuzz/corpus/$t"
  echo "fuzz: $t for ${SECONDS_EACH}s" >&2
  if ! (cd build-fuzz/crashes && ../fuzz_$t -max_total_time="$SECONDS_EACH" -max_len=2000000 -rss_limit_mb=4096 \
        -timeout=20 -print_final_stats=1 "$work" "../../tests/fuzz/corpus/$t" >"../fuzz_$t.log" 2>&1); then
    echo "fuzz: $t found a crash; see build-fuzz/fuzz_$t.log and build-fuzz/crashes/" >&2
    tail -30 "build-fuzz/fuzz_$t.log" >&2
    status=1
  fi
  # libFuzzer's last status line: "#RUNS DONE cov: EDGES ft: FEATURES corp: N/SIZE ..."
  last=$(grep -E '^#[0-9]+' "build-fuzz/fuzz_$t.log" | tail -1 || true)
  runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  echo "fuzz: $t: ${runs:-0} inputs, coverage ${cov:-?} edges, ${ft:-?} features (build-fuzz/fuzz_$t.log)"
  rm -rf "$work"
done
exit $status
