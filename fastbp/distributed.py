"""Data-parallel training over MPI: what Network.fit(comm=...) needs besides the compiled driver.

Every rank builds the same network (same seed) and calls fit on its own shard; fit broadcasts
rank 0's weights, gives each rank its own shuffle and dropout streams, runs the compiled epochs
(kernels/cpu/distributed.py: one gradient all-reduce per step), and reduces the epoch losses and
validation figures across ranks, so every rank sees the same logs and takes the same decisions
(early stopping, divergence). Only rank 0 prints. A rank that raises aborts the whole job
(MPI_Abort) with its message instead of leaving the others waiting in an all-reduce forever.
Needs the optional extra `fastbp[mpi]` (mpi4py, numba-mpi, an MPI such as the `mpich` wheel).
"""
from __future__ import annotations

import sys

import numpy as np


def require_mpi():
    """mpi4py's MPI module, or an ImportError that says what to install."""
    try:
        from mpi4py import MPI
        import numba_mpi  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"distributed training needs mpi4py and numba-mpi: pip install 'fastbp[mpi]' ({exc})") from None
    return MPI


class Distributed:
    """One fit's view of the MPI job: the rank, the streams of this rank, and the collective steps
    a fit takes. It is handed the network's arrays, never the network."""

    def __init__(self, comm, backend):
        MPI = require_mpi()
        if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
            raise ValueError(f"comm must be an mpi4py intracommunicator, such as MPI.COMM_WORLD or one split from "
                             f"it with comm.Split(...); got {comm!r}")
        if backend.name != "cpu":
            raise ValueError(f"distributed training runs on the cpu backend, not {backend.name!r}")
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()
        self.backend = backend
        self.steps = self.n_global = self.key = None
        self.rng = None

    def start(self, params, state, n, batch_size, seed, drop_key, stream):
        """Before the first epoch: every rank takes rank 0's parameters and statistics, and this
        rank's shuffle generator and dropout key. `stream` is the (rank, generator) pair this
        returns, kept by the network, so that a later fit continues the stream instead of
        repeating it. Returns the pair to keep."""
        self.comm.Bcast(params, root=0)
        self.comm.Bcast(state, root=0)
        if stream is None or stream[0] != self.rank:
            stream = (self.rank, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7, self.rank))))
        self.rng = stream[1]
        self.key = (drop_key * 0x9E3779B97F4A7C15 + self.rank) % (1 << 64)
        self.steps = self.comm.allreduce(-(-n // batch_size), op=require_mpi().MAX)
        self.n_global = self.comm.allreduce(n)
        return stream

    def train(self, params, state, X, Y, SW, orders, lrs, batch_size, counter, optimizer):
        """Epochs over `orders` with one gradient all-reduce per step: (mean losses over every
        rank's rows, epochs run)."""
        totals = self.backend.train_distributed(params, state, X, Y, SW, orders, lrs, batch_size, self.steps,
                                                counter, optimizer, self.key, self.comm)
        return self.comm.allreduce(totals) / self.n_global, orders.shape[0]

    def mean(self, value, weight):
        """The weight-averaged mean over ranks of a per-rank figure."""
        total, weights = self.comm.allreduce(np.array([value * weight, weight], dtype=np.float64))
        return float(total / weights)


def guarded(comm, run):
    """run(), but an error on this rank ends the whole job (abort) rather than leaving the other
    ranks waiting in an all-reduce. Divergence is seen alike by every rank (shared weights,
    reduced losses), so a FloatingPointError is raised as usual."""
    try:
        return run()
    except FloatingPointError:
        raise
    except BaseException as exc:
        abort(comm, exc)


def abort(comm, exc):
    """Report this rank's error and end the whole MPI job (every rank, nonzero exit)."""
    sys.stderr.write(f"fastbp rank {comm.Get_rank()}/{comm.Get_size()}: {type(exc).__name__}: {exc}; "
                     f"aborting the MPI job\n")
    sys.stderr.flush()
    comm.Abort(1)
