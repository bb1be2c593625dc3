"""The `cpu` backend: Numba kernels in forward/backward pairs, driven by compiled loops.

  dense.py        dense_forward / dense_backward: the layer math and the choice of path
  tiles.py, gemm_nt.py, blas.py   the matrix products dense.py chooses between
  activations.py  activation_forward / activation_backward
  losses.py       loss_rows / loss_backward
  regularize.py   dropout, batch norm, l1/l2 penalties
  optim.py        the optimizer updates, the gradient norm
  reduce.py, threads.py, views.py   chunked sums, thread parts, uncounted views
  driver.py       whole-network passes and the epoch loop, over a preallocated Workspace
  distributed.py  the epoch loop with an MPI all-reduce of the gradient
  backend.py      CpuBackend: the same methods as reference.NumpyBackend
"""
from .backend import CpuBackend

__all__ = ["CpuBackend"]
