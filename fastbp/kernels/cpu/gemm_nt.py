"""gemm_nt: C = A B^T (+ bias) with both operands contiguous along the summed axis, the
register-blocked product of dense.py's "blocked" path (large layers where no OpenBLAS is found,
and narrow outputs forward). Each 4 x 4 tile of C keeps 16 scalar accumulators, which LLVM keeps
in registers, while it streams the operand rows, over L2-sized panels of B.
"""
from numba import prange

from ... import config
from ..compile import kernel, serial, serial_kernel
from .threads import thread_count, thread_share


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
    once per row block, at well under half the rate)."""
    m, K = A.shape
    n = B.shape[0]
    panel = _nt_panel(K, A.itemsize)
    blocks = (m + 3) // 4
    threads = min(thread_count(), blocks)
    for j0 in range(0, n, panel):
        for k in prange(threads):   # thread k: its share of the row blocks
            ib0, ib1 = thread_share(blocks, k, threads)
            _nt_part(C, A, B, bias, has_bias, ib0, ib1, j0, min(n, j0 + panel))


@serial_kernel
def _nt_part(C, A, B, bias, has_bias, ib0, ib1, j0, j1):
    for ib in range(ib0, ib1):
        _nt_block(C, A, B, bias, has_bias, ib, j0, j1)
