#!/usr/bin/env bash
# Builds the image (deploy/Dockerfile, which holds the Flex Template launcher) and the Flex Template
# spec that points at it, with the parameters of deploy/flex/metadata.json. NOT RUN here (no GCP).
#
#   PROJECT=my-project BUCKET=my-bucket bash deploy/flex/build.sh
# prints the TEMPLATE and IMAGE to give deploy/flex/run_recipe.sh (or the console: Dataflow > Create
# job from template > Custom template).
set -euo pipefail
: "${PROJECT:?set PROJECT}" "${BUCKET:?set BUCKET (without gs://)}"
REGION="${REGION:-us-central1}"
REPOSITORY="${REPOSITORY:-wwm}"
cd "$(dirname "$0")/../.."
TAG="$(git rev-parse --short=12 HEAD)"
IMAGE="${IMAGE:-${REGION}-docker.pkg.dev/${PROJECT}/${REPOSITORY}/wwm-data:${TAG}}"
TEMPLATE="${TEMPLATE:-gs://${BUCKET}/wwm/templates/wwm-data-${TAG}.json}"

gcloud builds submit --project "$PROJECT" --config deploy/cloudbuild.yaml --substitutions "_IMAGE=${IMAGE}" .
gcloud dataflow flex-template build "$TEMPLATE" --project "$PROJECT" \
  --image "$IMAGE" --sdk-language PYTHON --metadata-file deploy/flex/metadata.json
echo "TEMPLATE=${TEMPLATE} IMAGE=${IMAGE}"
