#!/usr/bin/env bash
# Runs `wwm run` on a Spark cluster through Beam's portable Spark runner. Not runnable from the
# development machines (no Spark cluster, no network to fetch Beam's Spark job server jar).
# SPARK_MASTER: e.g. spark://spark-master:7077. Workers need this package installed
# (pip install -c requirements.lock .) when --environment_type=PROCESS or LOOPBACK is used.
set -euo pipefail
: "${SPARK_MASTER:?set SPARK_MASTER}" "${INPUT:?set INPUT}" "${OUTPUT:?set OUTPUT}"
cd "$(dirname "$0")/.."
.venv/bin/wwm run --input "$INPUT" --output "$OUTPUT" --segmenter jieba --recipe bert-wwm \
  --runner SparkRunner --spark_master_url "$SPARK_MASTER" --environment_type LOOPBACK
