#!/usr/bin/env bash
# The one command that runs every test: installs what is missing, fetches the larger real
# models into the cache (outside the repository, sha256-verified), builds, runs CTest; then
# builds again with AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer) and runs the
# C tests under them (QSENSE_SANITIZE=0 skips that second pass); then a
# bounded run of every libFuzzer target (QSENSE_FUZZ_SECONDS each, default 15; 0 skips).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/fetch_models.sh
bash scripts/build.sh
(cd "${QSENSE_BUILD_DIR:-build}" && ctest --output-on-failure -j1 "$@")
if [ "${QSENSE_SANITIZE:-1}" != 0 ]; then
  # Every C test under the sanitizers, optimised (-O2 -g) so the model tests fit the time budget.
  # Left out: the plan-vs-llama.cpp test (5 minutes under ASan, the same code paths as the
  # plan/check/llm-compressor tests; it passes), Gemma 3's end-to-end test (the same commands as
  # the stories260K ones; Gemma's forward pass runs under ASan in test_gemma3_matches_llamacpp),
  # the notebook test (Python), and valgrind (it cannot run an ASan binary). Gemma 3 against
  # llama.cpp checks two chunks of each text here (every chunk in the Release pass above).
  echo "== sanitizer build (ASan + UBSan) =="
  QSENSE_BUILD_DIR=build-asan QSENSE_BUILD_TYPE=RelWithDebInfo QSENSE_CMAKE_ARGS="-DQSENSE_SANITIZE=ON" bash scripts/build.sh
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    QSENSE_TEST_MAX_CHUNKS=2 ctest --output-on-failure -j1 -L 'unit|cli|model|browser' -E 'plan_beats|gemma3_end_to_end')
fi
if [ "${QSENSE_FUZZ_SECONDS:-15}" != 0 ]; then
  echo "== fuzzing (${QSENSE_FUZZ_SECONDS:-15}s per target) =="
  bash scripts/fuzz.sh "${QSENSE_FUZZ_SECONDS:-15}"
  echo "fuzz: 5 targets, no crash"
fi
