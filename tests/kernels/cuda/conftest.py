"""The CUDA kernel tests run where a GPU is, or under Numba's CUDA simulator: tests/test_cuda.py
runs this folder with NUMBA_ENABLE_CUDASIM=1, 4x4 tiles and 32-thread blocks, so that tiny shapes
still leave partial tiles and need more than one block. Elsewhere nothing here is collected."""


try:
    from numba import cuda
    _usable = cuda.is_available()
except ImportError:
    _usable = False


if not _usable:
    collect_ignore_glob = ["test_*.py"]
