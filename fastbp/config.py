"""Every knob of the compiled kernels, in one place; kernels never hard-code them.

FASTMATH: LLVM flags for the kernels. "reassoc" lets LLVM vectorize reductions (dot products);
"contract" allows fused multiply-add. We leave out "nnan"/"ninf" so NaN and infinity checks stay
meaningful. Set the environment variable FASTBP_FASTMATH=0 before import for strict IEEE order.
CACHE: keep compiled kernels on disk (numba's cache=True) so a new process does not recompile.
EVAL_CHUNK: rows per block when predicting or scoring, bounding the scratch memory.
"""
import os

from numba import njit

FASTMATH = (set() if os.environ.get("FASTBP_FASTMATH", "1") == "0"
            else {"reassoc", "contract", "arcp", "nsz"})
CACHE = os.environ.get("FASTBP_CACHE", "1") != "0"
EVAL_CHUNK = 1024


def kernel(fn):
    """Compile a loop kernel whose `prange` loops run on Numba's thread pool."""
    return njit(parallel=True, cache=CACHE, fastmath=FASTMATH)(fn)


def serial(fn):
    """Compile glue that runs on one thread (drivers that call kernels, small helpers)."""
    return njit(cache=CACHE, fastmath=FASTMATH)(fn)
