"""The compiled drivers: whole-network passes and the epoch loop.

`train_epochs` runs every epoch and mini-batch (gather, forward, loss, backward, penalties,
clipping, optimizer update) without returning to Python. Its arguments are the named structures
of kernels/args.py (`net`: args.Net, `hp`: args.Hyper, `opt`: args.Opt) and `ws`, the Workspace
below, allocated once per network and batch size:

  xb, yb, wb     the gathered mini-batch: inputs, targets, sample weights
  zbuf, dzbuf    every layer's pre-activation Z (b, units*pieces) and its gradient, at z_off[l]
  hbuf           batch-norm layers' normalised Z (same layout; empty without batch norm)
  abuf, dabuf    every layer's activation A (b, units) and its gradient, at a_off[l]
  dbuf           dropout layers' output (same layout; empty without dropout)
  stats          batch-norm layers' batch mean and 1/std, at their S_OFF
  rows           per-sample losses
  partials       scratch for chunked sums (penalty, gradient norm)
  wt, at, dzt    scratch for the dense kernels' transposes of W, A and dZ, sized for the paths
                 the layers take at batches of up to cap rows (dense.scratch_sizes)
  zpart          the partial products of layers a training step splits by inputs (all threads
                 but the first: dense.dense_forward_split)

A sparse X (kernels/cpu/sparse.py) is not gathered: xb has no columns, and the batch is the rows
xrow[:b] of the CSR arrays xptr, xcol, xval, which the backend sets per call (empty for dense X):

  xrow           the batch's row numbers in X
  xptr, xcol, xval   X's indptr (int64), indices (int32) and data
  ntouched       [0]: how the step treats the first W (Opt.sparse_mode: FULL, FUSED, or for
                 SPARSE_ROWS the number n >= 0 of rows in `touched`)
  touched        the columns (rows of the first W) the batch uses, each once
  mark           one zero flag per input column (list_touched's scratch)

  pace           pace.STATE, the process's one pacing state (how many threads a threaded
                 training call runs on; kernels/cpu/pace.py)

A batch of b <= cap rows uses the first b rows of each block (views, not copies).
"""
from collections import namedtuple
from itertools import accumulate as running_sums

import numba
import numpy as np
from numba import prange

from ... import aligned, config
from .. import args, struct_types
from ..compile import THREADED, kernel, linked_kernel, serial, serial_kernel, switch
from ...spec import ACT, ACT_PARAM, B_OFF, BN, DROP, G_OFF, N_IN, N_UNITS, PIECES, S_OFF, W_OFF
from .activations import activation_backward, activation_forward
from .dense import (BACKWARD_PATHS, FORWARD_PATHS, TILED, add_partials, dense_backward, dense_backward_split,
                    dense_forward, dense_forward_split, scratch_sizes, split_by_inputs, weight_shape)
from .losses import batch_loss, loss_backward, loss_rows
from .optim import coefficients, grad_norm, scale, update_range
from .sparse import FULL, FUSED, list_touched, sgd_step, sparse_backward, sparse_forward
from .regularize import (batchnorm_backward, batchnorm_forward, batchnorm_inference,
                         dropout_forward, penalty_backward, penalty_value)
from . import pace
from .threads import even_part, thread_count
from .views import view1d, view2d

# What a network may use, compiled in or left out (compile.switch; kernels/cpu/needs.py decides)
USE_BATCH_NORM = switch("USE_BATCH_NORM", True)
USE_DROPOUT = switch("USE_DROPOUT", True)
USE_PENALTY = switch("USE_PENALTY", True)     # l1 / l2
USE_CLIP = switch("USE_CLIP", True)           # clip_norm
USE_SPARSE = switch("USE_SPARSE", True)       # sparse (CSR) X: the first layer's sparse kernels

Workspace = namedtuple("Workspace", ["xb", "yb", "wb", "zbuf", "hbuf", "abuf", "dbuf", "dzbuf", "dabuf",
                                     "stats", "z_off", "a_off", "rows", "partials", "wt", "at", "dzt",
                                     "zpart", "xrow", "xptr", "xcol", "xval", "touched", "ntouched", "mark",
                                     "pace"])
for _struct in (Workspace, args.Net, args.Hyper, args.Opt):
    struct_types.remember(_struct)   # typed from a cache, not field by field on every call


def workspace(spec, cap, dtype, training=True, sparse=False):
    """A Workspace for batches of up to `cap` rows, allocated once and reused for every batch.
    Inference (training=False) needs no gradients, batch-norm and dropout outputs or backward
    scratch, which halves an evaluation block's memory on a wide network. `sparse`: for sparse
    X, with no dense batch and no dense-kernel scratch for the first layer."""
    # plain Python on the layer table (a handful of rows): NumPy's per-call overhead on arrays
    # this small is most of a small network's fit
    n_in, units, pieces = (spec.layers[:, c].tolist() for c in (N_IN, N_UNITS, PIECES))
    nz = [u * p for u, p in zip(units, pieces)]
    z_off = np.array([0, *running_sums(nz[:-1])], dtype=np.int64) * cap
    a_off = np.array([0, *running_sums(units[:-1])], dtype=np.int64) * cap
    z_size, a_size = cap * sum(nz), cap * sum(units)
    grad = int(training)
    dense = range(1 if sparse else 0, spec.n_layers)   # the layers the dense kernels serve
    itemsize = np.dtype(dtype).itemsize
    # room for every thread but one, for the layers a step may split (weights in L2, at least
    # SPLIT_MIN_WEIGHTS), but never more than zbuf: with more threads than that allows,
    # dense.split_by_inputs says no and the step cuts by batch rows
    widest = max((nz[l] for l in dense if n_in[l] * nz[l] * itemsize <= config.GEMM_PANEL_BYTES
                  and n_in[l] * nz[l] >= config.SPLIT_MIN_WEIGHTS), default=0)
    # the dense kernels' scratch, for the largest layer whose paths use it at these batch sizes
    needed = [scratch_sizes(cap, weight_shape(n_in[l], nz[l], itemsize), training) for l in dense]
    wt, at, dzt = (max(column) for column in zip(*needed)) if needed else (0, 0, 0)
    n_sparse = spec.n_in if sparse else 0
    n_x = 0 if sparse else spec.n_in
    sizes = dict(xb=cap * n_x, yb=cap * spec.n_out, wb=cap, zbuf=z_size,
                 hbuf=z_size * grad if any(spec.batch_norm) else 0, abuf=a_size,
                 dbuf=a_size * grad if any(spec.dropout) else 0, dzbuf=z_size * grad, dabuf=a_size * grad,
                 stats=spec.n_state, rows=cap, wt=wt, at=at, dzt=dzt,
                 zpart=min((numba.get_num_threads() - 1) * cap * widest, z_size) * grad, xval=0)
    buf = dict(zip(sizes, aligned.carve(list(sizes.values()), dtype)))
    buf["xb"], buf["yb"] = buf["xb"].reshape(cap, n_x), buf["yb"].reshape(cap, spec.n_out)
    buf["wb"][:] = 1
    # empty CSR arrays for dense X, read-only as a sparse X's arrays reach the drivers: one Numba
    # type for both, so the general build serves sparse X too instead of compiling every driver
    # again for it
    buf["xval"] = read_only(buf["xval"])
    return Workspace(
        **buf, z_off=z_off, a_off=a_off,
        partials=aligned.zeros(config.REDUCE_CHUNKS, dtype=np.float64),
        xrow=np.zeros(cap if sparse else 0, np.int64), xptr=read_only(np.zeros(0, np.int64)),
        xcol=read_only(np.zeros(0, np.int32)),
        touched=np.zeros(n_sparse * grad, np.int64), ntouched=np.full(1, -1, np.int64),
        mark=np.zeros(n_sparse * grad, np.uint8), pace=pace.STATE)


def read_only(a):
    """A read-only view of array `a` (`a` itself where it is read-only already), no copy: the
    drivers take every array they only read so (backend.py says why)."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view


def with_csr(ws, indptr, indices, data):
    """The workspace reading the sparse X whose CSR arrays these are (int64, int32, its dtype)."""
    return ws._replace(xptr=indptr, xcol=indices, xval=data)


# ---- views into the flat buffers ----

@serial
def _weights(params, layers, l):
    n_in, nz = layers[l, N_IN], layers[l, N_UNITS] * layers[l, PIECES]
    w = layers[l, W_OFF]
    return view2d(params, w, n_in, nz), view1d(params, layers[l, B_OFF], nz)


@serial
def _pair(vec, layers, l, col):
    """Two consecutive length-nz vectors at layers[l, col]: (gamma, beta), (mean, var) or
    (mean, inv_std)."""
    nz = layers[l, N_UNITS] * layers[l, PIECES]
    o = layers[l, col]
    return view1d(vec, o, nz), view1d(vec, o + nz, nz)


@serial
def _block(buf, off, layers, l, b, z_side):
    """Layer l's (b, width) block of a buffer: width units*pieces for Z-side, units for A-side."""
    width = layers[l, N_UNITS] * (layers[l, PIECES] if z_side else 1)
    return view2d(buf, off[l], b, width)


@serial
def _rows(M, b):
    """The first b rows of a 2-D buffer."""
    return view2d(M, 0, b, M.shape[1])


@serial
def _scratch(buf, rows, cols):
    return view2d(buf, 0, rows, cols)


@serial
def _layer_input(l, b, dropout, net, ws):
    """What layer l reads: the batch, or the previous layer's activation (after its dropout)."""
    if l == 0:
        return _rows(ws.xb, b)
    if USE_DROPOUT and dropout and net.layer_f[l - 1, DROP] > 0:
        return _block(ws.dbuf, ws.a_off, net.layers, l - 1, b, False)
    return _block(ws.abuf, ws.a_off, net.layers, l - 1, b, False)


# ---- copying rows ----

@linked_kernel
def gather_rows(xb, yb, wb, X, Y, SW, order, start, b):
    """Row i < b of the batch is row order[start + i] of X, Y and SW."""
    for i in prange(b):
        r = order[start + i]
        for j in range(X.shape[1]):
            xb[i, j] = X[r, j]
        for j in range(Y.shape[1]):
            yb[i, j] = Y[r, j]
        wb[i] = SW[r]


@kernel
def copy_rows(dst, src, start, b):
    for i in prange(b):
        for j in range(src.shape[1]):
            dst[i, j] = src[start + i, j]


@serial
def sparse_rows(b, order, start, mode, ws):
    """For sparse X: the batch is X's rows order[start:start + b] (order None: start onwards),
    stepped in `mode` (args.SPARSE_*: FULL, FUSED, or ROWS, whose list of rows this makes)."""
    if not USE_SPARSE or ws.xptr.shape[0] == 0:
        return
    rows = view1d(ws.xrow, 0, b)
    for i in range(b):
        rows[i] = start + i if order is None else order[start + i]
    ws.ntouched[0] = list_touched(ws.touched, ws.mark, rows, ws.xptr, ws.xcol) if mode >= 0 else mode


# ---- the network ----

@serial
def forward(b, batch_stats, dropout, update_stats, step, net, hp, ws):
    """Every layer's Z and A for the first b rows of xb.

    batch_stats: batch norm normalises by this batch's statistics (training), else by the
    running ones (inference). dropout: apply dropout with the masks of `step`.
    update_stats: fold this batch's statistics into the running ones (a real training step;
    its products are split by inputs where dense.split_by_inputs says so).
    """
    layers, layer_f = net.layers, net.layer_f
    for l in range(layers.shape[0]):
        W, bias = _weights(net.params, layers, l)
        Z = _block(ws.zbuf, ws.z_off, layers, l, b, True)
        A = _block(ws.abuf, ws.a_off, layers, l, b, False)
        A_in = _layer_input(l, b, dropout, net, ws)
        activated = False
        if USE_SPARSE and l == 0 and ws.xptr.shape[0] > 0:
            sparse_forward(Z, W, bias, view1d(ws.xrow, 0, b), ws.xptr, ws.xcol, ws.xval)
        elif THREADED and TILED in FORWARD_PATHS and update_stats and split_by_inputs(b, W, ws.zpart):
            dense_forward_split(Z, A_in, W, bias, ws.zpart)
            activated = not layers[l, BN]   # batch norm comes between: activate below
            add_partials(Z, ws.zpart, A, layers[l, ACT], layer_f[l, ACT_PARAM], activated)
        else:
            dense_forward(Z, A_in, W, bias, _scratch(ws.wt, W.shape[1], W.shape[0]))
        if USE_BATCH_NORM and layers[l, BN]:
            gamma, beta = _pair(net.params, layers, l, G_OFF)
            run_mean, run_var = _pair(net.state, layers, l, S_OFF)
            if batch_stats:
                mean, inv_std = _pair(ws.stats, layers, l, S_OFF)
                batchnorm_forward(Z, _block(ws.hbuf, ws.z_off, layers, l, b, True), mean, inv_std, run_mean,
                                  run_var, gamma, beta, hp.bn_eps, hp.bn_momentum, np.bool_(update_stats))
            else:
                batchnorm_inference(Z, gamma, beta, run_mean, run_var, hp.bn_eps)
        if not activated:
            activation_forward(A, Z, layers[l, ACT], layer_f[l, ACT_PARAM])
        if USE_DROPOUT and dropout and layer_f[l, DROP] > 0:
            dropout_forward(_block(ws.dbuf, ws.a_off, layers, l, b, False), A, layer_f[l, DROP],
                            hp.drop_key, step, l)


@serial
def output_loss(b, net, hp, ws):
    """The batch's mean (sample-weighted) data loss; leaves dL/dZ of the output layer in dzbuf."""
    layers = net.layers
    L = layers.shape[0] - 1
    Z = _block(ws.zbuf, ws.z_off, layers, L, b, True)
    A = _block(ws.abuf, ws.a_off, layers, L, b, False)
    Y, SW, R = _rows(ws.yb, b), view1d(ws.wb, 0, b), view1d(ws.rows, 0, b)
    loss_rows(R, Z, A, Y, SW, hp.loss_code, hp.loss_param)
    value = batch_loss(R, hp.loss_code, Y.shape[1])
    loss_backward(_block(ws.dzbuf, ws.z_off, layers, L, b, True), _block(ws.dabuf, ws.a_off, layers, L, b, False),
                  Z, A, Y, SW, hp.loss_code, hp.loss_param, value, layers[L, ACT], net.layer_f[L, ACT_PARAM])
    return value


@serial
def backward(b, dropout, step, net, hp, ws):
    """Fill grads from the output delta in dzbuf, layer by layer down to the input, after a
    forward pass with batch statistics and the same `dropout` and `step`."""
    layers, layer_f = net.layers, net.layer_f
    z_off, a_off = ws.z_off, ws.a_off
    for l in range(layers.shape[0] - 1, -1, -1):
        dZ = _block(ws.dzbuf, z_off, layers, l, b, True)
        if USE_BATCH_NORM and layers[l, BN]:
            gamma, _ = _pair(net.params, layers, l, G_OFF)
            dgamma, dbeta = _pair(net.grads, layers, l, G_OFF)
            _, inv_std = _pair(ws.stats, layers, l, S_OFF)
            batchnorm_backward(dZ, dgamma, dbeta, _block(ws.hbuf, z_off, layers, l, b, True), inv_std, gamma)
        W, _ = _weights(net.params, layers, l)
        dW, db = _weights(net.grads, layers, l)
        A_in = _layer_input(l, b, dropout, net, ws)
        dA_prev = _block(ws.dabuf, a_off, layers, l - 1, b, False) if l > 0 else _rows(ws.xb, b)  # unused
        if USE_SPARSE and l == 0 and ws.xptr.shape[0] > 0:
            # with a penalty every row of dW changes each step: zero them all
            penalised = USE_PENALTY and (hp.l1 != 0 or hp.l2 != 0)
            mode = ws.ntouched[0]
            sparse_backward(dW, db, dZ, view1d(ws.xrow, 0, b), ws.xptr, ws.xcol, ws.xval, ws.touched,
                            FULL if penalised and mode >= 0 else mode)
        elif THREADED and TILED in BACKWARD_PATHS and split_by_inputs(b, W, ws.zpart):
            dense_backward_split(dA_prev, dW, db, dZ, A_in, W, l > 0, ws.wt)
        else:
            dense_backward(dA_prev, dW, db, dZ, A_in, W, l > 0, _scratch(ws.wt, W.shape[1], W.shape[0]),
                           _scratch(ws.at, W.shape[0], b), _scratch(ws.dzt, W.shape[1], b))
        if USE_BATCH_NORM and layers[l, BN]:
            db[:] = 0   # batch norm subtracts the mean: the dense bias has no effect (beta shifts)
        if l > 0:
            if USE_DROPOUT and dropout and layer_f[l - 1, DROP] > 0:
                dropout_forward(dA_prev, dA_prev, layer_f[l - 1, DROP], hp.drop_key, step, l - 1)
            activation_backward(_block(ws.dzbuf, z_off, layers, l - 1, b, True), dA_prev,
                                _block(ws.zbuf, z_off, layers, l - 1, b, True),
                                _block(ws.abuf, a_off, layers, l - 1, b, False),
                                layers[l - 1, ACT], layer_f[l - 1, ACT_PARAM])


@serial
def penalties(with_grads, net, hp, ws):
    """The l1/l2 penalty on the weights, added to grads when with_grads."""
    if not USE_PENALTY or hp.l1 == 0 and hp.l2 == 0:
        return 0.0
    if with_grads:
        penalty_backward(net.grads, net.params, net.ranges, hp.l1, hp.l2)
    return penalty_value(net.params, net.ranges, hp.l1, hp.l2, ws.partials)


@serial
def train_step(b, step, lr, net, hp, opt, ws):
    """One SGD step on the batch in xb/yb/wb; returns its loss (before the update)."""
    forward(b, True, True, True, step, net, hp, ws)
    value = output_loss(b, net, hp, ws)
    backward(b, True, step, net, hp, ws)
    value += penalties(True, net, hp, ws)
    apply_update(b, lr, net, opt, ws)
    return value


@serial
def apply_update(b, lr, net, opt, ws):
    """Clip the gradient (when clip_norm > 0), count the step, and update the parameters (a
    batch of b rows: which layers were split by inputs)."""
    if USE_CLIP and opt.clip_norm > 0:
        norm = grad_norm(net.grads, ws.partials)
        if norm > opt.clip_norm:
            scale(net.grads, opt.clip_norm / norm)
    opt.t[0] += 1
    if USE_SPARSE and ws.ntouched[0] == FUSED:
        W, _ = _weights(net.params, net.layers, 0)
        sgd_step(W, _block(ws.dzbuf, ws.z_off, net.layers, 0, b, True), view1d(ws.xrow, 0, b), ws.xptr, ws.xcol,
                 ws.xval, lr)
    update_by_owner(net.params, net.grads, opt.m, opt.v, opt.code, lr, opt.hyper, opt.t[0], net.layers, b,
                    ws.zpart, ws.touched, ws.ntouched[0] if USE_SPARSE else -1)


@serial
def update_rows(params, grads, m, v, code, coef, w, nz, touched, ntouched, k, threads):
    """The update of thread k's rows (c % threads == k, as sparse.py's kernels own them) among
    touched[:ntouched] of the weight matrix at w (nz columns), whose gradient rows are then
    zeroed: a sparse first layer's rows-only step."""
    zero = grads.dtype.type(0)
    for u in range(ntouched):
        if touched[u] % threads == k:
            o = w + touched[u] * nz
            update_range(params, grads, m, v, code, coef, o, o + nz)
            for i in range(o, o + nz):
                grads[i] = zero


@linked_kernel
def update_by_owner(params, grads, m, v, code, lr, hyper, t, layers, b, partials, touched, ntouched):
    """The optimizer step, thread k on the rows of W it owns in the layers split by inputs (so
    that W, dW and the optimizer state stay in its core's cache), and on its k-th part of every
    other weight matrix, bias and batch-norm vector. ntouched >= 0: of the first W only the rows
    touched[:ntouched] (a sparse batch's columns) are updated, each by the thread that owns it in
    sparse.py's kernels; ntouched FUSED: none of them (sgd_step did)."""
    coef = coefficients(code, lr, hyper, t, params.dtype.type)
    # update_range is written once in each branch below, inside a loop over the ranges it
    # updates: every call of it is a copy of every optimizer's loops to compile (four copies
    # took the general build's threaded update_by_owner about twice as long)
    # (each test starts with the switch itself, so that dense variants prune the sparse branches)
    if not THREADED:   # one thread owns all of it: one loop over the vector, and less to compile
        w, nz = layers[0, W_OFF], layers[0, N_UNITS] * layers[0, PIECES]
        parts = 1   # all of it, or (a sparse batch) the first W's rows, then the ranges around it
        if USE_SPARSE and ntouched != FULL:
            update_rows(params, grads, m, v, code, coef, w, nz, touched, max(ntouched, 0), 0, 1)
            parts = 2
        for part in range(parts):
            i0 = 0 if part == 0 else w + layers[0, N_IN] * nz
            i1 = w if parts == 2 and part == 0 else params.shape[0]
            update_range(params, grads, m, v, code, coef, i0, i1)
        return
    threads = thread_count()
    for k in prange(threads):
        _update_owned(params, grads, m, v, code, coef, layers, b, partials, touched, ntouched, np.int64(k), threads)


@serial_kernel
def _update_owned(params, grads, m, v, code, coef, layers, b, partials, touched, ntouched, k, threads):
    """Thread k's part of update_by_owner."""
    for l in range(layers.shape[0]):
        n_in, nz = layers[l, N_IN], layers[l, N_UNITS] * layers[l, PIECES]
        w = layers[l, W_OFF]
        rows_only = False
        if USE_SPARSE and l == 0 and ntouched != FULL:
            update_rows(params, grads, m, v, code, coef, w, nz, touched, max(ntouched, 0), k, threads)
            rows_only = True
        # this thread's part of W (none where update_rows did it), of the biases, and of
        # batch norm's gamma and beta
        for part in range(3 if USE_BATCH_NORM and layers[l, BN] else 2):
            if part == 0:
                if rows_only:
                    continue
                if split_by_inputs(b, view2d(params, w, n_in, nz), partials):
                    r0, r1 = even_part(n_in, k, threads)
                    i0, i1 = w + r0 * nz, w + r1 * nz
                else:
                    i0, i1 = even_part(n_in * nz, k, threads)
                    i0, i1 = w + i0, w + i1
            else:
                o = layers[l, B_OFF] if part == 1 else layers[l, G_OFF]
                i0, i1 = even_part(nz * part, k, threads)
                i0, i1 = o + i0, o + i1
            update_range(params, grads, m, v, code, coef, i0, i1)


@serial
def train_rows(start, stop, order, X, Y, SW, batch_size, lr, counter, net, hp, opt, ws):
    """Batches of rows order[start:stop]; returns the sum of batch losses times batch sizes.
    counter[0] is the global step, which keys the dropout masks."""
    total = 0.0
    pool = thread_count()
    if THREADED:
        pace.begin(ws.pace, pool)
    for s in range(start, stop, batch_size):
        b = min(batch_size, stop - s)
        gather_rows(ws.xb, ws.yb, ws.wb, X, Y, SW, order, s, b)
        sparse_rows(b, order, s, opt.sparse_mode, ws)
        total += train_step(b, counter[0], lr, net, hp, opt, ws) * b
        counter[0] += 1
        if THREADED:
            pace.after_batch(ws.pace, b, pool)
    if THREADED:
        pace.end(ws.pace, pool)
    return total


@serial
def train_epochs(X, Y, SW, orders, lrs, start, stop, batch_size, counter, net, hp, opt, ws, epoch_totals):
    """One epoch per row of `orders`, over its rows orders[e, start:stop], at learning rate
    lrs[e]; epoch_totals[e] is the sum of the epoch's batch losses times batch sizes (the caller
    divides by the rows). Whole epochs (start 0, stop n) and the pieces of one epoch that a
    progress bar draws between (one row of orders) are the same compiled function: one compile,
    not two."""
    for e in range(orders.shape[0]):
        epoch_totals[e] = train_rows(start, stop, orders[e], X, Y, SW, batch_size, lrs[e], counter, net, hp, opt, ws)
        if not np.isfinite(epoch_totals[e]):
            return e + 1   # diverged: stop here, the caller restores and reports
    return orders.shape[0]


# ---- evaluation ----

@serial
def evaluate(out, X, Y, net, hp, ws):
    """Inference mode over X, in blocks of the workspace: the network's output into out
    (n, n_out) where out has rows, and the sum of the per-sample losses against Y where Y has
    rows (the caller divides); returns that sum (0 without Y). predict passes no Y and loss no
    out: one driver for both, so that the forward pass, which each inlines whole, compiles once
    and not twice."""
    layers = net.layers
    L = layers.shape[0] - 1
    cap = ws.xb.shape[0]
    total = 0.0
    for start in range(0, X.shape[0], cap):
        b = min(cap, X.shape[0] - start)
        copy_rows(ws.xb, X, start, b)
        sparse_rows(b, None, start, FULL, ws)
        forward(b, False, False, False, 0, net, hp, ws)
        if out.shape[0] > 0:
            copy_rows(out[start:start + b], _block(ws.abuf, ws.a_off, layers, L, b, False), 0, b)
        if Y.shape[0] > 0:
            copy_rows(ws.yb, Y, start, b)
            ws.wb[:b] = 1
            loss_rows(ws.rows[:b], _block(ws.zbuf, ws.z_off, layers, L, b, True),
                      _block(ws.abuf, ws.a_off, layers, L, b, False), ws.yb[:b], ws.wb[:b], hp.loss_code,
                      hp.loss_param)
            for i in range(b):
                total += ws.rows[i]
    return total


@kernel
def accumulate(total, part, weight, first):
    """total = (0 if first else total) + weight * part."""
    w = total.dtype.type(weight)
    zero = total.dtype.type(0)
    for i in prange(total.shape[0]):
        total[i] = (zero if first else total[i]) + w * part[i]


@serial
def loss_and_gradients(X, Y, SW, dropout, step, net, hp, ws, total):
    """The (sample-weighted) mean loss of all rows of X with the penalty, taken as one training
    batch (batch statistics; dropout only if `dropout`, with the masks of `step`), and its
    gradient in grads; running statistics are left alone.

    Rows pass through the workspace in blocks of its capacity, each block's gradient added into
    `total` (scratch the size of the parameters) by its share of the rows, so a full-batch
    optimizer (L-BFGS) on any number of rows needs only one block's scratch. The mean of block
    means is the full mean only for losses that are means of rows and without batch statistics:
    the caller gives one block of all rows otherwise (batch norm, dropout, rmse)."""
    n, cap = X.shape[0], ws.xb.shape[0]
    value = 0.0
    for start in range(0, n, cap):
        b = min(cap, n - start)
        copy_rows(ws.xb, X, start, b)
        sparse_rows(b, None, start, FULL, ws)
        copy_rows(ws.yb, Y, start, b)
        for i in range(b):
            ws.wb[i] = SW[start + i]
        forward(b, True, dropout, False, step, net, hp, ws)
        share = b / n
        value += output_loss(b, net, hp, ws) * share
        backward(b, dropout, step, net, hp, ws)
        if b < n:
            accumulate(total, net.grads, share, start == 0)
    if cap < n:
        grads = net.grads
        for i in range(grads.shape[0]):   # (a slice assignment needs Numba's runtime: compile._jit)
            grads[i] = total[i]
    return value + penalties(True, net, hp, ws)
