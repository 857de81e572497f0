#!/usr/bin/env bash
# GPU smoke test: trains the `base` config for 200 steps with bfloat16 compute on one GPU and prints
# steps/s and examples/s. Run from anywhere on a machine with an NVIDIA GPU (Ampere or later for
# fast bfloat16):
#
#   bash deploy/gpu_smoke.sh [CORPUS]        # CORPUS: a text file, one sentence a line, blank line
#                                            # between documents; default: the bundled sample
#
# It makes its own data with `wwm run` (128 tokens, Google's masking defaults), and installs the
# locked versions with TensorFlow's CUDA build into .venv-gpu (VENV=... to use another; set
# SKIP_INSTALL=1 to use VENV as it is). STEPS, BATCH and MODEL_CONFIG override 200, 32 and base.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS="${1:-wwm_core/data/sample/corpus.txt}"
VENV="${VENV:-.venv-gpu}"
STEPS="${STEPS:-200}" BATCH="${BATCH:-32}" MODEL_CONFIG="${MODEL_CONFIG:-base}"
TF_VERSION="$(sed -n 's/^tensorflow_cpu==//p' requirements.lock)"

if [ "${SKIP_INSTALL:-0}" != "1" ]; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  grep -v -i '^tensorflow' requirements.lock > "$VENV/lock-gpu.txt"
  # keras, safetensors, h5py: the [tf] extra without tensorflow-cpu (-e . alone lacks safetensors, which wwm train needs)
  "$VENV/bin/pip" install --quiet -c "$VENV/lock-gpu.txt" "tensorflow[and-cuda]==${TF_VERSION}" keras safetensors h5py -e .
fi
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
  echo "no nvidia-smi: is there a GPU here?" >&2
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$VENV/bin/wwm" run --input "$CORPUS" --output "$WORK/data" --segmenter char --dupe_factor 10 \
  --max_seq_length 128 --max_predictions_per_seq 20 --num_shards 2 --runner=BundleBasedDirectRunner > "$WORK/run.log"
"$VENV/bin/python" - "$WORK" "$STEPS" "$BATCH" "$MODEL_CONFIG" <<'EOF'
import logging
import sys

import tensorflow as tf

from wwm_trainer.cli import train_main

work, steps, batch, model_config = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
logging.basicConfig(level=logging.WARNING)
logging.getLogger("wwm").setLevel(logging.INFO)
gpus = tf.config.list_physical_devices("GPU")
names = [tf.config.experimental.get_device_details(gpu).get("device_name", "?") for gpu in gpus]
summary = train_main([f"--manifest={work}/data", f"--model_dir={work}/model", f"--model_config={model_config}",
                      "--recipe=none", "--optimizer=adamw", "--mixed_precision=bf16", f"--num_train_steps={steps}",
                      f"--train_batch_size={batch}", "--steps_per_loop=50", f"--save_checkpoints_steps={steps}"])
phase = summary["phases"][0]
steady = phase["steady_steps_per_second"]
print(f"GPU smoke: {model_config}, {steps} steps, batch {batch} x 128 tokens, {summary['dtype_policy']}, "
      f"{summary['strategy']}, GPUs: {', '.join(names) or 'none'}")
print(f"  whole run:           {phase['steps_per_second']:.2f} steps/s, {phase['examples_per_second']:.1f} examples/s "
      "(first loop's tracing and compiling included)")
if steady:
    print(f"  after the first loop: {steady:.2f} steps/s, {steady * batch:.1f} examples/s")
print(f"  MLM loss {phase['first_steps'][0]['mlm_loss']:.3f} (step 1) -> {phase['last_steps'][-1]['mlm_loss']:.3f} "
      f"(step {phase['last_steps'][-1]['step']})")
EOF
