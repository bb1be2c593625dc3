"""OpenBLAS's gemm inside the compiled kernels (kernels/blas_library.py finds and registers it).

gemm_blas splits C into one block of rows or columns per thread and calls OpenBLAS (held to one
thread meanwhile) on each: the threads write disjoint blocks, and the whole call
stays in Numba's thread pool. dense.py chooses it for products of config.BLAS_MIN_MACS and more.
"""
import llvmlite.ir as lir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.ufunc import parallel as numba_parallel

from ... import config
from ...config import kernel, serial
from ..blas_library import BITS, FOUND, NO_TRANS, ROW_MAJOR, TRANS

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
else:   # never called (config.BLAS is False), and nothing left for the linker to resolve
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


# Start Numba's thread pool now (5 ms), which registers the entry point _numba_threads calls:
# code loaded from the disk cache does not start it before it runs (a serial driver that calls
# gemm_blas crashed on an unresolved entry point). gemm_blas is compiled, and so needs it, even
# where no OpenBLAS was found.
numba_parallel._launch_threads()


@intrinsic
def _numba_threads(typingctx):
    """Numba's current thread count, read through its thread pool's C entry point (so that the
    kernel stays cacheable: numba.get_num_threads() in compiled code is not)."""
    numba_parallel._launch_threads()

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, lir.FunctionType(cgutils.intp_t, []),
                                            "get_num_threads")
        return builder.call(fn, [])
    return types.intp(), codegen


@serial
def _one():
    return 1


@config.twin_is(_one)
@serial
def thread_count():
    """Numba's thread count; 1 in the single-threaded twins (which must not start the pool)."""
    return _numba_threads()


@serial
def even_part(n, k, parts):
    """Part k of `parts` near-equal parts of range(n), cut at multiples of 16 (elements: 64 bytes
    of float32, so that parts written by different threads share no cache line; rows of W: whole
    transpose blocks)."""
    blocks = (n + 15) // 16
    return min(n, blocks * k // parts * 16), min(n, blocks * (k + 1) // parts * 16)


@serial
def blocks_of(length):
    """How many blocks to cut an output axis into: one per thread, each at least
    config.BLAS_ROWS long."""
    return max(1, min(thread_count(), length // config.BLAS_ROWS))


@kernel
def gemm_blas(C, A, B, bias, has_bias, a_trans, b_trans):
    """C (m, n) = op(A) @ op(B) (+ bias (n,) when has_bias), op(X) = X^T when x_trans; every
    array C-contiguous. Only reached when config.BLAS.

    Each thread computes a block of C. Every OpenBLAS call packs the whole of the operand its
    block shares with the others, so the cut goes along C's longer side: blocks of columns
    when m < n (each thread packs op(A), the smaller), else of rows. Where the summed axis K is
    short, packing is cheap and blocks of rows win whatever the shape (measured: mid's
    64 x 256 x 256 dA product 64 us by columns against 75 by rows; wide's forward 1525 against
    1642; but 256 x 1024 x 10's dA, K = 10, 109 against 71)."""
    m, n = C.shape
    K = A.shape[0] if a_trans else A.shape[1]
    by_rows = m >= n or K < 64
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
