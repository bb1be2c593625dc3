"""Shared by the CUDA kernel tests: tolerances, random arrays, device copies."""
import warnings

import numpy as np
from numba import cuda


warnings.filterwarnings("ignore", category=RuntimeWarning)   # the simulator's uint64 hash arithmetic


TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


DTYPES = [np.float32, np.float64]


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))
