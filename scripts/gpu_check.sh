#!/usr/bin/env bash
# The prepared GPU check (docs/performance.md): one command, about 4 minutes of device time on one H100/H200, no hub.
#   bash scripts/gpu_check.sh [results dir] [gpu_check options]   (dir default: $OUT when set, else outputs/gpu_check)
#   e.g. a CPU rehearsal of the whole plan with the tiny teachers:  bash scripts/gpu_check.sh /tmp/gc --smoke
# Needs torch with CUDA. Python packages missing on the machine are installed from the wheels in .whl/ (see
# docs/performance.md for the download command); the results are gpu_results.md/.json and gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-outputs/gpu_check}}
shift $(( $# > 0 ? 1 : 0 ))
mkdir -p "$OUT_DIR"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if ! python3 -c "import diffusers, hydra, omegaconf, webdataset, braceexpand" 2>/dev/null; then
  ls .whl/*.whl >/dev/null 2>&1 || { echo "missing Python packages and no .whl/ folder" >&2; exit 1; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
python3 -m lcm_exp.bench.gpu_check --out "$OUT_DIR" --budget-s "${BUDGET_S:-200}" "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
