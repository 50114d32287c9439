#!/usr/bin/env bash
# Configures and builds qsense into ${QSENSE_BUILD_DIR:-build} (Release, warnings as errors).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
BUILD=${QSENSE_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=${QSENSE_BUILD_TYPE:-Release} -DQSENSE_WERROR=ON ${QSENSE_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
