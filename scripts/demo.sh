#!/usr/bin/env bash
# The main job: inspect the default model, measure its perplexity on a text every Debian
# machine has, profile it into <model>.qsense.db, and turn that into an HTML report in
# qsense-report/. MODEL and TEXT may be overridden: scripts/demo.sh [MODEL [TEXT]]
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
echo
DB=$(basename "$MODEL"); DB="${DB%.*}.qsense.db"
./build/qsense report --db "$DB" --out qsense-report
./build/qsense report --db "$DB" --text
