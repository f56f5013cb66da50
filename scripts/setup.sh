#!/usr/bin/env bash
# Create .venv and install lcm_exp with its test tools. Idempotent: a second run only checks.
# Without a GPU, the CPU build of torch goes in first (a plain `torch` would pull a multi-GB CUDA build).
# With a GPU, install the torch build you want into .venv before running this; it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
PY=.venv/bin/python
if ! "$PY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then "$PY" -m pip install -q torch
  else "$PY" -m pip install -q "torch==2.13.0"; fi
fi
"$PY" -m pip install -q -e ".[dev,slurm,datasets,optuna]"  # every extra a test needs: none may skip
