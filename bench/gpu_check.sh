#!/usr/bin/env bash
# The GPU check, on a machine with an NVIDIA GPU: every op test case forward and backward on mx.gpu(0) against
# mx.cpu() (max error per op), ResNet-50 inference (batch 64) and training (batch 32) images/s through onnxsym and
# raw ONNX Runtime (bench/gpu_check.py), then the CUDA tests of tests/test_gpu.py.
#   bench/gpu_check.sh [PYTHON] [gpu_check.py options]
# PYTHON (default python3) is used as it is when its onnxruntime has the CUDA provider; otherwise a venv
# (.venv-gpu, or $GPU_VENV) gets the project and the GPU build of onnxruntime, as the README's install section says.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-python3}"
shift || true
has_cuda='import sys, onnxruntime as o; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())'
if ! "$py" -c "$has_cuda" 2>/dev/null; then
    venv="${GPU_VENV:-.venv-gpu}"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet ".[test]"
    "$venv/bin/pip" uninstall -y onnxruntime onnxruntime-gpu
    "$venv/bin/pip" install --quiet "onnxruntime-gpu[cuda,cudnn]"
    py="$venv/bin/python"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
status=0
"$py" bench/gpu_check.py "$@" || status=$?
"$py" -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py || status=$?
exit $status
