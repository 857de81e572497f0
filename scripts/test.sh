#!/usr/bin/env bash
# Sets up .venv and runs the whole test suite (tests start their own GCS emulator on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@" tests
