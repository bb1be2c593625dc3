"""Optimizer kernels on the GPU: one thread per parameter, every optimizer (codes and
hyper-parameter slots from fastbp.optim), and the gradient norm for clipping."""
import math

import numpy as np
from numba import cuda

from ...optim import (H_BETA1, H_BETA2, H_DECAY, H_EPS, H_MOMENTUM, OPT_ADAM as ADAM,
                      OPT_ADAMW as ADAMW, OPT_MOMENTUM as MOMENTUM, OPT_NESTEROV as NESTEROV)
from .common import fill, grid1


@cuda.jit
def _sum_squares(out, x):
    k = cuda.grid(1)
    if k < x.size:
        cuda.atomic.add(out, 0, x[k] * x[k] * 1.0)


def grad_norm(out, grads):
    """out[0] = sum of squared gradients (a float64 device scalar, zeroed here)."""
    fill[1, 1](out, 0.0)
    _sum_squares[grid1(grads.size)](out, grads)


@cuda.jit
def _clip(x, sumsq, clip):
    k = cuda.grid(1)
    norm = math.sqrt(sumsq[0])
    if k < x.size and norm > clip:
        x[k] *= clip / norm


def scale(x, sumsq, clip):
    """x *= clip / norm when the norm (sqrt of sumsq[0]) exceeds clip; decided on the device."""
    _clip[grid1(x.size)](x, sumsq, clip)


@cuda.jit
def _update(params, grads, m, v, code, lr, hyper, t, w0, w1, nz, mask):
    i = cuda.grid(1)
    if i >= params.size:
        return
    if w0 <= i < w1 and mask[(i - w0) // nz] == 0:
        return   # a lazy step: a row of the first W that the sparse batch did not use
    g = grads[i]
    if code == MOMENTUM or code == NESTEROV:
        mu = hyper[H_MOMENTUM]
        vel = mu * m[i] - lr * g
        m[i] = vel
        params[i] += (mu * vel - lr * g) if code == NESTEROV else vel
    elif code == ADAM or code == ADAMW:
        b1, b2 = hyper[H_BETA1], hyper[H_BETA2]
        c1 = 1.0 - b1 ** t
        c2 = math.sqrt(1.0 - b2 ** t)
        if code == ADAM:
            g += hyper[H_DECAY] * params[i]
        mi = b1 * m[i] + (1 - b1) * g
        vi = b2 * v[i] + (1 - b2) * g * g
        m[i] = mi
        v[i] = vi
        if code == ADAMW:
            params[i] -= lr * hyper[H_DECAY] * params[i]
        params[i] -= (lr * c2 / c1) * mi / (math.sqrt(vi) + hyper[H_EPS] * c2)
    else:
        params[i] -= lr * g


_NO_MASK = []


def optimizer_update(params, grads, m, v, code, lr, hyper, t, lazy=None):
    """One step at learning rate lr; t is the step number (from 1). lazy = (w0, w1, nz, mask):
    of the weights params[w0:w1] (rows of nz) only the rows whose mask is set change."""
    if lazy is None:
        if not _NO_MASK:
            _NO_MASK.append(cuda.to_device(np.zeros(1, np.uint8)))
        lazy = (0, 0, 1, _NO_MASK[0])
    _update[grid1(params.size)](params, grads, m, v, code, lr, hyper, t, *lazy)
