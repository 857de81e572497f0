#!/usr/bin/env bash
# The command of Beam's PROCESS environment for Spark and Flink workers without Docker: give every
# worker node a checkout of this commit with its .venv (bash scripts/setup.sh, as the user the
# runner starts workers as), then
#   wwm submit spark ... --environment_type PROCESS --environment_config '{"command": "/path/to/wwm-data/deploy/process_worker.sh"}'
# It starts Beam's SDK worker the way the SDK container's boot does (pipelines/process_worker.py),
# without the virtual environment boot would create under /opt/apache/beam-venv (which a non-root
# user cannot write) and without installing anything. WWM_PYTHON: another Python that has the
# package at the lock's versions.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec "${WWM_PYTHON:-$root/.venv/bin/python}" -m pipelines.process_worker "$@"
