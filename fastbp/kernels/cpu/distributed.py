"""The epoch driver for data-parallel training over MPI (numba-mpi): driver.py's training step
with one all-reduce of the flat gradient between the backward pass and the update, so the
compiled loop never returns to Python between batches. Imported only for fit(comm=...).

Each rank's gradient is the mean over its own b rows; the ranks add b * gradient and b in one
all-reduce of n_params + 1 float64 values and divide, which gives the gradient of the mean over
all their rows: the step one process would take on the union of the ranks' batches. Ranks whose
shard ran out of rows send zeros, so every rank makes the same number of all-reduce calls. The
l1/l2 gradient is added after the reduction (it depends only on the weights, which all ranks
share); batch-norm statistics are each rank's own.
"""
import warnings

import numba_mpi
import numpy as np
from numba.core.errors import NumbaWarning

from ..compile import serial
from .driver import apply_update, backward, forward, gather_rows, output_loss, penalties, sparse_rows
from ..args import SPARSE_FULL as FULL
from .views import borrow

# numba-mpi's calls hold ctypes pointers, so these drivers compile in each process (about a
# second) instead of coming from the on-disk cache; Numba warns about it every time.
warnings.filterwarnings("ignore", message="Cannot cache compiled function .*_mpi", category=NumbaWarning)


@serial
def allreduce_gradient(grads, b, send, recv):
    """grads <- sum_r b_r grads_r / sum_r b_r over the ranks; returns sum_r b_r."""
    n = grads.shape[0]
    for i in range(n):
        send[i] = grads[i] * b
    send[n] = b
    numba_mpi.allreduce(send, recv, numba_mpi.Operator.SUM)
    total = recv[n]
    for i in range(n):
        grads[i] = recv[i] / total
    return total


@serial
def train_step_mpi(b, step, lr, net, hp, opt, ws, send, recv):
    """driver.train_step with the all-reduce; a rank without rows this step sends zeros."""
    grads = net.grads
    value = 0.0
    if b > 0:
        forward(b, True, True, True, step, net, hp, ws)
        value = output_loss(b, net, hp, ws)
        backward(b, True, step, net, hp, ws)
    else:
        for i in range(grads.shape[0]):
            grads[i] = 0
    allreduce_gradient(grads, b, send, recv)
    value += penalties(True, net, hp, ws)
    apply_update(b, lr, net, opt, ws)
    return value


@serial
def train_epochs_mpi(X, Y, SW, orders, lrs, batch_size, steps, counter, net, hp, opt, ws, totals, send, recv):
    """`steps` batches per epoch on every rank (the most any rank needs); totals[e] is this
    rank's sum of batch losses times batch sizes (the caller reduces it)."""
    net, opt, ws = borrow(net), borrow(opt), borrow(ws)
    X, Y, SW, orders, lrs = borrow(X), borrow(Y), borrow(SW), borrow(orders), borrow(lrs)
    n = X.shape[0]
    for e in range(orders.shape[0]):
        total = 0.0
        for s in range(steps):
            start = s * batch_size
            b = max(0, min(batch_size, n - start))
            if b > 0:
                gather_rows(ws.xb, ws.yb, ws.wb, X, Y, SW, orders[e], start, b)
                sparse_rows(b, orders[e], start, FULL, ws)   # every rank updates every row
            total += train_step_mpi(b, counter[0], lrs[e], net, hp, opt, ws, send, recv) * b
            counter[0] += 1
        totals[e] = total
    return np.int64(orders.shape[0])
