#!/usr/bin/env bash
# Creates .venv inside the repository and installs the project with the pinned, tested versions.
# Idempotent: a second run only checks that everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
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
