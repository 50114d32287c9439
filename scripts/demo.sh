#!/usr/bin/env bash
# The main job: inspect the default model, measure its perplexity on a text every Debian
# machine has, and profile it into <model>.qsense.db. MODEL and TEXT may be overridden: scripts/demo.sh [MODEL [TEXT]]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
MODELS=${QSENSE_MODELS:-../shared/models}
MODEL=${1:-$MODELS/stories260K.gguf}
TEXT=${2:-/usr/share/common-licenses/GPL-3}
./build/qsense inspect "$MODEL"
echo
./build/qsense ppl "$MODEL" --text "$TEXT" --ctx 128
echo
./build/qsense profile "$MODEL" --data "$TEXT"
