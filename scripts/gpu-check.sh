#!/usr/bin/env bash
# Runs the GPU part of the suite (CuPy, and PyTorch on CUDA) on a machine with an NVIDIA GPU.
#
#   bash scripts/gpu-check.sh            # pytest --backend cupy, then torch on cuda
#   bash scripts/gpu-check.sh -k conv2d  # extra pytest arguments pass through
#
# It uses the Python environment it is started in, which must already have xpnet (or its
# source on PYTHONPATH), cupy, pytest and hypothesis; torch is optional (oracle and
# torch-CUDA backend). The NCCL tests of tests/test_distributed.py run with the cupy pass:
# one GPU is enough for N=1; a 2-process job over NCCL also needs mpi4py and two GPUs.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PWD}/src${PYTHONPATH:+:$PYTHONPATH}"

nvidia-smi -L || { echo "gpu-check: no NVIDIA GPU found (nvidia-smi failed)"; exit 2; }
python - <<'PY'
import xpnet
for info in xpnet.list_backends():
    print(f"{info.name:18} available={info.available!s:5} devices={info.devices} {info.reason or ''}")
PY

status=0
echo "== cupy =="
python -m pytest -q -p no:cacheprovider --backend cupy "$@" || status=1
echo "== torch on cuda =="
python -m pytest -q -p no:cacheprovider --backend torch:cuda "$@" || status=1
exit $status
