"""Dense layer kernels: dense_forward (Z = A W + b) and dense_backward (dW, db, dA).

The layer math and the choice of path; the matrix products themselves are the GEMM family's
files (tiles.py: gemm_tiled; gemm_nt.py: gemm_nt; blas.py: OpenBLAS). Four versions, chosen per
layer and batch size by forward_path / backward_path:
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
  the output, for the largest layers, where it beats gemm_nt (scripts/crossover.py --blas).
  Only where NumPy's OpenBLAS was found (blas_library.FOUND).
Biases are added in the same pass. Parallel loops run over outputs no other iteration writes
(row or column blocks of C), so there are no shared writes.

A multi-threaded training step cuts the tiled layers by W's rows instead (split_by_inputs and
the kernels below it), so that each thread keeps its own rows of W from step to step.
"""
from collections import namedtuple

import numpy as np
from numba import prange

from ... import config
from ..blas_library import FOUND as BLAS_FOUND
from ..compile import THREADED, kernel, linked_kernel, serial, serial_kernel, switch
from .activations import activate_rows
from .blas import gemm_blas
from .gemm_nt import gemm_nt
from .threads import even_part, thread_count, thread_share
from .tiles import (block_product, gather_narrow, gemm_tiled, row_product, scatter_narrow, tile_columns, transpose,
                    transpose_rows, transpose_serial)
from .views import view2d


NAIVE, TILED, BLOCKED, BLAS = 0, 1, 2, 3
# The paths compiled in, forward and backward: a network's variant narrows them to those its
# layers take at its batch sizes (paths_over). A layer whose path a variant lacks runs the naive
# loops, always compiled: slower, never wrong.
FORWARD_PATHS = switch("FORWARD_PATHS", (NAIVE, TILED, BLOCKED, BLAS))
BACKWARD_PATHS = switch("BACKWARD_PATHS", (NAIVE, TILED, BLOCKED, BLAS))


@serial
def _serial_layer(rows, W):
    """Whether a narrow layer's backward pass runs on the calling thread: below
    config.SERIAL_MACS multiply-adds, its four parallel regions cost more than they save
    (the README's "Training steps split by inputs" has the measurements)."""
    return rows * W.size < config.SERIAL_MACS


@serial
def forward_path(rows, W):
    """Which forward kernel: naive loops for tiny layers; gemm_nt (blocked) for narrow ones,
    whose rows of Z are too short for a tile; gemm_tiled while the weights stay in L2, where
    it beats OpenBLAS (no packing); past that OpenBLAS from config.BLAS_MIN_MACS multiply-adds,
    else the blocked path. Measured by scripts/crossover.py --dense and --blas."""
    if W.size < config.GEMM_MIN_WEIGHTS:
        return NAIVE
    if rows >= config.GEMM_NARROW_MIN_ROWS and W.shape[1] < config.GEMM_NARROW:
        return BLOCKED
    if W.size * W.itemsize <= config.GEMM_PANEL_BYTES:   # in L2
        return TILED
    if BLAS_FOUND and rows * W.size >= config.BLAS_MIN_MACS:
        return BLAS
    return BLOCKED


WeightShape = namedtuple("WeightShape", ["shape", "size", "itemsize"])   # what the path rules read of W


def weight_shape(n_in, n_out, itemsize):
    """A stand-in for a layer's W that the path rules (forward_path, backward_path, paths_over,
    scratch_sizes) accept in plain Python, where no array exists yet."""
    return WeightShape((n_in, n_out), n_in * n_out, itemsize)


def _thresholds(W):
    # the row counts at which forward_path or backward_path may change for W: both rules read
    # the batch size only in these comparisons
    return config.GEMM_NARROW_MIN_ROWS, -(-config.BLAS_MIN_MACS // max(W.size, 1))


def paths_over(max_rows, W):
    """The paths forward_path and backward_path take for W at every batch size from 1 to
    max_rows: two sets (plain Python, for kernels/cpu/needs.py). Both rules change with the batch
    size only at the row counts they test, so those and the two ends find every path."""
    rows = {1, max_rows} | {r for r in _thresholds(W) if 1 <= r <= max_rows}
    return {forward_path.py_func(r, W) for r in rows}, {backward_path.py_func(r, W) for r in rows}


def _most_rows(rule, path, max_rows, W):
    # the largest batch size up to max_rows at which `rule` takes `path` for W (0: none): the
    # rule is constant between its thresholds, so it is max_rows or one below a threshold
    rows = sorted({max_rows} | {r - 1 for r in _thresholds(W) if 1 <= r - 1 <= max_rows}, reverse=True)
    return next((r for r in rows if rule.py_func(r, W) == path), 0)


def scratch_sizes(max_rows, W, training):
    """Elements of the scratch the dense kernels take for W's layer over batches of 1 to max_rows
    rows (plain Python, for driver.workspace): (Wt, At, dZt). Wt holds W^T where the forward pass
    may take the blocked path, or a training step the tiled one (dw_and_da, its narrow branch
    and the split all transpose W); At and dZt hold a batch's A^T and dZ^T where a training step
    may take the blocked path, only for the batch sizes that take it. The naive, tiled-forward
    and OpenBLAS paths need none (a wide network's batches of 256 take OpenBLAS, and only
    batches of 5 rows or fewer the blocked path). tests/kernels/cpu/test_driver.py checks the
    sizes against the compiled rules at every batch size: the kernels write there unchecked."""
    n_in, n_out = W.shape
    transposed = (_most_rows(forward_path, BLOCKED, max_rows, W)
                  or training and _most_rows(backward_path, TILED, max_rows, W))
    blocked = _most_rows(backward_path, BLOCKED, max_rows, W) if training else 0
    return W.size if transposed else 0, blocked * n_in, blocked * n_out


@serial
def backward_path(rows, W):
    """As forward_path, but narrow layers stay tiled too (dense_backward_tiled turns their dW
    around)."""
    if W.size < config.GEMM_MIN_WEIGHTS:
        return NAIVE
    if W.size * W.itemsize <= config.GEMM_PANEL_BYTES:
        return TILED
    if BLAS_FOUND and rows * W.size >= config.BLAS_MIN_MACS:
        return BLAS
    return BLOCKED


@serial
def dense_forward(Z, A, W, b, Wt):
    """Z (B, n_out) = A (B, n_in) @ W (n_in, n_out) + b; Wt (n_out, n_in) is scratch."""
    path = forward_path(A.shape[0], W)
    if BLAS in FORWARD_PATHS and path == BLAS:
        dense_forward_blas(Z, A, W, b)
    elif BLOCKED in FORWARD_PATHS and path == BLOCKED:
        dense_forward_blocked(Z, A, W, b, Wt)
    elif TILED in FORWARD_PATHS and path == TILED:
        dense_forward_tiled(Z, A, W, b)
    else:
        dense_forward_naive(Z, A, W, b)


@serial
def dense_backward(dA, dW, db, dZ, A, W, need_dA, Wt, At, dZt):
    """dW = A^T dZ, db = column sums of dZ, dA = dZ W^T (skipped unless need_dA: the first
    layer's input is the data); Wt (n_out, n_in), At (n_in, B) and dZt (n_out, B) are scratch."""
    path = backward_path(A.shape[0], W)
    if BLAS in BACKWARD_PATHS and path == BLAS:
        dense_backward_blas(dA, dW, db, dZ, A, W, need_dA)
    elif BLOCKED in BACKWARD_PATHS and path == BLOCKED:
        dense_backward_blocked(dA, dW, db, dZ, A, W, need_dA, At, dZt)
    elif TILED in BACKWARD_PATHS and path == TILED:
        dense_backward_tiled(dA, dW, db, dZ, A, W, need_dA, Wt)
    else:
        dense_backward_naive(dA, dW, db, dZ, A, W, need_dA)


# gemm_blas's and gemm_tiled's flags are passed as np.bool_: a literal True or False would be a
# type of its own, and each combination a compile of its own (three each); gemm_blas's pick BLAS
# arguments, gemm_tiled's the bias fill and the edge loops, not the tiles (compare_trees.py measured
# no change). gemm_nt's stay literal: with a run-time flag the mid workload measured slower.

@serial
def dense_forward_blas(Z, A, W, b):
    gemm_blas(Z, A, W, b, np.bool_(True), np.bool_(False), np.bool_(False))


@serial
def dense_backward_blas(dA, dW, db, dZ, A, W, need_dA):
    gemm_blas(dW, A, dZ, db, np.bool_(False), np.bool_(True), np.bool_(False))     # dW = A^T dZ
    column_sums(db, dZ)
    if need_dA:
        gemm_blas(dA, dZ, W, db, np.bool_(False), np.bool_(False), np.bool_(True))  # dA = dZ W^T


@serial
def _column_sums_of(s, M, j0, j1):
    """s[j0:j1] = the sums of M's columns j0 to j1, the rows added in order (contiguous,
    vectorised). Through slices of the rows, indexed from 0: the same loop over M[i, j] for j
    in range(j0, j1) does not vectorise and ran several times slower."""
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
    """s (n,) = the column sums of M (m, n): each thread owns blocks of config.COLUMN_BLOCK
    columns."""
    n = M.shape[1]
    w = config.COLUMN_BLOCK
    blocks = (n + w - 1) // w
    threads = min(thread_count(), blocks)
    for k in prange(threads):
        jb0, jb1 = thread_share(blocks, k, threads)
        _column_sums_part(s, M, jb0, jb1)


@serial_kernel
def _column_sums_part(s, M, jb0, jb1):
    n = M.shape[1]
    w = config.COLUMN_BLOCK
    for jb in range(jb0, jb1):
        _column_sums_of(s, M, jb * w, min(n, jb * w + w))


@serial
def dense_forward_tiled(Z, A, W, b):
    gemm_tiled(Z, A, W, b, np.bool_(True), np.bool_(False))


# The branches of dense_backward_tiled (tiled_kind): dW alone (the first layer, whose input is
# the data), dW and dA together (dw_and_da), and a narrow layer (an output layer: dW's rows are
# shorter than a tile) on the calling thread or across threads. A network's variant narrows them
# to those its tiled layers take at its batch sizes (tiled_kinds_over); a layer whose kind a
# variant lacks runs the naive loops: slower, never wrong.
DW_ONLY, DW_AND_DA, NARROW_SERIAL, NARROW_THREADED = 0, 1, 2, 3
TILED_KINDS = switch("TILED_KINDS", (DW_ONLY, DW_AND_DA, NARROW_SERIAL, NARROW_THREADED))


@serial
def tiled_kind(rows, W, need_dA):
    """Which branch of dense_backward_tiled serves a batch of `rows` rows."""
    n_in, n_out = W.shape
    if not need_dA:
        return DW_ONLY
    if n_out >= n_in or n_out >= tile_columns(W):
        return DW_AND_DA
    return NARROW_SERIAL if _serial_layer(rows, W) else NARROW_THREADED


def tiled_kinds_over(max_rows, W, need_dA):
    """The kinds tiled_kind gives W at every batch size from 1 to max_rows (plain Python, for
    kernels/cpu/needs.py): it reads the batch size only in _serial_layer's test, which holds
    from 1 row up to a threshold."""
    return {tiled_kind.py_func(r, W, need_dA) for r in (1, max_rows)}


@serial
def dense_backward_tiled(dA, dW, db, dZ, A, W, need_dA, Wt):
    kind = tiled_kind(dZ.shape[0], W, need_dA)
    if DW_ONLY in TILED_KINDS and kind == DW_ONLY:
        gemm_tiled(dW, A, dZ, db, np.bool_(False), np.bool_(True))  # dW = A^T dZ
        column_sums(db, dZ)
    elif DW_AND_DA in TILED_KINDS and kind == DW_AND_DA:
        dw_and_da(dA, dW, db, dZ, A, W, Wt)
    # a narrow layer: dW^T = dZ^T A has rows of n_in. Wt holds W^T for dA, then dW^T.
    elif NARROW_SERIAL in TILED_KINDS and kind == NARROW_SERIAL:
        narrow_backward_serial(dA, dW, db, dZ, A, W, Wt)
    elif NARROW_THREADED in TILED_KINDS and kind == NARROW_THREADED:
        transpose(Wt, W)                    # gemm_tiled wants W^T's rows contiguous
        gemm_tiled(dA, dZ, Wt, db, np.bool_(False), np.bool_(False))
        gemm_tiled(Wt, dZ, A, db, np.bool_(False), np.bool_(True))
        transpose(dW, Wt)
        column_sums(db, dZ)
    else:
        dense_backward_naive(dA, dW, db, dZ, A, W, need_dA)


@serial_kernel
def narrow_backward_serial(dA, dW, db, dZ, A, W, Wt):
    """dense_backward_tiled's narrow branch on the calling thread."""
    n_in, n_out = W.shape
    gather_narrow(Wt, W)
    whole = n_out - n_out % config.TILE_ROWS   # dW^T: whole tiles, then the rows below them
    for k in range(2):   # both products through one block_product: half the code to compile
        if k == 0:
            C, B, trans, rows = dA, Wt, False, dZ.shape[0]   # dA = dZ W^T
        else:
            C, B, trans, rows = Wt, A, True, whole           # dW^T = dZ^T A
        block_product(C, dZ, B, db, False, trans, 0, rows, 0, n_in)
    row_product(Wt, dZ, A, True, whole, n_out)
    scatter_narrow(dW, Wt)
    _column_sums_of(db, dZ, 0, n_out)


@kernel
def dw_and_da(dA, dW, db, dZ, A, W, Wt):
    """dW = A^T dZ with db, and dA = dZ W^T, at the same time: half the threads share dW's
    rows, the other half dA's columns (each transposing the rows of W its columns need). One
    parallel region instead of four, and each product cut into half as many pieces, which beats
    the two products one after the other (scripts/crossover.py --blas)."""
    threads = thread_count()
    if not THREADED or threads == 1:   # (the twin compiles this branch only)
        _dw_and_da_serial(dA, dW, db, dZ, A, W, Wt)
        return
    t_dw = (threads + 1) // 2
    for k in prange(threads):
        _dw_and_da_part(dA, dW, db, dZ, A, W, Wt, np.int64(k), t_dw, threads - t_dw)


@serial_kernel
def _dw_and_da_serial(dA, dW, db, dZ, A, W, Wt):
    """dw_and_da on the calling thread: W transposed whole, then both products."""
    n_in, n_out = W.shape
    rows = dZ.shape[0]
    transpose_serial(Wt, W)
    for k in range(2):   # both products through one block_product: half the code to compile
        if k == 0:
            C, X, B, trans, m, n = dA, dZ, Wt, False, rows, n_in    # dA = dZ W^T
        else:
            C, X, B, trans, m, n = dW, A, dZ, True, n_in, n_out     # dW = A^T dZ
        block_product(C, X, B, db, False, trans, 0, m, 0, n)
    _column_sums_of(db, dZ, 0, n_out)


@serial_kernel
def _dw_and_da_part(dA, dW, db, dZ, A, W, Wt, k, t_dw, t_da):
    """Thread k's share of dw_and_da: below t_dw, a block of dW's rows (thread 0 db as well);
    from t_dw on, a block of dA's columns, after transposing the rows of W they need."""
    n_in, n_out = W.shape
    rows = dZ.shape[0]
    R, NR = config.TILE_ROWS, tile_columns(W)
    w = config.VECTOR_BYTES // W.itemsize   # transpose_rows' block height, which divides NR
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
# after each update half of W moves between cores, and the update pass waits on that traffic.
# Cut instead by W's rows (the layer's inputs), each thread only ever touches its own block of
# W, dW and the optimizer state: the forward product becomes a sum of per-thread partial products
# (added by add_partials, a batch's rows of Z rather than all of W), dA is cut into column
# blocks, and driver.update_by_owner updates each block on the thread that owns it
# (scripts/crossover.py --split times whole steps both ways; the README has the figures).

@serial
def split_by_inputs(rows, W, partials):
    """Whether a training step cuts this layer's products by W's rows: on several threads, for
    layers gemm_tiled takes both ways, of config.SPLIT_MIN_WEIGHTS weights or more, with at
    least config.SPLIT_MIN_ROWS rows of W per thread and room in `partials` for the partial
    products."""
    threads = thread_count()
    return (config.SPLIT_INPUTS and threads > 1 and W.size >= config.SPLIT_MIN_WEIGHTS
            and W.shape[0] >= config.SPLIT_MIN_ROWS * threads
            and forward_path(rows, W) == TILED and backward_path(rows, W) == TILED
            and (threads - 1) * rows * W.shape[1] <= partials.shape[0])


@kernel
def dense_forward_split(Z, A, W, b, partials):
    """Z = A W + b as a sum over threads: thread k multiplies its columns of A by its rows of W,
    into Z (k = 0, which adds the bias) or its slab of `partials`; add_partials sums them."""
    threads = thread_count()
    for k in prange(threads):
        _forward_split_part(Z, A, W, b, partials, np.int64(k), threads)


@serial_kernel
def _forward_split_part(Z, A, W, b, partials, k, threads):
    """Thread k's partial product in dense_forward_split."""
    rows, n = Z.shape
    r0, r1 = even_part(W.shape[0], k, threads)
    C = Z if k == 0 else view2d(partials, (k - 1) * rows * n, rows, n)
    block_product(C, A[:, r0:r1], W[r0:r1, :], b, k == 0, False, 0, rows, 0, n)


@kernel
def add_partials(Z, partials, A, code, param, activate):
    """Z += the other threads' partial products, each thread a block of Z's rows; then, when
    `activate`, A = activation `code` of those rows, in the same pass (one parallel region and
    one trip through Z fewer)."""
    threads = thread_count()
    for k in prange(threads):
        _add_partials_part(Z, partials, A, code, param, activate, np.int64(k), threads)


@serial_kernel
def _add_partials_part(Z, partials, A, code, param, activate, k, threads):
    """Thread k's block of Z's rows in add_partials."""
    rows, n = Z.shape
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
    threads = thread_count()
    for k in prange(threads):
        _backward_split_part(dA, dW, db, dZ, A, W, need_dA, Wt, np.int64(k), threads)


@serial_kernel
def _backward_split_part(dA, dW, db, dZ, A, W, need_dA, Wt, k, threads):
    """Thread k's rows of W in dense_backward_split."""
    n_in, n_out = W.shape
    rows = dZ.shape[0]
    w = config.VECTOR_BYTES // W.itemsize
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


@serial
def naive_row_sums(Z, A, W, b, i):
    """Row i of Z = A W + b, each output summed in a register: for few outputs, where a vector
    loop over them costs more than it saves (config.NAIVE_VECTOR_OUTPUTS)."""
    for j in range(W.shape[1]):
        s = b[j]
        for k in range(A.shape[1]):
            s += A[i, k] * W[k, j]
        Z[i, j] = s


@serial
def naive_row_axpy(Z, A, W, b, i):
    """Row i of Z = A W + b as a sum of W's rows scaled by A's, a vector loop over the outputs."""
    for j in range(W.shape[1]):
        Z[i, j] = b[j]
    for k in range(A.shape[1]):
        a = A[i, k]
        for j in range(W.shape[1]):
            Z[i, j] += a * W[k, j]


@linked_kernel
def dense_forward_naive(Z, A, W, b):
    """Z (B, n_out) = A (B, n_in) @ W (n_in, n_out) + b (n_out,). Both row forms add the same
    terms in the same order."""
    B = A.shape[0]
    for i in prange(B):
        if W.shape[1] < config.NAIVE_VECTOR_OUTPUTS:
            naive_row_sums(Z, A, W, b, i)
        else:
            naive_row_axpy(Z, A, W, b, i)


@linked_kernel
def dense_backward_naive(dA, dW, db, dZ, A, W, need_dA):
    """dW (n_in, n_out) = A^T dZ; db (n_out,) = column sums of dZ; dA (B, n_in) = dZ W^T.

    dA is skipped (need_dA False) for the first layer, whose input is the data.
    """
    B, n_in = A.shape
    n_out = dZ.shape[1]
    zero = dZ.dtype.type(0)
    # Every sum is kept in a register and stored once: on these tiny layers, vector loops over
    # n_out that add into memory cost more than the arithmetic (the README's "Tiny layers").
    for k in prange(n_in):          # each thread owns whole rows of dW
        for j in range(n_out):
            s = zero
            for i in range(B):
                s += A[i, k] * dZ[i, j]
            dW[k, j] = s
    for j in range(n_out):          # db: a short serial sum over the batch
        s = zero
        for i in range(B):
            s += dZ[i, j]
        db[j] = s
    if need_dA:
        for i in prange(B):         # each thread owns whole rows of dA
            for k in range(n_in):
                s = zero
                for j in range(n_out):
                    s += dZ[i, j] * W[k, j]
                dA[i, k] = s

