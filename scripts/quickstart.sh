#!/usr/bin/env bash
# Sets up .venv, turns the bundled sample corpus into whole-word-masked TFRecords, shows five.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/wwm run --input wwm_core/data/sample/corpus.txt --output out/sample \
  --segmenter jieba --recipe bert-wwm --dupe_factor 5 --overwrite
.venv/bin/wwm inspect out/sample --limit 5
