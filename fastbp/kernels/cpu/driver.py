"""The compiled drivers: whole-network forward and backward passes, and the epoch loop.

`train_epochs` runs every epoch and mini-batch (gather, forward, loss, backward, update)
without returning to Python. Everything it touches is preallocated by `Workspace`:

  params, grads       flat vectors; layer l's W and b are views at layers[l, W_OFF], [B_OFF]
  xb, yb              (cap, n_in), (cap, n_out): the gathered mini-batch
  zbuf, dzbuf         every layer's Z (b, units*pieces) and its gradient, packed at z_off[l]
  abuf, dabuf         every layer's A (b, units) and its gradient, packed at a_off[l]
  rows                (cap,) per-sample losses

A batch of b <= cap rows uses the first b rows of each block (views, not copies).
"""
import numpy as np
from numba import prange

from ...config import kernel, serial
from ...spec import ACT, B_OFF, N_IN, N_UNITS, PIECES, W_OFF
from .activations import activation_backward, activation_forward
from .dense import dense_backward, dense_forward
from .losses import batch_loss, loss_backward, loss_rows
from .optim import sgd_update


class Workspace:
    """Scratch for batches of up to `cap` rows, allocated once and reused for every batch."""

    def __init__(self, spec, cap, dtype):
        L = spec.n_layers
        nz = spec.layers[:, N_UNITS] * spec.layers[:, PIECES]
        units = spec.layers[:, N_UNITS]
        self.cap = cap
        self.z_off = np.zeros(L, dtype=np.int64)
        self.a_off = np.zeros(L, dtype=np.int64)
        self.z_off[1:] = np.cumsum(cap * nz)[:-1]
        self.a_off[1:] = np.cumsum(cap * units)[:-1]
        self.xb = np.zeros((cap, spec.n_in), dtype=dtype)
        self.yb = np.zeros((cap, spec.n_out), dtype=dtype)
        self.zbuf = np.zeros(int(cap * nz.sum()), dtype=dtype)
        self.dzbuf = np.zeros_like(self.zbuf)
        self.abuf = np.zeros(int(cap * units.sum()), dtype=dtype)
        self.dabuf = np.zeros_like(self.abuf)
        self.rows = np.zeros(cap, dtype=dtype)

    def arrays(self):
        return (self.xb, self.yb, self.zbuf, self.abuf, self.dzbuf, self.dabuf,
                self.z_off, self.a_off, self.rows)


@serial
def _weights(params, layers, l):
    n_in, nz = layers[l, N_IN], layers[l, N_UNITS] * layers[l, PIECES]
    w = layers[l, W_OFF]
    W = params[w:w + n_in * nz].reshape((n_in, nz))
    b = params[layers[l, B_OFF]:layers[l, B_OFF] + nz]
    return W, b


@serial
def _acts(buf, off, layers, l, b, z_side):
    """Layer l's (b, width) block of an activation buffer: width units*pieces for Z, units for A."""
    width = layers[l, N_UNITS] * (layers[l, PIECES] if z_side else 1)
    return buf[off[l]:off[l] + b * width].reshape((b, width))


@kernel
def gather_rows(xb, yb, X, Y, order, start, b):
    """xb[i] = X[order[start + i]] (and likewise yb) for i < b."""
    for i in prange(b):
        r = order[start + i]
        for j in range(X.shape[1]):
            xb[i, j] = X[r, j]
        for j in range(Y.shape[1]):
            yb[i, j] = Y[r, j]


@kernel
def copy_rows(xb, X, start, b):
    for i in prange(b):
        for j in range(X.shape[1]):
            xb[i, j] = X[start + i, j]


@serial
def forward(b, params, layers, act_params, ws):
    """Every layer's Z and A for the first b rows of xb."""
    xb, yb, zbuf, abuf, dzbuf, dabuf, z_off, a_off, rows = ws
    A_prev = xb[:b]
    for l in range(layers.shape[0]):
        W, bias = _weights(params, layers, l)
        Z = _acts(zbuf, z_off, layers, l, b, True)
        A = _acts(abuf, a_off, layers, l, b, False)
        dense_forward(Z, A_prev, W, bias)
        activation_forward(A, Z, layers[l, ACT], act_params[l])
        A_prev = A


@serial
def output_loss(b, layers, act_params, loss_code, loss_param, ws):
    """The mean loss of the batch in yb; leaves dL/dZ of the output layer in dzbuf."""
    xb, yb, zbuf, abuf, dzbuf, dabuf, z_off, a_off, rows = ws
    L = layers.shape[0] - 1
    Z = _acts(zbuf, z_off, layers, L, b, True)
    A = _acts(abuf, a_off, layers, L, b, False)
    dZ = _acts(dzbuf, z_off, layers, L, b, True)
    dA = _acts(dabuf, a_off, layers, L, b, False)
    Y = yb[:b]
    loss_rows(rows[:b], Z, A, Y, loss_code, loss_param)
    value = batch_loss(rows[:b], loss_code, Y.shape[1])
    loss_backward(dZ, dA, Z, A, Y, loss_code, loss_param, value, layers[L, ACT], act_params[L])
    return value


@serial
def backward(b, params, grads, layers, act_params, ws):
    """Fill grads from the output delta in dzbuf, layer by layer down to the input."""
    xb, yb, zbuf, abuf, dzbuf, dabuf, z_off, a_off, rows = ws
    for l in range(layers.shape[0] - 1, -1, -1):
        W, _ = _weights(params, layers, l)
        dW, db = _weights(grads, layers, l)
        dZ = _acts(dzbuf, z_off, layers, l, b, True)
        if l > 0:
            A_prev = _acts(abuf, a_off, layers, l - 1, b, False)
            dA_prev = _acts(dabuf, a_off, layers, l - 1, b, False)
        else:
            A_prev = xb[:b]
            dA_prev = xb[:b]    # not written: need_dA is False for the first layer
        dense_backward(dA_prev, dW, db, dZ, A_prev, W, l > 0)
        if l > 0:
            Z_prev = _acts(zbuf, z_off, layers, l - 1, b, True)
            dZ_prev = _acts(dzbuf, z_off, layers, l - 1, b, True)
            activation_backward(dZ_prev, dA_prev, Z_prev, A_prev, layers[l - 1, ACT], act_params[l - 1])


@serial
def train_epochs(params, grads, layers, act_params, loss_code, loss_param,
                 X, Y, orders, batch_size, lr, ws, epoch_losses):
    """Mini-batch SGD over X, Y for each row of `orders` (one permutation per epoch).

    epoch_losses[e]: the mean of the epoch's batch losses, weighted by batch size.
    """
    n = X.shape[0]
    xb, yb = ws[0], ws[1]
    for e in range(orders.shape[0]):
        total = 0.0
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            gather_rows(xb, yb, X, Y, orders[e], start, b)
            forward(b, params, layers, act_params, ws)
            total += output_loss(b, layers, act_params, loss_code, loss_param, ws) * b
            backward(b, params, grads, layers, act_params, ws)
            sgd_update(params, grads, lr)
        epoch_losses[e] = total / n


@serial
def predict_into(out, X, params, layers, act_params, ws):
    """out (n, n_out) = the network's output for X, computed in blocks of the workspace's rows."""
    xb, a_off, abuf = ws[0], ws[7], ws[3]
    L = layers.shape[0] - 1
    for start in range(0, X.shape[0], xb.shape[0]):
        b = min(xb.shape[0], X.shape[0] - start)
        copy_rows(xb, X, start, b)
        forward(b, params, layers, act_params, ws)
        copy_rows(out[start:start + b], _acts(abuf, a_off, layers, L, b, False), 0, b)


@serial
def loss_total(X, Y, params, layers, act_params, loss_code, loss_param, ws):
    """Sum of the per-sample losses over X (the caller divides, and takes the root for rmse)."""
    xb, yb, zbuf, abuf, dzbuf, dabuf, z_off, a_off, rows = ws
    L = layers.shape[0] - 1
    total = 0.0
    for start in range(0, X.shape[0], xb.shape[0]):
        b = min(xb.shape[0], X.shape[0] - start)
        copy_rows(xb, X, start, b)
        copy_rows(yb, Y, start, b)
        forward(b, params, layers, act_params, ws)
        Z = _acts(zbuf, z_off, layers, L, b, True)
        A = _acts(abuf, a_off, layers, L, b, False)
        loss_rows(rows[:b], Z, A, yb[:b], loss_code, loss_param)
        for i in range(b):
            total += rows[i]
    return total


@serial
def loss_and_gradients(X, Y, params, grads, layers, act_params, loss_code, loss_param, ws):
    """The mean loss over all of X (one block: ws holds X.shape[0] rows) and its gradient."""
    xb, yb = ws[0], ws[1]
    b = X.shape[0]
    copy_rows(xb, X, 0, b)
    copy_rows(yb, Y, 0, b)
    forward(b, params, layers, act_params, ws)
    value = output_loss(b, layers, act_params, loss_code, loss_param, ws)
    backward(b, params, grads, layers, act_params, ws)
    return value
