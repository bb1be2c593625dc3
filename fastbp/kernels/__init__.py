"""Hand-written compiled kernels. `cpu/`: Numba @njit(parallel=True) loops."""
