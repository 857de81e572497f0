#!/usr/bin/env bash
# The whole recipe (wwm prepare, segment, run) on a Flink cluster through Beam's portable Flink
# runner: each stage a Flink job, its Python work in SDK worker processes next to every TaskManager,
# in the image built from deploy/Dockerfile (DOCKER: Docker on every TaskManager host) or as
# processes (PROCESS: see deploy/spark.sh). Never LOOPBACK. NOT RUN on the development machines (no
# Flink cluster, no Java, no network for the job server jar); `DRY=1` prints the commands only.
#
#   FLINK_MASTER=flink-jobmanager:8081 IMAGE=REGISTRY/wwm-data:TAG WORK=gs://bucket/wwm/bert-wwm \
#   WIKI='gs://bucket/dumps/zhwiki-*-multistream.xml.bz2' EXT='gs://bucket/ext/*.json' bash deploy/flink.sh
#
# The job server: by default Beam's FlinkRunner starts it here from
# https://repo.maven.apache.org/maven2/org/apache/beam/beam-runners-flink-${FLINK_VERSION}-job-server/2.77.0/beam-runners-flink-${FLINK_VERSION}-job-server-2.77.0.jar
# (Java 11 or 17; FLINK_VERSION must be the cluster's: one of 1.19, 1.20, 2.0, 2.1, 2.2 for Beam
# 2.77). Or run it next to the JobManager and set JOB_ENDPOINT:
#   docker run --net=host apache/beam_flink1.20_job_server:2.77.0 --flink-master=flink-jobmanager:8081
#   JOB_ENDPOINT=localhost:8099 ... bash deploy/flink.sh
set -euo pipefail
: "${WORK:?set WORK (a path every TaskManager can read and write: gs://, hdfs://, or a shared mount)}"
: "${WIKI:?set WIKI (the zhwiki multistream dump)}"
ENVIRONMENT="${ENVIRONMENT:-DOCKER}"
PARALLELISM="${PARALLELISM:-0}"      # Python worker processes per TaskManager; 0: its task slots
FLINK_VERSION="${FLINK_VERSION:-1.20}"
RECIPE="${RECIPE:-bert-wwm}"
cd "$(dirname "$0")/.."

target=()
if [ -n "${JOB_ENDPOINT:-}" ]; then
  target=(--job_endpoint "$JOB_ENDPOINT")
else
  : "${FLINK_MASTER:?set FLINK_MASTER (HOST:8081) or JOB_ENDPOINT}"
  target=(--flink_master "$FLINK_MASTER" --flink_version "$FLINK_VERSION")
fi
# shellcheck source=deploy/recipe_sources.sh
. deploy/recipe_sources.sh
portable_environment "TaskManager host"
"${PYTHON:-.venv/bin/python}" -m wwm_cli submit flink --work "$WORK" "${target[@]}" "${environment[@]}" "${sources[@]}" --recipe "$RECIPE" \
  ${DRY:+--print_only} "$@"
