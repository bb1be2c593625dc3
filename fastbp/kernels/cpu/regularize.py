"""Regularisation kernels, in forward/backward pairs: dropout, batch normalisation, l1/l2.

Dropout masks come from a counter-based hash of (key, step, layer, row, unit), not from a
stateful generator: any thread can draw any unit's mask, the backward pass redraws the forward's
mask instead of storing it, and reference.py draws the very same masks.
Batch normalisation parallelises over blocks of columns (units): each thread owns whole columns,
so the reductions over the batch are private to a thread.
"""
import numpy as np
from numba import prange

from ... import config
from ..compile import THREADED, kernel, serial, serial_kernel
from .reduce import weighted_sum
from .threads import thread_count, thread_share

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)


@serial
def mix64(z):
    """splitmix64's finaliser: a bijection of uint64 whose output bits look independent."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@serial
def dropout_seed(key, step, layer):
    return mix64(mix64(key + np.uint64(step)) + np.uint64(layer))


@serial
def keep_threshold(rate):
    """A unit is kept, with probability 1 - rate, when the top 24 bits of its hash, as a
    uniform in [0, 1), are >= rate (reference.py's test): in integers, when those bits are
    >= ceil(rate 2^24), which is the same test (rate 2^24 is exact in float64) without the
    conversion to float, which kept the mask loop from vectorising."""
    return np.uint64(np.ceil(rate * 16777216.0))


@kernel
def dropout_forward(D, A, rate, key, step, layer):
    """D = A * mask / (1 - rate), the mask drawn from (key, step, layer, row, unit) and
    tested against keep_threshold.

    Its backward multiplies the gradient by the same mask: dropout_forward(dA, dA, ...) in place
    (each element is read before it is written, by the same thread)."""
    B, n = A.shape
    seed = dropout_seed(key, step, layer)
    threshold = keep_threshold(rate)
    scale = A.dtype.type(1.0 / (1.0 - rate))
    zero = A.dtype.type(0)
    for i in prange(B):
        row_seed = seed + np.uint64(i * n)
        for j in range(n):
            keep = (mix64(row_seed + np.uint64(j)) >> _S40) >= threshold
            D[i, j] = A[i, j] * scale if keep else zero


@kernel
def batchnorm_forward(Z, H, mean, inv_std, run_mean, run_var, gamma, beta, eps, momentum, update):
    """Training mode, in place: Z <- gamma * H + beta with H = (Z - mean) / sqrt(var + eps),
    mean and (biased) var over the batch; mean and inv_std are kept for the backward pass.
    update: running = momentum * running + (1 - momentum) * batch value, the variance unbiased
    by B / (B - 1).

    Parallel over blocks of columns. Within a block the batch's rows are added one at a time
    into the block's sums (mean and inv_std hold them until they are done), so each pass runs
    along contiguous rows, vectorised; a column at a time ran down the rows one element apart."""
    blocks = (Z.shape[1] + config.COLUMN_BLOCK - 1) // config.COLUMN_BLOCK
    if not THREADED:   # the twin, for small networks' steps: inline, where a call measured slower
        _bn_forward_of(Z, H, mean, inv_std, run_mean, run_var, gamma, beta, eps, momentum, update, 0, blocks)
        return
    threads = min(thread_count(), blocks)
    for k in prange(threads):
        jb0, jb1 = thread_share(blocks, k, threads)
        _bn_forward_part(Z, H, mean, inv_std, run_mean, run_var, gamma, beta, eps, momentum, update, jb0, jb1)


@serial_kernel
def _bn_forward_part(Z, H, mean, inv_std, run_mean, run_var, gamma, beta, eps, momentum, update, jb0, jb1):
    _bn_forward_of(Z, H, mean, inv_std, run_mean, run_var, gamma, beta, eps, momentum, update, jb0, jb1)


@serial
def _bn_forward_of(Z, H, mean, inv_std, run_mean, run_var, gamma, beta, eps, momentum, update, jb0, jb1):
    """batchnorm_forward's column blocks jb0 to jb1."""
    B, n = Z.shape
    zero, one = Z.dtype.type(0), Z.dtype.type(1)
    e = Z.dtype.type(eps)
    inv_b = Z.dtype.type(1.0 / B)
    m = Z.dtype.type(momentum)
    unbias = Z.dtype.type(B / (B - 1.0) if B > 1 else 1.0)
    block = config.COLUMN_BLOCK   # columns per thread's block: a pass over the rows is one vector loop
    for jb in range(jb0, jb1):
        j0, j1 = jb * block, min(n, jb * block + block)
        w = j1 - j0
        mu, s = mean[j0:j1], inv_std[j0:j1]
        g, bt, rm, rv = gamma[j0:j1], beta[j0:j1], run_mean[j0:j1], run_var[j0:j1]
        for j in range(w):
            mu[j] = zero
            s[j] = zero
        for i in range(B):
            z = Z[i, j0:j1]
            for j in range(w):
                mu[j] += z[j]
        for j in range(w):
            mu[j] *= inv_b
        for i in range(B):          # the variance about the mean, in s until it is done
            z = Z[i, j0:j1]
            for j in range(w):
                d = z[j] - mu[j]
                s[j] += d * d
        for j in range(w):
            var = s[j] * inv_b
            if update:
                rm[j] = m * rm[j] + (one - m) * mu[j]
                rv[j] = m * rv[j] + (one - m) * var * unbias
            s[j] = one / np.sqrt(var + e)
        for i in range(B):
            z, h = Z[i, j0:j1], H[i, j0:j1]
            for j in range(w):
                hj = (z[j] - mu[j]) * s[j]
                h[j] = hj
                z[j] = g[j] * hj + bt[j]


@kernel
def batchnorm_inference(Z, gamma, beta, run_mean, run_var, eps):
    """Inference mode, in place: Z <- gamma * (Z - running mean) / sqrt(running var + eps) + beta."""
    B, n = Z.shape
    one = Z.dtype.type(1)
    e = Z.dtype.type(eps)
    for i in prange(B):
        for j in range(n):
            Z[i, j] = gamma[j] * (Z[i, j] - run_mean[j]) * (one / np.sqrt(run_var[j] + e)) + beta[j]


@kernel
def batchnorm_backward(dZ, dgamma, dbeta, H, inv_std, gamma):
    """In place: dZ (gradient at the normalised output) becomes the gradient at the dense output.

    dbeta = sum dY, dgamma = sum dY h, dZ = inv_std / B * (B dH - sum dH - h sum dH h), dH = gamma dY.
    Parallel over blocks of columns, a row at a time within each, as batchnorm_forward.
    """
    blocks = (dZ.shape[1] + config.COLUMN_BLOCK - 1) // config.COLUMN_BLOCK
    if not THREADED:   # the twin: inline, as batchnorm_forward's
        _bn_backward_of(dZ, dgamma, dbeta, H, inv_std, gamma, 0, blocks)
        return
    threads = min(thread_count(), blocks)
    for k in prange(threads):
        jb0, jb1 = thread_share(blocks, k, threads)
        _bn_backward_part(dZ, dgamma, dbeta, H, inv_std, gamma, jb0, jb1)


@serial_kernel
def _bn_backward_part(dZ, dgamma, dbeta, H, inv_std, gamma, jb0, jb1):
    _bn_backward_of(dZ, dgamma, dbeta, H, inv_std, gamma, jb0, jb1)


@serial
def _bn_backward_of(dZ, dgamma, dbeta, H, inv_std, gamma, jb0, jb1):
    """batchnorm_backward's column blocks jb0 to jb1."""
    B, n = dZ.shape
    zero = dZ.dtype.type(0)
    fb = dZ.dtype.type(B)
    inv_b = dZ.dtype.type(1.0 / B)
    block = config.COLUMN_BLOCK
    for jb in range(jb0, jb1):
        j0, j1 = jb * block, min(n, jb * block + block)
        w = j1 - j0
        sdy, sdyh = dbeta[j0:j1], dgamma[j0:j1]
        for j in range(w):
            sdy[j] = zero
            sdyh[j] = zero
        for i in range(B):
            dz, h = dZ[i, j0:j1], H[i, j0:j1]
            for j in range(w):
                sdy[j] += dz[j]
                sdyh[j] += dz[j] * h[j]
        gs, s = gamma[j0:j1], inv_std[j0:j1]
        for i in range(B):
            dz, h = dZ[i, j0:j1], H[i, j0:j1]
            for j in range(w):
                dz[j] = gs[j] * s[j] * inv_b * (fb * dz[j] - sdy[j] - h[j] * sdyh[j])


@serial
def penalty_value(params, ranges, l1, l2, partials):
    """l1 * sum |W| + l2 * sum W^2 over every weight matrix (biases are not penalised)."""
    total = 0.0
    for r in range(ranges.shape[0]):
        total += weighted_sum(params, ranges[r, 0], ranges[r, 1], l1, l2, partials)
    return total


@kernel
def penalty_backward(grads, params, ranges, l1, l2):
    """grads += l1 sign(W) + 2 l2 W on every weight matrix."""
    a = params.dtype.type(l1)
    b = params.dtype.type(2 * l2)
    zero = params.dtype.type(0)
    for r in range(ranges.shape[0]):
        for k in prange(ranges[r, 0], ranges[r, 1]):
            w = params[k]
            if w > zero:
                grads[k] += a + b * w
            elif w < zero:
                grads[k] += b * w - a
            else:
                grads[k] += b * w
