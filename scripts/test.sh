#!/usr/bin/env bash
# The one command that runs every test: installs what is missing, fetches the larger real
# models into the cache (outside the repository, sha256-verified), builds, runs CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/fetch_models.sh
bash scripts/build.sh
cd "${QSENSE_BUILD_DIR:-build}"
ctest --output-on-failure -j1 "$@"
