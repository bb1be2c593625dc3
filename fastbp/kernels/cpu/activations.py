"""Activation kernels: activation_forward (Z -> A) and activation_backward (dA -> dZ).

One kernel per direction; `code` (from fastbp.spec.ACTIVATIONS) picks the branch once per call,
outside the loops. Each row of the batch is independent, so rows are the parallel axis.
Constants are built from the array's dtype so float32 math stays float32.
"""
import numpy as np
from numba import prange

from ..compile import kernel, serial
from ...spec import ACTIVATIONS
from .threads import thread_count

LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, MAXOUT, SOFTMAX = (
    ACTIVATIONS[n][0] for n in ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout", "softmax"))


@serial
def fast_tanh(z):
    """tanh from one exp, which is cheaper than libm's tanh (both are scalar calls).
    (1 - e) / (1 + e) with e = exp(-2|z|) loses digits to cancellation for small |z|, where a
    short odd series is exact to rounding (relative error below 1e-14 for |z| < 1/16)."""
    f = type(z)
    a = abs(z)
    if a < f(0.0625):
        z2 = z * z
        return z * (f(1) - z2 * (f(1 / 3) - z2 * (f(2 / 15) - z2 * (f(17 / 315) - z2 * f(62 / 2835)))))
    e = np.exp(f(-2) * a)
    t = (f(1) - e) / (f(1) + e)
    return t if z >= f(0) else -t


@serial
def activate_rows(A, Z, code, param, i0, i1):
    """Rows i0 to i1 of A (B, units) = f(Z (B, units * pieces)); param: slope, alpha or
    pieces."""
    nz = Z.shape[1]
    zero, one = Z.dtype.type(0), Z.dtype.type(1)
    p = Z.dtype.type(param)
    if code == LINEAR:
        for i in range(i0, i1):
            for j in range(nz):
                A[i, j] = Z[i, j]
    elif code == SIGMOID:
        for i in range(i0, i1):
            for j in range(nz):
                # exp of a non-positive argument cannot overflow
                z = Z[i, j]
                if z >= zero:
                    A[i, j] = one / (one + np.exp(-z))
                else:
                    e = np.exp(z)
                    A[i, j] = e / (one + e)
    elif code == TANH:
        for i in range(i0, i1):
            for j in range(nz):
                A[i, j] = fast_tanh(Z[i, j])
    elif code == RELU:
        for i in range(i0, i1):
            for j in range(nz):
                z = Z[i, j]
                A[i, j] = z if z > zero else zero
    elif code == LEAKY_RELU:
        for i in range(i0, i1):
            for j in range(nz):
                z = Z[i, j]
                A[i, j] = z if z > zero else z * p
    elif code == ELU:
        for i in range(i0, i1):
            for j in range(nz):
                z = Z[i, j]
                A[i, j] = z if z > zero else p * np.expm1(z)
    elif code == MAXOUT:
        pieces = int(param)
        units = nz // pieces
        for i in range(i0, i1):
            for u in range(units):
                best = Z[i, u * pieces]
                for k in range(1, pieces):
                    v = Z[i, u * pieces + k]
                    if v > best:
                        best = v
                A[i, u] = best
    elif code == SOFTMAX:
        for i in range(i0, i1):
            m = Z[i, 0]
            for j in range(1, nz):
                m = max(m, Z[i, j])
            s = zero
            for j in range(nz):
                e = np.exp(Z[i, j] - m)
                A[i, j] = e
                s += e
            inv = one / s
            for j in range(nz):
                A[i, j] *= inv


@kernel
def activation_forward(A, Z, code, param):
    """A (B, units) = f(Z (B, units * pieces)), each thread a block of rows."""
    B = Z.shape[0]
    threads = thread_count()
    for k in prange(threads):
        activate_rows(A, Z, code, param, B * k // threads, B * (k + 1) // threads)


@kernel
def activation_backward(dZ, dA, Z, A, code, param):
    """dZ (B, units * pieces) from dA (B, units); derivatives use the output A where cheaper."""
    B, nz = Z.shape
    zero, one = Z.dtype.type(0), Z.dtype.type(1)
    p = Z.dtype.type(param)
    if code == LINEAR:
        for i in prange(B):
            for j in range(nz):
                dZ[i, j] = dA[i, j]
    elif code == SIGMOID:
        for i in prange(B):
            for j in range(nz):
                a = A[i, j]
                dZ[i, j] = dA[i, j] * a * (one - a)
    elif code == TANH:
        for i in prange(B):
            for j in range(nz):
                a = A[i, j]
                dZ[i, j] = dA[i, j] * (one - a * a)
    elif code == RELU:
        for i in prange(B):
            for j in range(nz):
                dZ[i, j] = dA[i, j] if Z[i, j] > zero else zero
    elif code == LEAKY_RELU:
        for i in prange(B):
            for j in range(nz):
                dZ[i, j] = dA[i, j] if Z[i, j] > zero else dA[i, j] * p
    elif code == ELU:
        for i in prange(B):
            for j in range(nz):
                # for z <= 0, d/dz alpha (e^z - 1) = alpha e^z = a + alpha
                dZ[i, j] = dA[i, j] if Z[i, j] > zero else dA[i, j] * (A[i, j] + p)
    elif code == MAXOUT:
        pieces = int(param)
        units = nz // pieces
        for i in prange(B):
            for u in range(units):
                win = 0
                best = Z[i, u * pieces]
                for k in range(1, pieces):
                    v = Z[i, u * pieces + k]
                    if v > best:   # strict: the first piece wins ties, as in the reference
                        best = v
                        win = k
                for k in range(pieces):
                    dZ[i, u * pieces + k] = dA[i, u] if k == win else zero
    # SOFTMAX has no standalone backward: it is fused with cross-entropy in losses.loss_backward
