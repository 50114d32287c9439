#!/usr/bin/env bash
# Measures a GGUF with llama.cpp itself: builds llama-perplexity once (from the llama.cpp source
# that PyPI's llama-cpp-python==0.3.36 vendors, the same source as the ggml oracle) into
# $QSENSE_CACHE/llama.cpp, then runs llama-perplexity --kl-divergence of CANDIDATE against
# BASE on TEXT. An independent check that qsense's GGUFs load and run in llama.cpp and that
# qsense's KL figures agree with llama.cpp's. Not part of CI (the build takes ~10 minutes on
# 2 cores).
#   scripts/check_in_llamacpp.sh CANDIDATE.gguf BASE.gguf [TEXT] [CTX]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 CANDIDATE.gguf BASE.gguf [TEXT] [CTX]" >&2; exit 2; }
CAND=$1 BASE=$2 TEXT=${3:-/usr/share/common-licenses/GPL-3} CTX=${4:-128}
CACHE=${QSENSE_CACHE:-$HOME/.cache/qsense}
BIN="$CACHE/llama.cpp/llama-perplexity"
if [ ! -x "$BIN" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "building llama-perplexity (llama-cpp-python==0.3.36's llama.cpp) -> $BIN" >&2
  pip download -q --no-deps --no-binary :all: --disable-pip-version-check -d "$tmp" llama-cpp-python==0.3.36
  tar xzf "$tmp"/llama_cpp_python-0.3.36.tar.gz -C "$tmp"
  cmake -S "$tmp/llama_cpp_python-0.3.36/vendor/llama.cpp" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF >"$tmp/build.log" 2>&1 ||
    { tail -20 "$tmp/build.log" >&2; exit 1; }
  cmake --build "$tmp/build" --target llama-perplexity -j"$(nproc)" >>"$tmp/build.log" 2>&1 ||
    { tail -20 "$tmp/build.log" >&2; exit 1; }
  mkdir -p "$CACHE/llama.cpp"
  cp "$tmp/build/bin/llama-perplexity" "$BIN.part" && mv "$BIN.part" "$BIN"
fi
work=$(mktemp -d)
"$BIN" -m "$BASE" -f "$TEXT" -c "$CTX" --kl-divergence-base "$work/base.kld" > "$work/base.log" 2>&1
"$BIN" -m "$CAND" -f "$TEXT" -c "$CTX" --kl-divergence-base "$work/base.kld" --kl-divergence > "$work/cand.log" 2>&1 ||
  { cat "$work/cand.log" >&2; rm -rf "$work"; exit 1; }
grep -E "^Mean PPL\(Q\) |^Mean +KLD|^Same top p:" "$work/cand.log" | sed 's/^/llama.cpp: /'
rm -rf "$work"
