#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for SECONDS (default 60).
# Seeds: tests/fuzz/corpus/<target>/ (small hand-made cases) and the real files in
# $QSENSE_MODELS; crashes are written to build-fuzz/crashes/ and make the script fail.
# usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
MODELS=${QSENSE_MODELS:-$(cd .. && pwd)/shared/models}
export QSENSE_MODELS=$MODELS
command -v clang >/dev/null || { echo "fuzz: needs clang (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQSENSE_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_gguf fuzz_llama2c fuzz_json fuzz_tokenize >/dev/null
mkdir -p build-fuzz/crashes
seeds() {
  case $1 in
    gguf) echo "$MODELS/stories260K-llamacpp-Q2_K.gguf $MODELS/llamacpp-vocab/ggml-vocab-gpt-2.gguf" ;;
    llama2c) echo "$MODELS/tok512.bin" ;;
    *) echo "" ;;
  esac
}
status=0
for t in gguf llama2c json tokenize; do
  work=$(mktemp -d)
  for s in $(seeds $t); do cp "$s" "$work/"; done
  echo "fuzz: $t for ${SECONDS_EACH}s" >&2
  if ! (cd build-fuzz/crashes && ../fuzz_$t -max_total_time="$SECONDS_EACH" -max_len=2000000 -rss_limit_mb=4096 \
        -timeout=20 "$work" "../../tests/fuzz/corpus/$t" >"../fuzz_$t.log" 2>&1); then
    echo "fuzz: $t found a crash; see build-fuzz/fuzz_$t.log and build-fuzz/crashes/" >&2
    tail -30 "build-fuzz/fuzz_$t.log" >&2
    status=1
  fi
  rm -rf "$work"
done
exit $status
