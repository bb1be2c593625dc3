"""The first layer on sparse (CSR) input on the GPU: the twins of kernels/cpu/sparse.py.

The CSR arrays of the whole X stay on the device; a batch is its row numbers (`rows`). Forward:
one thread per (batch row, unit) walks the row's non-zeros. Backward: dW is zeroed, then one
thread per (batch row, unit) adds each non-zero's v dZ into the W row of its column with an
atomic add, since batch rows that share a column write the same elements (the sum's order then
varies from run to run, within rounding). Lazy steps mark the rows of W the batch uses, and the
optimizer leaves the others alone (optim.optimizer_update's mask).
"""
from numba import cuda

from .common import fill, grid1


@cuda.jit
def _take(rows, order, start, b):
    """rows[i] = order[start + i] for i < b."""
    i = cuda.grid(1)
    if i < b:
        rows[i] = order[start + i]


@cuda.jit
def _count(rows, start, b):
    """rows[i] = start + i for i < b (an evaluation block)."""
    i = cuda.grid(1)
    if i < b:
        rows[i] = start + i


def batch_rows(rows, order, start, b):
    """The batch's row numbers in X: order[start:start + b], or start.. when order is None."""
    if order is None:
        _count[grid1(b)](rows, start, b)
    else:
        _take[grid1(b)](rows, order, start, b)


@cuda.jit
def _forward(Z, W, bias, rows, indptr, indices, data):
    k = cuda.grid(1)
    b, nz = Z.shape
    if k < b * nz:
        i, j = k // nz, k % nz
        r = rows[i]
        acc = bias[j]
        for p in range(indptr[r], indptr[r + 1]):
            acc += data[p] * W[indices[p], j]
        Z[i, j] = acc


def sparse_forward(Z, W, bias, rows, csr):
    """Z = X[rows] W + bias for the CSR arrays csr = (indptr, indices, data) on the device."""
    _forward[grid1(Z.size)](Z, W, bias, rows, *csr)


@cuda.jit
def _scatter(dW, dZ, rows, indptr, indices, data):
    k = cuda.grid(1)
    b, nz = dZ.shape
    if k < b * nz:
        i, j = k // nz, k % nz
        r = rows[i]
        g = dZ[i, j]
        for p in range(indptr[r], indptr[r + 1]):
            cuda.atomic.add(dW, (indices[p], j), data[p] * g)


@cuda.jit
def _column_sums(db, dZ):
    j = cuda.grid(1)
    if j < db.size:
        s = db.dtype.type(0)
        for i in range(dZ.shape[0]):
            s += dZ[i, j]
        db[j] = s


def sparse_backward(dW, db, dZ, rows, csr):
    """dW = X[rows]^T dZ (every row of dW written) and db = column sums of dZ."""
    fill[grid1(dW.size)](dW.reshape(dW.size), 0.0)
    _scatter[grid1(dZ.size)](dW, dZ, rows, *csr)
    _column_sums[grid1(db.size)](db, dZ)


@cuda.jit
def _mark(mask, rows, b, indptr, indices):
    i = cuda.grid(1)
    if i < b:
        r = rows[i]
        for p in range(indptr[r], indptr[r + 1]):
            mask[indices[p]] = 1   # every writer writes 1: no lost update can change it


def mark_rows(mask, rows, b, csr):
    """mask[c] = 1 for every column c the batch uses (the caller zeroes mask afterwards)."""
    _mark[grid1(b)](mask, rows, b, csr[0], csr[1])
