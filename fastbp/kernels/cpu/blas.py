"""OpenBLAS's gemm inside the compiled kernels (kernels/blas_library.py finds and registers it).

gemm_blas splits C into one block of rows per thread and calls OpenBLAS (held to one thread by
blas_library.one_thread) on each: the threads write disjoint rows, and the whole call stays in
Numba's thread pool. dense.py chooses it for products of config.BLAS_MIN_MACS and more.
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
else:   # never called (config.BLAS is False), and nothing left for the linker to resolve
    @serial
    def _sgemm(order, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        pass

    _dgemm = _sgemm


if FOUND:
    # Start Numba's thread pool now, which registers the entry point _numba_threads calls: code
    # loaded from the disk cache does not start it before it runs (a serial driver that calls
    # gemm_blas crashed on an unresolved entry point).
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
def _one_block(m):
    return 1


@config.twin_is(_one_block)
@serial
def row_blocks(m):
    """How many row blocks: one per thread, each of at least config.BLAS_ROWS rows. The
    single-threaded twin makes one (it must not start Numba's thread pool)."""
    return max(1, min(_numba_threads(), m // config.BLAS_ROWS))


@kernel
def gemm_blas(C, A, B, bias, has_bias, a_trans, b_trans):
    """C (m, n) = op(A) @ op(B) (+ bias (n,) when has_bias), op(X) = X^T when x_trans; every
    array C-contiguous. Only reached when config.BLAS."""
    m, n = C.shape
    K = A.shape[0] if a_trans else A.shape[1]
    blocks = row_blocks(m)
    for t in prange(blocks):
        r0 = m * t // blocks
        r1 = m * (t + 1) // blocks
        beta = 0.0
        if has_bias:
            for i in range(r0, r1):
                for j in range(n):
                    C[i, j] = bias[j]
            beta = 1.0
        Cb = C[r0:r1]
        Ab = A[:, r0:r1] if a_trans else A[r0:r1]   # the rows of op(A) this block needs
        ta = TRANS if a_trans else NO_TRANS
        tb = TRANS if b_trans else NO_TRANS
        if C.itemsize == 4:
            _sgemm(ROW_MAJOR, ta, tb, r1 - r0, n, K, 1.0, Ab.ctypes, A.shape[1], B.ctypes, B.shape[1], beta,
                   Cb.ctypes, n)
        else:
            _dgemm(ROW_MAJOR, ta, tb, r1 - r0, n, K, 1.0, Ab.ctypes, A.shape[1], B.ctypes, B.shape[1], beta,
                   Cb.ctypes, n)
