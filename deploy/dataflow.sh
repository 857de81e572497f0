#!/usr/bin/env bash
# The whole recipe on Google Cloud Dataflow, one command: builds the image (deploy/Dockerfile) unless
# IMAGE is given, then `wwm submit dataflow`: wwm prepare (the zhwiki multistream dump with t2s, the
# ext JSON lines as written), wwm segment (the recipe's LTP/legacy), wwm run (both phases of the
# recipe, shards sized from the input), each a Dataflow job in that image, every path on gs://.
# NOT RUN on the development machines (no network to GCP); `DRY=1` prints the plan and commands only.
#
#   PROJECT=my-project BUCKET=my-bucket WIKI='gs://my-bucket/dumps/zhwiki-*-pages-articles-multistream.xml.bz2' \
#   EXT='gs://my-bucket/ext/news2016zh/*.json' bash deploy/dataflow.sh
#
# Run from the repository root after `bash scripts/setup.sh` (the launcher must hold the lock's
# versions: workers refuse to start otherwise), with `gcloud auth application-default login`.
set -euo pipefail
: "${PROJECT:?set PROJECT}" "${BUCKET:?set BUCKET (without gs://)}" "${WIKI:?set WIKI (gs:// glob of the dump)}"
REGION="${REGION:-us-central1}"
RECIPE="${RECIPE:-bert-wwm}"
WORK="${WORK:-gs://${BUCKET}/wwm/${RECIPE}}"
EXT="${EXT:-}"                       # gs:// glob of ext JSON lines; empty: Wikipedia alone
EXT_PRESET="${EXT_PRESET:-news2016zh}"
MACHINE_TYPE="${MACHINE_TYPE:-n2-standard-4}"
MAX_WORKERS="${MAX_WORKERS:-32}"
cd "$(dirname "$0")/.."

if [ -z "${IMAGE:-}" ]; then
  IMAGE="${REGION}-docker.pkg.dev/${PROJECT}/${REPOSITORY:-wwm}/wwm-data:$(git rev-parse --short=12 HEAD)"
  if [ -n "$(git status --porcelain -- wwm_core pipelines wwm_cli setup.py requirements.lock)" ]; then
    echo "the working tree has uncommitted changes: the image would not hold the launcher's code" >&2
    exit 1
  fi
  if [ -z "${DRY:-}" ]; then
    gcloud builds submit --project "$PROJECT" --config deploy/cloudbuild.yaml --substitutions "_IMAGE=${IMAGE}" .
  fi
fi

# shellcheck source=deploy/recipe_sources.sh
. deploy/recipe_sources.sh
"${PYTHON:-.venv/bin/python}" -m wwm_cli submit dataflow --work "$WORK" --project "$PROJECT" --region "$REGION" --image "$IMAGE" \
  --machine_type "$MACHINE_TYPE" --max_num_workers "$MAX_WORKERS" \
  "${sources[@]}" --recipe "$RECIPE" ${DRY:+--print_only} "$@"
