"""Zero-filled arrays whose data starts on a cache line.

NumPy aligns its allocations to 16 bytes, so a buffer may start anywhere within a 64-byte cache
line. Then every vector load of a 64-byte AVX-512 register straddles two lines, and where two
threads write neighbouring blocks of one buffer (row blocks of a layer's output, halves of the
parameter vector) the line at each boundary is written by both: false sharing, which the cores
settle by passing the line back and forth. The buffers the kernels write are allocated here
(the README's Performance section has what it bought).
"""
import math

import numpy as np

CACHE_LINE = 64


def zeros(shape, dtype):
    """np.zeros(shape, dtype), starting on a CACHE_LINE boundary."""
    dtype = np.dtype(dtype)
    count = int(math.prod(shape)) if isinstance(shape, (tuple, list)) else int(shape)   # not np.prod: slow
    if count == 0:   # an empty array (an SGD's moments) has nothing to align, and .ctypes costs microseconds
        return np.zeros(shape, dtype)
    raw = np.zeros(count * dtype.itemsize + CACHE_LINE, dtype=np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


def carve(sizes, dtype):
    """Zero-filled 1-D arrays of the given sizes, each starting on a CACHE_LINE boundary and
    none sharing a line with another, cut from one allocation: a workspace's twenty buffers in
    one call instead of twenty, which a small network's fit would otherwise spend a noticeable
    part of its time on."""
    dtype = np.dtype(dtype)
    per_line = CACHE_LINE // dtype.itemsize
    padded = [-(-int(n) // per_line) * per_line for n in sizes]   # whole lines each
    block = zeros(sum(padded), dtype)
    out, at = [], 0
    for n, room in zip(sizes, padded):
        out.append(block[at:at + int(n)])
        at += room
    return out


def ones(shape, dtype):
    out = zeros(shape, dtype)
    out[...] = 1
    return out


def on_line(arr):
    """arr itself when it starts on a cache line (and can be written), else an aligned copy."""
    if arr.ctypes.data % CACHE_LINE == 0 and arr.flags.c_contiguous and arr.flags.writeable:
        return arr
    out = zeros(arr.shape, arr.dtype)
    out[...] = arr
    return out
