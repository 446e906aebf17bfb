#!/usr/bin/env bash
# Creates .venv and installs the course into it. Safe to run again: it only adds what is missing.
#
# PyTorch comes first, chosen by the machine:
#   - with an NVIDIA GPU (nvidia-smi lists one): PyPI's default CUDA build, with Triton for the GPU;
#   - without: torch 2.13.0. Where a CPU wheel lies in pip's find-links (as on our CI machines) pip
#     takes it; elsewhere set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu to get the CPU
#     build instead of PyPI's larger CUDA one (both run on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed, found " + sys.version.split()[0])'
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install --disable-pip-version-check "$@"; }

if ! "$PY" -c 'import torch' 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found, installing PyTorch with CUDA"
    pip_install "torch>=2.4"
  else
    echo "setup: no NVIDIA GPU, installing the CPU build of PyTorch"
    pip_install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
  fi
fi
pip_install -e .
