"""Dense layer kernels: dense_forward (Z = A W + b) and dense_backward (dW, db, dA).

Four versions, chosen per layer and batch size by forward_path / backward_path:
- naive: one loop nest per product, the innermost loop contiguous in memory (a row of W, Z or
  dZ) so that LLVM vectorizes it. The algorithmic reference, and the choice for tiny layers.
- tiled: every product through gemm_tiled (tiles.py: C = op(A) B, rows of B and C contiguous),
  a tile of C in vector registers at a time: no packing, no horizontal sums. Small and
  mid-sized layers.
- blocked: every product through gemm_nt (C = A B^T, both operands contiguous along the summed
  axis), after transposing the operand that is not (W for the forward pass; A and dZ for dW):
  each 4 x 4 tile of C keeps 16 accumulators in vector registers while it streams 8 operand
  rows, over L2-sized panels of B. Large layers.
- blas: every product through OpenBLAS (blas.gemm_blas), one call per thread on its block of
  the output, for the largest layers, where it runs 1.4-2.3x faster than gemm_nt
  (scripts/crossover.py --blas). Only where NumPy's OpenBLAS was found (config.BLAS).
Biases are added in the same pass. Parallel loops run over outputs no other iteration writes
(row or column blocks of C), so there are no shared writes.

A multi-threaded training step cuts the tiled layers by W's rows instead (split_by_inputs and
the kernels below it), so that each thread keeps its own rows of W from step to step.
"""
from numba import prange

from ... import config
from ...config import kernel, serial, serial_kernel
from .activations import activate_rows
from .blas import even_part, gemm_blas, thread_count
from .tiles import block_product, gemm_tiled, tile_columns, transpose, transpose_rows
from .views import view2d


@serial
def _nt_block(C, A, B, bias, has_bias, ib, j0, j1):
    """Rows 4 ib to 4 ib + 3 of C = A B^T (+ bias), columns j0 to j1: 4 x 4 tiles, each with 16
    accumulators while it streams 8 operand rows."""
    m, K = A.shape
    zero = C.dtype.type(0)
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
def _nt_panel(K, itemsize):
    return max(4, config.GEMM_PANEL_BYTES // (max(K, 1) * itemsize) // 4 * 4)


@kernel
def gemm_nt(C, A, B, bias, has_bias):
    """C (m, n) = A (m, K) @ B (n, K)^T (+ bias (n,) when has_bias).

    B is taken in panels of rows that fit config.GEMM_PANEL_BYTES, so that a panel stays in L2
    while every row block of A passes over it (without panels, wide layers stream B from L3
    once per row block: 118 against 200 GFLOP/s on the 784x1024 layer, 2 threads)."""
    m, K = A.shape
    n = B.shape[0]
    panel = _nt_panel(K, A.itemsize)
    for j0 in range(0, n, panel):
        for ib in prange((m + 3) // 4):
            _nt_block(C, A, B, bias, has_bias, ib, j0, min(n, j0 + panel))


NAIVE, TILED, BLOCKED, BLAS = 0, 1, 2, 3


@serial
def _serial_layer(rows, W):
    """Whether a narrow layer's backward pass runs on the calling thread: below
    config.SERIAL_MACS multiply-adds, its four parallel regions cost more than they save
    (mid's 64 x 256 x 10 output layer: 10.4 us on one thread against 14.4 on two alone, 12
    against 21 inside the training step; 19.1 against 22.2 at 328K, 30.6 against 28.5 at 655K)."""
    return rows * W.size < config.SERIAL_MACS


@serial
def _fits_l2(W):
    return W.size * W.itemsize <= config.GEMM_PANEL_BYTES


@serial
def forward_path(rows, W):
    """Which forward kernel: naive loops for tiny layers; gemm_nt (blocked) for narrow ones,
    whose rows of Z are too short for a tile; gemm_tiled while the weights stay in L2, where
    it beats OpenBLAS (no packing); past that OpenBLAS from config.BLAS_MIN_MACS multiply-adds,
    else the blocked path. Measured by scripts/crossover.py --dense and --blas."""
    if W.size < config.GEMM_MIN_WEIGHTS:
        return NAIVE
    if rows >= 8 and W.shape[1] < config.GEMM_NARROW:
        return BLOCKED
    if _fits_l2(W):
        return TILED
    if config.BLAS and rows * W.size >= config.BLAS_MIN_MACS:
        return BLAS
    return BLOCKED


@serial
def backward_path(rows, W):
    """As forward_path, but narrow layers stay tiled too (dense_backward_tiled turns their dW
    around)."""
    if W.size < config.GEMM_MIN_WEIGHTS:
        return NAIVE
    if _fits_l2(W):
        return TILED
    if config.BLAS and rows * W.size >= config.BLAS_MIN_MACS:
        return BLAS
    return BLOCKED


@serial
def dense_forward(Z, A, W, b, Wt):
    """Z (B, n_out) = A (B, n_in) @ W (n_in, n_out) + b; Wt (n_out, n_in) is scratch."""
    path = forward_path(A.shape[0], W)
    if path == BLAS:
        dense_forward_blas(Z, A, W, b)
    elif path == BLOCKED:
        dense_forward_blocked(Z, A, W, b, Wt)
    elif path == TILED:
        dense_forward_tiled(Z, A, W, b)
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
    elif path == TILED:
        dense_backward_tiled(dA, dW, db, dZ, A, W, need_dA, Wt)
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


@serial
def _column_sums_of(s, M, j0, j1):
    """s[j0:j1] = the sums of M's columns j0 to j1, the rows added in order (contiguous,
    vectorised). Through slices of the rows, indexed from 0: the same loop over M[i, j] for j
    in range(j0, j1) ran 7x slower (12.4 against 1.7 us at 64 x 256, one thread)."""
    zero = M.dtype.type(0)
    sb = s[j0:j1]
    for j in range(j1 - j0):
        sb[j] = zero
    for i in range(M.shape[0]):
        row = M[i, j0:j1]
        for j in range(j1 - j0):
            sb[j] += row[j]


@kernel
def column_sums(s, M):
    """s (n,) = the column sums of M (m, n): each thread owns blocks of 64 columns."""
    n = M.shape[1]
    for jb in prange((n + 63) // 64):
        _column_sums_of(s, M, jb * 64, min(n, jb * 64 + 64))


@serial
def dense_forward_tiled(Z, A, W, b):
    gemm_tiled(Z, A, W, b, True, False)


@serial
def dense_backward_tiled(dA, dW, db, dZ, A, W, need_dA, Wt):
    n_in, n_out = W.shape
    if not need_dA:
        gemm_tiled(dW, A, dZ, db, False, True)  # dW = A^T dZ
        column_sums(db, dZ)
    elif n_out >= n_in or n_out >= tile_columns(W):
        dw_and_da(dA, dW, db, dZ, A, W, Wt)
    else:
        # a narrow layer (an output layer): dW's rows are shorter than a tile, dW^T = dZ^T A
        # has rows of n_in. Wt holds W^T for dA, then dW^T.
        if _serial_layer(dZ.shape[0], W):
            narrow_backward_serial(dA, dW, db, dZ, A, W, Wt)
        else:
            transpose(Wt, W)                    # gemm_tiled wants W^T's rows contiguous
            gemm_tiled(dA, dZ, Wt, db, False, False)
            gemm_tiled(Wt, dZ, A, db, False, True)
            transpose(dW, Wt)
            column_sums(db, dZ)


@serial_kernel
def narrow_backward_serial(dA, dW, db, dZ, A, W, Wt):
    """dense_backward_tiled's narrow branch on the calling thread."""
    n_in, n_out = W.shape
    rows = dZ.shape[0]
    w = config.VECTOR_BYTES // W.itemsize
    for ib in range((n_in + w - 1) // w):
        transpose_rows(Wt, W, ib)
    block_product(dA, dZ, Wt, db, False, False, 0, rows, 0, n_in)
    block_product(Wt, dZ, A, db, False, True, 0, n_out, 0, n_in)
    for ib in range((n_out + w - 1) // w):
        transpose_rows(dW, Wt, ib)
    _column_sums_of(db, dZ, 0, n_out)


@kernel
def dw_and_da(dA, dW, db, dZ, A, W, Wt):
    """dW = A^T dZ with db, and dA = dZ W^T, at the same time: half the threads share dW's
    rows, the other half dA's columns (each transposing the rows of W its columns need). One
    parallel region instead of four, and each product cut into half as many pieces: mid's
    64 x 256 x 256 backward in 86 us against 113 for the two products one after the other
    through OpenBLAS (scripts/crossover.py --blas)."""
    n_in, n_out = W.shape
    rows = dZ.shape[0]
    threads = thread_count()
    if threads == 1:
        transpose(Wt, W)
        block_product(dA, dZ, Wt, db, False, False, 0, rows, 0, n_in)
        block_product(dW, A, dZ, db, False, True, 0, n_in, 0, n_out)
        _column_sums_of(db, dZ, 0, n_out)
        return
    t_dw = (threads + 1) // 2
    t_da = threads - t_dw
    R, NR = config.TILE_ROWS, tile_columns(W)
    w = config.VECTOR_BYTES // W.itemsize   # transpose_rows' block height, which divides NR
    for k in prange(threads):
        if k < t_dw:
            blocks = (n_in + R - 1) // R
            r0, r1 = blocks * k // t_dw * R, min(n_in, blocks * (k + 1) // t_dw * R)
            block_product(dW, A, dZ, db, False, True, r0, r1, 0, n_out)
            if k == 0:
                _column_sums_of(db, dZ, 0, n_out)
        else:
            j = k - t_dw
            panels = (n_in + NR - 1) // NR
            c0, c1 = panels * j // t_da * NR, min(n_in, panels * (j + 1) // t_da * NR)
            for ib in range(c0 // w, (c1 + w - 1) // w):
                transpose_rows(Wt, W, ib)
            block_product(dA, dZ, Wt, db, False, False, 0, rows, c0, c1)


# ---- training steps on several threads: each thread owns a block of W's rows ----
#
# In a training step every weight is read by the forward pass, read again for dA, and written by
# the update. Cut the products by rows of the batch (gemm_tiled), every thread reads all of W, so
# after each update half of W moves between cores: on mid (256-256-256-10, batch 64, two cores)
# that traffic made the update pass cost 50-60 us where it costs 8 on data already in the core.
# Cut instead by W's rows (the layer's inputs), each thread only ever touches its own block of
# W, dW and the optimizer state: the forward product becomes a sum of per-thread partial products
# (added by add_partials, 64 x 256 floats against W's 256 x 256), dA is cut into column blocks,
# and driver.update_by_owner updates each block on the thread that owns it. Mid's step: 270-280
# against 243-250 us; 1.09-1.12x faster steps from 192 x 192 layers
# (scripts/crossover.py --split --batch 64).

@serial
def split_by_inputs(rows, W, partials):
    """Whether a training step cuts this layer's products by W's rows: on several threads, for
    layers gemm_tiled takes both ways, of config.SPLIT_MIN_WEIGHTS weights or more, with at
    least 16 rows of W per thread and room in `partials` for the partial products."""
    threads = thread_count()
    return (config.SPLIT_INPUTS and threads > 1 and W.size >= config.SPLIT_MIN_WEIGHTS
            and W.shape[0] >= 16 * threads
            and forward_path(rows, W) == TILED and backward_path(rows, W) == TILED
            and (threads - 1) * rows * W.shape[1] <= partials.shape[0])


@kernel
def dense_forward_split(Z, A, W, b, partials):
    """Z = A W + b as a sum over threads: thread k multiplies its columns of A by its rows of W,
    into Z (k = 0, which adds the bias) or its slab of `partials`; add_partials sums them."""
    rows, n = Z.shape
    threads = thread_count()
    for k in prange(threads):
        r0, r1 = even_part(W.shape[0], k, threads)
        C = Z if k == 0 else view2d(partials, (k - 1) * rows * n, rows, n)
        block_product(C, A[:, r0:r1], W[r0:r1, :], b, k == 0, False, 0, rows, 0, n)


@kernel
def add_partials(Z, partials, A, code, param, activate):
    """Z += the other threads' partial products, each thread a block of Z's rows; then, when
    `activate`, A = activation `code` of those rows, in the same pass (one parallel region and
    one trip through Z fewer: mid's step 3 us faster per layer)."""
    rows, n = Z.shape
    threads = thread_count()
    for k in prange(threads):
        i0, i1 = rows * k // threads, rows * (k + 1) // threads
        for p in range(threads - 1):
            P = view2d(partials, p * rows * n, rows, n)
            for i in range(i0, i1):
                z, q = Z[i], P[i]
                for j in range(n):
                    z[j] += q[j]
        if activate:
            activate_rows(A, Z, code, param, i0, i1)


@kernel
def dense_backward_split(dA, dW, db, dZ, A, W, need_dA, Wt):
    """dense_backward with thread k on its rows r of W only: dW[r] = A[:, r]^T dZ, and
    dA[:, r] = dZ W[r]^T through its own transpose of W[r] (a slab of Wt); db by blocks of
    columns."""
    n_in, n_out = W.shape
    rows = dZ.shape[0]
    threads = thread_count()
    w = config.VECTOR_BYTES // W.itemsize
    for k in prange(threads):
        r0, r1 = even_part(n_in, k, threads)
        if need_dA:
            T = view2d(Wt, r0 * n_out, n_out, r1 - r0)
            mine = W[r0:r1, :]
            for ib in range((r1 - r0 + w - 1) // w):
                transpose_rows(T, mine, ib)
            block_product(dA[:, r0:r1], dZ, T, db, False, False, 0, rows, 0, r1 - r0)
        block_product(dW, A, dZ, db, False, True, r0, r1, 0, n_out)
        c0, c1 = even_part(n_out, k, threads)
        _column_sums_of(db, dZ, c0, c1)


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

