"""Network: the public object. It validates, owns the parameters and the random stream, and
hands arrays to a backend ("cpu": the Numba kernels, "numpy": the reference). No math here.
"""
from __future__ import annotations

import time

import numpy as np

from . import data
from .spec import did_you_mean, init_params, make_spec, set_flat

BACKENDS = ("cpu", "numpy")
DTYPES = {"float32": np.float32, "float64": np.float64}


def _make_backend(name, spec, dtype):
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}."
                         + did_you_mean(name, BACKENDS))
    if name == "numpy":
        from .reference import NumpyBackend
        return NumpyBackend(spec, dtype)
    from .kernels.cpu import CpuBackend   # imported lazily: numba loads only when used
    return CpuBackend(spec, dtype)


def _check_dtype(dtype):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return np.dtype(name)


class History:
    """What fit returns: `history` maps each figure ("loss", "val_loss", ...) to per-epoch lists."""

    def __init__(self):
        self.history = {"loss": []}
        self.epoch = []

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class Network:
    """A fully-connected network trained by backpropagation.

    sizes: input, hidden and output widths, e.g. [64, 128, 10].
    hidden: one activation for every hidden layer, or a list with one per hidden layer. A name
        ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout") or a (name, params)
        tuple: ("leaky_relu", {"slope": 0.1}), ("elu", {"alpha": 0.5}), ("maxout", {"pieces": 3}).
    output: "linear", "sigmoid", "tanh" or "softmax".
    loss: "mse", "rmse", "huber" (or ("huber", {"delta": 2.0})), "binary_cross_entropy" (sigmoid
        output), "cross_entropy" (softmax output); "auto" picks the natural loss of the output.
    dtype: "float32" or "float64". seed: an int for reproducible initialisation and shuffling.
    init: "auto" (He for the relu family, Glorot otherwise), "he", "glorot", "normal", or a list
        of (W, b) pairs with W of shape (n_in, n_out).
    backend: "cpu" (compiled Numba kernels) or "numpy" (the pure-NumPy reference).
    """

    def __init__(self, sizes, hidden="relu", output="softmax", loss="auto", dtype="float32",
                 seed=None, init="auto", backend="cpu"):
        self.spec = make_spec(sizes, hidden, output, loss)
        self.dtype = _check_dtype(dtype)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = seed
        # independent streams, so the shuffles do not depend on how the weights were initialised
        init_seq, shuffle_seq = np.random.SeedSequence(seed).spawn(2)
        self._rng = np.random.default_rng(shuffle_seq)
        self._params = init_params(self.spec, init, np.random.default_rng(init_seq), self.dtype)
        self.backend = backend
        self._backend = _make_backend(backend, self.spec, self.dtype)

    # ---- description ----
    @property
    def sizes(self):
        return list(self.spec.sizes)

    @property
    def n_params(self):
        return self.spec.n_params

    def __repr__(self):
        s = self.spec
        return (f"Network({list(s.sizes)}, hidden={list(s.activations[:-1])}, output={s.output!r}, "
                f"loss={s.loss!r}, dtype={self.dtype.name!r}, backend={self.backend!r})")

    # ---- parameters ----
    def get_weights(self):
        """[(W, b), ...] per layer, copies; W has shape (n_in, n_out)."""
        return [(w.copy(), b.copy()) for w, b in self.spec.views(self._params)]

    def set_weights(self, weights):
        """Replace every layer's (W, b); shapes are checked, values cast to the network's dtype."""
        set_flat(self.spec, self._params, weights)

    # ---- evaluation ----
    def _X(self, X, name="X"):
        return data.check_X(X, self.spec.n_in, self.dtype, name)

    def _XY(self, X, y, xname="X", yname="y"):
        X = self._X(X, xname)
        return X, data.encode_targets(y, self.spec, self.dtype, X.shape[0], yname)

    def predict(self, X):
        """Output-layer activations, shape (n, n_out), in the network's dtype."""
        return self._backend.predict(self._params, self._X(X))

    def loss(self, X, y):
        """Mean loss over X."""
        return self._backend.loss(self._params, *self._XY(X, y))

    def score(self, X, y):
        """Accuracy for sigmoid/softmax outputs, R^2 (averaged over outputs) for linear/tanh."""
        X, Y = self._XY(X, y)
        return self._score(X, Y)

    def _score(self, X, Y):
        P = self._backend.predict(self._params, X)
        if self.spec.output == "softmax":
            return float(np.mean(P.argmax(axis=1) == Y.argmax(axis=1)))
        if self.spec.output == "sigmoid":
            return float(np.mean(np.all((P > 0.5) == (Y > 0.5), axis=1)))
        ss_res = ((Y - P) ** 2).sum(axis=0, dtype=np.float64)
        ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0, dtype=np.float64)
        # a constant target: R^2 is 1 if predicted exactly, else 0 (scikit-learn's convention)
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), (ss_res == 0) * 1.0)
        return float(r2.mean())

    def gradients(self, X, y):
        """[(dW, db), ...]: the gradient of the mean loss over X; the weights are not changed."""
        _, grads = self._backend.loss_and_gradients(self._params, *self._XY(X, y))
        return self.spec.views(grads)

    # ---- training ----
    def fit(self, X, y, epochs=1, batch_size=32, lr=0.1, shuffle=True, validation_split=0.0,
            validation_data=None, verbose=0):
        """Mini-batch SGD. Returns a History; `history.history["loss"]` has each epoch's mean
        training loss (batch losses before their update, weighted by batch size)."""
        epochs = data.check_positive_int(epochs, "epochs")
        batch_size = data.check_positive_int(batch_size, "batch_size")
        lr = data.check_positive_float(lr, "lr")
        X, Y = self._XY(X, y)
        Xv = Yv = None
        if validation_data is not None:
            try:
                vx, vy = validation_data
            except (TypeError, ValueError):
                raise TypeError("validation_data must be a (X_val, y_val) pair") from None
            Xv, Yv = self._XY(vx, vy, "validation_data X", "validation_data y")
        elif validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
            # Keras convention: the last fraction of the rows, taken before any shuffling
            split = int(X.shape[0] * (1 - validation_split))
            if split < 1 or split == X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves an empty training or "
                                 f"validation set for {X.shape[0]} rows")
            X, Xv, Y, Yv = X[:split], X[split:], Y[:split], Y[split:]

        history = History()
        if Xv is not None:
            history.history.update(val_loss=[], val_score=[])
        # Without per-epoch work in Python, many epochs run in one compiled call.
        per_call = 1 if (Xv is not None or verbose) else epochs
        n, done = X.shape[0], 0
        while done < epochs:
            for k in data.epoch_chunks(n, min(per_call, epochs - done)):
                t0 = time.perf_counter()
                orders = data.epoch_orders(self._rng, n, k, shuffle)
                saved = self._params.copy()
                losses = self._backend.train(self._params, X, Y, orders, batch_size, lr)
                if not (np.all(np.isfinite(losses)) and np.all(np.isfinite(self._params))):
                    self._params[...] = saved
                    bad = done + int(np.argmin(np.isfinite(losses))) + 1
                    raise FloatingPointError(
                        f"training diverged (non-finite loss or weights) in epoch {bad} with lr={lr}; "
                        f"the weights from before epoch {done + 1} were kept. Try a smaller lr or "
                        f"scale the inputs.")
                for loss in losses:
                    done += 1
                    history.epoch.append(done - 1)
                    history.history["loss"].append(float(loss))
                if Xv is not None:
                    history.history["val_loss"].append(self._backend.loss(self._params, Xv, Yv))
                    history.history["val_score"].append(self._score(Xv, Yv))
                if verbose:
                    self._print_epoch(history, done, epochs, time.perf_counter() - t0)
        return history

    @staticmethod
    def _print_epoch(history, done, epochs, seconds):
        parts = [f"epoch {done}/{epochs}"]
        for key, values in history.history.items():
            if values:
                parts.append(f"{key} {values[-1]:.4f}")
        parts.append(f"{seconds * 1e3:.1f} ms")
        print(" - ".join(parts), flush=True)
