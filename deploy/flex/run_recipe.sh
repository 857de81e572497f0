#!/usr/bin/env bash
# The whole recipe from the Flex Template (deploy/flex/build.sh): one launch per stage, each after the
# previous job finished (a template's launcher hands its job over and exits; segment reads what
# prepare wrote). Parameters are joined with `~` (gcloud's ^~^ delimiter) since --source values hold
# commas; several sources are separated by `;`. NOT RUN here (no GCP).
#
#   PROJECT=my-project REGION=us-central1 TEMPLATE=gs://.../wwm-data-TAG.json IMAGE=... \
#   WORK=gs://bucket/wwm/bert-wwm SOURCES='name=zhwiki,format=wiki,input=gs://bucket/dumps/zhwiki-*.xml.bz2,opencc=t2s;name=ext,format=jsonl,preset=news2016zh,input=gs://bucket/ext/*.json,opencc=none' \
#   bash deploy/flex/run_recipe.sh
set -euo pipefail
: "${PROJECT:?}" "${TEMPLATE:?}" "${IMAGE:?}" "${WORK:?}" "${SOURCES:?}"
REGION="${REGION:-us-central1}"
RECIPE="${RECIPE:-bert-wwm}"
SEGMENTER="${SEGMENTER:-ltp}"
LTP_MODEL="${LTP_MODEL:-LTP/legacy}"

launch() {  # launch STAGE PARAMETERS...: starts one stage's job and waits for it to end
  local stage="$1" parameters id state
  shift
  parameters="$(printf '~%s' "command=${stage}" "sdk_container_image=${IMAGE}" "$@")"
  id="$(gcloud dataflow flex-template run "wwm-${stage}-$(date -u +%Y%m%d-%H%M%S)" --project "$PROJECT" \
        --region "$REGION" --template-file-gcs-location "$TEMPLATE" --temp-location "${WORK}/tmp" \
        --staging-location "${WORK}/staging" --worker-machine-type "${MACHINE_TYPE:-n2-standard-4}" \
        --max-workers "${MAX_WORKERS:-32}" --parameters "^~^${parameters#\~}" --format 'value(job.id)')"
  echo "wwm ${stage}: Dataflow job ${id}"
  while true; do
    state="$(gcloud dataflow jobs describe "$id" --project "$PROJECT" --region "$REGION" --format 'value(currentState)')"
    case "$state" in
      JOB_STATE_DONE) echo "wwm ${stage}: done"; return 0 ;;
      JOB_STATE_FAILED|JOB_STATE_CANCELLED|JOB_STATE_DRAINED) echo "wwm ${stage}: ${state}" >&2; return 1 ;;
    esac
    sleep 60
  done
}

segmenter=("segmenter=${SEGMENTER}")
if [ "$SEGMENTER" = ltp ]; then segmenter+=("ltp_model=${LTP_MODEL}"); fi
launch prepare "source=${SOURCES}" "output=${WORK}/prepared"
if [ "$SEGMENTER" != char ]; then launch segment "input=${WORK}/prepared" "${segmenter[@]}"; fi
launch run "input=${WORK}/prepared/documents/*.parquet" "input_format=parquet" "recipe=${RECIPE}" "${segmenter[@]}" \
  "output=${WORK}/instances"
