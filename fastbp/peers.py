"""The workloads of WORKLOADS.md trained by other implementations, to time fastbp against.

Every peer trains the same problem (`Problem`): fastbp's initial weights for the workload's
network and seed, and the epoch orders a fastbp fit with that seed draws, plain mini-batch SGD
(or, with `features`, Adam with dropout and batch norm, where the peer offers them), the last
partial batch included. A peer is set up once (data in its own format, compiled where
it compiles: untimed), then `reset()` (untimed) and `fit()` (timed) as often as wanted;
`predict(X)` gives class labels, so that a fast wrong answer shows beside its time.

PyTorch, JAX and scikit-learn are imported inside their peer, never by fastbp itself
(`pip install 'fastbp[peers]'` installs them); `missing(peer)` says why a peer cannot run here.
The lean NumPy loop is the baseline a user would write by hand: the article's loop with its bugs
fixed, and nothing else.
"""
from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .data import epoch_orders
from .network import Network, seed_streams
from .workloads import fastest


@dataclass(frozen=True)
class Problem:
    X: np.ndarray            # (n, d) in the workload's dtype
    y: np.ndarray            # (n,) int64 class labels (0/1 for a single sigmoid output)
    weights: list            # [(W (n_in, n_out), b), ...]: fastbp's initialisation
    orders: np.ndarray       # (epochs, n): the rows of each epoch, in order
    sizes: tuple
    hidden: str              # "relu" or "sigmoid"
    batch_size: int
    lr: float
    seed: int
    features: bool = False   # Adam (lr 0.001), dropout 0.2 and batch norm on every hidden layer

    @property
    def binary(self):
        return self.sizes[-1] == 1

    @property
    def dtype(self):
        return self.X.dtype


def problem(workload, dtype="float32", seed=0, features=False):
    """The workload's fit as every peer sees it; with features, the workload's training-features
    variant (workloads.Workload.fit_args): Adam, dropout 0.2 and batch norm on every hidden
    layer, which only the peers whose class sets `features` offer (fastbp, PyTorch)."""
    X, y = workload.data(dtype)
    weights = workload.network("numpy", dtype, seed=seed).get_weights()
    orders = epoch_orders(seed_streams(seed)[1], len(X), workload.epochs, True)
    return Problem(X, np.asarray(y, dtype=np.int64), weights, orders, tuple(workload.sizes),
                   workload.hidden, workload.batch_size, workload.fit_args(features)["lr"], seed, features)


def time_peer(peer, p, repeats=3, least=0.0):
    """(minimum wall time of the warm fits, training accuracy after the last) of a peer on
    problem p: workloads.fastest's count of fits (at least `repeats`, more until `least`
    seconds). Setting up (compiling) is not timed."""
    peer.setup(p)

    def one():
        peer.reset()
        t0 = time.perf_counter()
        peer.fit()
        return time.perf_counter() - t0
    return fastest(one, repeats, least), accuracy(peer, p)


def accuracy(peer, p):
    """Training accuracy of the peer's current weights on the problem's data."""
    return float(np.mean(peer.predict(p.X) == p.y))


# ---- fastbp itself ----

class Fastbp:
    """A fastbp Network on the given backend ("cpu" or "numpy"): the same seed gives the same
    initial weights and epoch orders as the problem's."""
    features = True

    def __init__(self, backend):
        self.backend = backend
        self.name = "fastbp " + backend if backend == "cpu" else "numpy backend"

    def setup(self, p):
        self.p = p
        self._make().fit(p.X, p.y, **self._fit_args(epochs=1))   # compiles (cpu backend)
        self.reset()

    def _make(self):
        p = self.p
        extra = dict(dropout=0.2, batch_norm=True) if p.features else {}
        return Network(list(p.sizes), hidden=p.hidden, output="sigmoid" if p.binary else "softmax",
                       dtype=p.dtype, seed=p.seed, backend=self.backend, **extra)

    def _fit_args(self, epochs):
        return dict(epochs=epochs, batch_size=self.p.batch_size, lr=self.p.lr, shuffle=True, verbose=0,
                    optimizer="adam" if self.p.features else "sgd")

    def reset(self):
        self.net = self._make()

    def fit(self):
        self.net.fit(self.p.X, self.p.y, **self._fit_args(len(self.p.orders)))

    def predict(self, X):
        return self.net.predict_classes(X)


# ---- the lean NumPy loop ----

def lean_sgd(X, y, weights, orders, batch_size, lr, hidden):
    """Plain mini-batch SGD in NumPy, as a user writes it: forward, softmax cross-entropy (one
    sigmoid output with binary cross-entropy), backward, update. Trains the (W, b) pairs of
    `weights` in place and returns each epoch's mean loss."""
    n_out = weights[-1][0].shape[1]
    Y = y.reshape(-1, 1).astype(X.dtype) if n_out == 1 else np.eye(n_out, dtype=X.dtype)[y]
    relu = hidden == "relu"
    last = len(weights) - 1
    losses = np.zeros(len(orders))
    for e, order in enumerate(orders):
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            acts = [X[idx]]
            for W, b in weights[:-1]:
                z = acts[-1] @ W + b
                acts.append(np.maximum(z, 0) if relu else 1 / (1 + np.exp(-z)))
            z = acts[-1] @ weights[-1][0] + weights[-1][1]
            Yb = Y[idx]
            if n_out == 1:
                p = 1 / (1 + np.exp(-z))
                losses[e] += np.sum(np.logaddexp(0, z) - z * Yb)
            else:
                m = z.max(axis=1, keepdims=True)
                ez = np.exp(z - m)
                total = ez.sum(axis=1, keepdims=True)
                p = ez / total
                losses[e] += np.sum(Yb * (m + np.log(total) - z))
            dZ = (p - Yb) / len(idx)
            for l in range(last, -1, -1):
                W, b = weights[l]
                dW, db = acts[l].T @ dZ, dZ.sum(axis=0)
                if l:
                    dA = dZ @ W.T
                    dZ = dA * (acts[l] > 0) if relu else dA * acts[l] * (1 - acts[l])
                W -= lr * dW
                b -= lr * db
        losses[e] /= len(order)
    return losses


def lean_predict(X, weights, hidden):
    A = X
    for W, b in weights[:-1]:
        z = A @ W + b
        A = np.maximum(z, 0) if hidden == "relu" else 1 / (1 + np.exp(-z))
    z = A @ weights[-1][0] + weights[-1][1]
    return (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else z.argmax(axis=1)


class Lean:
    name = "lean NumPy"

    def setup(self, p):
        self.p = p
        self.reset()

    def reset(self):
        self.weights = [(W.copy(), b.copy()) for W, b in self.p.weights]

    def fit(self):
        p = self.p
        return lean_sgd(p.X, p.y, self.weights, p.orders, p.batch_size, p.lr, p.hidden)

    def predict(self, X):
        return lean_predict(X, self.weights, self.p.hidden)


# ---- PyTorch ----

class Torch:
    """nn.Sequential of nn.Linear, torch.optim.SGD, on all threads. compiled: the training step
    (forward, loss, backward, update) through torch.compile, compiled in setup for both batch
    shapes (full and last partial) and reused. With the problem's features: each hidden layer
    Linear, BatchNorm1d (fastbp's momentum and eps), the activation, Dropout(0.2), and Adam.
    device: where the model and data live ("cpu", or "cuda" for scripts/gpu_check.sh); a fit ends
    by reading its loss back, which waits for the device."""
    requires = "torch"
    features = True

    def __init__(self, compiled=False, device="cpu"):
        self.compiled, self.device = compiled, device
        self.name = "torch.compile" if compiled else "PyTorch eager"

    def setup(self, p):
        import torch
        self.torch, self.p = torch, p
        dt = torch.float64 if p.dtype == np.float64 else torch.float32
        layers = []
        for W, _ in p.weights:
            layers.append(torch.nn.Linear(*W.shape, dtype=dt))
            if W is p.weights[-1][0]:
                break
            if p.features:   # fastbp's running mean is m * old + (1 - m) * new, with m = 0.99
                layers.append(torch.nn.BatchNorm1d(W.shape[1], eps=1e-5, momentum=0.01, dtype=dt))
            layers.append(torch.nn.ReLU() if p.hidden == "relu" else torch.nn.Sigmoid())
            if p.features:
                layers.append(torch.nn.Dropout(0.2))
        self.model = torch.nn.Sequential(*layers).to(self.device)
        self.X = torch.from_numpy(p.X).to(self.device)
        if p.binary:
            self.loss_fn = torch.nn.BCEWithLogitsLoss()
            self.Y = torch.from_numpy(p.y.astype(p.dtype).reshape(-1, 1)).to(self.device)
        else:
            self.loss_fn = torch.nn.CrossEntropyLoss()
            self.Y = torch.from_numpy(p.y).to(self.device)
        self.orders = torch.from_numpy(p.orders).to(self.device)
        self.opt = (torch.optim.Adam if p.features else torch.optim.SGD)(self.model.parameters(), lr=p.lr)
        self.step = torch.compile(self._step) if self.compiled else self._step
        self.reset()
        self.fit()   # warm: compiles each batch shape once
        self.reset()

    def _step(self, xb, yb):
        loss = self.loss_fn(self.model(xb), yb)
        self.opt.zero_grad(set_to_none=False)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def reset(self):
        torch = self.torch
        with torch.no_grad():
            linears = [m for m in self.model if isinstance(m, torch.nn.Linear)]
            for lin, (W, b) in zip(linears, self.p.weights):
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(torch.from_numpy(b))
            for m in self.model:
                if isinstance(m, torch.nn.BatchNorm1d):
                    m.reset_parameters()
                    m.reset_running_stats()
        self.opt.state.clear()   # Adam's moments start again with the weights
        self.model.train()

    def fit(self):
        B = self.p.batch_size
        total = self.torch.zeros((), dtype=self.X.dtype, device=self.device)
        for order in self.orders:
            for s in range(0, len(order), B):
                idx = order[s:s + B]
                total += self.step(self.X[idx], self.Y[idx]) * len(idx)
        return float(total) / self.orders.numel()

    def predict(self, X):
        self.model.eval()
        with self.torch.no_grad():
            z = self.model(self.torch.from_numpy(X).to(self.device)).cpu().numpy()
        self.model.train()
        return (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else z.argmax(axis=1)


# ---- JAX ----

class Jax:
    """One jitted program per epoch (a `lax.scan` over the full batches, then the last partial
    batch), or with whole_fit, one program for every epoch; compiled in setup and reused, timed
    to `block_until_ready`."""
    requires = "jax"

    def __init__(self, whole_fit=False):
        self.whole_fit = whole_fit
        self.name = "JAX, one program" if whole_fit else "JAX jit + scan"

    def setup(self, p):
        import jax
        if p.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        self.jax, self.p = jax, p
        act = jax.nn.relu if p.hidden == "relu" else jax.nn.sigmoid
        B, n = p.batch_size, p.X.shape[0]
        full = n // B * B

        def loss(params, xb, yb):
            a = xb
            for W, b in params[:-1]:
                a = act(a @ W + b)
            z = a @ params[-1][0] + params[-1][1]
            if p.binary:
                return jnp.mean(jnp.logaddexp(0, z[:, 0]) - z[:, 0] * yb)
            return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, yb[:, None], 1)[:, 0])

        grad = jax.value_and_grad(loss)

        def step(params, xb, yb):
            value, g = grad(params, xb, yb)
            return jax.tree_util.tree_map(lambda w, d: w - p.lr * d, params, g), value * xb.shape[0]

        def epoch(params, order, X, Y):
            def body(params, rows):
                return step(params, X[rows], Y[rows])
            params, values = jax.lax.scan(body, params, order[:full].reshape(-1, B))
            total = values.sum()
            if full < n:
                params, value = step(params, X[order[full:]], Y[order[full:]])
                total = total + value
            return params, total / n

        if self.whole_fit:
            self.run = jax.jit(lambda params, orders, X, Y: jax.lax.scan(
                lambda q, order: epoch(q, order, X, Y), params, orders))
        else:
            self.run = jax.jit(epoch)
        self.X = jnp.asarray(p.X)
        self.Y = jnp.asarray(p.y.astype(p.dtype) if p.binary else p.y.astype(np.int32))
        self.orders = jnp.asarray(p.orders.astype(np.int32))
        self.reset()
        self.fit()   # compiles
        self.reset()

    def reset(self):
        self.params = [(self.jax.numpy.asarray(W), self.jax.numpy.asarray(b)) for W, b in self.p.weights]

    def fit(self):
        if self.whole_fit:
            self.params, losses = self.run(self.params, self.orders, self.X, self.Y)
        else:
            for order in self.orders:
                self.params, loss = self.run(self.params, order, self.X, self.Y)
        self.jax.block_until_ready(self.params)

    def predict(self, X):
        return lean_predict(X, [(np.asarray(W), np.asarray(b)) for W, b in self.params], self.p.hidden)


# ---- scikit-learn ----

class Sklearn:
    """MLPClassifier with plain SGD (no momentum, no L2), the same batch size, rate and epochs.
    It draws its own initial weights and shuffles: it takes neither from outside."""
    requires = "sklearn"
    name = "scikit-learn"

    def setup(self, p):
        from sklearn.neural_network import MLPClassifier
        self.p = p
        self.model = MLPClassifier(
            hidden_layer_sizes=p.sizes[1:-1], activation="relu" if p.hidden == "relu" else "logistic",
            solver="sgd", alpha=0.0, batch_size=p.batch_size, learning_rate_init=p.lr, momentum=0.0,
            nesterovs_momentum=False, max_iter=len(p.orders), shuffle=True, tol=0.0,
            n_iter_no_change=len(p.orders) + 1, random_state=p.seed)

    def reset(self):
        pass

    def fit(self):
        from sklearn.exceptions import ConvergenceWarning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self.p.X, self.p.y)

    def predict(self, X):
        return self.model.predict(X)


def all_peers():
    """name -> a fresh peer, in the table's column order."""
    peers = [Lean(), Fastbp("numpy"), Jax(), Jax(whole_fit=True), Torch(compiled=True), Torch(),
             Sklearn(), Fastbp("cpu")]
    return {p.name: p for p in peers}


def missing(peer):
    """Why the peer cannot run here (its package is not installed), or None."""
    module = getattr(peer, "requires", None)
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return f"{module} is not installed (pip install 'fastbp[peers]')"
