#!/usr/bin/env bash
# Creates .venv inside the repository and installs the project with the pinned, tested versions.
# Idempotent: a second run only checks that everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
# Python 3.11: the deploy image's (deploy/Dockerfile), and what requirements.lock's numpy needs.
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3 || echo python3)}"
minor_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
version="$(minor_of "$PYTHON")" || { echo "scripts/setup.sh: no Python at $PYTHON: install Python 3.11" >&2; exit 1; }
case "$version" in
  3.11) ;;
  3.1[2-9]) echo "scripts/setup.sh: WARNING: Python $version; the workers' image runs 3.11, so Dataflow, Spark and" \
              "Flink launches from this .venv are refused: for them, PYTHON=python3.11 bash scripts/setup.sh" >&2 ;;
  *) echo "scripts/setup.sh: Python $version: requirements.lock needs 3.11 (the image's): install it (Debian 12:" \
          "python3; Ubuntu 22.04: apt-get install python3.11 python3.11-venv), then PYTHON=python3.11 bash" \
          "scripts/setup.sh" >&2; exit 1 ;;
esac
if [ -x .venv/bin/python ] && [ "$(minor_of .venv/bin/python)" != "$version" ]; then
  echo "scripts/setup.sh: replacing .venv (Python $(minor_of .venv/bin/python)) with one of Python $version" >&2
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.lock requirements-torch.lock setup.py | sha256sum | cut -c1-16)"
# Some pip configurations warn about every missing local index; keep the output readable.
quiet_pip() { .venv/bin/python -m pip "$@" 2>&1 | sed -e '/is ignored: it is neither a file nor a directory/d'; }
# requirements-torch.lock pins PyTorch's CPU build (torch==X+cpu, for wwm_torch's tests), which
# PyTorch's own index serves; where that host does not resolve, pip's configured indexes and
# find-links must hold it.
torch_index=()
if "$PYTHON" -c "import socket; socket.getaddrinfo('download.pytorch.org', 443)" 2>/dev/null; then
  torch_index=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
if [ ! -f "$stamp" ]; then
  quiet_pip install --quiet --upgrade pip
  quiet_pip install --quiet -c requirements.lock -c requirements-torch.lock ${torch_index[@]+"${torch_index[@]}"} \
    -e '.[test]'
  # Compiles the row loops (wwm_core/kernels.py) once, into numba's cache beside them.
  .venv/bin/python -m wwm_core.compile_kernels
  touch "$stamp"
fi
