"""CudaBackend: reference.NumpyBackend's methods, computed by the CUDA kernels.

A call to `train` uploads the data (kept on the device across calls while it is the same array),
the parameters, running statistics and optimizer state once, runs every batch of every epoch
on the device (the gather included), and reads back one number per epoch (its loss, which the
caller needs to report and to stop on divergence); the parameters and state come back at the
end of the call. A sparse X (a scipy CSR matrix) goes up as its CSR arrays; its batches are row
numbers into them (kernels/cuda/sparse.py).
"""
import numpy as np
from numba import cuda

from ... import config
from ...data import is_sparse
from .. import args
from ..cpu.losses import RMSE, loss_divisor   # host-side arithmetic, shared with the cpu backend
from . import driver
from .common import fill, grid1
from .driver import Workspace, gather_rows, penalties
from .sparse import batch_rows


def gpu_status():
    """None when a CUDA GPU (or the simulator) is usable, else why not."""
    try:
        if cuda.is_available():
            return None
        return "no CUDA GPU was found (numba.cuda.is_available() is False)"
    except Exception as exc:   # a broken driver install
        return f"CUDA is not usable here ({type(exc).__name__}: {exc})"


class CudaBackend:
    name = "cuda"

    def __init__(self, spec, dtype, drop_key):
        why = gpu_status()
        if why is not None:
            raise RuntimeError(f"backend='cuda' needs an NVIDIA GPU: {why}. Use backend='cpu', or "
                               f"backend='auto' to take the GPU only when there is one.")
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.hp = args.hyper(spec, drop_key)
        self._net = None
        self._workspaces = {}
        self._data = None   # (host X, host Y, host SW, their device copies)

    # ---- device buffers ----
    def _upload_net(self, params, state):
        """The device Net with these parameters and statistics."""
        if self._net is None:
            self._net = driver.device_net(self.spec, self.dtype)
        net = self._net
        net.params.copy_to_device(params)
        if state.size:
            net.state.copy_to_device(state)
        return net

    def _workspace(self, cap, X=None):
        """The workspace for batches of up to `cap` rows of X, reading X (csr) if it is sparse."""
        key = (cap, is_sparse(X))
        ws = self._workspaces.get(key)
        if ws is None:
            if len(self._workspaces) >= 2:   # keep a training and an evaluation workspace
                self._workspaces.pop(next(iter(self._workspaces)))
            ws = self._workspaces[key] = Workspace(self.spec, self.dtype, cap, key[1])
        return ws

    @staticmethod
    def _csr(X):
        """The device (indptr, indices, data) of a sparse X."""
        return (cuda.to_device(X.indptr.astype(np.int64)), cuda.to_device(X.indices.astype(np.int32)),
                cuda.to_device(X.data))

    def _upload(self, X, Y, SW):
        """Device copies of (X, Y, SW): X a dense array, or for sparse X a placeholder without
        columns and its CSR arrays, which go into ws.csr."""
        d = self._data
        if d is None or d[0] is not X or d[1] is not Y or d[2] is not SW:
            if is_sparse(X):
                X_d, csr = cuda.device_array((X.shape[0], 0), self.dtype), self._csr(X)
            else:
                X_d, csr = cuda.to_device(X), None
            self._data = d = (X, Y, SW, (X_d, cuda.to_device(Y), cuda.to_device(SW)), csr)
        return d[3], d[4]

    def _block_input(self, ws, X, csr, start, stop):
        """Rows start:stop of X into the workspace: copied, or for sparse X their row numbers."""
        b = stop - start
        ws.csr = csr
        if csr is None:
            ws.xb[:b].copy_to_device(np.ascontiguousarray(X[start:stop]))
        else:
            batch_rows(ws.xrow, None, start, b)

    def _download(self, net, params, state):
        net.params.copy_to_host(params)
        if state.size:
            net.state.copy_to_host(state)

    def _blocks(self, X):
        n = X.shape[0]
        cap = max(1, min(n, config.EVAL_CHUNK))
        for start in range(0, n, cap):
            yield start, min(n, start + cap), cap

    # ---- evaluation (inference mode) ----
    def predict(self, params, state, X):
        out = np.empty((X.shape[0], self.spec.n_out), dtype=self.dtype)
        L = self.spec.n_layers - 1
        net = self._upload_net(params, state)
        csr = self._csr(X) if is_sparse(X) else None
        for start, stop, cap in self._blocks(X):
            ws = self._workspace(cap, X)
            b = stop - start
            self._block_input(ws, X, csr, start, stop)
            driver.forward(b, False, False, False, 0, net, self.hp, ws)
            out[start:stop] = ws.A[L][:b].copy_to_host()
        return out

    def loss(self, params, state, X, Y):
        spec = self.spec
        L = spec.n_layers - 1
        total = 0.0
        net = self._upload_net(params, state)
        ws = None
        csr = self._csr(X) if is_sparse(X) else None
        for start, stop, cap in self._blocks(X):
            ws = self._workspace(cap, X)
            b = stop - start
            self._block_input(ws, X, csr, start, stop)
            ws.yb[:b].copy_to_device(np.ascontiguousarray(Y[start:stop]))
            fill[grid1(b)](ws.wb, 1.0)
            driver.forward(b, False, False, False, 0, net, self.hp, ws)
            driver.loss_rows(ws.rows[:b], ws.Z[L][:b], ws.A[L][:b], ws.yb[:b], ws.wb[:b], self.hp.loss_code,
                             self.hp.loss_param)
            total += float(ws.rows[:b].copy_to_host().sum(dtype=np.float64))
        mean = total / loss_divisor(spec.loss_code, X.shape[0], Y.shape[1])
        value = np.sqrt(mean) if spec.loss_code == RMSE else mean
        if penalties(False, net, self.hp, ws):
            value += float(ws.scalar.copy_to_host()[0])
        return float(value)

    def loss_and_gradients(self, params, state, X, Y, dropout_step=None, SW=None):
        """Loss and gradient of X as one training batch (one block of all rows: device memory
        is large), sample weights SW (n,) scaling each row."""
        b = X.shape[0]
        net = self._upload_net(params, state)
        ws = Workspace(self.spec, self.dtype, b, is_sparse(X))   # one batch of all rows
        self._block_input(ws, X, self._csr(X) if is_sparse(X) else None, 0, b)
        ws.yb.copy_to_device(np.ascontiguousarray(Y))
        if SW is None:
            fill[grid1(b)](ws.wb, 1.0)
        else:
            ws.wb.copy_to_device(np.ascontiguousarray(SW, dtype=self.dtype))
        fill[1, 1](ws.total, 0.0)
        dropout = dropout_step is not None
        step = int(dropout_step or 0)
        driver.forward(b, True, dropout, False, step, net, self.hp, ws)
        driver.output_loss(b, 1.0, net, self.hp, ws)
        driver.backward(b, dropout, step, net, self.hp, ws)
        if penalties(True, net, self.hp, ws):
            driver._add_scaled[1, 1](ws.total, ws.scalar, 1.0)
        return float(ws.total.copy_to_host()[0]), net.grads.copy_to_host()

    # ---- training ----
    def _opt(self, optimizer, X):
        """The optimizer's Opt with its moments on the device (the step count stays on the host).
        The GPU has no fused step: SPARSE_FUSED steps every row, which is exact for it too."""
        host = args.opt(optimizer, self.spec, is_sparse(X))
        on_device = lambda a: cuda.to_device(a) if a.size else cuda.device_array(1, self.dtype)   # noqa: E731
        return host._replace(hyper=cuda.to_device(host.hyper), m=on_device(host.m), v=on_device(host.v))

    def _finish(self, net, params, state, opt, optimizer):
        self._download(net, params, state)
        m, v, _ = optimizer.state_arrays()
        if m.size:
            opt.m.copy_to_host(m)
        if v.size:
            opt.v.copy_to_host(v)

    def _rows(self, net, ws, dev, order_d, start, stop, batch_size, lr, counter, opt):
        (X_d, Y_d, SW_d), ws.csr = dev
        for s in range(start, stop, batch_size):
            b = min(batch_size, stop - s)
            gather_rows(ws.xb, ws.yb, ws.wb, X_d, Y_d, SW_d, order_d, s, b)
            if ws.csr is not None:
                batch_rows(ws.xrow, order_d, s, b)
            opt.t[0] += 1
            driver.train_step(b, int(counter[0]), float(lr), float(b), net, self.hp, opt._replace(t=int(opt.t[0])),
                              ws)
            counter[0] += 1

    def prepare(self, params, state, X, Y, SW, batch_size, counter, optimizer, by_batch, epochs=1):
        """Nothing ahead of time: each CUDA kernel compiles at its first launch."""

    def train(self, params, state, X, Y, SW, orders, lrs, batch_size, counter, optimizer):
        """Epochs over `orders`; returns (losses, epochs run), stopping after a non-finite loss."""
        n = X.shape[0]
        net = self._upload_net(params, state)
        ws = self._workspace(batch_size, X)
        dev = self._upload(X, Y, SW)
        opt = self._opt(optimizer, X)
        orders_d = cuda.to_device(np.ascontiguousarray(orders))
        losses = np.full(orders.shape[0], np.nan)
        ran = orders.shape[0]
        for e in range(orders.shape[0]):
            fill[1, 1](ws.total, 0.0)
            self._rows(net, ws, dev, orders_d[e], 0, n, batch_size, lrs[e], counter, opt)
            losses[e] = ws.total.copy_to_host()[0] / n    # the one read-back per epoch
            if not np.isfinite(losses[e]):
                ran = e + 1
                break
        self._finish(net, params, state, opt, optimizer)
        return losses, ran

    def train_rows(self, params, state, X, Y, SW, order, start, stop, batch_size, lr, counter, optimizer):
        """Batches over order[start:stop]; the sum of batch losses times batch sizes."""
        net = self._upload_net(params, state)
        ws = self._workspace(batch_size, X)
        dev = self._upload(X, Y, SW)
        opt = self._opt(optimizer, X)
        fill[1, 1](ws.total, 0.0)
        self._rows(net, ws, dev, cuda.to_device(np.ascontiguousarray(order)), start, stop, batch_size, lr,
                   counter, opt)
        total = float(ws.total.copy_to_host()[0])
        self._finish(net, params, state, opt, optimizer)
        return total
