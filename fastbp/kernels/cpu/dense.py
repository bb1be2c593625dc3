"""Dense layer kernels: dense_forward (Z = A W + b) and dense_backward (dW, db, dA).

Two versions. The naive kernels are one loop nest per product, the innermost loop contiguous in
memory (a row of W, Z or dZ) so that LLVM vectorizes it: the algorithmic reference and the
choice for tiny layers. The blocked path runs every product through one register-blocked
kernel, gemm_nt (C = A B^T, both operands contiguous along the summed axis), after transposing
the operand that is not (W for the forward pass; A and dZ for dW): each 4 x 4 tile of C keeps
16 accumulators in vector registers while it streams 8 operand rows, and the bias is added in
the same pass. Parallel loops run over outputs no other iteration writes (row blocks of C), so
there are no shared writes. use_blocked chooses between them.
"""
from numba import prange

from ... import config
from ...config import kernel, serial


@kernel
def transpose(T, M):
    """T (n, m) = M (m, n)^T in tiles of 64 rows x 8 columns of M. Square 32 x 32 tiles thrash
    the cache when the row length is a power of two (1024 x 1024: 1.7 ms against 0.44 ms)."""
    m, n = M.shape
    for ib in prange((m + 63) // 64):
        for j0 in range(0, n, 8):
            for i in range(ib * 64, min(m, ib * 64 + 64)):
                for j in range(j0, min(n, j0 + 8)):
                    T[j, i] = M[i, j]


@kernel
def gemm_nt(C, A, B, bias, has_bias):
    """C (m, n) = A (m, K) @ B (n, K)^T (+ bias (n,) when has_bias).

    B is taken in panels of rows that fit config.GEMM_PANEL_BYTES, so that a panel stays in L2
    while every row block of A passes over it (without panels, wide layers stream B from L3
    once per row block: 118 against 200 GFLOP/s on the 784x1024 layer, 2 threads)."""
    m, K = A.shape
    n = B.shape[0]
    zero = C.dtype.type(0)
    panel = max(4, config.GEMM_PANEL_BYTES // (max(K, 1) * A.itemsize) // 4 * 4)
    for j0 in range(0, n, panel):
        j1 = min(n, j0 + panel)
        for ib in prange((m + 3) // 4):
            i0 = ib * 4
            if i0 + 4 <= m:
                j = j0
                while j + 4 <= j1:
                    s00 = s01 = s02 = s03 = zero
                    s10 = s11 = s12 = s13 = zero
                    s20 = s21 = s22 = s23 = zero
                    s30 = s31 = s32 = s33 = zero
                    for p in range(K):
                        a0, a1, a2, a3 = A[i0, p], A[i0 + 1, p], A[i0 + 2, p], A[i0 + 3, p]
                        b0, b1, b2, b3 = B[j, p], B[j + 1, p], B[j + 2, p], B[j + 3, p]
                        s00 += a0 * b0; s01 += a0 * b1; s02 += a0 * b2; s03 += a0 * b3  # noqa: E702
                        s10 += a1 * b0; s11 += a1 * b1; s12 += a1 * b2; s13 += a1 * b3  # noqa: E702
                        s20 += a2 * b0; s21 += a2 * b1; s22 += a2 * b2; s23 += a2 * b3  # noqa: E702
                        s30 += a3 * b0; s31 += a3 * b1; s32 += a3 * b2; s33 += a3 * b3  # noqa: E702
                    c0 = bias[j] if has_bias else zero
                    c1 = bias[j + 1] if has_bias else zero
                    c2 = bias[j + 2] if has_bias else zero
                    c3 = bias[j + 3] if has_bias else zero
                    C[i0, j], C[i0, j + 1], C[i0, j + 2], C[i0, j + 3] = s00 + c0, s01 + c1, s02 + c2, s03 + c3
                    C[i0 + 1, j], C[i0 + 1, j + 1], C[i0 + 1, j + 2], C[i0 + 1, j + 3] = s10 + c0, s11 + c1, s12 + c2, s13 + c3
                    C[i0 + 2, j], C[i0 + 2, j + 1], C[i0 + 2, j + 2], C[i0 + 2, j + 3] = s20 + c0, s21 + c1, s22 + c2, s23 + c3
                    C[i0 + 3, j], C[i0 + 3, j + 1], C[i0 + 3, j + 2], C[i0 + 3, j + 3] = s30 + c0, s31 + c1, s32 + c2, s33 + c3
                    j += 4
                for jj in range(j, j1):         # the last n % 4 columns
                    for i in range(i0, i0 + 4):
                        s = zero
                        for p in range(K):
                            s += A[i, p] * B[jj, p]
                        C[i, jj] = s + (bias[jj] if has_bias else zero)
            else:                               # the last m % 4 rows
                for i in range(i0, m):
                    for jj in range(j0, j1):
                        s = zero
                        for p in range(K):
                            s += A[i, p] * B[jj, p]
                        C[i, jj] = s + (bias[jj] if has_bias else zero)


@serial
def use_blocked(rows, W):
    """The blocked path pays from GEMM_MIN_ROWS rows, or from 8 rows when the layer is narrow
    (the naive loops' innermost loop runs over the outputs: too short to vectorise); never for
    tiny layers. Measured single-threaded, see scripts/crossover.py --dense."""
    if W.size < config.GEMM_MIN_WEIGHTS:
        return False
    return rows >= config.GEMM_MIN_ROWS or (rows >= 8 and W.shape[1] < config.GEMM_NARROW)


@serial
def dense_forward(Z, A, W, b, Wt):
    """Z (B, n_out) = A (B, n_in) @ W (n_in, n_out) + b; Wt (n_out, n_in) is scratch."""
    if use_blocked(A.shape[0], W):
        dense_forward_blocked(Z, A, W, b, Wt)
    else:
        dense_forward_naive(Z, A, W, b)


@serial
def dense_backward(dA, dW, db, dZ, A, W, need_dA, At, dZt):
    """dW = A^T dZ, db = column sums of dZ, dA = dZ W^T (skipped unless need_dA: the first
    layer's input is the data); At (n_in, B) and dZt (n_out, B) are scratch."""
    if use_blocked(A.shape[0], W):
        dense_backward_blocked(dA, dW, db, dZ, A, W, need_dA, At, dZt)
    else:
        dense_backward_naive(dA, dW, db, dZ, A, W, need_dA)


@serial
def dense_forward_blocked(Z, A, W, b, Wt):
    transpose(Wt, W)
    gemm_nt(Z, A, Wt, b, True)


@serial
def dense_backward_blocked(dA, dW, db, dZ, A, W, need_dA, At, dZt):
    transpose(At, A)
    transpose(dZt, dZ)
    gemm_nt(dW, At, dZt, db, False)
    zero = dZ.dtype.type(0)
    for j in range(dZt.shape[0]):       # db from the contiguous rows of dZ^T
        s = zero
        for i in range(dZt.shape[1]):
            s += dZt[j, i]
        db[j] = s
    if need_dA:
        gemm_nt(dA, dZ, W, db, False)


@kernel
def dense_forward_naive(Z, A, W, b):
    """Z (B, n_out) = A (B, n_in) @ W (n_in, n_out) + b (n_out,)."""
    B, n_in = A.shape
    n_out = W.shape[1]
    for i in prange(B):
        for j in range(n_out):
            Z[i, j] = b[j]
        for k in range(n_in):
            a = A[i, k]
            for j in range(n_out):
                Z[i, j] += a * W[k, j]


@kernel
def dense_backward_naive(dA, dW, db, dZ, A, W, need_dA):
    """dW (n_in, n_out) = A^T dZ; db (n_out,) = column sums of dZ; dA (B, n_in) = dZ W^T.

    dA is skipped (need_dA False) for the first layer, whose input is the data.
    """
    B, n_in = A.shape
    n_out = dZ.shape[1]
    zero = dZ.dtype.type(0)
    for k in prange(n_in):          # each thread owns whole rows of dW
        for j in range(n_out):
            dW[k, j] = zero
        for i in range(B):
            a = A[i, k]
            for j in range(n_out):
                dW[k, j] += a * dZ[i, j]
    for j in range(n_out):          # db: a short serial sum over the batch
        db[j] = zero
    for i in range(B):
        for j in range(n_out):
            db[j] += dZ[i, j]
    if need_dA:
        for i in prange(B):         # each thread owns whole rows of dA
            for k in range(n_in):
                s = zero
                for j in range(n_out):
                    s += dZ[i, j] * W[k, j]
                dA[i, k] = s
