#!/usr/bin/env bash
# Submits `wwm run` to Google Cloud Dataflow. Not runnable from the development machines (no
# network to GCP); the flags are Beam's standard ones. Fill in the variables, then run from the
# repository root after `bash scripts/setup.sh`.
set -euo pipefail
: "${PROJECT:?set PROJECT}" "${REGION:=us-central1}" "${BUCKET:?set BUCKET (without gs://)}"
cd "$(dirname "$0")/.."
.venv/bin/wwm run \
  --input "gs://${BUCKET}/corpus/*.txt" \
  --output "gs://${BUCKET}/wwm/bert-wwm-128" \
  --vocab_file "gs://${BUCKET}/chinese_wwm_L-12_H-768_A-12/vocab.txt" \
  --segmenter ltp --ltp_model "gs://${BUCKET}/ltp_legacy/" \
  --recipe bert-wwm --max_seq_length 128 --dupe_factor 5 --num_shards 256 \
  --runner DataflowRunner --project "$PROJECT" --region "$REGION" \
  --temp_location "gs://${BUCKET}/tmp" --staging_location "gs://${BUCKET}/staging" \
  --setup_file ./setup.py --experiments use_runner_v2 \
  --max_num_workers 32 --machine_type n2-standard-4
