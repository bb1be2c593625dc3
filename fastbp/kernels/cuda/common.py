"""Device functions the CUDA kernels share: launch geometry and element-wise math."""
import math

import numpy as np
from numba import cuda

from ... import config

BLOCK = config.CUDA_BLOCK   # threads per block of the 1-D kernels
TILE = config.CUDA_TILE     # the GEMM's tile edge: TILE x TILE threads, two TILE x TILE tiles


def grid1(n):
    """(blocks, threads) covering n items, one thread each."""
    return (max(1, (n + BLOCK - 1) // BLOCK), BLOCK)


@cuda.jit
def fill(out, value):
    """out[:] = value, on the device (no host round trip)."""
    k = cuda.grid(1)
    if k < out.size:
        out[k] = value


@cuda.jit(device=True, inline=True)
def stable_sigmoid(z):
    # exp of a non-positive argument cannot overflow
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@cuda.jit(device=True, inline=True)
def mix64(z):
    """splitmix64's finaliser, as kernels/cpu/regularize.py: the same dropout masks."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@cuda.jit(device=True, inline=True)
def keep_unit(seed, index, rate):
    u = np.float64(mix64(seed + np.uint64(index)) >> np.uint64(40)) * (1.0 / 16777216.0)
    return u >= rate
