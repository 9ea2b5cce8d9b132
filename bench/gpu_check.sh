#!/usr/bin/env bash
# The GPU check (nbs/09_bench, section 8), prepared to run as is on the first GPU machine: the paper profile's
# generator (fp32, bf16, model FLOP utilisation), its search against the official loop's structure with the peak
# memory at 256 px, bf16 against fp32, and a few rounds of the paper profile's training on generated pairs (the loss
# falls, resume, bf16). Its numbers go under "cuda" in bench/results.json; the CPU rows stay as they are.
# Usage: bash bench/gpu_check.sh [seconds]   (default 540: inside a 10-minute slot)
set -uo pipefail
cd "$(dirname "$0")/.."
limit=${1:-540}
py=.venv/bin/python
[ -x "$py" ] || py=python3  # a machine without the project's venv: the system Python with torch and the dependencies
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONHASHSEED=0 MPLBACKEND=Agg
if ! "$py" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  echo "gpu_check: no CUDA device visible to $py (torch.cuda.is_available() is False); nothing measured" >&2
  exit 2
fi
"$py" -c "import torch; print('gpu_check:', torch.cuda.get_device_name(), 'torch', torch.__version__)"
timeout "$limit" "$py" -m chimle.bench --device cuda --profile paper --smoke
rc=$?
[ $rc = 124 ] && echo "gpu_check: stopped after $limit s; bench/results.json keeps what was written before" >&2
exit $rc
