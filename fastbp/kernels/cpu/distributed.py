"""The epoch driver for data-parallel training over MPI: driver.py's training step
with one all-reduce of the flat gradient between the backward pass and the update, so the
compiled loop never returns to Python between batches. Imported only for fit(comm=...).

Each rank's gradient is the mean over its own b rows; the ranks add b * gradient and b in one
all-reduce of n_params + 1 float64 values and divide, which gives the gradient of the mean over
all their rows: the step one process would take on the union of the ranks' batches. Ranks whose
shard ran out of rows send zeros, so every rank makes the same number of all-reduce calls. The
l1/l2 gradient is added after the reduction (it depends only on the weights, which all ranks
share); batch-norm statistics are each rank's own.
"""
from collections import namedtuple

import llvmlite.binding as llvm
import llvmlite.ir as lir
import numba_mpi.common
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..compile import serial
from .driver import apply_update, backward, forward, gather_rows, output_loss, penalties, sparse_rows
from ..args import SPARSE_FULL as FULL

# The compiled code calls MPI_Allreduce by its symbol name, resolved when the code is loaded, and
# takes the communicator, datatype and operation handles as arguments. numba-mpi's own calls
# embed this process's ctypes pointers and handle addresses instead, which Numba cannot cache: a
# distributed fit then compiled its driver in every rank on every run. numba-mpi still finds the
# MPI library this process's mpi4py uses.
llvm.load_library_permanently(numba_mpi.common.LIB)

Handles = namedtuple("Handles", ["comm", "double", "sum"])


def handles(comm):
    """The handles the compiled all-reduce takes for mpi4py communicator `comm`: MPI's own
    values (ints in MPICH, pointers in Open MPI) as int64. mpi4py gives them as unsigned 64-bit
    numbers: a negative MPICH handle (a split communicator's) comes sign-extended."""
    from mpi4py import MPI
    return Handles(*(np.int64((MPI._handleof(h) + 2**63) % 2**64 - 2**63) for h in (comm, MPI.DOUBLE, MPI.SUM)))


@intrinsic
def _allreduce(typingctx, send, recv, comm, datatype, op):
    """MPI_Allreduce(send.data, recv.data, send.size, datatype, op, comm); its status.

    The handles are declared 64 bits wide whatever the MPI: on x86-64 and AArch64 these
    arguments travel in 64-bit registers, of which an MPI whose handles are C ints (MPICH) reads
    the low half, so one compiled (and cached) function serves every MPI."""
    sig = types.int32(send, recv, comm, datatype, op)

    def codegen(context, builder, sig, args):
        voidp, i32, i64 = lir.IntType(8).as_pointer(), lir.IntType(32), lir.IntType(64)
        fn = cgutils.get_or_insert_function(builder.module, lir.FunctionType(i32, [voidp, voidp, i32, i64, i64, i64]),
                                            "MPI_Allreduce")
        src = context.make_array(sig.args[0])(context, builder, args[0])
        dst = context.make_array(sig.args[1])(context, builder, args[1])
        return builder.call(fn, [builder.bitcast(src.data, voidp), builder.bitcast(dst.data, voidp),
                                 builder.trunc(src.nitems, i32), args[3], args[4], args[2]])
    return sig, codegen


@serial
def allreduce_gradient(grads, b, send, recv, mpi):
    """grads <- sum_r b_r grads_r / sum_r b_r over the ranks; returns sum_r b_r."""
    n = grads.shape[0]
    for i in range(n):
        send[i] = grads[i] * b
    send[n] = b
    _allreduce(send, recv, mpi.comm, mpi.double, mpi.sum)
    total = recv[n]
    for i in range(n):
        grads[i] = recv[i] / total
    return total


@serial
def train_step_mpi(b, step, lr, net, hp, opt, ws, send, recv, mpi):
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
    allreduce_gradient(grads, b, send, recv, mpi)
    value += penalties(True, net, hp, ws)
    apply_update(b, lr, net, opt, ws)
    return value


@serial
def train_epochs_mpi(X, Y, SW, orders, lrs, batch_size, steps, counter, net, hp, opt, ws, totals, send, recv, mpi):
    """`steps` batches per epoch on every rank (the most any rank needs); totals[e] is this
    rank's sum of batch losses times batch sizes (the caller reduces it). mpi: the Handles of
    the job's communicator."""
    n = X.shape[0]
    for e in range(orders.shape[0]):
        total = 0.0
        for s in range(steps):
            start = s * batch_size
            b = max(0, min(batch_size, n - start))
            if b > 0:
                gather_rows(ws.xb, ws.yb, ws.wb, X, Y, SW, orders[e], start, b)
                sparse_rows(b, orders[e], start, FULL, ws)   # every rank updates every row
            total += train_step_mpi(b, counter[0], lrs[e], net, hp, opt, ws, send, recv, mpi) * b
            counter[0] += 1
        totals[e] = total
    return np.int64(orders.shape[0])
