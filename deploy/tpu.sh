#!/usr/bin/env bash
# Trains on a single-host Cloud TPU VM from data on gs://. NOT RUN on a TPU so far (no network to
# GCP from the development machines): see deploy/README.md, "TPU", for what was checked and the
# Google documentation this follows. Fill in the variables, then run from the repository root.
#
# What it does: creates the TPU VM on a bare runtime (nothing preinstalled to disagree with the
# locked versions), copies this commit, installs Python 3.11 and into a virtualenv the versions the
# trainer is tested with (requirements.lock: Keras 3.15.1 and the rest) with TensorFlow's TPU build
# (tensorflow-tpu 2.20.0, the newest on PyPI; the tests run tensorflow-cpu 2.21.0) and its libtpu,
# sets the environment that TensorFlow needs for the TPU's device API (StreamExecutor on v2-v4,
# PJRT through the pluggable-device C API on v5e, v5p, v6e), runs a preflight (20 steps of the tiny
# model on the real data, to a scratch folder: a minute or two) and only then the long run, and
# deletes the VM unless KEEP_TPU=1 (a TPU is billed while it exists, busy or not). Running it again
# after a preemption resumes in the phase and at the checkpoint MODEL_DIR holds.
#
# Pod slices (more than one host: v3-32, v4-16, v5litepod-16, ...) are refused: Google's TensorFlow
# path for them runs one program, on worker 0, naming the TPU, against TensorFlow servers that a
# tpu-vm-tf-*-pod runtime starts on every host; this script installs its own TensorFlow on a bare
# runtime, which starts none.
set -euo pipefail
: "${PROJECT:?set PROJECT}" "${ZONE:=us-central1-b}" "${TPU_NAME:=wwm-tpu}" "${ACCELERATOR:=v3-8}"
: "${MANIFEST:?set MANIFEST (gs://.../manifest.json of a finished wwm run: one phase, or OUT/manifest.json for all)}"
: "${MODEL_DIR:?set MODEL_DIR (gs://...)}"
: "${TENSORFLOW_TPU:=tensorflow-tpu==2.20.0}" "${LIBTPU:=libtpu==0.0.14}"  # tensorflow-tpu 2.20.0 asks for libtpu~=0.0.14
# Default: the recipe recorded in the manifest (HFL's settings); add flags to override it.
TRAIN_FLAGS="${TRAIN_FLAGS:---steps_per_loop 500 --save_checkpoints_steps 5000}"
cd "$(dirname "$0")/.."

generation="${ACCELERATOR%-*}" size="${ACCELERATOR##*-}"
case "$generation" in
  v2|v3|v4) device_api=se; : "${TPU_SOFTWARE:=tpu-ubuntu2204-base}" ;;
  v5litepod) device_api=pjrt; : "${TPU_SOFTWARE:=v2-alpha-tpuv5-lite}" ;;
  v5p) device_api=pjrt; : "${TPU_SOFTWARE:=v2-alpha-tpuv5}" ;;
  v6e) device_api=pjrt; : "${TPU_SOFTWARE:=v2-alpha-tpuv6e}" ;;
  *) echo "tpu.sh: ACCELERATOR=$ACCELERATOR: expected v2-8, v3-8, v4-8, v5litepod-8, v5p-8 or v6e-8" >&2; exit 2 ;;
esac
# One host holds 8 TensorCores (v2, v3, v4, v5p count cores) or 8 chips (v5e, v6e count chips).
if ! [[ "$size" =~ ^[0-9]+$ ]] || [ "$size" -gt 8 ]; then
  echo "tpu.sh: ACCELERATOR=$ACCELERATOR is a pod slice (several hosts), refused: Google's TensorFlow pod path" \
       "runs one program on worker 0 naming the TPU, against the TensorFlow servers of a tpu-vm-tf-*-pod runtime," \
       "which this script's bare runtime does not start; use a single-host slice (${generation}-8)" >&2
  exit 2
fi
gcloud="gcloud --project=${PROJECT}"

if ! $gcloud compute tpus tpu-vm describe "$TPU_NAME" --zone="$ZONE" >/dev/null 2>&1; then
  $gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" --accelerator-type="$ACCELERATOR" \
    --version="$TPU_SOFTWARE"
fi
hosts="$($gcloud compute tpus tpu-vm describe "$TPU_NAME" --zone="$ZONE" --format='value(networkEndpoints.len())')"
if [ "${hosts:-1}" != 1 ]; then
  echo "tpu.sh: the TPU $TPU_NAME has $hosts hosts: a pod slice, refused (see above)" >&2
  exit 2
fi
cleanup() {
  if [ "${KEEP_TPU:-0}" != "1" ]; then $gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$ZONE" --quiet; fi
}
trap cleanup EXIT
git archive --format=tar.gz -o /tmp/wwm-data.tar.gz HEAD
$gcloud compute tpus tpu-vm scp /tmp/wwm-data.tar.gz "$TPU_NAME":~/ --zone="$ZONE"
# Python 3.11: the locked numpy needs it (Ubuntu 22.04's python3 is 3.10). libtpu from Google's index,
# as Google installs TensorFlow's TPU build (its PyPI pin is the same version).
$gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --command="
  set -e; mkdir -p wwm-data && tar -xzf wwm-data.tar.gz -C wwm-data && cd wwm-data
  if [ ! -x .venv/bin/python ]; then
    sudo apt-get update -qq && sudo apt-get install -y -qq python3.11 python3.11-venv
    python3.11 -m venv .venv
  fi
  grep -v -i '^tensorflow' requirements.lock > /tmp/lock-tpu.txt
  # The trainer's other needs (the [tf] extra without tensorflow-cpu): -e . alone does not bring safetensors.
  .venv/bin/pip install --quiet -c /tmp/lock-tpu.txt -f https://storage.googleapis.com/libtpu-tf-releases/index.html \
    '$TENSORFLOW_TPU' '$LIBTPU' keras safetensors h5py -e .
  # The TPU's device API: PJRT (v5e, v5p, v6e) through TensorFlow's pluggable-device C API and the
  # venv's libtpu.so; StreamExecutor (v2-v4) needs nothing more. TPU_NAME=local: this VM's chips.
  echo 'export TPU_NAME=local' > tpu-environment.sh
  if [ '$device_api' = pjrt ]; then
    library=\"\$PWD/.venv/lib/python3.11/site-packages/libtpu/libtpu.so\"
    test -f \"\$library\"
    echo 'export NEXT_PLUGGABLE_DEVICE_USE_C_API=true' >> tpu-environment.sh
    echo \"export TF_PLUGGABLE_DEVICE_LIBRARY_PATH=\$library\" >> tpu-environment.sh
  fi
  . ./tpu-environment.sh
  .venv/bin/python -c 'import keras, safetensors, tensorflow as tf; print(\"TensorFlow\", tf.__version__, \"Keras\", keras.__version__)'"
# Preflight: the TPU is found, the data on gs:// reads, a few steps train; else stop before the long run.
$gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --command="
  cd wwm-data && . ./tpu-environment.sh && rm -rf /tmp/wwm-preflight &&
  timeout 900 .venv/bin/python -m wwm_trainer --tpu local --manifest '$MANIFEST' --model_dir /tmp/wwm-preflight \
    --model_config tiny --recipe none --num_train_steps 20 --steps_per_loop 10 --save_checkpoints_steps 20"
# shellcheck disable=SC2086 # TRAIN_FLAGS is a list of flags
$gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --command="
  cd wwm-data && . ./tpu-environment.sh &&
  .venv/bin/python -m wwm_trainer --tpu local --manifest '$MANIFEST' --model_dir '$MODEL_DIR' $TRAIN_FLAGS"
