"""The first layer on sparse (CSR) input: forward and backward kernels, and the list of W's rows
a batch touches.

A sparse batch is never densified: the driver keeps the CSR arrays of the whole X (indptr,
indices, data) and the batch's row numbers in it (`rows`). Z = X_batch W + b accumulates, per
batch row, the rows of W its non-zero columns select; dW = X_batch^T dZ adds each non-zero's
value times its row's dZ into the W row of its column. The input layer needs no dA.

Races: two batch rows may share a column, so threads cannot split dW by batch rows. Each row of
dW (and W) belongs to one thread instead, thread t of T owning the rows c with c % T == t (an
interleave, so that the frequent words of a Zipf vocabulary, wherever they sit, spread over the
threads): every thread walks all the batch's non-zeros and takes those of its own rows. No two
threads ever write the same element, and each element's sum runs over the batch in the same
order for every thread count. (Splitting dW by columns instead, each thread on a slice of every
row, was measured several times slower: loops over a slice whose bounds are only known at run
time did not vectorise.)

How a step treats the first W (args.SPARSE_*, chosen by args.sparse_mode; the driver keeps the
step's mode in ws.ntouched[0]):
  FULL (-1)   dW is written whole (zeroed, then summed) and the optimizer updates every row: the
              dense fit's step, for every optimizer.
  FUSED (-2)  plain SGD without penalty or clipping: sgd_step subtracts lr v dZ from the rows
              used, straight from dZ; dW is never formed (one pass over the rows the batch uses
              instead of three).
  n >= 0      rows only (lazy): dW and the update cover the n rows listed in `touched`.

Rows are indexed as M[c, j], never taken as views M[c]: a view per non-zero cost a reference
count's atomic increment and decrement each when the kernels ran with Numba's reference counting,
and still costs building the view.
"""
from numba import prange

from ..args import SPARSE_FULL as FULL, SPARSE_FUSED as FUSED
from ..compile import kernel, serial_kernel
from .threads import thread_count


@kernel
def sparse_forward(Z, W, bias, rows, indptr, indices, data):
    """Z[i] = bias + sum over the non-zeros (c, v) of CSR row rows[i] of v W[c]."""
    nz = Z.shape[1]
    for i in prange(Z.shape[0]):
        r = rows[i]
        for j in range(nz):
            Z[i, j] = bias[j]
        for k in range(indptr[r], indptr[r + 1]):
            v = data[k]
            c = indices[k]
            for j in range(nz):
                Z[i, j] += v * W[c, j]


@kernel
def sparse_backward(dW, db, dZ, rows, indptr, indices, data, touched, mode):
    """dW = X_batch^T dZ and db = column sums of dZ, each thread on its own rows of dW.

    mode FULL: every row of dW is zeroed first. FUSED: db only (sgd_step uses dZ itself). n >= 0:
    only the rows touched[:n] (every column the batch uses) are zeroed and summed: the other
    rows are left as they are, which the caller keeps at zero or ignores."""
    b, nz = dZ.shape
    threads = thread_count()
    zero = dW.dtype.type(0)
    for j in prange(nz):
        s = zero
        for i in range(b):
            s += dZ[i, j]
        db[j] = s
    if mode == FUSED:
        return
    for t in prange(threads):
        if mode == FULL:
            for c in range(t, dW.shape[0], threads):
                for j in range(nz):
                    dW[c, j] = zero
        else:
            for u in range(mode):
                c = touched[u]
                if c % threads == t:
                    for j in range(nz):
                        dW[c, j] = zero
        for i in range(b):
            r = rows[i]
            for k in range(indptr[r], indptr[r + 1]):
                c = indices[k]
                if c % threads == t:
                    v = data[k]
                    for j in range(nz):
                        dW[c, j] += v * dZ[i, j]


@kernel
def sgd_step(W, dZ, rows, indptr, indices, data, lr):
    """W -= lr X_batch^T dZ, one non-zero at a time, each thread on its own rows of W: plain
    SGD's step on the first layer without forming its gradient (mode FUSED)."""
    b, nz = dZ.shape
    threads = thread_count()
    for t in prange(threads):
        for i in range(b):
            r = rows[i]
            for k in range(indptr[r], indptr[r + 1]):
                c = indices[k]
                if c % threads == t:
                    f = W.dtype.type(lr * data[k])
                    for j in range(nz):
                        W[c, j] -= f * dZ[i, j]


@serial_kernel
def list_touched(touched, mark, rows, indptr, indices):
    """Write each column the CSR rows `rows` use once into `touched` (in order of first use);
    returns how many. `mark` (one flag per column, all zero) is left all zero."""
    n = 0
    for i in range(rows.shape[0]):
        r = rows[i]
        for k in range(indptr[r], indptr[r + 1]):
            c = indices[k]
            if mark[c] == 0:
                mark[c] = 1
                touched[n] = c
                n += 1
    for u in range(n):
        mark[touched[u]] = 0
    return n
