"""The network on the GPU: the mini-batch gather, whole-network forward and backward passes, and
a training step, as host-side sequences of kernel launches over device buffers. Nothing here
waits for the device: launches queue up, and the host reads back only what the backend asks.
"""
import numpy as np
from numba import cuda

from ...spec import ACT, ACT_PARAM, BN, DROP, N_IN, N_UNITS, PIECES, S_OFF, G_OFF, W_OFF, B_OFF
from .activations import activation_backward, activation_forward, fusable
from .common import fill, grid1
from .dense import dense_backward, dense_forward
from .losses import batch_loss, loss_backward, loss_rows
from .optim import grad_norm, optimizer_update, scale
from .regularize import (batchnorm_backward, batchnorm_forward, batchnorm_inference, dropout_forward,
                         penalty)


@cuda.jit
def _gather(xb, yb, wb, X, Y, SW, order, start, b):
    """Row i < b of the batch is row order[start + i] of X, Y and SW."""
    i = cuda.grid(1)
    if i < b:
        r = order[start + i]
        for j in range(X.shape[1]):
            xb[i, j] = X[r, j]
        for j in range(Y.shape[1]):
            yb[i, j] = Y[r, j]
        wb[i] = SW[r]


def gather_rows(xb, yb, wb, X, Y, SW, order, start, b):
    _gather[grid1(b)](xb, yb, wb, X, Y, SW, order, start, b)


class DeviceNet:
    """A network's device buffers: parameters, gradients, running statistics, and per-layer
    blocks for batches of up to `cap` rows (allocated once, sliced per batch)."""

    def __init__(self, spec, dtype, cap):
        self.spec, self.dtype, self.cap = spec, np.dtype(dtype), cap
        L = spec.layers
        dev = lambda *shape: cuda.device_array(shape, dtype=self.dtype)   # noqa: E731
        self.params, self.grads = dev(spec.n_params), dev(spec.n_params)
        self.state = dev(max(spec.n_state, 1))
        self.stats = dev(max(spec.n_state, 1))
        self.xb, self.yb, self.wb = dev(cap, spec.n_in), dev(cap, spec.n_out), dev(cap)
        nz = [int(r[N_UNITS] * r[PIECES]) for r in L]
        units = [int(r[N_UNITS]) for r in L]
        self.Z = [dev(cap, w) for w in nz]
        self.dZ = [dev(cap, w) for w in nz]
        self.H = [dev(cap, w) if L[l, BN] else None for l, w in enumerate(nz)]
        self.A = [dev(cap, u) for u in units]
        self.dA = [dev(cap, u) for u in units]
        self.D = [dev(cap, u) if spec.layer_floats(self.dtype)[l, DROP] > 0 else None for l, u in enumerate(units)]
        self.rows = dev(cap)
        self.loss = dev(1)
        self.scalar = cuda.device_array(1, dtype=np.float64)    # penalty, squared norm
        self.total = cuda.device_array(1, dtype=np.float64)     # an epoch's weighted loss sum

    # views into the flat parameter and statistics vectors
    def weights(self, vec, l):
        r = self.spec.layers[l]
        n_in, nz = int(r[N_IN]), int(r[N_UNITS] * r[PIECES])
        w = int(r[W_OFF])
        return vec[w:w + n_in * nz].reshape(n_in, nz), vec[int(r[B_OFF]):int(r[B_OFF]) + nz]

    def pair(self, vec, l, col):
        r = self.spec.layers[l]
        nz, o = int(r[N_UNITS] * r[PIECES]), int(r[col])
        return vec[o:o + nz], vec[o + nz:o + 2 * nz]

    def layer_input(self, l, b, dropout, layer_f):
        if l == 0:
            return self.xb[:b]
        if dropout and layer_f[l - 1, DROP] > 0:
            return self.D[l - 1][:b]
        return self.A[l - 1][:b]


def forward(net, b, batch_stats, dropout, update_stats, step, layer_f, hp):
    spec = net.spec
    bn_momentum, bn_eps, drop_key = hp[4], hp[5], hp[6]
    for l in range(spec.n_layers):
        code, param = int(spec.layers[l, ACT]), float(layer_f[l, ACT_PARAM])
        W, bias = net.weights(net.params, l)
        Z, A = net.Z[l][:b], net.A[l][:b]
        fuse = fusable(code) and not spec.layers[l, BN]
        dense_forward(Z, net.layer_input(l, b, dropout, layer_f), W, bias, A if fuse else None,
                      code if fuse else -1, param)
        if spec.layers[l, BN]:
            gamma, beta = net.pair(net.params, l, G_OFF)
            run_mean, run_var = net.pair(net.state, l, S_OFF)
            if batch_stats:
                mean, inv_std = net.pair(net.stats, l, S_OFF)
                batchnorm_forward(Z, net.H[l][:b], mean, inv_std, run_mean, run_var, gamma, beta, bn_eps,
                                  bn_momentum, update_stats)
            else:
                batchnorm_inference(Z, gamma, beta, run_mean, run_var, bn_eps)
        if not fuse:
            activation_forward(A, Z, code, param)
        if dropout and layer_f[l, DROP] > 0:
            dropout_forward(net.D[l][:b], A, float(layer_f[l, DROP]), drop_key, step, l)


def output_loss(net, b, layer_f, hp, weight):
    """The batch's mean loss into net.loss (and weight times it into net.total); dL/dZ of the
    output layer into net.dZ."""
    spec = net.spec
    L = spec.n_layers - 1
    Z, A, Y, SW = net.Z[L][:b], net.A[L][:b], net.yb[:b], net.wb[:b]
    loss_rows(net.rows[:b], Z, A, Y, SW, hp[0], hp[1])
    batch_loss(net.loss, net.rows, b, hp[0], Y.shape[1], net.total, weight)
    loss_backward(net.dZ[L][:b], net.dA[L][:b], Z, A, Y, SW, hp[0], hp[1], net.loss,
                  int(spec.layers[L, ACT]), float(layer_f[L, ACT_PARAM]))


def backward(net, b, dropout, step, layer_f, hp):
    spec = net.spec
    for l in range(spec.n_layers - 1, -1, -1):
        dZ = net.dZ[l][:b]
        if spec.layers[l, BN]:
            gamma, _ = net.pair(net.params, l, G_OFF)
            dgamma, dbeta = net.pair(net.grads, l, G_OFF)
            _, inv_std = net.pair(net.stats, l, S_OFF)
            batchnorm_backward(dZ, dgamma, dbeta, net.H[l][:b], inv_std, gamma)
        W, _ = net.weights(net.params, l)
        dW, db = net.weights(net.grads, l)
        dA_prev = net.dA[l - 1][:b] if l > 0 else None
        dense_backward(dA_prev, dW, db, dZ, net.layer_input(l, b, dropout, layer_f), W, l > 0)
        if spec.layers[l, BN]:
            fill[grid1(db.size)](db, 0.0)   # batch norm subtracts the mean: the bias has no effect
        if l > 0:
            if dropout and layer_f[l - 1, DROP] > 0:
                dropout_forward(dA_prev, dA_prev, float(layer_f[l - 1, DROP]), hp[6], step, l - 1)
            activation_backward(net.dZ[l - 1][:b], dA_prev, net.Z[l - 1][:b], net.A[l - 1][:b],
                                int(spec.layers[l - 1, ACT]), float(layer_f[l - 1, ACT_PARAM]))


def penalties(net, with_grads, ranges, hp):
    """The l1/l2 penalty into net.scalar[0] (and its gradient into net.grads); False if none."""
    l1, l2 = hp[2], hp[3]
    if l1 == 0 and l2 == 0:
        return False
    fill[1, 1](net.scalar, 0.0)
    penalty(net.scalar, net.grads, net.params, ranges, l1, l2, with_grads)
    return True


def train_step(net, b, step, lr, layer_f, hp, ranges, opt, weight):
    """One step on the batch in xb/yb/wb; its loss (with the penalty) times weight is added to
    net.total on the device."""
    code, hyper, m, v, t, clip_norm = opt
    forward(net, b, True, True, True, step, layer_f, hp)
    output_loss(net, b, layer_f, hp, weight)
    backward(net, b, True, step, layer_f, hp)
    if penalties(net, True, ranges, hp):
        _add_scaled[1, 1](net.total, net.scalar, weight)
    if clip_norm > 0:
        grad_norm(net.scalar, net.grads)
        scale(net.grads, net.scalar, clip_norm)
    optimizer_update(net.params, net.grads, m, v, code, lr, hyper, t)


@cuda.jit
def _add_scaled(total, x, weight):
    if cuda.grid(1) == 0:
        total[0] += x[0] * weight
