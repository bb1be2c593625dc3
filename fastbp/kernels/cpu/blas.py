"""OpenBLAS's gemm inside the compiled kernels (kernels/blas_library.py finds and registers it).

gemm_blas splits C into one block of rows or columns per thread and calls OpenBLAS (held to one
thread meanwhile) on each: the threads write disjoint blocks, and the whole call
stays in Numba's thread pool. dense.py chooses it for products of config.BLAS_MIN_MACS and more,
where OpenBLAS is found (blas_library.FOUND).
"""
from numba import prange, types

from ... import config
from ..blas_library import BITS, FOUND, NO_TRANS, ROW_MAJOR, TRANS
from ..compile import kernel, serial
from .threads import thread_count

_INDEX = types.int64 if BITS == 64 else types.int32


def _gemm_type(real):
    # cblas_?gemm(order, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
    return types.void(types.int32, types.int32, types.int32, _INDEX, _INDEX, _INDEX, real, types.voidptr,
                      _INDEX, types.voidptr, _INDEX, real, types.voidptr, _INDEX)


if FOUND:
    _sgemm = types.ExternalFunction("fastbp_sgemm", _gemm_type(types.float32))
    _dgemm = types.ExternalFunction("fastbp_dgemm", _gemm_type(types.float64))
    _set_threads = types.ExternalFunction("fastbp_blas_set_threads", types.void(types.intc))
    _get_threads = types.ExternalFunction("fastbp_blas_get_threads", types.intc())
else:   # never called (no OpenBLAS found), and nothing left for the linker to resolve
    @serial
    def _sgemm(order, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        pass

    _dgemm = _sgemm

    @serial
    def _set_threads(n):
        pass

    @serial
    def _get_threads():
        return 1


@serial
def blocks_of(length):
    """How many blocks to cut an output axis into: one per thread, each at least
    config.BLAS_ROWS long."""
    return max(1, min(thread_count(), length // config.BLAS_ROWS))


@kernel
def gemm_blas(C, A, B, bias, has_bias, a_trans, b_trans):
    """C (m, n) = op(A) @ op(B) (+ bias (n,) when has_bias), op(X) = X^T when x_trans; every
    array C-contiguous. Only reached where OpenBLAS was found.

    Each thread computes a block of C. Every OpenBLAS call packs the whole of the operand its
    block shares with the others, so the cut goes along C's longer side: blocks of columns
    when m < n (each thread packs op(A), the smaller), else of rows. Where the summed axis K is
    short, packing is cheap and blocks of rows win whatever the shape (the README's "OpenBLAS
    for the largest layers")."""
    m, n = C.shape
    K = A.shape[0] if a_trans else A.shape[1]
    by_rows = m >= n or K < config.BLAS_MIN_K_COLUMNS
    blocks = blocks_of(m if by_rows else n)
    ta = TRANS if a_trans else NO_TRANS
    tb = TRANS if b_trans else NO_TRANS
    blas_threads = _get_threads()   # 1 inside a driver call (blas_library.one_thread)
    if blas_threads != 1:
        _set_threads(1)
    for t in prange(blocks):
        r0, r1, c0, c1 = 0, m, 0, n
        if by_rows:
            r0, r1 = m * t // blocks, m * (t + 1) // blocks
        else:
            c0, c1 = n * t // blocks, n * (t + 1) // blocks
        beta = 0.0
        if has_bias:   # over slices from 0, as dense.column_sums: it vectorises
            bb = bias[c0:c1]
            for i in range(r0, r1):
                c = C[i, c0:c1]
                for j in range(c1 - c0):
                    c[j] = bb[j]
            beta = 1.0
        # the parts of op(A) and op(B) this block reads, as views (their data pointers)
        Ab = A[:, r0:r1] if a_trans else A[r0:r1]
        Bb = B[c0:c1] if b_trans else B[:, c0:c1]
        Cb = C[r0:r1, c0:c1]
        if C.itemsize == 4:
            _sgemm(ROW_MAJOR, ta, tb, r1 - r0, c1 - c0, K, 1.0, Ab.ctypes, A.shape[1], Bb.ctypes, B.shape[1],
                   beta, Cb.ctypes, n)
        else:
            _dgemm(ROW_MAJOR, ta, tb, r1 - r0, c1 - c0, K, 1.0, Ab.ctypes, A.shape[1], Bb.ctypes, B.shape[1],
                   beta, Cb.ctypes, n)
    if blas_threads != 1:
        _set_threads(blas_threads)
