#!/usr/bin/env bash
# The CUDA backend on a real GPU, in one go; installs nothing (run it where `pip install '.[test]'`
# already ran). 1. the CUDA kernel tests on the GPU, 2. PTX compilation, 3. the six workloads on
# cuda vs cpu vs numpy in one table, 4. PyTorch on the GPU when it is installed.
#
#   bash scripts/gpu_check.sh [REPEATS]
set -uo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-3}"
python -m fastbp info
echo "== CUDA kernel tests on the GPU"
python -m pytest -q -n0 -p no:cacheprovider tests/kernels/cuda tests/test_cuda.py || echo "CUDA TESTS FAILED"
echo "== the six workloads, float32, minimum of ${repeats}"
python scripts/workloads.py --backends numpy,cpu,cuda --repeats "$repeats"
if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "== PyTorch on the GPU, same workloads"
  python scripts/torch_workloads.py --device cuda --repeats "$repeats"
else
  echo "== PyTorch with CUDA not installed here: skipped"
fi
