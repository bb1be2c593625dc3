"""Sums over long vectors (penalties, gradient norms) in fixed chunks.

Numba's prange reductions allocate their per-thread partials on every call; these write one
partial per chunk into a preallocated array instead, so nothing is allocated per batch, and the
result does not depend on the number of threads (the chunks, not the threads, fix the order).
"""
from numba import prange

from ..compile import kernel, serial


@kernel
def _partial_sums(partials, x, start, stop, l1, l2):
    C = partials.shape[0]
    per = (stop - start + C - 1) // C
    for c in prange(C):
        s = 0.0
        for k in range(start + c * per, min(stop, start + (c + 1) * per)):
            w = x[k]
            s += l1 * abs(w) + l2 * w * w
        partials[c] = s


@serial
def weighted_sum(x, start, stop, l1, l2, partials):
    """sum over x[start:stop] of l1 |x| + l2 x^2, accumulated in float64."""
    _partial_sums(partials, x, start, stop, l1, l2)
    total = 0.0
    for c in range(partials.shape[0]):
        total += partials[c]
    return total
