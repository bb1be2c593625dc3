"""The CUDA kernel tests run where a GPU is, or under Numba's CUDA simulator: tests/test_cuda.py
runs this folder with NUMBA_ENABLE_CUDASIM=1, 4x4 tiles and 32-thread blocks, so that tiny shapes
still leave partial tiles and need more than one block. Elsewhere nothing here is collected."""
import os
import sys

# The simulator runs each CUDA thread of a block as a Python thread, and a thread waiting at a
# barrier (cuda.syncthreads) gets the interpreter back only when the running one is made to
# yield it: at Python's thread switch interval, 5 ms by default, which made every tiled GEMM
# launch take a good part of a second
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    sys.setswitchinterval(1e-4)

try:
    from numba import cuda
    _usable = cuda.is_available()
except ImportError:
    _usable = False


if not _usable:
    collect_ignore_glob = ["test_*.py"]
