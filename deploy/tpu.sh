#!/usr/bin/env bash
# Trains on a Cloud TPU VM from data on gs:// (`wwm train --tpu local`). Not runnable from the
# development machines (no network to GCP). Fill in the variables, then run from the repository
# root. It creates the TPU VM, copies this working tree to it, installs the package (without the
# [tf] extra: the TPU image's own TensorFlow stays), trains, and deletes the VM at the end unless
# KEEP_TPU=1: a TPU is billed for as long as it exists, busy or not. Running it again after a
# preemption resumes from the last checkpoint in MODEL_DIR.
set -euo pipefail
: "${PROJECT:?set PROJECT}" "${ZONE:=us-central1-b}" "${TPU_NAME:=wwm-tpu}" "${ACCELERATOR:=v3-8}"
: "${TPU_SOFTWARE:=tpu-vm-tf-2.18.0-pjrt}"
: "${MANIFEST:?set MANIFEST (gs://.../manifest.json of a finished wwm run)}" "${MODEL_DIR:?set MODEL_DIR (gs://...)}"
TRAIN_FLAGS="${TRAIN_FLAGS:---model_config base --train_batch_size 256 --learning_rate 1e-4 --num_train_steps 100000 --num_warmup_steps 1000 --steps_per_loop 500 --save_checkpoints_steps 5000}"
cd "$(dirname "$0")/.."
gcloud="gcloud --project=${PROJECT}"

if ! $gcloud compute tpus tpu-vm describe "$TPU_NAME" --zone="$ZONE" >/dev/null 2>&1; then
  $gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" --accelerator-type="$ACCELERATOR" \
    --version="$TPU_SOFTWARE"
fi
git archive --format=tar.gz -o /tmp/wwm-data.tar.gz HEAD
$gcloud compute tpus tpu-vm scp /tmp/wwm-data.tar.gz "$TPU_NAME":~/ --zone="$ZONE"
# shellcheck disable=SC2086 # TRAIN_FLAGS is a list of flags
$gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --command="
  set -e; mkdir -p wwm-data && tar -xzf wwm-data.tar.gz -C wwm-data && cd wwm-data
  pip install --quiet -e .
  python3 -m pipelines.cli train --tpu local --manifest '$MANIFEST' --model_dir '$MODEL_DIR' $TRAIN_FLAGS"
if [ "${KEEP_TPU:-0}" != "1" ]; then
  $gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$ZONE" --quiet
fi
