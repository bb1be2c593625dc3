"""CpuBackend: reference.NumpyBackend's methods, computed by the compiled drivers.

Workspaces are kept per row capacity, so repeated fits with one batch size allocate nothing.
"""
import numpy as np

from ... import config
from . import driver
from .losses import loss_divisor, RMSE


class CpuBackend:
    name = "cpu"

    def __init__(self, spec, dtype):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.layers = np.ascontiguousarray(spec.layers)
        self.act_params = spec.act_param_array(self.dtype)
        self.grads = np.zeros(spec.n_params, dtype=self.dtype)
        self._workspaces = {}

    def workspace(self, cap):
        ws = self._workspaces.get(cap)
        if ws is None:
            # keep at most a training and an evaluation workspace alive
            if len(self._workspaces) >= 2:
                self._workspaces.pop(next(iter(self._workspaces)))
            ws = self._workspaces[cap] = driver.Workspace(self.spec, cap, self.dtype)
        return ws.arrays()

    def _eval_ws(self, n):
        return self.workspace(max(1, min(n, config.EVAL_CHUNK)))

    def predict(self, params, X):
        out = np.empty((X.shape[0], self.spec.n_out), dtype=self.dtype)
        driver.predict_into(out, X, params, self.layers, self.act_params, self._eval_ws(X.shape[0]))
        return out

    def loss(self, params, X, Y):
        spec = self.spec
        total = driver.loss_total(X, Y, params, self.layers, self.act_params, spec.loss_code,
                                  spec.loss_param, self._eval_ws(X.shape[0]))
        mean = total / loss_divisor(spec.loss_code, X.shape[0], Y.shape[1])
        return float(np.sqrt(mean)) if spec.loss_code == RMSE else float(mean)

    def loss_and_gradients(self, params, X, Y):
        spec = self.spec
        grads = np.zeros_like(params)
        ws = driver.Workspace(spec, X.shape[0], self.dtype).arrays()  # one block of all rows
        value = driver.loss_and_gradients(X, Y, params, grads, self.layers, self.act_params,
                                          spec.loss_code, spec.loss_param, ws)
        return float(value), grads

    def train(self, params, X, Y, orders, batch_size, lr):
        spec = self.spec
        losses = np.empty(orders.shape[0], dtype=np.float64)
        driver.train_epochs(params, self.grads, self.layers, self.act_params, spec.loss_code,
                            spec.loss_param, X, Y, orders, batch_size, float(lr),
                            self.workspace(batch_size), losses)
        return losses
