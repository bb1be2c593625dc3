"""The pure-NumPy backend: the algorithm written plainly, the test oracle and the speed baseline.

It reads like textbook backpropagation (and like the article's code, with its bugs fixed):
forward through every dense layer, a loss, backward through every layer, an SGD step.
It imports nothing from `fastbp.kernels`: if it shared code with them it could not check them.
Arrays keep the network's dtype throughout (NumPy keeps float32 when mixed with Python floats).
"""
from __future__ import annotations

import numpy as np

from .spec import N_UNITS, PIECES


# ---- activations: forward, and backward (dA -> dZ) written from the output where cheaper ----

def _sigmoid(z):
    # exp of a non-positive number never overflows, so this is finite for any z
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def activation_forward(name, z, param, units):
    if name == "linear":
        return z.copy()
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, z * param)
    if name == "elu":
        return np.where(z > 0, z, param * np.expm1(np.minimum(z, 0)))
    if name == "maxout":
        # columns are grouped per unit: unit u owns columns u*pieces .. u*pieces + pieces - 1
        return z.reshape(z.shape[0], units, param).max(axis=2)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(name)


def activation_backward(name, dA, z, a, param, units):
    if name == "linear":
        return dA.copy()
    if name == "sigmoid":
        return dA * a * (1 - a)            # sigmoid' = a (1 - a)
    if name == "tanh":
        return dA * (1 - a * a)            # tanh' = 1 - a^2
    if name == "relu":
        return dA * (z > 0)
    if name == "leaky_relu":
        return np.where(z > 0, dA, dA * param)
    if name == "elu":
        return np.where(z > 0, dA, dA * (a + param))   # for z <= 0: elu' = alpha e^z = a + alpha
    if name == "maxout":
        # the gradient flows only to the winning piece (the first, on ties)
        zz = z.reshape(z.shape[0], units, param)
        win = zz.argmax(axis=2)
        dz = np.zeros_like(zz)
        np.put_along_axis(dz, win[:, :, None], dA[:, :, None], axis=2)
        return dz.reshape(z.shape)
    raise ValueError(f"{name} has no standalone backward (softmax is fused with cross_entropy)")


# ---- losses: the mean over the batch, and its gradient with respect to the output pre-activation ----

def _elementwise_loss(name, z, a, y, param):
    r = a - y
    if name in ("mse", "rmse"):
        return r * r
    if name == "huber":
        ar = np.abs(r)
        return np.where(ar <= param, r * r / 2, param * (ar - param / 2))
    if name == "binary_cross_entropy":
        # -y log s(z) - (1-y) log(1-s(z)) written as softplus, finite for any z
        return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    raise ValueError(name)


def loss_forward(name, z, a, y, param):
    if name == "cross_entropy":
        m = z.max(axis=1, keepdims=True)
        lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        return float(np.mean(np.sum(y * (lse - z), axis=1)))
    value = float(np.mean(_elementwise_loss(name, z, a, y, param)))
    return float(np.sqrt(value)) if name == "rmse" else value


def loss_backward(name, z, a, y, param, loss_value, output, output_param):
    """dL/dZ for the output layer: loss derivative and output activation in one step."""
    n = y.size  # elementwise losses average over every output of every sample
    if name == "cross_entropy":
        # softmax + cross-entropy fused: (softmax(z) * sum(y) - y) / batch
        return (a * y.sum(axis=1, keepdims=True) - y) / y.shape[0]
    if name == "binary_cross_entropy":
        return (a - y) / n                 # sigmoid + BCE fused
    r = a - y
    if name == "mse":
        dA = 2 * r / n
    elif name == "rmse":
        dA = r / (n * loss_value) if loss_value > 0 else np.zeros_like(r)
    elif name == "huber":
        dA = np.clip(r, -param, param) / n
    else:
        raise ValueError(name)
    return activation_backward(output, dA, z, a, output_param, a.shape[1])


# ---- dense layers ----

def dense_forward(A, W, b):
    return A @ W + b


def dense_backward(dZ, A, W):
    """(dW, db, dA) for Z = A W + b."""
    return A.T @ dZ, dZ.sum(axis=0), dZ @ W.T


# ---- the backend ----

class NumpyBackend:
    """Every Network operation, in plain NumPy. Parameters are the network's flat vector."""

    name = "numpy"

    def __init__(self, spec, dtype):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.units = [int(r[N_UNITS]) for r in spec.layers]
        self.pieces = [int(r[PIECES]) for r in spec.layers]

    def _forward(self, params, X):
        """[(Z, A), ...] per layer."""
        spec, out, A = self.spec, [], X
        for (W, b), act, p, units in zip(spec.views(params), spec.activations, spec.act_params, self.units):
            Z = dense_forward(A, W, b)
            A = activation_forward(act, Z, p, units)
            out.append((Z, A))
        return out

    def predict(self, params, X):
        return self._forward(params, X)[-1][1]

    def loss(self, params, X, Y):
        Z, A = self._forward(params, X)[-1]
        return loss_forward(self.spec.loss, Z, A, Y, self.spec.loss_param)

    def loss_and_gradients(self, params, X, Y):
        spec = self.spec
        cache = self._forward(params, X)
        Z, A = cache[-1]
        loss = loss_forward(spec.loss, Z, A, Y, spec.loss_param)
        dZ = loss_backward(spec.loss, Z, A, Y, spec.loss_param, loss, spec.output, spec.act_params[-1])
        grads = np.empty_like(params)
        views = spec.views(params)
        for l in range(spec.n_layers - 1, -1, -1):
            A_prev = cache[l - 1][1] if l > 0 else X
            dW, db, dA_prev = dense_backward(dZ, A_prev, views[l][0])
            gW, gb = spec.views(grads)[l]
            gW[...] = dW
            gb[...] = db
            if l > 0:
                Zp, Ap = cache[l - 1]
                dZ = activation_backward(spec.activations[l - 1], dA_prev, Zp, Ap,
                                         spec.act_params[l - 1], self.units[l - 1])
        return loss, grads

    def train(self, params, X, Y, orders, batch_size, lr):
        """Mini-batch SGD, one epoch per row of `orders` (a permutation of the sample indices).

        Updates `params` in place; returns each epoch's mean training loss (batch losses weighted
        by batch size). The last, partial batch is used too.
        """
        n = X.shape[0]
        losses = np.empty(len(orders))
        for e, order in enumerate(orders):
            total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                loss, grads = self.loss_and_gradients(params, X[idx], Y[idx])
                params -= lr * grads
                total += loss * len(idx)
            losses[e] = total / n
        return losses
