"""Loss kernels: loss_rows (each sample's loss) and loss_backward (dL/dZ of the output layer).

Sample weights SW scale each row's loss and gradient; the mean still divides by the batch size
(Keras' convention), so weights of 1 give the unweighted mean.

The batch loss is finished by `batch_loss` from the per-row sums, so the reduction over the
batch is a serial sum of a short vector instead of a shared write in a parallel loop.
Both cross-entropies are computed from the pre-activation Z (log-sum-exp, softplus): finite for
any Z, and their gradient with the output activation is the fused (a - y) form; so is the
Poisson deviance with its exp output.
"""
import numpy as np
from numba import prange

from ..compile import THREADED, kernel, linked_kernel, serial, serial_kernel, switch
from ...spec import LOSSES
from .activations import activation_backward
from .threads import thread_count, thread_share

MSE, RMSE, HUBER, BCE, CE, POISSON = (LOSSES[n][0] for n in ("mse", "rmse", "huber", "binary_cross_entropy",
                                                              "cross_entropy", "poisson"))
# The loss codes compiled in: a network's variant narrows it to its own (compile.switch)
USED_LOSSES = switch("USED_LOSSES", tuple(sorted(v[0] for v in LOSSES.values())))


@linked_kernel
def loss_rows(rows, Z, A, Y, SW, code, param):
    """rows (B,): each sample's loss summed over its outputs, times its weight SW (B,)."""
    B = Z.shape[0]
    if not THREADED:   # the twin, linked into small networks' steps: its own inline copy
        _loss_rows_of(rows, Z, A, Y, SW, code, param, 0, B)
        return
    threads = thread_count()
    for k in prange(threads):
        i0, i1 = thread_share(B, k, threads)
        _loss_rows_part(rows, Z, A, Y, SW, code, param, i0, i1)


@serial_kernel
def _loss_rows_part(rows, Z, A, Y, SW, code, param, i0, i1):
    _loss_rows_of(rows, Z, A, Y, SW, code, param, i0, i1)


@serial
def _loss_rows_of(rows, Z, A, Y, SW, code, param, i0, i1):
    """loss_rows of rows i0 to i1."""
    m = Z.shape[1]
    zero, half = Z.dtype.type(0), Z.dtype.type(0.5)
    d = Z.dtype.type(param)
    for i in range(i0, i1):
        s = zero
        if CE in USED_LOSSES and code == CE:
            mx = Z[i, 0]
            for j in range(1, m):
                mx = max(mx, Z[i, j])
            se = zero
            ysum = zero
            yz = zero
            for j in range(m):
                se += np.exp(Z[i, j] - mx)
                ysum += Y[i, j]
                yz += Y[i, j] * Z[i, j]
            # sum_j y_j (lse - z_j)
            s = ysum * (mx + np.log(se)) - yz
        elif BCE in USED_LOSSES and code == BCE:
            for j in range(m):
                z = Z[i, j]
                s += max(z, zero) - z * Y[i, j] + np.log1p(np.exp(-abs(z)))
        elif POISSON in USED_LOSSES and code == POISSON:
            for j in range(m):
                # half the Poisson deviance y log(y / a) - y + a, with log a = z (0 log 0 = 0)
                y = Y[i, j]
                s += (y * np.log(y) if y > zero else zero) - y * Z[i, j] - y + A[i, j]
        elif HUBER in USED_LOSSES and code == HUBER:
            for j in range(m):
                r = abs(A[i, j] - Y[i, j])
                s += half * r * r if r <= d else d * (r - half * d)
        else:  # MSE, RMSE
            for j in range(m):
                r = A[i, j] - Y[i, j]
                s += r * r
        rows[i] = s * SW[i]


@serial
def loss_divisor(code, B, m):
    """Cross-entropy averages over samples; the elementwise losses over samples x outputs."""
    return B if code == CE else B * m


@serial
def batch_loss(rows, code, m):
    """The mean loss of a batch from loss_rows' output (float64 accumulation)."""
    total = 0.0
    for i in range(rows.shape[0]):
        total += rows[i]
    mean = total / loss_divisor(code, rows.shape[0], m)
    return np.sqrt(mean) if code == RMSE else mean


@kernel
def _output_delta(dA, Z, A, Y, SW, code, param, loss_value):
    """Where loss and output activation are not fused: dL/dA, before the activation's backward."""
    B, m = Z.shape
    zero, two = Z.dtype.type(0), Z.dtype.type(2)
    inv_n = Z.dtype.type(1.0 / (B * m))
    d = Z.dtype.type(param)
    if code == RMSE:
        scale = Z.dtype.type(1.0 / (B * m * loss_value)) if loss_value > 0 else zero
    else:
        scale = two * inv_n
    for i in prange(B):
        w = SW[i]
        for j in range(m):
            r = A[i, j] - Y[i, j]
            if code == HUBER:
                dA[i, j] = min(max(r, -d), d) * inv_n * w
            else:  # MSE, RMSE
                dA[i, j] = r * scale * w


@linked_kernel
def _fused_delta(dZ, A, Y, SW, code):
    """Softmax + cross-entropy: dZ = (a * sum(y) - y) / n; sigmoid + binary cross-entropy and
    exp + Poisson: dZ = (a - y) / n."""
    B, m = A.shape
    zero = A.dtype.type(0)
    inv_n = A.dtype.type(1.0 / loss_divisor(code, B, m))
    for i in prange(B):
        w = SW[i] * inv_n
        if code == CE:
            ysum = zero
            for j in range(m):
                ysum += Y[i, j]
            for j in range(m):
                dZ[i, j] = (A[i, j] * ysum - Y[i, j]) * w
        else:
            for j in range(m):
                dZ[i, j] = (A[i, j] - Y[i, j]) * w


@serial
def loss_backward(dZ, dA, Z, A, Y, SW, code, param, loss_value, out_code, out_param):
    """dZ: gradient of the batch's mean (sample-weighted) loss with respect to the output
    pre-activation. dA is scratch of the same shape, used where the activation is not fused."""
    if CE in USED_LOSSES and code == CE or BCE in USED_LOSSES and code == BCE or \
            POISSON in USED_LOSSES and code == POISSON:
        _fused_delta(dZ, A, Y, SW, code)
    elif MSE in USED_LOSSES or RMSE in USED_LOSSES or HUBER in USED_LOSSES:
        _output_delta(dA, Z, A, Y, SW, code, param, loss_value)
        activation_backward(dZ, dA, Z, A, out_code, out_param)
