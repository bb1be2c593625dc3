"""Optimizer kernels: one loop over the flat parameter vector, for every optimizer.

Codes and hyper-parameter slots come from fastbp.optim (OPTIMIZERS, H_*); the state vectors m
and v belong to the optimizer object and are only updated here.
"""
import numpy as np
from numba import prange

from ...config import kernel, serial
from ...optim import (H_BETA1, H_BETA2, H_DECAY, H_EPS, H_MOMENTUM, OPT_ADAM as ADAM,
                      OPT_ADAMW as ADAMW, OPT_MOMENTUM as MOMENTUM, OPT_NESTEROV as NESTEROV)
from .reduce import weighted_sum


@serial
def grad_norm(grads, partials):
    """The global L2 norm of the gradient (partials: scratch for the chunked sum)."""
    return np.sqrt(weighted_sum(grads, 0, grads.shape[0], 0.0, 1.0, partials))


@kernel
def scale(x, factor):
    f = x.dtype.type(factor)
    for i in prange(x.shape[0]):
        x[i] *= f


@kernel
def optimizer_update(params, grads, m, v, code, lr, hyper, t):
    """One step of optimizer `code` at learning rate lr; t is the step number (from 1).

    sgd:      p -= lr g
    momentum: m = mu m - lr g;  p += m
    nesterov: m = mu m - lr g;  p += mu m - lr g
    adam:     g += decay p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
              p -= lr_t m / (sqrt(v) + eps_t)   with bias corrections folded into lr_t, eps_t
    adamw:    adam without decay in g, then p -= lr decay p (decoupled weight decay)
    """
    dt = params.dtype.type
    step = dt(lr)
    if code == MOMENTUM or code == NESTEROV:
        mu = dt(hyper[H_MOMENTUM])
        for i in prange(params.shape[0]):
            vel = mu * m[i] - step * grads[i]
            m[i] = vel
            if code == NESTEROV:
                params[i] += mu * vel - step * grads[i]
            else:
                params[i] += vel
    elif code == ADAM or code == ADAMW:
        b1, b2 = hyper[H_BETA1], hyper[H_BETA2]
        c1 = 1.0 - b1 ** t
        c2 = np.sqrt(1.0 - b2 ** t)
        # lr m_hat / (sqrt(v_hat) + eps) == (lr c2 / c1) m / (sqrt(v) + eps c2)
        lr_t, eps_t = dt(lr * c2 / c1), dt(hyper[H_EPS] * c2)
        db1, db2 = dt(b1), dt(b2)
        one = dt(1)
        decay = dt(hyper[H_DECAY])
        wd = dt(lr * hyper[H_DECAY])
        for i in prange(params.shape[0]):
            g = grads[i]
            if code == ADAM:
                g += decay * params[i]
            mi = db1 * m[i] + (one - db1) * g
            vi = db2 * v[i] + (one - db2) * g * g
            m[i] = mi
            v[i] = vi
            if code == ADAMW:
                params[i] -= wd * params[i]
            params[i] -= lr_t * mi / (np.sqrt(vi) + eps_t)
    else:  # SGD
        for i in prange(params.shape[0]):
            params[i] -= step * grads[i]
