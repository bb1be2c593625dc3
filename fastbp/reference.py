"""The pure-NumPy backend: the algorithm written plainly, the test oracle and the speed baseline.

It reads like textbook backpropagation (and like the article's code, with its bugs fixed):
forward through every dense layer, a loss, backward through every layer, an SGD step.
It imports nothing from `fastbp.kernels`: if it shared code with them it could not check them.
Arrays keep the network's dtype throughout (NumPy keeps float32 when mixed with Python floats).
X may be a scipy CSR matrix (sparse input): scipy's products serve the first layer unchanged.
"""
from __future__ import annotations

import numpy as np

from .spec import DROP, N_UNITS


# ---- activations: forward, and backward (dA -> dZ) written from the output where cheaper ----

def _sigmoid(z):
    # -z is capped below where e^-z overflows (88 in float32, 709 in float64): past it sigmoid is
    # under 1e-38 (1e-308), and about that is what it gives. Finite for any z, in half the
    # operations of the branch-free form built on e^-|z|
    return 1 / (1 + np.exp(np.minimum(-z, 709.0 if z.dtype == np.float64 else 88.0)))


# name -> (forward(z, param), backward(dA, z, a, param)): the element-wise activations
ELEMENTWISE = {
    "linear": (lambda z, p: z.copy(), lambda dA, z, a, p: dA.copy()),
    "sigmoid": (lambda z, p: _sigmoid(z), lambda dA, z, a, p: dA * a * (1 - a)),      # sigmoid' = a (1 - a)
    "tanh": (lambda z, p: np.tanh(z), lambda dA, z, a, p: dA * (1 - a * a)),          # tanh' = 1 - a^2
    "relu": (lambda z, p: np.maximum(z, 0), lambda dA, z, a, p: dA * (z > 0)),
    "leaky_relu": (lambda z, p: np.where(z > 0, z, z * p), lambda dA, z, a, p: np.where(z > 0, dA, dA * p)),
    # for z <= 0: elu' = alpha e^z = a + alpha
    "elu": (lambda z, p: np.where(z > 0, z, p * np.expm1(np.minimum(z, 0))),
            lambda dA, z, a, p: np.where(z > 0, dA, dA * (a + p))),
    "exp": (lambda z, p: np.exp(z), lambda dA, z, a, p: dA * a),                     # exp' = exp
}


def activation_forward(name, z, param, units):
    if name in ELEMENTWISE:
        return ELEMENTWISE[name][0](z, param)
    if name == "maxout":
        # columns are grouped per unit: unit u owns columns u*pieces .. u*pieces + pieces - 1
        return z.reshape(z.shape[0], units, param).max(axis=2)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(name)


def activation_backward(name, dA, z, a, param, units):
    if name in ELEMENTWISE:
        return ELEMENTWISE[name][1](dA, z, a, param)
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
    if name in ("mse", "rmse"):
        r = a - y
        return r * r
    if name == "huber":
        r = a - y
        ar = np.abs(r)
        return np.where(ar <= param, r * r / 2, param * (ar - param / 2))
    if name == "binary_cross_entropy":
        # -y log s(z) - (1-y) log(1-s(z)) written as softplus log(1 + e^z), finite for any z
        return np.logaddexp(0, z) - z * y
    if name == "poisson":
        # half the Poisson deviance, y log(y / a) - y + a with log a = z (0 log 0 = 0)
        y_log_y = np.where(y > 0, y * np.log(np.where(y > 0, y, 1)), 0)
        return y_log_y - y * z - y + a
    raise ValueError(name)


def loss_forward(name, z, a, y, param, w=None):
    """Mean loss of the batch; w (B,) weighs each row (the mean still divides by B; None: 1)."""
    if name == "cross_entropy":
        # log-sum-exp of each row from the softmax a = softmax(z) already made: its largest entry
        # is 1 / sum(e^(z - max z)), at least 1 / K, so its log costs no precision and the
        # exponentials need not be taken again
        lse = z.max(axis=1, keepdims=True) - np.log(a.max(axis=1, keepdims=True))
        if w is None:
            return float(np.sum(y * (lse - z)) / len(y))
        return float(np.sum(w * np.sum(y * (lse - z), axis=1)) / len(y))
    each = _elementwise_loss(name, z, a, y, param)
    value = float((each if w is None else w[:, None] * each).sum() / each.size)
    return float(np.sqrt(value)) if name == "rmse" else value


def loss_backward(name, z, a, y, param, loss_value, output, output_param, w=None, one_hot=False):
    """dL/dZ for the output layer: loss derivative and output activation in one step (w: the
    rows' weights, None: 1). one_hot: y's rows are one-hot, as data.encode_targets makes every
    softmax target a network trains on, so each sums to exactly 1 (the result is the same)."""
    n = y.size  # elementwise losses average over every output of every sample
    if name == "cross_entropy":
        # softmax + cross-entropy fused: (softmax(z) * sum(y) - y) / batch
        dZ = ((a if one_hot else a * y.sum(axis=1, keepdims=True)) - y) / y.shape[0]
        return dZ if w is None else w[:, None] * dZ
    if name in ("binary_cross_entropy", "poisson"):
        dZ = (a - y) / n                   # sigmoid + BCE, exp + Poisson fused
        return dZ if w is None else w[:, None] * dZ
    w = np.ones((len(y), 1), dtype=z.dtype) if w is None else w[:, None]
    r = a - y
    if name == "mse":
        dA = 2 * r / n
    elif name == "rmse":
        dA = r / (n * loss_value) if loss_value > 0 else np.zeros_like(r)
    elif name == "huber":
        dA = np.clip(r, -param, param) / n
    else:
        raise ValueError(name)
    return activation_backward(output, w * dA, z, a, output_param, a.shape[1])


# ---- dense layers ----

def dense_forward(A, W, b):
    return A @ W + b


def dense_backward(dZ, A, W, need_dA=True, out=None):
    """(dW, db, dA) for Z = A W + b (dA None unless need_dA: the input layer needs none); `out`:
    the (dW, db) arrays to write them into (views of a gradient vector), else new ones."""
    dW, db = out if out is not None else (np.empty(W.shape, dZ.dtype), np.empty(W.shape[1], dZ.dtype))
    if hasattr(A, "indices"):    # scipy CSR input: its product makes the array
        dW[...] = A.T @ dZ
    else:
        np.matmul(A.T, dZ, out=dW)
    dZ.sum(axis=0, out=db)
    return dW, db, dZ @ W.T if need_dA else None


# ---- regularisation ----

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


def _mix64(z):
    """splitmix64's finaliser on a uint64 array (arithmetic wraps modulo 2^64)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def dropout_mask(shape, rate, key, step, layer):
    """The scaled keep-mask (0 or 1/(1-rate)) of one layer at one training step.

    A hash of (key, step, layer, row * units + unit): the kernels compute the same function,
    so both backends drop the same units."""
    seed = _mix64(np.array([(int(key) + int(step)) & _MASK64], dtype=np.uint64))
    seed = _mix64(seed + np.uint64(layer))
    index = np.arange(shape[0] * shape[1], dtype=np.uint64).reshape(shape)
    u = (_mix64(seed + index) >> np.uint64(40)).astype(np.float64) / 16777216.0
    return np.where(u >= rate, 1.0 / (1.0 - rate), 0.0)


def batchnorm_forward(Z, gamma, beta, eps):
    """Training mode: (Y, H, mean, var) with H = (Z - mean) / sqrt(var + eps), Y = gamma H + beta."""
    mean = Z.mean(axis=0)
    var = ((Z - mean) ** 2).mean(axis=0)
    H = (Z - mean) / np.sqrt(var + eps)
    return gamma * H + beta, H, mean, var


def batchnorm_backward(dY, H, var, gamma, eps):
    """(dZ, dgamma, dbeta) through batch normalisation with batch statistics."""
    B = dY.shape[0]
    dgamma, dbeta = (dY * H).sum(axis=0), dY.sum(axis=0)
    dZ = gamma / np.sqrt(var + eps) / B * (B * dY - dbeta - H * dgamma)
    return dZ, dgamma, dbeta


def penalty(params, ranges, l1, l2):
    """l1 sum|W| + l2 sum W^2 over the weight matrices, and its gradient (zero on biases)."""
    grad = np.zeros_like(params)
    value = 0.0
    for start, stop in ranges:
        w = params[start:stop]
        value += l1 * float(np.abs(w).sum(dtype=np.float64)) + l2 * float((w * w).sum(dtype=np.float64))
        grad[start:stop] = l1 * np.sign(w) + 2 * l2 * w
    return value, grad


# ---- optimizers (state arrays belong to the optimizer object; updated in place) ----

def optimizer_update(params, grads, opt, lr, only=None):
    """One step of `opt` (its name, hyper-parameters and state arrays m, v, t) at learning rate
    lr; `only`: the indexes of the parameters (and moments) it changes (a lazy step), None: all."""
    m, v, steps = opt.state_arrays()
    steps[0] += 1
    if only is None:
        _step(params, grads, m, v, opt, lr, int(steps[0]))
        return
    part = [a[only] if a.size else a for a in (params, grads, m, v)]
    _step(*part, opt, lr, int(steps[0]))
    for whole, changed in zip((params, m, v), (part[0], part[2], part[3])):
        if whole.size:
            whole[only] = changed


def _step(params, grads, m, v, opt, lr, t):
    name = opt.name
    if name == "sgd":
        params -= lr * grads
    elif name in ("momentum", "nesterov"):
        m[...] = opt.momentum * m - lr * grads
        params += opt.momentum * m - lr * grads if name == "nesterov" else m
    else:  # adam, adamw
        g = grads + opt.weight_decay * params if name == "adam" else grads
        m[...] = opt.beta1 * m + (1 - opt.beta1) * g
        v[...] = opt.beta2 * v + (1 - opt.beta2) * g * g
        m_hat = m / (1 - opt.beta1 ** t)
        v_hat = v / (1 - opt.beta2 ** t)
        if name == "adamw":
            params -= lr * opt.weight_decay * params
        params -= lr * m_hat / (np.sqrt(v_hat) + opt.eps)


# ---- the backend ----

class NumpyBackend:
    """Every Network operation, in plain NumPy. `params` and `state` are the network's flat
    parameter and batch-norm running-statistics vectors."""

    name = "numpy"

    def __init__(self, spec, dtype, drop_key):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.drop_key = int(drop_key)
        self.units = [int(r[N_UNITS]) for r in spec.layers]
        # dropout rates as the kernels see them (rounded to the dtype), so the masks agree exactly
        self.rates = [float(r) for r in spec.layer_floats(self.dtype)[:, DROP]]
        self.penalised = spec.l1 > 0 or spec.l2 > 0

    def _layers(self, vec):
        """[(W, b, gamma, beta), ...] per layer as views into a flat vector (None, None without
        batch norm)."""
        bn = iter(self.spec.bn_views(vec))
        return [(W, b, *(next(bn) if self.spec.batch_norm[l] else (None, None)))
                for l, (W, b) in enumerate(self.spec.views(vec))]

    def _forward(self, layers, running, X, batch_stats=False, dropout_step=None, update_stats=False):
        """[(Z, A, A_out, H, var), ...] per layer: Z the activation's input (after batch norm),
        A its output, A_out what the next layer reads (after dropout); H and var the normalised
        pre-activation and batch variance of a batch-norm layer (else None). `layers` and
        `running` are views of the parameter and state vectors (`_layers`, spec.state_views)."""
        spec, out, A_in = self.spec, [], X
        running = iter(running)
        for l, (W, b, gamma, beta) in enumerate(layers):
            Z = dense_forward(A_in, W, b)
            H = var = None
            if gamma is not None:
                run_mean, run_var = next(running)
                if batch_stats:
                    Z, H, mean, var = batchnorm_forward(Z, gamma, beta, spec.bn_eps)
                    if update_stats:
                        m, n = spec.bn_momentum, Z.shape[0]
                        run_mean[...] = m * run_mean + (1 - m) * mean
                        run_var[...] = m * run_var + (1 - m) * var * (n / (n - 1) if n > 1 else 1)
                else:
                    Z = gamma * (Z - run_mean) / np.sqrt(run_var + spec.bn_eps) + beta
            A = activation_forward(spec.activations[l], Z, spec.act_params[l], self.units[l])
            A_out = A
            if dropout_step is not None and self.rates[l] > 0:
                mask = dropout_mask(A.shape, self.rates[l], self.drop_key, dropout_step, l)
                A_out = A * mask.astype(A.dtype)
            out.append((Z, A, A_out, H, var))
            A_in = A_out
        return out

    def predict(self, params, state, X):
        return self._forward(self._layers(params), self.spec.state_views(state), X)[-1][1]

    def loss(self, params, state, X, Y):
        spec = self.spec
        Z, A = self._forward(self._layers(params), spec.state_views(state), X)[-1][:2]
        data_loss = loss_forward(spec.loss, Z, A, Y, spec.loss_param)
        return data_loss + (penalty(params, spec.weight_ranges, spec.l1, spec.l2)[0] if self.penalised else 0.0)

    def loss_and_gradients(self, params, state, X, Y, dropout_step=None, SW=None, update_stats=False):
        """Loss and gradient of X as one training batch (batch statistics for batch norm;
        dropout only when dropout_step is given), sample weights SW scaling each row (None: 1)."""
        grads = np.empty_like(params)
        loss = self._gradients(self._layers(params), self._layers(grads), self.spec.state_views(state),
                               X, Y, dropout_step, SW, update_stats)
        if self.penalised:
            value, pgrad = penalty(params, self.spec.weight_ranges, self.spec.l1, self.spec.l2)
            loss, grads = loss + value, grads + pgrad
        return loss, grads

    def _gradients(self, layers, glayers, running, X, Y, dropout_step, SW, update_stats):
        """The data loss of X as one batch; its gradient written into the views `glayers`."""
        spec = self.spec
        cache = self._forward(layers, running, X, True, dropout_step, update_stats)
        Z, A = cache[-1][:2]
        loss = loss_forward(spec.loss, Z, A, Y, spec.loss_param, SW)
        dZ = loss_backward(spec.loss, Z, A, Y, spec.loss_param, loss, spec.output, spec.act_params[-1], SW,
                           one_hot=True)   # (Network's targets: data.encode_targets)
        for l in range(spec.n_layers - 1, -1, -1):
            W, _, gamma, _ = layers[l]
            dW, db, dgamma, dbeta = glayers[l]
            H, var = cache[l][3:]
            if gamma is not None:
                dZ, dgamma[...], dbeta[...] = batchnorm_backward(dZ, H, var, gamma, spec.bn_eps)
            A_in = cache[l - 1][2] if l > 0 else X
            dA_in = dense_backward(dZ, A_in, W, l > 0, out=(dW, db))[2]
            if gamma is not None:
                # after batch norm the dense bias has no effect (the mean is subtracted): its exact
                # gradient is 0, where the computed sum is rounding noise that Adam would amplify
                db[...] = 0
            if l > 0:
                Zp, Ap = cache[l - 1][:2]
                if dropout_step is not None and self.rates[l - 1] > 0:
                    mask = dropout_mask(dA_in.shape, self.rates[l - 1], self.drop_key, dropout_step, l - 1)
                    dA_in = dA_in * mask.astype(dA_in.dtype)
                dZ = activation_backward(spec.activations[l - 1], dA_in, Zp, Ap,
                                         spec.act_params[l - 1], self.units[l - 1])
        return loss

    def train_rows(self, params, state, X, Y, SW, order, start, stop, batch_size, lr, counter, optimizer):
        """Mini-batches over the rows order[start:stop]: forward, backward, penalties, gradient
        clipping, optimizer step. Returns the sum of batch losses times batch sizes; counter[0]
        counts steps (it keys the dropout masks)."""
        return self._rows(self._views(params, state, SW), params, X, Y, SW, order, start, stop,
                          batch_size, lr, counter, optimizer)

    def _views(self, params, state, SW):
        """What every batch of a fit reuses, made once rather than per batch: views of the
        parameters, of a gradient vector and of the running statistics, and whether the sample
        weights are other than 1 (the usual all-ones weights are skipped, not multiplied in)."""
        grads = np.empty_like(params)
        return (grads, self._layers(params), self._layers(grads), self.spec.state_views(state),
                not np.all(SW == 1))

    def _rows(self, views, params, X, Y, SW, order, start, stop, batch_size, lr, counter, optimizer):
        grads, layers, glayers, running, weighted = views
        lazy = optimizer.lazy and hasattr(X, "indices")   # scipy CSR: a sparse batch
        total, step, lr = 0.0, int(counter[0]), float(lr)
        for s in range(start, stop, batch_size):
            idx = order[s:min(s + batch_size, stop)]
            loss = self._gradients(layers, glayers, running, X[idx], Y[idx], step,
                                   SW[idx] if weighted else None, True)
            if self.penalised:
                value, pgrad = penalty(params, self.spec.weight_ranges, self.spec.l1, self.spec.l2)
                loss += value
                grads += pgrad
            if optimizer.clip_norm:
                norm = np.sqrt(np.sum(grads.astype(np.float64) ** 2))
                if norm > optimizer.clip_norm:
                    grads *= optimizer.clip_norm / norm
            optimizer_update(params, grads, optimizer, lr, self._touched(X[idx]) if lazy else None)
            step += 1
            counter[0] = step
            total += loss * len(idx)
        return total

    def _touched(self, Xb):
        """The parameter indexes a lazy step on the sparse batch Xb changes: every one but the
        rows of the first W that no column of the batch uses."""
        index = np.arange(self.spec.n_params)
        keep = np.ones(self.spec.n_params, dtype=bool)
        W0 = self.spec.views(index)[0][0]
        keep[W0.ravel()] = False
        keep[W0[np.unique(Xb.indices)].ravel()] = True
        return np.flatnonzero(keep)

    def prepare(self, params, state, X, Y, SW, batch_size, counter, optimizer, by_batch, epochs=1):
        """Nothing to compile (the cpu backend compiles its drivers here)."""

    def train(self, params, state, X, Y, SW, orders, lrs, batch_size, counter, optimizer):
        """One epoch per row of `orders` (a permutation of the rows) at rate lrs[e]. Returns each
        epoch's mean loss and how many epochs ran (it stops after a non-finite loss)."""
        losses = np.full(len(orders), np.nan)
        views = self._views(params, state, SW)
        for e, order in enumerate(orders):
            losses[e] = self._rows(views, params, X, Y, SW, order, 0, len(order), batch_size,
                                   lrs[e], counter, optimizer) / len(order)
            if not np.isfinite(losses[e]):
                return losses, e + 1
        return losses, len(orders)
