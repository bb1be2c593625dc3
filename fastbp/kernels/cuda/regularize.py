"""Regularisation kernels on the GPU: dropout (the CPU's counter-based masks, bit for bit),
batch normalisation (one thread per unit, the batch reduced privately), l1/l2 penalties."""
import math

import numpy as np
from numba import cuda

from .common import grid1, keep_unit


def dropout_seed(key, step, layer):
    """As kernels/cpu/regularize.dropout_seed, on the host (once per layer and step)."""
    def mix(z):
        m = (1 << 64) - 1
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        return z ^ (z >> 31)
    m = (1 << 64) - 1
    return np.uint64(mix((mix((int(key) + int(step)) & m) + int(layer)) & m))


@cuda.jit
def _dropout(D, A, rate, seed, scale):
    k = cuda.grid(1)
    if k < A.size:
        i, j = k // A.shape[1], k % A.shape[1]
        D[i, j] = A[i, j] * scale if keep_unit(seed, k, rate) else A[i, j] * 0


def dropout_forward(D, A, rate, key, step, layer):
    """D = A * mask / (1 - rate); dropout_forward(dA, dA, ...) is its backward (in place)."""
    _dropout[grid1(A.size)](D, A, rate, dropout_seed(key, step, layer), A.dtype.type(1.0 / (1.0 - rate)))


@cuda.jit
def _bn_forward(Z, H, mean, inv_std, run_mean, run_var, gamma, beta, eps, momentum, update):
    j = cuda.grid(1)
    B, n = Z.shape
    if j >= n:
        return
    mu = Z.dtype.type(0)
    for i in range(B):
        mu += Z[i, j]
    mu /= B
    var = Z.dtype.type(0)
    for i in range(B):
        d = Z[i, j] - mu
        var += d * d
    var /= B
    s = 1 / math.sqrt(var + eps)
    mean[j] = mu
    inv_std[j] = s
    if update:
        unbias = B / (B - 1.0) if B > 1 else 1.0
        run_mean[j] = momentum * run_mean[j] + (1 - momentum) * mu
        run_var[j] = momentum * run_var[j] + (1 - momentum) * var * unbias
    for i in range(B):
        h = (Z[i, j] - mu) * s
        H[i, j] = h
        Z[i, j] = gamma[j] * h + beta[j]


def batchnorm_forward(Z, H, mean, inv_std, run_mean, run_var, gamma, beta, eps, momentum, update):
    _bn_forward[grid1(Z.shape[1])](Z, H, mean, inv_std, run_mean, run_var, gamma, beta, eps, momentum, update)


@cuda.jit
def _bn_inference(Z, gamma, beta, run_mean, run_var, eps):
    k = cuda.grid(1)
    if k < Z.size:
        i, j = k // Z.shape[1], k % Z.shape[1]
        Z[i, j] = gamma[j] * (Z[i, j] - run_mean[j]) / math.sqrt(run_var[j] + eps) + beta[j]


def batchnorm_inference(Z, gamma, beta, run_mean, run_var, eps):
    _bn_inference[grid1(Z.size)](Z, gamma, beta, run_mean, run_var, eps)


@cuda.jit
def _bn_backward(dZ, dgamma, dbeta, H, inv_std, gamma):
    j = cuda.grid(1)
    B, n = dZ.shape
    if j >= n:
        return
    sdy = dZ.dtype.type(0)
    sdyh = dZ.dtype.type(0)
    for i in range(B):
        sdy += dZ[i, j]
        sdyh += dZ[i, j] * H[i, j]
    dbeta[j] = sdy
    dgamma[j] = sdyh
    g = gamma[j] * inv_std[j] / B
    for i in range(B):
        dZ[i, j] = g * (B * dZ[i, j] - sdy - H[i, j] * sdyh)


def batchnorm_backward(dZ, dgamma, dbeta, H, inv_std, gamma):
    _bn_backward[grid1(dZ.shape[1])](dZ, dgamma, dbeta, H, inv_std, gamma)


@cuda.jit
def _penalty(out, grads, params, lo, hi, l1, l2, with_grads):
    """out[0] += l1 |w| + l2 w^2 over params[lo:hi] (atomic: one add per thread); grads get
    l1 sign(w) + 2 l2 w."""
    k = lo + cuda.grid(1)
    if k < hi:
        w = params[k]
        if with_grads:
            sign = 1 if w > 0 else (-1 if w < 0 else 0)
            grads[k] += l1 * sign + 2 * l2 * w
        cuda.atomic.add(out, 0, l1 * abs(w) + l2 * w * w)


def penalty(out, grads, params, ranges, l1, l2, with_grads):
    """out[0] (a float64 device scalar) += the l1/l2 penalty over every weight range."""
    for lo, hi in ranges:
        _penalty[grid1(int(hi - lo))](out, grads, params, int(lo), int(hi), l1, l2, with_grads)
