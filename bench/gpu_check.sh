#!/usr/bin/env bash
# The GPU check of issue 17, at most 8 minutes: each of the 12 networks at native size trains one
# short epoch and explains a few images with LIME at 1000 samples (bf16 + channels_last, memory-
# probed batch); writes a JSON of throughputs and the projected GPU-hours of the paper-scale study.
#
#   bench/gpu_check.sh --out results/gpu_check.json              # on a GPU node (device auto)
#   bench/gpu_check.sh --device cpu --tiny --out /tmp/gpu.json   # CPU, tiny sizes (CI)
#
# Arguments go to bench/gpu_check.py (--help lists them). GPU_CHECK_LIMIT_S (default 480) is the
# hard limit; the Python side stops starting networks 60 s before it, and rewrites the JSON after
# every network, so even a killed run leaves one. PYTHON overrides the interpreter (default:
# .venv/bin/python when present, else python3). Exit status 1: some network is missing or failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$repo/.venv/bin/python" ]]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi
limit="${GPU_CHECK_LIMIT_S:-480}"
budget=$((limit > 120 ? limit - 60 : limit / 2))
export TQDM_DISABLE=1
exec timeout --signal=TERM --kill-after=15 "$limit" \
    "$python" "$here/gpu_check.py" --budget-s "$budget" "$@"
