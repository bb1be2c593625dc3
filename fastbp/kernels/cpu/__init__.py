"""The `cpu` backend: Numba kernels in forward/backward pairs, driven by compiled loops.

  dense.py        dense_forward / dense_backward
  activations.py  activation_forward / activation_backward
  losses.py       loss_rows / loss_backward
  optim.py        sgd_update
  driver.py       whole-network passes and the epoch loop, over a preallocated Workspace
  backend.py      CpuBackend: the same methods as reference.NumpyBackend
"""
from .backend import CpuBackend

__all__ = ["CpuBackend"]
