# Sourced by dataflow.sh, dataproc.sh, spark.sh and flink.sh: what every target's `wwm submit` shares.

# The recipe's corpus as --source flags: the zhwiki dump (t2s) and, when EXT is set, the ext JSON
# lines as written (EXT_PRESET, news2016zh unless set).
sources=(--source "name=zhwiki,format=wiki,input=${WIKI},opencc=t2s")
if [ -n "${EXT:-}" ]; then
  sources+=(--source "name=ext,format=jsonl,preset=${EXT_PRESET:-news2016zh},input=${EXT},opencc=none")
fi

# Spark's and Flink's Python workers: DOCKER (IMAGE, pullable on every worker host) or PROCESS
# (ENVIRONMENT_CONFIG), never LOOPBACK. $1 names the hosts that pull the image.
portable_environment() {
  environment=(--environment_type "$ENVIRONMENT" --sdk_worker_parallelism "$PARALLELISM")
  if [ "$ENVIRONMENT" = DOCKER ]; then
    environment+=(--image "${IMAGE:?set IMAGE (built from deploy/Dockerfile, pullable by every $1)}")
  else
    environment+=(--environment_config "${ENVIRONMENT_CONFIG:?set ENVIRONMENT_CONFIG (PROCESS: the JSON command of deploy/README.md)}")
  fi
}
