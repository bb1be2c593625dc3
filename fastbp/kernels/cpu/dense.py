"""Dense layer kernels: dense_forward (Z = A W + b) and dense_backward (dW, db, dA).

Loop order keeps the innermost loop contiguous in memory (a row of W, Z or dZ), which LLVM
vectorizes. Parallel loops run over outputs that no other iteration writes: rows of Z in the
forward pass, rows of dW and of dA in the backward pass, so there are no shared writes.
"""
from numba import prange

from ...config import kernel


@kernel
def dense_forward(Z, A, W, b):
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
def dense_backward(dA, dW, db, dZ, A, W, need_dA):
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
