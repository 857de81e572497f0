#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the report test (tests/test_report.py renders
# report.html in it). Idempotent and quiet: does nothing when a chromium binary is already on the
# PATH. Needs apt-get and root (CI runs as root on Debian); anywhere else it fails with a message
# rather than letting the test pass without a browser.
set -euo pipefail
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then
    exit 0
  fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium.sh: no chromium on the PATH and no apt-get to install it; install Chromium" \
       "(Debian/Ubuntu: apt-get install chromium) to run tests/test_report.py" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt-get may hold the lock (a parallel job): wait for it rather than fail.
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null
