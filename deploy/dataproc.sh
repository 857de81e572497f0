#!/usr/bin/env bash
# The whole recipe on Dataproc (Spark on YARN): for each stage, Beam's SparkRunner writes the stage
# as an executable jar here (--output_executable_path) and `gcloud dataproc jobs submit spark` runs it
# on the cluster, whose Python work runs in the image built from deploy/Dockerfile (Dataproc's DOCKER
# component on every node). NOT RUN on the development machines (no GCP access, no Java); `DRY=1`
# prints the commands only.
#
#   PROJECT=my-project BUCKET=my-bucket CLUSTER=wwm IMAGE=REGION-docker.pkg.dev/PROJECT/REPO/wwm-data:TAG \
#   WIKI='gs://my-bucket/dumps/zhwiki-*-multistream.xml.bz2' EXT='gs://my-bucket/ext/*.json' bash deploy/dataproc.sh
#
# This machine needs Java 11 or 17 (Beam starts its Spark job server jar, from Maven Central, to write
# the jars) and gcloud. CREATE_CLUSTER=1 first creates the cluster: Docker on every node, the image
# pulled by deploy/dataproc_init.sh (which must be on gs://: it is copied there).
set -euo pipefail
: "${PROJECT:?set PROJECT}" "${BUCKET:?set BUCKET (without gs://)}" "${CLUSTER:?set CLUSTER}"
: "${IMAGE:?set IMAGE}" "${WIKI:?set WIKI}"
REGION="${REGION:-us-central1}"
RECIPE="${RECIPE:-bert-wwm}"
WORK="${WORK:-gs://${BUCKET}/wwm/${RECIPE}}"
WORKERS="${WORKERS:-4}"
WORKER_TYPE="${WORKER_TYPE:-n2-standard-8}"
PARALLELISM="${PARALLELISM:-8}"      # Python worker processes per node: one per vCPU
cd "$(dirname "$0")/.."

if [ -n "${CREATE_CLUSTER:-}" ] && [ -z "${DRY:-}" ]; then
  gcloud storage cp deploy/dataproc_init.sh "gs://${BUCKET}/wwm/dataproc_init.sh"
  gcloud dataproc clusters create "$CLUSTER" --project "$PROJECT" --region "$REGION" \
    --image-version 2.2-debian12 --optional-components DOCKER --scopes cloud-platform \
    --num-workers "$WORKERS" --worker-machine-type "$WORKER_TYPE" \
    --initialization-actions "gs://${BUCKET}/wwm/dataproc_init.sh" --metadata "wwm-image=${IMAGE}"
fi

# shellcheck source=deploy/recipe_sources.sh
. deploy/recipe_sources.sh
"${PYTHON:-.venv/bin/python}" -m wwm_cli submit dataproc --work "$WORK" --project "$PROJECT" --region "$REGION" --cluster "$CLUSTER" \
  --image "$IMAGE" --environment_type DOCKER --sdk_worker_parallelism "$PARALLELISM" --jar_folder "${JARS:-jars}" \
  "${sources[@]}" --recipe "$RECIPE" ${DRY:+--print_only} "$@"
