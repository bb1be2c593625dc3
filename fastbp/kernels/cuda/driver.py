"""The network on the GPU: the mini-batch gather, whole-network forward and backward passes, and
a training step, as host-side sequences of kernel launches over device buffers. Nothing here
waits for the device: launches queue up, and the host reads back only what the backend asks.

The functions take the cpu driver's arguments in the cpu driver's order: `net` (kernels/args.Net
of device arrays, with the host tables), `hp` (args.Hyper), `opt` (args.Opt) and `ws` (the
Workspace below).
"""
import numpy as np
from numba import cuda

from .. import args
from ...spec import ACT, ACT_PARAM, B_OFF, BN, DROP, G_OFF, N_IN, N_UNITS, PIECES, S_OFF, W_OFF
from .activations import activation_backward, activation_forward, fusable
from .common import fill, grid1
from .dense import dense_backward, dense_forward
from .losses import batch_loss, loss_backward, loss_rows
from .optim import grad_norm, optimizer_update, scale
from .sparse import mark_rows, sparse_backward, sparse_forward
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


class Workspace:
    """A network's device buffers for batches of up to `cap` rows: per-layer blocks (allocated
    once, sliced per batch), batch statistics, per-row losses and device scalars. The cpu
    driver's Workspace, as lists of per-layer arrays.

    sparse: for sparse X, whose batch is not gathered: xb has no columns, xrow holds the batch's
    row numbers in X, `csr` the device (indptr, indices, data) of the X being read (set per
    call), and `mask` one flag per input column for lazy steps."""

    def __init__(self, spec, dtype, cap, sparse=False):
        L = spec.layers
        dev = lambda *shape: cuda.device_array(shape, dtype=dtype)   # noqa: E731
        self.cap = cap
        self.stats = dev(max(spec.n_state, 1))
        self.xb, self.yb, self.wb = dev(cap, 0 if sparse else spec.n_in), dev(cap, spec.n_out), dev(cap)
        self.xrow = cuda.device_array(cap if sparse else 1, dtype=np.int64)
        self.mask = cuda.to_device(np.zeros(spec.n_in if sparse else 1, dtype=np.uint8))
        self.csr = None
        nz = [int(r[N_UNITS] * r[PIECES]) for r in L]
        units = [int(r[N_UNITS]) for r in L]
        self.Z = [dev(cap, w) for w in nz]
        self.dZ = [dev(cap, w) for w in nz]
        self.H = [dev(cap, w) if L[l, BN] else None for l, w in enumerate(nz)]
        self.A = [dev(cap, u) for u in units]
        self.dA = [dev(cap, u) for u in units]
        self.D = [dev(cap, u) if spec.dropout[l] > 0 else None for l, u in enumerate(units)]
        self.rows = dev(cap)
        self.loss = dev(1)
        self.scalar = cuda.device_array(1, dtype=np.float64)    # penalty, squared norm
        self.total = cuda.device_array(1, dtype=np.float64)     # an epoch's weighted loss sum


def device_net(spec, dtype):
    """An args.Net of device parameters, gradients and running statistics, with the host tables
    (the host code reads them to launch the kernels)."""
    dev = lambda n: cuda.device_array(n, dtype=dtype)   # noqa: E731
    return args.Net(dev(spec.n_params), dev(spec.n_params), dev(max(spec.n_state, 1)),
                    np.ascontiguousarray(spec.layers), spec.layer_floats(dtype),
                    [(int(a), int(b)) for a, b in spec.weight_ranges])


# views into the flat parameter and statistics vectors
def _weights(vec, layers, l):
    r = layers[l]
    n_in, nz = int(r[N_IN]), int(r[N_UNITS] * r[PIECES])
    w = int(r[W_OFF])
    return vec[w:w + n_in * nz].reshape(n_in, nz), vec[int(r[B_OFF]):int(r[B_OFF]) + nz]


def _pair(vec, layers, l, col):
    r = layers[l]
    nz, o = int(r[N_UNITS] * r[PIECES]), int(r[col])
    return vec[o:o + nz], vec[o + nz:o + 2 * nz]


def _layer_input(l, b, dropout, net, ws):
    if l == 0:
        return ws.xb[:b]
    if dropout and net.layer_f[l - 1, DROP] > 0:
        return ws.D[l - 1][:b]
    return ws.A[l - 1][:b]


def forward(b, batch_stats, dropout, update_stats, step, net, hp, ws):
    layers, layer_f = net.layers, net.layer_f
    for l in range(layers.shape[0]):
        code, param = int(layers[l, ACT]), float(layer_f[l, ACT_PARAM])
        W, bias = _weights(net.params, layers, l)
        Z, A = ws.Z[l][:b], ws.A[l][:b]
        fuse = fusable(code) and not layers[l, BN]
        if l == 0 and ws.csr is not None:
            sparse_forward(Z, W, bias, ws.xrow[:b], ws.csr)
            fuse = False
        else:
            dense_forward(Z, _layer_input(l, b, dropout, net, ws), W, bias, A if fuse else None,
                          code if fuse else -1, param)
        if layers[l, BN]:
            gamma, beta = _pair(net.params, layers, l, G_OFF)
            run_mean, run_var = _pair(net.state, layers, l, S_OFF)
            if batch_stats:
                mean, inv_std = _pair(ws.stats, layers, l, S_OFF)
                batchnorm_forward(Z, ws.H[l][:b], mean, inv_std, run_mean, run_var, gamma, beta, hp.bn_eps,
                                  hp.bn_momentum, update_stats)
            else:
                batchnorm_inference(Z, gamma, beta, run_mean, run_var, hp.bn_eps)
        if not fuse:
            activation_forward(A, Z, code, param)
        if dropout and layer_f[l, DROP] > 0:
            dropout_forward(ws.D[l][:b], A, float(layer_f[l, DROP]), hp.drop_key, step, l)


def output_loss(b, weight, net, hp, ws):
    """The batch's mean loss into ws.loss (and weight times it into ws.total); dL/dZ of the
    output layer into ws.dZ."""
    L = net.layers.shape[0] - 1
    Z, A, Y, SW = ws.Z[L][:b], ws.A[L][:b], ws.yb[:b], ws.wb[:b]
    loss_rows(ws.rows[:b], Z, A, Y, SW, hp.loss_code, hp.loss_param)
    batch_loss(ws.loss, ws.rows, b, hp.loss_code, Y.shape[1], ws.total, weight)
    loss_backward(ws.dZ[L][:b], ws.dA[L][:b], Z, A, Y, SW, hp.loss_code, hp.loss_param, ws.loss,
                  int(net.layers[L, ACT]), float(net.layer_f[L, ACT_PARAM]))


def backward(b, dropout, step, net, hp, ws):
    layers, layer_f = net.layers, net.layer_f
    for l in range(layers.shape[0] - 1, -1, -1):
        dZ = ws.dZ[l][:b]
        if layers[l, BN]:
            gamma, _ = _pair(net.params, layers, l, G_OFF)
            dgamma, dbeta = _pair(net.grads, layers, l, G_OFF)
            _, inv_std = _pair(ws.stats, layers, l, S_OFF)
            batchnorm_backward(dZ, dgamma, dbeta, ws.H[l][:b], inv_std, gamma)
        W, _ = _weights(net.params, layers, l)
        dW, db = _weights(net.grads, layers, l)
        dA_prev = ws.dA[l - 1][:b] if l > 0 else None
        if l == 0 and ws.csr is not None:
            sparse_backward(dW, db, dZ, ws.xrow[:b], ws.csr)
        else:
            dense_backward(dA_prev, dW, db, dZ, _layer_input(l, b, dropout, net, ws), W, l > 0)
        if layers[l, BN]:
            fill[grid1(db.size)](db, 0.0)   # batch norm subtracts the mean: the bias has no effect
        if l > 0:
            if dropout and layer_f[l - 1, DROP] > 0:
                dropout_forward(dA_prev, dA_prev, float(layer_f[l - 1, DROP]), hp.drop_key, step, l - 1)
            activation_backward(ws.dZ[l - 1][:b], dA_prev, ws.Z[l - 1][:b], ws.A[l - 1][:b],
                                int(layers[l - 1, ACT]), float(layer_f[l - 1, ACT_PARAM]))


def penalties(with_grads, net, hp, ws):
    """The l1/l2 penalty into ws.scalar[0] (and its gradient into net.grads); False if none."""
    if hp.l1 == 0 and hp.l2 == 0:
        return False
    fill[1, 1](ws.scalar, 0.0)
    penalty(ws.scalar, net.grads, net.params, net.ranges, hp.l1, hp.l2, with_grads)
    return True


def train_step(b, step, lr, weight, net, hp, opt, ws):
    """One step on the batch in xb/yb/wb; its loss (with the penalty) times weight is added to
    ws.total on the device. opt.t is the step number (from 1), as a host int."""
    forward(b, True, True, True, step, net, hp, ws)
    output_loss(b, weight, net, hp, ws)
    backward(b, True, step, net, hp, ws)
    if penalties(True, net, hp, ws):
        _add_scaled[1, 1](ws.total, ws.scalar, weight)
    if opt.clip_norm > 0:
        grad_norm(ws.scalar, net.grads)
        scale(net.grads, ws.scalar, opt.clip_norm)
    lazy = None
    if opt.sparse_mode == args.SPARSE_ROWS and ws.csr is not None:   # lazy: the rows the batch uses
        mark_rows(ws.mask, ws.xrow, b, ws.csr)
        first = net.layers[0]
        w0, nz = int(first[W_OFF]), int(first[N_UNITS] * first[PIECES])
        lazy = (w0, w0 + int(first[N_IN]) * nz, nz, ws.mask)
    optimizer_update(net.params, net.grads, opt.m, opt.v, opt.code, lr, opt.hyper, opt.t, lazy)
    if lazy is not None:
        fill[grid1(ws.mask.size)](ws.mask, 0)


@cuda.jit
def _add_scaled(total, x, weight):
    if cuda.grid(1) == 0:
        total[0] += x[0] * weight
