"""CudaBackend: reference.NumpyBackend's methods, computed by the CUDA kernels.

A call to `train` uploads the data (kept on the device across calls while it is the same array),
the parameters, running statistics and optimizer state once, runs every batch of every epoch
on the device (the gather included), and reads back one number per epoch (its loss, which the
caller needs to report and to stop on divergence); the parameters and state come back at the
end of the call.
"""
import numpy as np
from numba import cuda

from ..cpu.losses import RMSE, loss_divisor   # host-side arithmetic, shared with the cpu backend
from . import driver
from .common import fill, grid1
from .driver import DeviceNet, gather_rows, penalties


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
        self.layer_f = spec.layer_floats(self.dtype)
        self.ranges = [(int(a), int(b)) for a, b in spec.weight_ranges]
        self.hp = (int(spec.loss_code), float(spec.loss_param), float(spec.l1), float(spec.l2),
                   float(spec.bn_momentum), float(spec.bn_eps), int(drop_key))
        self._nets = {}
        self._data = None   # (host X, host Y, host SW, their device copies)

    # ---- device buffers ----
    def _net(self, cap, params, state):
        net = self._nets.get(cap)
        if net is None:
            if len(self._nets) >= 2:
                self._nets.pop(next(iter(self._nets)))
            net = self._nets[cap] = DeviceNet(self.spec, self.dtype, cap)
        net.params.copy_to_device(params)
        if state.size:
            net.state.copy_to_device(state)
        return net

    def _upload(self, X, Y, SW):
        d = self._data
        if d is None or d[0] is not X or d[1] is not Y or d[2] is not SW:
            self._data = d = (X, Y, SW, cuda.to_device(X), cuda.to_device(Y), cuda.to_device(SW))
        return d[3:]

    def _download(self, net, params, state):
        net.params.copy_to_host(params)
        if state.size:
            net.state.copy_to_host(state)

    def _blocks(self, X):
        n = X.shape[0]
        net_cap = max(1, min(n, 1024))
        for start in range(0, n, net_cap):
            yield start, min(n, start + net_cap), net_cap

    # ---- evaluation (inference mode) ----
    def predict(self, params, state, X):
        out = np.empty((X.shape[0], self.spec.n_out), dtype=self.dtype)
        L = self.spec.n_layers - 1
        for start, stop, cap in self._blocks(X):
            net = self._net(cap, params, state)
            b = stop - start
            net.xb[:b].copy_to_device(np.ascontiguousarray(X[start:stop]))
            driver.forward(net, b, False, False, False, 0, self.layer_f, self.hp)
            out[start:stop] = net.A[L][:b].copy_to_host()
        return out

    def loss(self, params, state, X, Y):
        spec = self.spec
        L = spec.n_layers - 1
        total = 0.0
        net = None
        for start, stop, cap in self._blocks(X):
            net = self._net(cap, params, state)
            b = stop - start
            net.xb[:b].copy_to_device(np.ascontiguousarray(X[start:stop]))
            net.yb[:b].copy_to_device(np.ascontiguousarray(Y[start:stop]))
            fill[grid1(b)](net.wb, 1.0)
            driver.forward(net, b, False, False, False, 0, self.layer_f, self.hp)
            driver.loss_rows(net.rows[:b], net.Z[L][:b], net.A[L][:b], net.yb[:b], net.wb[:b], self.hp[0],
                             self.hp[1])
            total += float(net.rows[:b].copy_to_host().sum(dtype=np.float64))
        mean = total / loss_divisor(spec.loss_code, X.shape[0], Y.shape[1])
        value = np.sqrt(mean) if spec.loss_code == RMSE else mean
        if penalties(net, False, self.ranges, self.hp):
            value += float(net.scalar.copy_to_host()[0])
        return float(value)

    def loss_and_gradients(self, params, state, X, Y, dropout_step=None):
        b = X.shape[0]
        net = DeviceNet(self.spec, self.dtype, b)   # one batch of all rows
        net.params.copy_to_device(params)
        if state.size:
            net.state.copy_to_device(state)
        net.xb.copy_to_device(np.ascontiguousarray(X))
        net.yb.copy_to_device(np.ascontiguousarray(Y))
        fill[grid1(b)](net.wb, 1.0)
        fill[1, 1](net.total, 0.0)
        dropout = dropout_step is not None
        step = int(dropout_step or 0)
        driver.forward(net, b, True, dropout, False, step, self.layer_f, self.hp)
        driver.output_loss(net, b, self.layer_f, self.hp, 1.0)
        driver.backward(net, b, dropout, step, self.layer_f, self.hp)
        if penalties(net, True, self.ranges, self.hp):
            driver._add_scaled[1, 1](net.total, net.scalar, 1.0)
        return float(net.total.copy_to_host()[0]), net.grads.copy_to_host()

    # ---- training ----
    def _opt(self, optimizer):
        m = cuda.to_device(optimizer.m) if optimizer.m.size else cuda.device_array(1, self.dtype)
        v = cuda.to_device(optimizer.v) if optimizer.v.size else cuda.device_array(1, self.dtype)
        return [int(optimizer.code), cuda.to_device(optimizer.hyper()), m, v, optimizer.t,
                float(optimizer.clip_norm or 0.0)]

    def _finish(self, net, params, state, opt, optimizer):
        self._download(net, params, state)
        if optimizer.m.size:
            opt[2].copy_to_host(optimizer.m)
        if optimizer.v.size:
            opt[3].copy_to_host(optimizer.v)

    def _rows(self, net, dev, order_d, start, stop, batch_size, lr, counter, opt):
        X_d, Y_d, SW_d = dev
        for s in range(start, stop, batch_size):
            b = min(batch_size, stop - s)
            gather_rows(net.xb, net.yb, net.wb, X_d, Y_d, SW_d, order_d, s, b)
            opt[4][0] += 1
            step_opt = (opt[0], opt[1], opt[2], opt[3], int(opt[4][0]), opt[5])
            driver.train_step(net, b, int(counter[0]), float(lr), self.layer_f, self.hp, self.ranges,
                              step_opt, float(b))
            counter[0] += 1

    def train(self, params, state, X, Y, SW, orders, lrs, batch_size, counter, optimizer):
        """Epochs over `orders`; returns (losses, epochs run), stopping after a non-finite loss."""
        n = X.shape[0]
        net = self._net(batch_size, params, state)
        dev = self._upload(X, Y, SW)
        opt = self._opt(optimizer)
        orders_d = cuda.to_device(np.ascontiguousarray(orders))
        losses = np.full(orders.shape[0], np.nan)
        ran = orders.shape[0]
        for e in range(orders.shape[0]):
            fill[1, 1](net.total, 0.0)
            self._rows(net, dev, orders_d[e], 0, n, batch_size, lrs[e], counter, opt)
            losses[e] = net.total.copy_to_host()[0] / n    # the one read-back per epoch
            if not np.isfinite(losses[e]):
                ran = e + 1
                break
        self._finish(net, params, state, opt, optimizer)
        return losses, ran

    def train_rows(self, params, state, X, Y, SW, order, start, stop, batch_size, lr, counter, optimizer):
        """Batches over order[start:stop]; the sum of batch losses times batch sizes."""
        net = self._net(batch_size, params, state)
        dev = self._upload(X, Y, SW)
        opt = self._opt(optimizer)
        fill[1, 1](net.total, 0.0)
        self._rows(net, dev, cuda.to_device(np.ascontiguousarray(order)), start, stop, batch_size, lr,
                   counter, opt)
        total = float(net.total.copy_to_host()[0])
        self._finish(net, params, state, opt, optimizer)
        return total
