"""Dense layer kernels: dense_forward (Z = A W + b) and dense_backward (dW, db, dA).

Four versions, chosen per layer and batch size by forward_path / backward_path:
- naive: one loop nest per product, the innermost loop contiguous in memory (a row of W, Z or
  dZ) so that LLVM vectorizes it. The algorithmic reference, and the choice for tiny layers.
- small: every product through gemm_nn (C = op(A) B, rows of B and C contiguous), which adds 8
  scaled rows of B to 2 rows of C per pass: no transposes of the data, no horizontal sums.
- blocked: every product through gemm_nt (C = A B^T, both operands contiguous along the summed
  axis), after transposing the operand that is not (W for the forward pass; A and dZ for dW):
  each 4 x 4 tile of C keeps 16 accumulators in vector registers while it streams 8 operand
  rows, over L2-sized panels of B. Large layers.
- blas: every product through OpenBLAS (blas.gemm_blas), one call per thread on its block of
  the output, for the largest layers, where it runs 1.4-2.3x faster than gemm_nt
  (scripts/crossover.py --blas). Only where NumPy's OpenBLAS was found (config.BLAS).
Biases are added in the same pass. Parallel loops run over outputs no other iteration writes
(row or column blocks of C), so there are no shared writes.
"""
from numba import prange

from ... import config
from ...config import kernel, serial
from .blas import gemm_blas


@kernel
def transpose(T, M):
    """T (n, m) = M (m, n)^T in tiles of 64 rows x 8 columns of M. Square 32 x 32 tiles thrash
    the cache when the row length is a power of two (1024 x 1024: 1.7 ms against 0.44 ms).
    Small matrices (L1-resident) take one plain pass instead: 0.8 against 2.5 us at 64 x 64."""
    m, n = M.shape
    if m * n <= 16384:
        for j in range(n):
            for i in range(m):
                T[j, i] = M[i, j]
        return
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
def _op(A, i, p, trans):
    """Element (i, p) of op(A): A[p, i] when trans, else A[i, p]."""
    return A[p, i] if trans else A[i, p]


@serial
def _op8(A, i, p, trans):
    """Elements (i, p) to (i, p + 7) of op(A)."""
    return (_op(A, i, p, trans), _op(A, i, p + 1, trans), _op(A, i, p + 2, trans), _op(A, i, p + 3, trans),
            _op(A, i, p + 4, trans), _op(A, i, p + 5, trans), _op(A, i, p + 6, trans), _op(A, i, p + 7, trans))


@kernel
def gemm_nn(C, A, B, bias, has_bias, a_trans):
    """C (m, n) = op(A) (m, K) @ B (K, n) (+ bias (n,)); op(A) is A^T when a_trans.

    For small products, where gemm_nt's transposes and horizontal sums do not pay. Rows of B
    and C are contiguous: each pass over j adds 8 scaled rows of B to 2 rows of C, so every load
    and store of C carries 8 multiply-adds (the plain loop's one is bound by its stores: 2x
    slower at 16 x 64 x 64). Parallel over pairs of rows of C, which no other pair writes."""
    m, n = C.shape
    K = B.shape[0]
    zero = C.dtype.type(0)
    for ib in prange((m + 1) // 2):
        i0 = 2 * ib
        c0 = C[i0]
        for j in range(n):
            c0[j] = bias[j] if has_bias else zero
        if i0 + 1 < m:
            i1 = i0 + 1
            c1 = C[i1]
            for j in range(n):
                c1[j] = bias[j] if has_bias else zero
            p = 0
            while p + 8 <= K:
                b0, b1, b2, b3, b4, b5, b6, b7 = B[p], B[p + 1], B[p + 2], B[p + 3], B[p + 4], B[p + 5], \
                    B[p + 6], B[p + 7]
                x0, x1, x2, x3, x4, x5, x6, x7 = _op8(A, i0, p, a_trans)
                y0, y1, y2, y3, y4, y5, y6, y7 = _op8(A, i1, p, a_trans)
                for j in range(n):
                    c0[j] += (x0 * b0[j] + x1 * b1[j] + x2 * b2[j] + x3 * b3[j]
                              + x4 * b4[j] + x5 * b5[j] + x6 * b6[j] + x7 * b7[j])
                    c1[j] += (y0 * b0[j] + y1 * b1[j] + y2 * b2[j] + y3 * b3[j]
                              + y4 * b4[j] + y5 * b5[j] + y6 * b6[j] + y7 * b7[j])
                p += 8
            for q in range(p, K):
                bq = B[q]
                x, y = _op(A, i0, q, a_trans), _op(A, i1, q, a_trans)
                for j in range(n):
                    c0[j] += x * bq[j]
                    c1[j] += y * bq[j]
        else:                                   # the last row when m is odd
            p = 0
            while p + 8 <= K:
                b0, b1, b2, b3, b4, b5, b6, b7 = B[p], B[p + 1], B[p + 2], B[p + 3], B[p + 4], B[p + 5], \
                    B[p + 6], B[p + 7]
                x0, x1, x2, x3, x4, x5, x6, x7 = _op8(A, i0, p, a_trans)
                for j in range(n):
                    c0[j] += (x0 * b0[j] + x1 * b1[j] + x2 * b2[j] + x3 * b3[j]
                              + x4 * b4[j] + x5 * b5[j] + x6 * b6[j] + x7 * b7[j])
                p += 8
            for q in range(p, K):
                bq = B[q]
                x = _op(A, i0, q, a_trans)
                for j in range(n):
                    c0[j] += x * bq[j]


NAIVE, SMALL, BLOCKED, BLAS = 0, 1, 2, 3


@serial
def forward_path(rows, W):
    """Which forward kernel: OpenBLAS from config.BLAS_MIN_MACS multiply-adds; naive loops for
    tiny layers; gemm_nn up to GEMM_SMALL_ROWS rows with a weight matrix that stays in L2;
    otherwise, or when the layer is narrow (gemm_nn's loop over the outputs is too short to
    vectorise), the blocked path. Measured by scripts/crossover.py --dense and --blas."""
    if config.BLAS and rows * W.size >= config.BLAS_MIN_MACS:
        return BLAS
    if W.size < config.GEMM_MIN_WEIGHTS:
        return NAIVE
    if rows >= 8 and W.shape[1] < config.GEMM_NARROW:
        return BLOCKED
    if rows > config.GEMM_SMALL_ROWS or W.size * W.itemsize > config.GEMM_PANEL_BYTES:
        return BLOCKED
    return SMALL


@serial
def backward_path(rows, W):
    """As forward_path; the blocked backward pays from GEMM_MIN_ROWS rows (its three products
    share two transposes)."""
    if config.BLAS and rows * W.size >= config.BLAS_MIN_MACS:
        return BLAS
    if W.size < config.GEMM_MIN_WEIGHTS:
        return NAIVE
    if rows >= config.GEMM_MIN_ROWS or (rows >= 8 and W.shape[1] < config.GEMM_NARROW):
        return BLOCKED
    return SMALL


@serial
def dense_forward(Z, A, W, b, Wt):
    """Z (B, n_out) = A (B, n_in) @ W (n_in, n_out) + b; Wt (n_out, n_in) is scratch."""
    path = forward_path(A.shape[0], W)
    if path == BLAS:
        dense_forward_blas(Z, A, W, b)
    elif path == BLOCKED:
        dense_forward_blocked(Z, A, W, b, Wt)
    elif path == SMALL:
        dense_forward_small(Z, A, W, b)
    else:
        dense_forward_naive(Z, A, W, b)


@serial
def dense_backward(dA, dW, db, dZ, A, W, need_dA, Wt, At, dZt):
    """dW = A^T dZ, db = column sums of dZ, dA = dZ W^T (skipped unless need_dA: the first
    layer's input is the data); Wt (n_out, n_in), At (n_in, B) and dZt (n_out, B) are scratch."""
    path = backward_path(A.shape[0], W)
    if path == BLAS:
        dense_backward_blas(dA, dW, db, dZ, A, W, need_dA)
    elif path == BLOCKED:
        dense_backward_blocked(dA, dW, db, dZ, A, W, need_dA, At, dZt)
    elif path == SMALL:
        dense_backward_small(dA, dW, db, dZ, A, W, need_dA, Wt)
    else:
        dense_backward_naive(dA, dW, db, dZ, A, W, need_dA)


@serial
def dense_forward_blas(Z, A, W, b):
    gemm_blas(Z, A, W, b, True, False, False)


@serial
def dense_backward_blas(dA, dW, db, dZ, A, W, need_dA):
    gemm_blas(dW, A, dZ, db, False, True, False)     # dW = A^T dZ
    column_sums(db, dZ)
    if need_dA:
        gemm_blas(dA, dZ, W, db, False, False, True)  # dA = dZ W^T


@kernel
def column_sums(s, M):
    """s (n,) = the column sums of M (m, n): each thread owns a block of 64 columns, over which
    it adds the rows in order (contiguous, vectorised)."""
    m, n = M.shape
    zero = M.dtype.type(0)
    for jb in prange((n + 63) // 64):
        j0, j1 = jb * 64, min(n, jb * 64 + 64)
        for j in range(j0, j1):
            s[j] = zero
        for i in range(m):
            for j in range(j0, j1):
                s[j] += M[i, j]


@serial
def dense_forward_small(Z, A, W, b):
    gemm_nn(Z, A, W, b, True, False)


@serial
def dense_backward_small(dA, dW, db, dZ, A, W, need_dA, Wt):
    gemm_nn(dW, A, dZ, db, False, True)         # dW = A^T dZ
    zero = dZ.dtype.type(0)
    for j in range(dZ.shape[1]):
        db[j] = zero
    for i in range(dZ.shape[0]):
        for j in range(dZ.shape[1]):
            db[j] += dZ[i, j]
    if need_dA:
        transpose(Wt, W)                        # gemm_nn wants W^T's rows contiguous
        gemm_nn(dA, dZ, Wt, db, False, False)


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

