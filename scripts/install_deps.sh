#!/usr/bin/env bash
# Installs the Debian packages qsense needs to build and test, when they are missing.
# As root it runs apt-get itself; otherwise it prints the one command to run.
set -euo pipefail
# build and core tests; then the report's browser test (chromium) and the notebooks' (jupyter
# with pandas and matplotlib, all Debian's own)
PKGS="build-essential cmake pkg-config libopenblas-dev libsqlite3-dev libhdf5-dev libcjson-dev gnuplot-nox python3 python3-venv clang libclang-rt-14-dev"
# Open MPI: the distributed sensitivity sweep (optional to build; its test runs 2 ranks)
PKGS="$PKGS libopenmpi-dev openmpi-bin sqlite3"
PKGS="$PKGS chromium fonts-dejavu-core jupyter-nbconvert python3-ipykernel python3-pandas python3-matplotlib python3-yaml"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "qsense needs these Debian packages; run:" >&2
  echo "  sudo apt-get install -y$missing" >&2
  exit 1
fi
