"""Dense layer kernels on the GPU: every product through one tiled shared-memory GEMM.

gemm_tiled: C (m, n) = op(A) (m, K) @ op(B) (K, n) (+ bias), op = transpose when asked. Each
block computes a TILE x TILE tile of C, stepping over K in tiles that its threads load into
shared memory together (each element of A and B is read from global memory once per tile of
C instead of once per output). The epilogue adds the bias and, for plain activations, writes
A = f(Z) too (forward: one pass instead of two).
"""
from numba import cuda

from .common import TILE, grid1
from .activations import act_value, fusable


@cuda.jit
def gemm_tiled(C, A, B, bias, has_bias, a_trans, b_trans, act_out, act_code, act_param):
    m, n = C.shape
    K = A.shape[0] if a_trans else A.shape[1]
    sa = cuda.shared.array((TILE, TILE), dtype=C.dtype)
    sb = cuda.shared.array((TILE, TILE), dtype=C.dtype)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    i = cuda.blockIdx.y * TILE + ty            # row of C
    j = cuda.blockIdx.x * TILE + tx            # column of C
    acc = C.dtype.type(0)
    for p0 in range(0, K, TILE):
        p = p0 + tx                            # this thread loads op(A)[i, p] ...
        if i < m and p < K:
            sa[ty, tx] = A[p, i] if a_trans else A[i, p]
        else:
            sa[ty, tx] = 0
        q = p0 + ty                            # ... and op(B)[q, j]
        if q < K and j < n:
            sb[ty, tx] = B[j, q] if b_trans else B[q, j]
        else:
            sb[ty, tx] = 0
        cuda.syncthreads()
        for t in range(TILE):
            acc += sa[ty, t] * sb[t, tx]
        cuda.syncthreads()
    if i < m and j < n:
        if has_bias:
            acc += bias[j]
        C[i, j] = acc
        if act_code >= 0:
            act_out[i, j] = act_value(acc, act_code, act_param)


@cuda.jit
def column_sums(out, M):
    """out[j] = sum_i M[i, j]: one thread per column, the batch summed privately."""
    j = cuda.grid(1)
    if j < M.shape[1]:
        s = M.dtype.type(0)
        for i in range(M.shape[0]):
            s += M[i, j]
        out[j] = s


def _gemm(C, A, B, bias, has_bias, a_trans, b_trans, act_out=None, act_code=-1, act_param=0.0):
    m, n = C.shape
    blocks = ((n + TILE - 1) // TILE, (m + TILE - 1) // TILE)
    gemm_tiled[blocks, (TILE, TILE)](C, A, B, bias, has_bias, a_trans, b_trans,
                                     C if act_out is None else act_out, act_code, act_param)


def dense_forward(Z, A, W, b, act_out=None, act_code=-1, act_param=0.0):
    """Z (B, n_out) = A (B, n_in) @ W + b; with act_out, also act_out = f(Z) for a fusable
    activation code (the bias/activation epilogue)."""
    if act_out is not None and not fusable(act_code):
        raise ValueError("this activation needs its own pass (maxout, softmax)")
    _gemm(Z, A, W, b, True, False, False, act_out, act_code, act_param)


def dense_backward(dA, dW, db, dZ, A, W, need_dA):
    """dW = A^T dZ, db = column sums of dZ, dA = dZ W^T (skipped unless need_dA)."""
    _gemm(dW, A, dZ, db, False, True, False)
    column_sums[grid1(dZ.shape[1])](db, dZ)
    if need_dA:
        _gemm(dA, dZ, W, db, False, False, True)
