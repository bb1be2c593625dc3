"""Optimizer kernels: one loop over the flat parameter vector, for every optimizer.

Codes and hyper-parameter slots come from fastbp.optim (OPTIMIZERS, H_*); the state vectors m
and v belong to the optimizer object and are only updated here.
"""
import numpy as np
from numba import prange

from ..compile import kernel, serial, switch
from ...optim import (H_BETA1, H_BETA2, H_DECAY, H_EPS, H_MOMENTUM, OPT_ADAM as ADAM,
                      OPT_ADAMW as ADAMW, OPT_MOMENTUM as MOMENTUM, OPT_NESTEROV as NESTEROV,
                      OPT_SGD as SGD)
from .threads import even_part, thread_count
from .reduce import weighted_sum

# The optimizer codes compiled in: a training variant narrows it to the fit's own
# (compile.switch); plain SGD is the fallback branch and always compiled
USED_OPTIMIZERS = switch("USED_OPTIMIZERS", tuple(sorted((SGD, MOMENTUM, NESTEROV, ADAM, ADAMW))))


@serial
def grad_norm(grads, partials):
    """The global L2 norm of the gradient (partials: scratch for the chunked sum)."""
    return np.sqrt(weighted_sum(grads, np.int64(0), grads.shape[0], 0.0, 1.0, partials))


@kernel
def scale(x, factor):
    f = x.dtype.type(factor)
    for i in prange(x.shape[0]):
        x[i] *= f


@serial
def coefficients(code, lr, hyper, t, dt):
    """The scalars of one step of optimizer `code` at learning rate lr and step t (from 1), in the
    parameters' type dt: (lr, momentum, lr_t, eps_t, beta1, beta2, decay, lr * decay), where
    Adam's bias corrections are folded into lr_t and eps_t:
    lr m_hat / (sqrt(v_hat) + eps) == (lr c2 / c1) m / (sqrt(v) + eps c2)."""
    b1, b2 = hyper[H_BETA1], hyper[H_BETA2]
    c1, c2 = 1.0, 1.0
    if code == ADAM or code == ADAMW:
        c1 = 1.0 - b1 ** t
        c2 = np.sqrt(1.0 - b2 ** t)
    return (dt(lr), dt(hyper[H_MOMENTUM]), dt(lr * c2 / c1), dt(hyper[H_EPS] * c2), dt(b1), dt(b2),
            dt(hyper[H_DECAY]), dt(lr * hyper[H_DECAY]))


@serial
def update_range(params, grads, m, v, code, coef, i0, i1):
    """One step of optimizer `code` (coef from `coefficients`) on params[i0:i1], through slices
    indexed from 0, which LLVM vectorises.

    sgd:      p -= lr g
    momentum: m = mu m - lr g;  p += m
    nesterov: m = mu m - lr g;  p += mu m - lr g
    adam:     g += decay p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
              p -= lr_t m / (sqrt(v) + eps_t)
    adamw:    adam without decay in g, then p -= lr decay p (decoupled weight decay)
    """
    step, mu, lr_t, eps_t, b1, b2, decay, wd = coef
    one = params.dtype.type(1)
    n = i1 - i0
    p, g = params[i0:i1], grads[i0:i1]
    if MOMENTUM in USED_OPTIMIZERS and code == MOMENTUM or NESTEROV in USED_OPTIMIZERS and code == NESTEROV:
        mm = m[i0:i1]
        for i in range(n):
            vel = mu * mm[i] - step * g[i]
            mm[i] = vel
            if code == NESTEROV:
                p[i] += mu * vel - step * g[i]
            else:
                p[i] += vel
    elif ADAM in USED_OPTIMIZERS and code == ADAM or ADAMW in USED_OPTIMIZERS and code == ADAMW:
        mm, vv = m[i0:i1], v[i0:i1]
        for i in range(n):
            gi = g[i]
            if code == ADAM:
                gi += decay * p[i]
            mi = b1 * mm[i] + (one - b1) * gi
            vi = b2 * vv[i] + (one - b2) * gi * gi
            mm[i] = mi
            vv[i] = vi
            if code == ADAMW:
                p[i] -= wd * p[i]
            p[i] -= lr_t * mi / (np.sqrt(vi) + eps_t)
    else:  # SGD
        for i in range(n):
            p[i] -= step * g[i]


@kernel
def optimizer_update(params, grads, m, v, code, lr, hyper, t):
    """One step of optimizer `code` at learning rate lr (t: the step number, from 1): update_range over the whole parameter vector, one part per thread. (The training step's
    update goes by owner instead: driver.update_by_owner.)"""
    coef = coefficients(code, lr, hyper, t, params.dtype.type)
    parts = thread_count()
    for k in prange(parts):
        i0, i1 = even_part(params.shape[0], k, parts)
        update_range(params, grads, m, v, code, coef, i0, i1)
