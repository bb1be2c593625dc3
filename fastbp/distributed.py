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


def _mpi():
    try:
        from mpi4py import MPI
        import numba_mpi  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"distributed training needs mpi4py and numba-mpi: pip install 'fastbp[mpi]' ({exc})") from None
    return MPI


class Distributed:
    def __init__(self, comm, backend):
        MPI = _mpi()
        if comm is not MPI.COMM_WORLD and comm != MPI.COMM_WORLD:
            raise ValueError("comm must be MPI.COMM_WORLD: the compiled all-reduce (numba-mpi) works on the "
                             "world communicator only")
        if backend.name != "cpu":
            raise ValueError(f"distributed training runs on the cpu backend, not {backend.name!r}")
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()
        self.backend = backend

    def sync_weights(self, net):
        """Every rank starts from rank 0's parameters and statistics."""
        self.comm.Bcast(net._params, root=0)
        self.comm.Bcast(net._state, root=0)

    def rank_streams(self, net):
        """Shuffle generator and dropout key of this rank: distinct per rank, reproducible, and
        kept on the network so that a later fit continues the stream instead of repeating it."""
        if getattr(net, "_rank_rng", None) is None or net._rank_rng[0] != self.rank:
            seq = np.random.SeedSequence(net.seed, spawn_key=(7, self.rank))
            net._rank_rng = (self.rank, np.random.default_rng(seq))
        key = (net._drop_key * 0x9E3779B97F4A7C15 + self.rank) % (1 << 64)
        return net._rank_rng[1], key

    def steps(self, n, batch_size):
        return self.comm.allreduce(-(-n // batch_size), op=_mpi().MAX)

    def mean(self, value, weight):
        """The weight-averaged mean over ranks of a per-rank figure."""
        total, weights = self.comm.allreduce(np.array([value * weight, weight], dtype=np.float64))
        return float(total / weights)

    def reduce_losses(self, totals, n):
        sums = self.comm.allreduce(np.asarray(totals, dtype=np.float64))
        return sums / self.comm.allreduce(n)



def abort(comm, exc):
    """Report this rank's error and end the whole MPI job (every rank, nonzero exit)."""
    sys.stderr.write(f"fastbp rank {comm.Get_rank()}/{comm.Get_size()}: {type(exc).__name__}: {exc}; "
                     f"aborting the MPI job\n")
    sys.stderr.flush()
    comm.Abort(1)
