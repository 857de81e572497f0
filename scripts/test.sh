#!/usr/bin/env bash
# Sets up .venv and runs the whole test suite (tests start their own GCS emulator on 127.0.0.1).
# Two pytest-xdist workers, each taking whole files (--dist loadfile), so a module's expensive
# fixture (a run several tests read) runs once; docs/testing.md has the suite's times.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install_chromium.sh  # tests/test_report.py renders the report in it
exec .venv/bin/python -m pytest -q -n "${WWM_TEST_WORKERS:-2}" --dist loadfile "$@" tests
