#!/usr/bin/env bash
# The whole recipe (wwm prepare, segment, run) on a Spark standalone cluster through Beam's portable
# Spark runner: a job server turns each stage into a Spark job, and the Python work runs in SDK
# worker processes next to every Spark executor: in the image built from deploy/Dockerfile (DOCKER,
# the default; Docker on every worker node) or as processes (PROCESS: every node has Python 3.11 with
# this package at the lock's versions, `pip install -r requirements.lock . --no-deps`, and Beam's
# boot binary, e.g. copied out of the image: docker cp $(docker create IMAGE):/opt/apache/beam/boot .).
# Never LOOPBACK: that runs every Python step in this process. NOT RUN on the development machines
# (no Spark cluster, no Java, no network for the job server jar); `DRY=1` prints the commands only.
#
#   SPARK_MASTER=spark://spark-master:7077 IMAGE=REGISTRY/wwm-data:TAG WORK=gs://bucket/wwm/bert-wwm \
#   WIKI='gs://bucket/dumps/zhwiki-*-multistream.xml.bz2' EXT='gs://bucket/ext/*.json' bash deploy/spark.sh
#
# The job server: by default Beam's SparkRunner starts it here from
# https://repo.maven.apache.org/maven2/org/apache/beam/beam-runners-spark-3-job-server/2.77.0/beam-runners-spark-3-job-server-2.77.0.jar
# (downloaded once into ~/.apache_beam/cache/jars; needs Java 11 or 17 on this machine; or set
# SPARK_JOB_SERVER_JAR to a copy). Or run it yourself next to the master and set JOB_ENDPOINT:
#   docker run --net=host apache/beam_spark3_job_server:2.77.0 --spark-master-url=spark://spark-master:7077
#   JOB_ENDPOINT=localhost:8099 ... bash deploy/spark.sh
set -euo pipefail
: "${WORK:?set WORK (a path every Spark worker can read and write: gs://, hdfs://, or a shared mount)}"
: "${WIKI:?set WIKI (the zhwiki multistream dump)}"
ENVIRONMENT="${ENVIRONMENT:-DOCKER}"
PARALLELISM="${PARALLELISM:-0}"      # Python worker processes per node; 0: the runner's choice
RECIPE="${RECIPE:-bert-wwm}"
cd "$(dirname "$0")/.."

target=()
if [ -n "${JOB_ENDPOINT:-}" ]; then
  target=(--job_endpoint "$JOB_ENDPOINT")
else
  : "${SPARK_MASTER:?set SPARK_MASTER (spark://HOST:7077) or JOB_ENDPOINT}"
  target=(--spark_master_url "$SPARK_MASTER")
  if [ -n "${SPARK_JOB_SERVER_JAR:-}" ]; then target+=(--spark_job_server_jar "$SPARK_JOB_SERVER_JAR"); fi
fi
# shellcheck source=deploy/recipe_sources.sh
. deploy/recipe_sources.sh
portable_environment "worker node"
"${PYTHON:-.venv/bin/python}" -m wwm_cli submit spark --work "$WORK" "${target[@]}" "${environment[@]}" "${sources[@]}" --recipe "$RECIPE" \
  ${DRY:+--print_only} "$@"
