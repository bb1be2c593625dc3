"""Loss kernels on the GPU: loss_rows (each sample's loss), batch_loss, loss_backward.

Same conventions as kernels/cpu/losses.py: cross-entropies from the pre-activation (finite for
any Z), sample weights scale each row, the batch mean divides by the batch size. The batch loss
stays on the device (a one-element array) so that RMSE's gradient can use it without a copy.
"""
import math

from numba import cuda

from ...spec import LOSSES
from .activations import activation_backward
from .common import grid1

MSE, RMSE, HUBER, BCE, CE, POISSON = (LOSSES[n][0] for n in ("mse", "rmse", "huber", "binary_cross_entropy",
                                                              "cross_entropy", "poisson"))


@cuda.jit
def _loss_rows(rows, Z, A, Y, SW, code, param):
    i = cuda.grid(1)
    if i >= Z.shape[0]:
        return
    m = Z.shape[1]
    s = Z.dtype.type(0)
    if code == CE:
        mx = Z[i, 0]
        for j in range(1, m):
            mx = max(mx, Z[i, j])
        se = Z.dtype.type(0)
        ysum = Z.dtype.type(0)
        yz = Z.dtype.type(0)
        for j in range(m):
            se += math.exp(Z[i, j] - mx)
            ysum += Y[i, j]
            yz += Y[i, j] * Z[i, j]
        s = ysum * (mx + math.log(se)) - yz
    elif code == BCE:
        for j in range(m):
            z = Z[i, j]
            s += max(z, 0) - z * Y[i, j] + math.log1p(math.exp(-abs(z)))
    elif code == POISSON:
        for j in range(m):
            y = Y[i, j]   # half the Poisson deviance, with log a = z (0 log 0 = 0)
            s += (y * math.log(y) if y > 0 else 0) - y * Z[i, j] - y + A[i, j]
    elif code == HUBER:
        for j in range(m):
            r = abs(A[i, j] - Y[i, j])
            s += 0.5 * r * r if r <= param else param * (r - 0.5 * param)
    else:
        for j in range(m):
            r = A[i, j] - Y[i, j]
            s += r * r
    rows[i] = s * SW[i]


def loss_rows(rows, Z, A, Y, SW, code, param):
    _loss_rows[grid1(Z.shape[0])](rows, Z, A, Y, SW, code, param)


@cuda.jit
def _batch_loss(out, rows, b, code, m, total, weight):
    """out[0] = the batch's mean loss (one thread: a batch is short); total[0] += out * weight."""
    if cuda.grid(1) == 0:
        s = 0.0
        for i in range(b):
            s += rows[i]
        mean = s / (b if code == CE else b * m)
        if code == RMSE:
            mean = math.sqrt(mean)
        out[0] = mean
        total[0] += mean * weight


def batch_loss(out, rows, b, code, m, total, weight):
    _batch_loss[1, 1](out, rows, b, code, m, total, weight)


@cuda.jit
def _fused_delta(dZ, A, Y, SW, code):
    i = cuda.grid(1)
    if i >= A.shape[0]:
        return
    B, m = A.shape
    w = SW[i] / (B if code == CE else B * m)
    ysum = A.dtype.type(1)
    if code == CE:
        ysum = A.dtype.type(0)
        for j in range(m):
            ysum += Y[i, j]
    for j in range(m):
        dZ[i, j] = (A[i, j] * ysum - Y[i, j]) * w


@cuda.jit
def _output_delta(dA, Z, A, Y, SW, code, param, loss_value):
    i = cuda.grid(1)
    if i >= A.shape[0]:
        return
    B, m = A.shape
    inv_n = 1.0 / (B * m)
    if code == RMSE:
        scale = inv_n / loss_value[0] if loss_value[0] > 0 else 0.0
    else:
        scale = 2 * inv_n
    for j in range(m):
        r = A[i, j] - Y[i, j]
        if code == HUBER:
            dA[i, j] = min(max(r, -param), param) * inv_n * SW[i]
        else:
            dA[i, j] = r * scale * SW[i]


def loss_backward(dZ, dA, Z, A, Y, SW, code, param, loss_value, out_code, out_param):
    """dZ: the gradient of the batch's mean loss at the output pre-activation; loss_value is the
    one-element device array batch_loss filled."""
    if code in (CE, BCE, POISSON):
        _fused_delta[grid1(A.shape[0])](dZ, A, Y, SW, code)
    else:
        _output_delta[grid1(A.shape[0])](dA, Z, A, Y, SW, code, param, loss_value)
        activation_backward(dZ, dA, Z, A, out_code, out_param)
