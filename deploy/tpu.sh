#!/usr/bin/env bash
# Trains on a Cloud TPU VM (one host, or every host of a pod slice) from data on gs://.
# Not runnable from the development machines (no network to GCP) and NOT RUN on a TPU so far:
# see README, "On a Cloud TPU VM". Fill in the variables, then run from the repository root.
#
# What it does: creates the TPU VM on a bare Ubuntu TPU runtime, copies this commit to every
# host, installs into a virtualenv the versions the trainer is tested with (requirements.lock:
# Keras 3.15.1 and the rest) with TensorFlow's TPU build tensorflow-tpu 2.20.0 (the newest
# TensorFlow TPU build on PyPI; the tests run tensorflow-cpu 2.21.0), trains, and deletes the VM
# unless KEEP_TPU=1: a TPU is billed for as long as it exists, busy or not. Running it again
# after a preemption resumes in the phase and at the checkpoint MODEL_DIR holds.
#
# Pod slices (ACCELERATOR=v3-32, v4-32, ...): every host runs the same command (--worker=all);
# tf.distribute gives each host's input pipeline its own share of the shards, so make the data
# with at least as many shards as hosts (wwm run --num_shards).
set -euo pipefail
: "${PROJECT:?set PROJECT}" "${ZONE:=us-central1-b}" "${TPU_NAME:=wwm-tpu}" "${ACCELERATOR:=v3-8}"
# A bare runtime: nothing preinstalled to disagree with the locked versions.
: "${TPU_SOFTWARE:=tpu-ubuntu2204-base}"
: "${TENSORFLOW_TPU:=tensorflow-tpu==2.20.0}" "${LIBTPU:=libtpu==0.0.14}"  # tensorflow-tpu 2.20.0 asks for libtpu~=0.0.14
: "${MANIFEST:?set MANIFEST (gs://.../manifest.json of a finished wwm run: one phase, or OUT/manifest.json for all)}"
: "${MODEL_DIR:?set MODEL_DIR (gs://...)}"
# Default: the recipe recorded in the manifest (HFL's settings); add flags to override it.
TRAIN_FLAGS="${TRAIN_FLAGS:---steps_per_loop 500 --save_checkpoints_steps 5000}"
cd "$(dirname "$0")/.."
gcloud="gcloud --project=${PROJECT}"
hosts="--worker=all"

if ! $gcloud compute tpus tpu-vm describe "$TPU_NAME" --zone="$ZONE" >/dev/null 2>&1; then
  $gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" --accelerator-type="$ACCELERATOR" \
    --version="$TPU_SOFTWARE"
fi
git archive --format=tar.gz -o /tmp/wwm-data.tar.gz HEAD
$gcloud compute tpus tpu-vm scp /tmp/wwm-data.tar.gz "$TPU_NAME":~/ --zone="$ZONE" $hosts
# Python 3.11: the locked numpy needs it (Ubuntu 22.04's python3 is 3.10).
$gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" $hosts --command="
  set -e; mkdir -p wwm-data && tar -xzf wwm-data.tar.gz -C wwm-data && cd wwm-data
  if [ ! -x .venv/bin/python ]; then
    sudo apt-get update -qq && sudo apt-get install -y -qq python3.11 python3.11-venv
    python3.11 -m venv .venv
  fi
  grep -v -i '^tensorflow' requirements.lock > /tmp/lock-tpu.txt
  # The trainer's other needs (the [tf] extra without tensorflow-cpu): -e . alone does not bring safetensors.
  .venv/bin/pip install --quiet -c /tmp/lock-tpu.txt '$TENSORFLOW_TPU' '$LIBTPU' keras safetensors h5py -e .
  .venv/bin/python -c 'import keras, safetensors, tensorflow as tf; print(\"TensorFlow\", tf.__version__, \"Keras\", keras.__version__)'"
# shellcheck disable=SC2086 # TRAIN_FLAGS is a list of flags
$gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" $hosts --command="
  cd wwm-data && .venv/bin/python -m wwm_trainer --tpu local --manifest '$MANIFEST' --model_dir '$MODEL_DIR' $TRAIN_FLAGS"
if [ "${KEEP_TPU:-0}" != "1" ]; then
  $gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$ZONE" --quiet
fi
