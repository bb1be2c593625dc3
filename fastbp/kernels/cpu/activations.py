"""Activation kernels: activation_forward (Z -> A) and activation_backward (dA -> dZ).

An element-wise activation is its code from fastbp.spec.ACTIVATIONS and a pair of scalar
functions, `<name>_forward(z, p)` and `<name>_backward(da, z, a, p)` (the derivative written
from the output a where cheaper), plus one line in each of the two tables below
(activate_rows, grad_rows), which map the code to a loop over rows that calls the pair (each line
first asks whether the code is compiled in: USED_ACTIVATIONS, a switch that variants narrow).
The code picks the loop once per call, outside the loops, so each loop is specialised to its
function and vectorised.
Maxout and softmax work on whole rows and have loops of their own; softmax has no standalone
backward (it is fused with cross-entropy in losses.loss_backward).

Each row of the batch is independent, so rows are the parallel axis: each thread a block of rows.
Constants are built from the argument's dtype so float32 math stays float32.
"""
import numpy as np
from numba import prange

from ..compile import THREADED, linked_kernel, serial, serial_kernel, switch
from ...spec import ACTIVATIONS
from .threads import thread_count, thread_share


MAXOUT, SOFTMAX = ACTIVATIONS["maxout"].code, ACTIVATIONS["softmax"].code   # whole rows

# The codes compiled in: a variant for a network narrows it to the network's own (compile.switch)
USED_ACTIVATIONS = switch("USED_ACTIVATIONS", tuple(sorted(a.code for a in ACTIVATIONS.values())))


# ---- the element-wise activations: each a code and a scalar pair ----

LINEAR = ACTIVATIONS["linear"].code


@serial
def linear_forward(z, p):
    return z


@serial
def linear_backward(da, z, a, p):
    return da


SIGMOID = ACTIVATIONS["sigmoid"].code


@serial
def sigmoid_forward(z, p):
    # 1 / (1 + e) for z >= 0, e / (1 + e) below, with e = exp(-|z|), which cannot overflow. One
    # exp and a select: branching on z's sign costs a misprediction on every other element.
    one = type(z)(1)
    e = np.exp(-abs(z))
    return (one if z >= type(z)(0) else e) / (one + e)


@serial
def sigmoid_backward(da, z, a, p):
    return da * a * (type(a)(1) - a)


TANH = ACTIVATIONS["tanh"].code


@serial
def tanh_forward(z, p):
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
def tanh_backward(da, z, a, p):
    return da * (type(a)(1) - a * a)


RELU = ACTIVATIONS["relu"].code


@serial
def relu_forward(z, p):
    zero = type(z)(0)
    return z if z > zero else zero


@serial
def relu_backward(da, z, a, p):
    zero = type(da)(0)
    return da if z > zero else zero


LEAKY_RELU = ACTIVATIONS["leaky_relu"].code


@serial
def leaky_relu_forward(z, p):
    return z if z > type(z)(0) else z * p


@serial
def leaky_relu_backward(da, z, a, p):
    return da if z > type(z)(0) else da * p


ELU = ACTIVATIONS["elu"].code


@serial
def elu_forward(z, p):
    return z if z > type(z)(0) else p * np.expm1(z)


@serial
def elu_backward(da, z, a, p):
    # for z <= 0, d/dz alpha (e^z - 1) = alpha e^z = a + alpha
    return da if z > type(z)(0) else da * (a + p)


EXP = ACTIVATIONS["exp"].code


@serial
def exp_forward(z, p):
    return np.exp(z)


@serial
def exp_backward(da, z, a, p):
    return da * a


# ---- loops over rows ----


@serial
def map_rows(A, Z, f, p, i0, i1):
    """A[i] = f(Z[i], p) element by element, rows i0 to i1."""
    for i in range(i0, i1):
        a, z = A[i], Z[i]
        for j in range(Z.shape[1]):
            a[j] = f(z[j], p)


@serial
def map_grad_rows(dZ, dA, Z, A, g, p, i0, i1):
    """dZ[i] = g(dA[i], Z[i], A[i], p) element by element, rows i0 to i1."""
    for i in range(i0, i1):
        dz, da, z, a = dZ[i], dA[i], Z[i], A[i]
        for j in range(Z.shape[1]):
            dz[j] = g(da[j], z[j], a[j], p)


@serial
def maxout_rows(A, Z, pieces, i0, i1):
    """A[i, u] = the largest of unit u's pieces (columns u*pieces ...)."""
    units = Z.shape[1] // pieces
    for i in range(i0, i1):
        for u in range(units):
            best = Z[i, u * pieces]
            for k in range(1, pieces):
                v = Z[i, u * pieces + k]
                if v > best:
                    best = v
            A[i, u] = best


@serial
def maxout_grad_rows(dZ, dA, Z, pieces, i0, i1):
    """dA flows to the winning piece of each unit only (the first, on ties, as in the reference)."""
    units = Z.shape[1] // pieces
    zero = Z.dtype.type(0)
    for i in range(i0, i1):
        for u in range(units):
            win = 0
            best = Z[i, u * pieces]
            for k in range(1, pieces):
                v = Z[i, u * pieces + k]
                if v > best:   # strict: the first piece wins ties
                    best = v
                    win = k
            for k in range(pieces):
                dZ[i, u * pieces + k] = dA[i, u] if k == win else zero


@serial
def softmax_rows(A, Z, i0, i1):
    zero, one = Z.dtype.type(0), Z.dtype.type(1)
    nz = Z.shape[1]
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


# ---- the tables: an activation's code -> its loop ----


@serial
def activate_rows(A, Z, code, param, i0, i1):
    """Rows i0 to i1 of A (B, units) = f(Z (B, units * pieces)); param: slope, alpha or
    pieces."""
    p = Z.dtype.type(param)
    if LINEAR in USED_ACTIVATIONS and code == LINEAR:
        map_rows(A, Z, linear_forward, p, i0, i1)
    elif SIGMOID in USED_ACTIVATIONS and code == SIGMOID:
        map_rows(A, Z, sigmoid_forward, p, i0, i1)
    elif TANH in USED_ACTIVATIONS and code == TANH:
        map_rows(A, Z, tanh_forward, p, i0, i1)
    elif RELU in USED_ACTIVATIONS and code == RELU:
        map_rows(A, Z, relu_forward, p, i0, i1)
    elif LEAKY_RELU in USED_ACTIVATIONS and code == LEAKY_RELU:
        map_rows(A, Z, leaky_relu_forward, p, i0, i1)
    elif ELU in USED_ACTIVATIONS and code == ELU:
        map_rows(A, Z, elu_forward, p, i0, i1)
    elif EXP in USED_ACTIVATIONS and code == EXP:
        map_rows(A, Z, exp_forward, p, i0, i1)
    elif MAXOUT in USED_ACTIVATIONS and code == MAXOUT:
        maxout_rows(A, Z, int(param), i0, i1)
    elif SOFTMAX in USED_ACTIVATIONS and code == SOFTMAX:
        softmax_rows(A, Z, i0, i1)


@serial
def grad_rows(dZ, dA, Z, A, code, param, i0, i1):
    """Rows i0 to i1 of dZ (B, units * pieces) from dA (B, units)."""
    p = Z.dtype.type(param)
    if LINEAR in USED_ACTIVATIONS and code == LINEAR:
        map_grad_rows(dZ, dA, Z, A, linear_backward, p, i0, i1)
    elif SIGMOID in USED_ACTIVATIONS and code == SIGMOID:
        map_grad_rows(dZ, dA, Z, A, sigmoid_backward, p, i0, i1)
    elif TANH in USED_ACTIVATIONS and code == TANH:
        map_grad_rows(dZ, dA, Z, A, tanh_backward, p, i0, i1)
    elif RELU in USED_ACTIVATIONS and code == RELU:
        map_grad_rows(dZ, dA, Z, A, relu_backward, p, i0, i1)
    elif LEAKY_RELU in USED_ACTIVATIONS and code == LEAKY_RELU:
        map_grad_rows(dZ, dA, Z, A, leaky_relu_backward, p, i0, i1)
    elif ELU in USED_ACTIVATIONS and code == ELU:
        map_grad_rows(dZ, dA, Z, A, elu_backward, p, i0, i1)
    elif EXP in USED_ACTIVATIONS and code == EXP:
        map_grad_rows(dZ, dA, Z, A, exp_backward, p, i0, i1)
    elif MAXOUT in USED_ACTIVATIONS and code == MAXOUT:
        maxout_grad_rows(dZ, dA, Z, int(param), i0, i1)


# ---- the kernels ----


@linked_kernel
def activation_forward(A, Z, code, param):
    """A (B, units) = f(Z (B, units * pieces)), each thread a block of rows."""
    B = Z.shape[0]
    if not THREADED:   # the twin, linked into small networks' steps: its own inline copy
        activate_rows(A, Z, code, param, 0, B)
        return
    threads = thread_count()
    for k in prange(threads):
        i0, i1 = thread_share(B, k, threads)
        _activate_part(A, Z, code, param, i0, i1)


@serial_kernel
def _activate_part(A, Z, code, param, i0, i1):
    activate_rows(A, Z, code, param, i0, i1)


@linked_kernel
def activation_backward(dZ, dA, Z, A, code, param):
    """dZ (B, units * pieces) from dA (B, units), each thread a block of rows."""
    B = Z.shape[0]
    if not THREADED:   # the twin, linked into small networks' steps: its own inline copy
        grad_rows(dZ, dA, Z, A, code, param, 0, B)
        return
    threads = thread_count()
    for k in prange(threads):
        i0, i1 = thread_share(B, k, threads)
        _grad_part(dZ, dA, Z, A, code, param, i0, i1)


@serial_kernel
def _grad_part(dZ, dA, Z, A, code, param, i0, i1):
    grad_rows(dZ, dA, Z, A, code, param, i0, i1)
