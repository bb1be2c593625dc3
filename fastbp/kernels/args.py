"""The named structures every compiled driver takes, built in one place for every backend.

A driver's arguments travel in three of these (and a backend's workspace of buffers): Numba
compiles a named tuple's fields to the same static reads as a plain tuple's indexes, so names
cost nothing at run time, and a field added here reaches every driver without renumbering.

  Net    the network: flat parameters and their gradients (layer l's W, b, gamma, beta are views
         at the offsets in the int table `layers`), the batch-norm running statistics `state`,
         the float table `layer_f` (activation parameter, dropout rate per layer) and the weight
         ranges l1/l2 penalise
  Hyper  the spec's scalars: loss code and parameter, l1, l2, batch-norm momentum and eps, and
         the dropout key (uint64)
  Opt    the optimizer: its kernel code, hyper-parameter vector (optim.H_* slots), moment
         vectors m and v, step count t (int64[1]), clip_norm (0: no clipping), and sparse_mode:
         how a step on sparse X treats the first layer's W (below; SPARSE_FULL for dense X)

No numba here: the CUDA backend builds the same structures (of device arrays) without loading
the cpu kernels.
"""
from collections import namedtuple

import numpy as np

from ..optim import OPT_SGD

Net = namedtuple("Net", ["params", "grads", "state", "layers", "layer_f", "ranges"])
Hyper = namedtuple("Hyper", ["loss_code", "loss_param", "l1", "l2", "bn_momentum", "bn_eps", "drop_key"])
Opt = namedtuple("Opt", ["code", "hyper", "m", "v", "t", "clip_norm", "sparse_mode"])

# How a training step on sparse X treats the first layer's W (kernels/cpu/sparse.py):
#   SPARSE_FULL   every row, as the dense fit does (momentum and Adam decay every row's moments)
#   SPARSE_FUSED  plain SGD without penalty or clipping: a row no column of the batch uses keeps
#                 its value, so only the used rows change, straight from dZ (exact)
#   SPARSE_ROWS   only the rows the batch uses, moments included: the optimizer's `lazy` option
SPARSE_FULL, SPARSE_FUSED, SPARSE_ROWS = -1, -2, 0


def hyper(spec, drop_key):
    """The Hyper of a spec, with the network's dropout key."""
    return Hyper(int(spec.loss_code), float(spec.loss_param), float(spec.l1), float(spec.l2),
                 float(spec.bn_momentum), float(spec.bn_eps), np.uint64(drop_key))


def opt(optimizer, spec, sparse=False):
    """The Opt of a bound optimizer training `spec` on sparse X or not: its own state arrays,
    which the kernels update in place."""
    m, v, t = optimizer.state_arrays()
    return Opt(int(optimizer.code), optimizer.hyper(), m, v, t, float(optimizer.clip_norm or 0.0),
               sparse_mode(optimizer, spec) if sparse else SPARSE_FULL)


def sparse_mode(optimizer, spec):
    """The SPARSE_* mode of `optimizer`'s steps on `spec` with sparse X."""
    if optimizer.code == OPT_SGD and not optimizer.clip_norm and spec.l1 == 0 and spec.l2 == 0:
        return SPARSE_FUSED
    return SPARSE_ROWS if optimizer.lazy else SPARSE_FULL
