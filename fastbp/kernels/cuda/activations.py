"""Activation kernels on the GPU: activation_forward (Z -> A), activation_backward (dA -> dZ).

Element-wise activations run one thread per element through the device functions act_value and
act_grad (which the GEMM's epilogue also calls); maxout and softmax run one thread per row.
"""
import math

from numba import cuda

from ...spec import ACTIVATIONS
from .common import grid1, stable_sigmoid


MAXOUT, SOFTMAX = ACTIVATIONS["maxout"].code, ACTIVATIONS["softmax"].code   # whole rows


def fusable(code):
    """Element-wise activations, which the dense kernel's epilogue can apply."""
    return code not in (MAXOUT, SOFTMAX)


# ---- the element-wise activations: the cpu kernels' codes and scalar pairs, as device functions ----

LINEAR = ACTIVATIONS["linear"].code


@cuda.jit(device=True, inline=True)
def linear_forward(z, p):
    return z


@cuda.jit(device=True, inline=True)
def linear_backward(da, z, a, p):
    return da


SIGMOID = ACTIVATIONS["sigmoid"].code


@cuda.jit(device=True, inline=True)
def sigmoid_forward(z, p):
    return stable_sigmoid(z)


@cuda.jit(device=True, inline=True)
def sigmoid_backward(da, z, a, p):
    return da * a * (1 - a)


TANH = ACTIVATIONS["tanh"].code


@cuda.jit(device=True, inline=True)
def tanh_forward(z, p):
    return math.tanh(z)


@cuda.jit(device=True, inline=True)
def tanh_backward(da, z, a, p):
    return da * (1 - a * a)


RELU = ACTIVATIONS["relu"].code


@cuda.jit(device=True, inline=True)
def relu_forward(z, p):
    return z if z > 0 else z * 0


@cuda.jit(device=True, inline=True)
def relu_backward(da, z, a, p):
    return da if z > 0 else da * 0


LEAKY_RELU = ACTIVATIONS["leaky_relu"].code


@cuda.jit(device=True, inline=True)
def leaky_relu_forward(z, p):
    return z if z > 0 else z * p


@cuda.jit(device=True, inline=True)
def leaky_relu_backward(da, z, a, p):
    return da if z > 0 else da * p


ELU = ACTIVATIONS["elu"].code


@cuda.jit(device=True, inline=True)
def elu_forward(z, p):
    return z if z > 0 else p * math.expm1(z)


@cuda.jit(device=True, inline=True)
def elu_backward(da, z, a, p):
    return da if z > 0 else da * (a + p)   # alpha e^z = a + alpha for z <= 0


EXP = ACTIVATIONS["exp"].code


@cuda.jit(device=True, inline=True)
def exp_forward(z, p):
    return math.exp(z)


@cuda.jit(device=True, inline=True)
def exp_backward(da, z, a, p):
    return da * a


# ---- the tables: an activation's code -> its pair (one thread per element, so a branch per
# element costs little: every thread of a launch takes the same one) ----


@cuda.jit(device=True, inline=True)
def act_value(z, code, p):
    if code == SIGMOID:
        return sigmoid_forward(z, p)
    if code == TANH:
        return tanh_forward(z, p)
    if code == RELU:
        return relu_forward(z, p)
    if code == LEAKY_RELU:
        return leaky_relu_forward(z, p)
    if code == ELU:
        return elu_forward(z, p)
    if code == EXP:
        return exp_forward(z, p)
    return linear_forward(z, p)


@cuda.jit(device=True, inline=True)
def act_grad(da, z, a, code, p):
    """dL/dz from dL/da, using the output a where cheaper."""
    if code == SIGMOID:
        return sigmoid_backward(da, z, a, p)
    if code == TANH:
        return tanh_backward(da, z, a, p)
    if code == RELU:
        return relu_backward(da, z, a, p)
    if code == LEAKY_RELU:
        return leaky_relu_backward(da, z, a, p)
    if code == ELU:
        return elu_backward(da, z, a, p)
    if code == EXP:
        return exp_backward(da, z, a, p)
    return linear_backward(da, z, a, p)


@cuda.jit
def _elementwise_forward(A, Z, code, p):
    k = cuda.grid(1)
    if k < Z.size:
        i, j = k // Z.shape[1], k % Z.shape[1]
        A[i, j] = act_value(Z[i, j], code, Z.dtype.type(p))


@cuda.jit
def _rowwise_forward(A, Z, code, pieces):
    i = cuda.grid(1)
    if i >= Z.shape[0]:
        return
    if code == SOFTMAX:
        m = Z[i, 0]
        for j in range(1, Z.shape[1]):
            m = max(m, Z[i, j])
        s = Z.dtype.type(0)
        for j in range(Z.shape[1]):
            e = math.exp(Z[i, j] - m)
            A[i, j] = e
            s += e
        for j in range(Z.shape[1]):
            A[i, j] /= s
    else:   # maxout: columns grouped per unit
        for u in range(A.shape[1]):
            best = Z[i, u * pieces]
            for k in range(1, pieces):
                best = max(best, Z[i, u * pieces + k])
            A[i, u] = best


@cuda.jit
def _elementwise_backward(dZ, dA, Z, A, code, p):
    k = cuda.grid(1)
    if k < Z.size:
        i, j = k // Z.shape[1], k % Z.shape[1]
        dZ[i, j] = act_grad(dA[i, j], Z[i, j], A[i, j], code, Z.dtype.type(p))


@cuda.jit
def _maxout_backward(dZ, dA, Z, pieces):
    i = cuda.grid(1)
    if i >= Z.shape[0]:
        return
    for u in range(dA.shape[1]):
        win = 0
        best = Z[i, u * pieces]
        for k in range(1, pieces):
            if Z[i, u * pieces + k] > best:   # strict: the first piece wins ties
                best = Z[i, u * pieces + k]
                win = k
        for k in range(pieces):
            dZ[i, u * pieces + k] = dA[i, u] if k == win else dA[i, u] * 0


def activation_forward(A, Z, code, param):
    if fusable(code):
        _elementwise_forward[grid1(Z.size)](A, Z, code, param)
    else:
        _rowwise_forward[grid1(Z.shape[0])](A, Z, code, int(param))


def activation_backward(dZ, dA, Z, A, code, param):
    """Softmax has none: it is fused with cross-entropy in losses.loss_backward."""
    if code == MAXOUT:
        _maxout_backward[grid1(Z.shape[0])](dZ, dA, Z, int(param))
    else:
        _elementwise_backward[grid1(Z.size)](dZ, dA, Z, A, code, param)
