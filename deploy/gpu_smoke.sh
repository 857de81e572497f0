#!/usr/bin/env bash
# GPU throughput of the bundled trainer: bert-base pretraining at 128 and at 512 tokens, a few
# hundred steps each in bfloat16 on one NVIDIA GPU (Ampere or later), as one prepared run. Prints and
# records sequences/s, tokens/s and model FLOPs utilisation with the GPU's name, beside NVIDIA's
# published BERT pretraining throughput (benchmarks/gpu_throughput.py says how each is counted).
# NOT RUN so far: no GPU on the development machines (docs/gpu.md).
#
#   bash deploy/gpu_smoke.sh [CORPUS]     # CORPUS: text, a sentence a line, a blank line between
#                                         # documents; default: the bundled sample, repeated
#
# As any user (sudo only to install Python 3.11 where the host lacks it, e.g. Ubuntu 22.04, whose
# python3 is 3.10: the lock's numpy needs 3.11). Installs the locked versions with TensorFlow's CUDA
# build into VENV (.venv-gpu; SKIP_INSTALL=1 uses VENV as it is). STEPS (300), BATCH128 (128),
# BATCH512 (32), MODEL_CONFIG (base) override the defaults; RECORD (docs/gpu.md) is where the
# result rows are appended, OUT (out/gpu_smoke) where the data, checkpoints and result.json go.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS="${1:-}"
VENV="${VENV:-.venv-gpu}"
STEPS="${STEPS:-300}" BATCH128="${BATCH128:-128}" BATCH512="${BATCH512:-32}" MODEL_CONFIG="${MODEL_CONFIG:-base}"
RECORD="${RECORD:-docs/gpu.md}" OUT="${OUT:-out/gpu_smoke}"
TF_VERSION="$(sed -n 's/^tensorflow_cpu==//p' requirements.lock)"

python311() {  # the path of a Python 3.11, installing it with apt where it is missing
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      command -v "$candidate"; return 0
    fi
  done
  if command -v apt-get >/dev/null; then
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq python3.11 python3.11-venv >&2
    command -v python3.11; return 0
  fi
  echo "gpu_smoke: no Python 3.11 here (the lock's numpy needs it): install it, or set PYTHON" >&2
  return 1
}

if [ "${SKIP_INSTALL:-0}" != "1" ]; then
  [ -x "$VENV/bin/python" ] || "$(python311)" -m venv "$VENV"
  grep -v -i '^tensorflow' requirements.lock > "$VENV/lock-gpu.txt"
  # keras, safetensors, h5py: the [tf] extra without tensorflow-cpu (-e . alone lacks safetensors, which wwm train needs)
  "$VENV/bin/pip" install --quiet -c "$VENV/lock-gpu.txt" "tensorflow[and-cuda]==${TF_VERSION}" keras safetensors h5py -e .
fi
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
  echo "gpu_smoke: no nvidia-smi: is there a GPU here? (the run goes on, on the CPU, without an MFU)" >&2
fi

mkdir -p "$OUT"
if [ -z "$CORPUS" ]; then  # the bundled sample, repeated: enough distinct batches for a few hundred steps
  CORPUS="$OUT/corpus.txt"
  sample="$("$VENV/bin/wwm" sample-path)"
  for copy in $(seq 1 40); do sed "s/^\(.\)/${copy} \1/" "$sample"; echo; done > "$CORPUS"
fi
for length in 128 512; do
  "$VENV/bin/wwm" run --input "$CORPUS" --output "$OUT/data$length" --overwrite --segmenter char --dupe_factor 5 \
    --max_seq_length "$length" --num_shards 2 --progress off --runner=FnApiRunner > "$OUT/run$length.log"
done
"$VENV/bin/python" benchmarks/gpu_throughput.py --data128 "$OUT/data128" --data512 "$OUT/data512" \
  --model_config "$MODEL_CONFIG" --steps "$STEPS" --batch128 "$BATCH128" --batch512 "$BATCH512" \
  --work "$OUT/models" --json "$OUT/result.json" --record "$RECORD"
echo "gpu_smoke: rows appended to $RECORD, details in $OUT/result.json"
