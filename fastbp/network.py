"""Network: the public object. It validates, owns the parameters, the batch-norm statistics
and the random streams, and hands arrays to a backend ("cpu": the Numba kernels, "numpy": the
reference) and to an optimizer. No math here.
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from . import aligned, data, io
from .metrics import CLASSIFIER, check_names, confusion_matrix, for_output
from .callbacks import Callback, EarlyStopping, EpochLine, History, ProgressBar
from .optim import get_optimizer, optimizer_from_config
from .spec import did_you_mean, init_params, make_spec, set_flat

BACKENDS = ("cpu", "numpy", "cuda", "auto")
DTYPES = {"float32": np.float32, "float64": np.float64}
PROGRESS_SECONDS = 0.2   # verbose=1 redraws the bar about this often within an epoch


def _make_backend(name, spec, dtype, drop_key):
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}."
                         + did_you_mean(name, BACKENDS))
    if name == "numpy":
        from .reference import NumpyBackend
        return NumpyBackend(spec, dtype, drop_key)
    if name in ("cuda", "auto"):
        try:
            from .kernels.cuda.backend import CudaBackend, gpu_status
        except ImportError as exc:
            if name == "cuda":
                raise RuntimeError(f"backend='cuda' needs numba's CUDA support: pip install 'fastbp[cuda]' "
                                   f"({exc})") from None
        else:
            if name == "cuda" or gpu_status() is None:
                return CudaBackend(spec, dtype, drop_key)
    from .kernels.cpu import CpuBackend   # imported lazily: numba loads only when used
    return CpuBackend(spec, dtype, drop_key)


def _check_dtype(dtype):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return np.dtype(name)


def seed_streams(seed):
    """(initialisation generator, shuffling generator, dropout key) of a network made with `seed`:
    independent streams, so that shuffling and dropout do not disturb the initialisation. Peers
    timed against fastbp (fastbp.peers) draw the same epoch orders from the second."""
    init_seq, shuffle_seq, drop_seq = np.random.SeedSequence(seed).spawn(3)
    return (np.random.default_rng(init_seq), np.random.default_rng(shuffle_seq),
            int(drop_seq.generate_state(1, dtype=np.uint64)[0]))


class Network:
    """A fully-connected network trained by backpropagation.

    sizes: input, hidden and output widths, e.g. [64, 128, 10].
    hidden: one activation for every hidden layer, or a list with one per hidden layer. A name
        ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout") or a (name, params)
        tuple: ("leaky_relu", {"slope": 0.1}), ("elu", {"alpha": 0.5}), ("maxout", {"pieces": 3}).
    output: "linear", "sigmoid", "tanh", "softmax" or "exp" (a Poisson rate).
    loss: "mse", "rmse", "huber" (or ("huber", {"delta": 2.0})), "binary_cross_entropy" (sigmoid
        output), "cross_entropy" (softmax output), "poisson" (half the Poisson deviance, exp
        output, targets >= 0); "auto" picks the natural loss of the output.
    dtype: "float32" or "float64". seed: an int for reproducible initialisation, shuffling, dropout.
    init: "auto" (He for the relu family, Glorot otherwise), "he", "glorot", "normal", "sklearn"
        (scikit-learn's MLP rule: W and b uniform in +-sqrt(6 / (fan_in + fan_out)), 2 for
        sigmoid hidden units), or a list of (W, b) pairs with W of shape (n_in, n_out).
    backend: "cpu" (compiled Numba kernels), "numpy" (the pure-NumPy reference), "cuda" (numba.cuda
        kernels on an NVIDIA GPU) or "auto" (cuda when a GPU is present, else cpu).
    dropout: rate of inverted dropout after every hidden layer, or a list with one per layer.
    batch_norm: batch normalisation between the dense step and the activation of every hidden
        layer (True), or a list of flags; bn_momentum weighs the running statistics
        (running = momentum * running + (1 - momentum) * batch), bn_eps steadies the division.
    l1, l2: penalties l1 * sum|W| + l2 * sum W^2 on the weights (not biases), in loss and gradient.
    """

    def __init__(self, sizes, hidden="relu", output="softmax", loss="auto", dtype="float32",
                 seed=None, init="auto", backend="cpu", dropout=0.0, batch_norm=False, l1=0.0,
                 l2=0.0, bn_momentum=0.99, bn_eps=1e-5):
        self.spec = make_spec(sizes, hidden, output, loss, dropout, batch_norm, l1, l2, bn_momentum,
                              bn_eps)
        self.dtype = _check_dtype(dtype)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = seed
        init_rng, self._rng, self._drop_key = seed_streams(seed)
        self._params = init_params(self.spec, init, init_rng, self.dtype)
        self._state = self.spec.initial_state(self.dtype)
        self._counter = np.zeros(1, dtype=np.int64)   # training steps taken: keys dropout masks
        self.epochs_done = 0
        self.optimizer = None
        self.stop_training = False
        self.metadata = {}   # JSON-able notes saved with the model (the CLI keeps class names here)
        self.classes_ = None   # a classifier's labels when fit was given text labels (codes are their order)
        self._rank = 0           # this process's MPI rank in a distributed fit (only rank 0 saves)
        self._rank_rng = None    # (rank, shuffle generator) of distributed fits: continued by later ones
        self.backend = backend
        self._backend = _make_backend(backend, self.spec, self.dtype, self._drop_key)

    # ---- description ----
    @property
    def sizes(self):
        return list(self.spec.sizes)

    @property
    def n_params(self):
        return self.spec.n_params

    def __repr__(self):
        s = self.spec
        extras = "".join(f", {k}={v!r}" for k, v in (("dropout", list(s.dropout[:-1])),
                                                      ("batch_norm", list(s.batch_norm[:-1])),
                                                      ("l1", s.l1), ("l2", s.l2)) if any(np.atleast_1d(v)))
        return (f"Network({list(s.sizes)}, hidden={list(s.activations[:-1])}, output={s.output!r}, "
                f"loss={s.loss!r}, dtype={self.dtype.name!r}, backend={self.backend!r}{extras})")

    def summary(self, file=None):
        """Print a table of the layers (units, output shape, activation, batch norm, dropout,
        parameter counts) and the network's totals, dtype, backend, loss and optimizer, as
        Keras's model.summary() does; to `file` (default stdout)."""
        print(self._summary_text(), file=file or sys.stdout)

    def _summary_text(self):
        s = self.spec
        head = ("layer", "units", "output shape", "activation", "batch norm", "dropout", "parameters")
        rows = [("input", str(s.sizes[0]), f"(None, {s.sizes[0]})", "", "", "", "0")]
        for l, ((W, b), act) in enumerate(zip(s.views(self._params), s.activations)):
            n_bn = 2 * W.shape[1] if s.batch_norm[l] else 0
            name = f"dense {l + 1}" + (" (output)" if l == len(s.activations) - 1 else "")
            rows.append((name, str(s.sizes[l + 1]), f"(None, {s.sizes[l + 1]})", str(act),
                         "yes" if s.batch_norm[l] else "", f"{s.dropout[l]:g}" if s.dropout[l] else "",
                         f"{W.size + b.size + n_bn:,}"))
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()   # noqa: E731
        rule = "-" * len(line(head))
        opt = self.optimizer.get_config()["name"] if self.optimizer is not None else "none yet (sgd at the first fit)"
        tail = [f"parameters: {self.n_params:,} trainable ({self.n_params * self.dtype.itemsize / 1024:,.1f} KiB in "
                f"{self.dtype.name}), {s.n_state:,} batch-norm statistics",
                f"loss: {s.loss}; backend: {self.backend}; optimizer: {opt}; epochs trained: {self.epochs_done}"]
        if self.classes_ is not None:
            tail.append(f"classes: {', '.join(map(str, self.classes_.tolist()))}")
        return "\n".join([line(head), rule, *map(line, rows), rule, *tail])

    # ---- parameters ----
    def get_weights(self):
        """[(W, b), ...] per layer, copies; W has shape (n_in, n_out)."""
        return [(w.copy(), b.copy()) for w, b in self.spec.views(self._params)]

    def set_weights(self, weights):
        """Replace every layer's (W, b); shapes are checked, values cast to the network's dtype."""
        set_flat(self.spec, self._params, weights)

    def get_batch_norm(self):
        """[(gamma, beta, running_mean, running_var), ...] per batch-normalised layer, copies."""
        return [(g.copy(), b.copy(), m.copy(), v.copy()) for (g, b), (m, v) in
                zip(self.spec.bn_views(self._params), self.spec.state_views(self._state))]

    # ---- state: what callbacks, the scikit-learn wrapper and a failed epoch go back to ----
    def snapshot(self, optimizer=True):
        """A copy of the training state: parameters, batch-norm statistics, the step counter and
        (with optimizer=True) the optimizer's state. restore() puts it back."""
        snap = {"params": self._params.copy(), "state": self._state.copy(), "counter": self._counter.copy()}
        if optimizer and self.optimizer is not None:
            snap["optimizer"] = self.optimizer.get_state()
        return snap

    def restore(self, snapshot):
        """Go back to a snapshot(), in place."""
        self._params[...] = snapshot["params"]
        self._state[...] = snapshot["state"]
        self._counter[...] = snapshot["counter"]
        if "optimizer" in snapshot:
            self.optimizer.set_state(snapshot["optimizer"])

    # ---- evaluation ----
    def _X(self, X, name="X"):
        return data.check_X(X, self.spec.n_in, self.dtype, name)

    def _XY(self, X, y, xname="X", yname="y", learn=False):
        X = self._X(X, xname)
        return X, data.encode_targets(self._codes(y, yname, learn), self.spec, self.dtype, X.shape[0], yname)

    def _is_classifier(self):
        return self.spec.output == "softmax" or (self.spec.output == "sigmoid" and self.spec.n_out == 1)

    def _codes(self, y, name, learn):
        """Text (or other non-numeric) class labels as codes 0..k-1 in the order of classes_,
        which a fit learns (learn=True) when the network has none yet; numbers pass through."""
        labels = data.text_labels(y)
        if labels is None:
            return y
        if not self._is_classifier():
            raise TypeError(f"{name} holds text labels ({labels[:3].tolist()}...), which only a classifier takes "
                            f"(output='softmax', or 'sigmoid' with one unit); this network's output is "
                            f"{self.spec.output!r} with {self.spec.n_out} unit(s): convert {name} to numbers")
        if self.classes_ is None:
            if not learn:
                raise ValueError(f"{name} holds text labels but the network was never fit on text labels, so "
                                 f"it has no classes_ to map them to; fit it on such labels first")
            classes = np.unique(labels)
            room = self.spec.n_out if self.spec.output == "softmax" else 2
            if len(classes) > room:
                raise ValueError(f"{name} holds {len(classes)} classes but the output layer can tell {room}; "
                                 f"make it {len(classes)} units wide (softmax)")
            self.classes_ = classes
        codes = np.searchsorted(self.classes_, labels)
        unknown = (codes >= len(self.classes_)) | (self.classes_[np.minimum(codes, len(self.classes_) - 1)] != labels)
        if unknown.any():
            raise ValueError(f"{name} holds labels the network was not fit on: {np.unique(labels[unknown])[:5].tolist()} "
                             f"(it knows {self.classes_.tolist()})")
        return codes

    def predict_proba(self, X):
        """A classifier's class probabilities: (n, n_out) for a softmax output, (n, 2) for one
        sigmoid unit (P(class 0), P(class 1)), as scikit-learn's predict_proba; (n, n_out)
        per-label probabilities for several sigmoid units."""
        self._need_classifier("predict_proba", multilabel=True)
        P = self.predict(X)
        if self.spec.output == "sigmoid" and self.spec.n_out == 1:
            return np.hstack([1 - P, P])
        return P

    def predict_classes(self, X):
        """A classifier's predicted labels: the most probable class (from classes_ when fit on
        text labels, else its index); 0/1 per label for several sigmoid units."""
        self._need_classifier("predict_classes", multilabel=True)
        P = self.predict(X)
        if self.spec.output == "sigmoid":
            codes = (P > 0.5).astype(np.int64)
            if self.spec.n_out > 1:
                return codes
            codes = codes[:, 0]
        else:
            codes = P.argmax(axis=1)
        return self.classes_[codes] if self.classes_ is not None else codes

    def _need_classifier(self, what, multilabel=False):
        if not (self._is_classifier() or (multilabel and self.spec.output == "sigmoid")):
            raise TypeError(f"{what} is for classifiers (output 'softmax' or 'sigmoid'); this network's output is "
                            f"{self.spec.output!r}: use predict for its values")

    def evaluate(self, X, y):
        """Every figure of how well the network fits X, y (inference mode), as a dict: the loss
        and, for a classifier, accuracy, macro precision, recall and F1 and the confusion matrix
        (rows: true class, columns: predicted); for a regressor R^2, MAE and RMSE."""
        X, Y = self._XY(X, y)
        P = self._backend.predict(self._params, self._state, X)
        out = {"loss": self._backend.loss(self._params, self._state, X, Y)}
        table = for_output(self.spec.output, self.spec.n_out)
        out.update((name, fn(Y, P)) for name, fn in table.items())
        if table is CLASSIFIER:
            out["confusion_matrix"] = confusion_matrix(Y, P)
        return out

    def predict(self, X):
        """Output-layer activations, shape (n, n_out), in the network's dtype (inference mode:
        no dropout, batch norm by running statistics)."""
        return self._backend.predict(self._params, self._state, self._X(X))

    def loss(self, X, y):
        """Mean loss over X in inference mode, with the l1/l2 penalty."""
        return self._backend.loss(self._params, self._state, *self._XY(X, y))

    def score(self, X, y):
        """Accuracy for sigmoid/softmax outputs, R^2 (averaged over outputs) for linear/tanh."""
        X, Y = self._XY(X, y)
        return self._score(X, Y)

    def _score(self, X, Y, P=None):
        P = self._backend.predict(self._params, self._state, X) if P is None else P
        table = for_output(self.spec.output, self.spec.n_out)
        return table["r2" if "r2" in table else "accuracy"](Y, P)

    def gradients(self, X, y):
        """[(dW, db), ...]: the gradient of the loss of X taken as one training batch (batch
        statistics for batch norm, no dropout), with the penalty; nothing is updated."""
        _, grads = self._backend.loss_and_gradients(self._params, self._state, *self._XY(X, y))
        return self.spec.views(grads)

    def objective(self, X, y, sample_weight=None):
        """The function a full-batch optimizer such as scipy's L-BFGS minimises, over one flat
        vector theta of every layer's weights and biases, layer by layer (W row by row, then b:
        np.concatenate([np.r_[W.ravel(), b] for W, b in net.get_weights()])).

        f(theta) sets the network's weights to theta and returns (loss, gradient as a float64
        vector laid out as theta): the sample-weighted mean loss of all of X with the penalty,
        taken as one training batch (batch statistics for batch norm, whose scales stay as they
        are; no dropout). The data are checked and converted once, here; each call runs the
        compiled kernels in blocks over scratch kept between calls."""
        X, Y = self._XY(X, y)
        SW = data.sample_weights(sample_weight, None, Y, self.spec, self.dtype)
        index = self.spec.weight_index()

        def f(theta):
            theta = np.asarray(theta)
            if theta.shape != index.shape:
                raise ValueError(f"theta must have shape {index.shape} (every W and b, layer by layer), got "
                                 f"{theta.shape}")
            if not np.all(np.isfinite(theta)):
                raise ValueError("theta holds NaN or infinite values; the weights were left as they were")
            self._params[index] = theta
            value, grads = self._backend.loss_and_gradients(self._params, self._state, X, Y, SW=SW)
            return value, grads[index].astype(np.float64)
        return f

    # ---- training ----
    def fit(self, X, y, epochs=1, batch_size=32, lr=None, shuffle=True, validation_split=0.0,
            validation_data=None, verbose=0, optimizer=None, sample_weight=None, class_weight=None,
            callbacks=None, early_stopping=False, patience=10, min_delta=0.0, monitor="val_loss",
            restore_best_weights=True, initial_epoch=0, on_divergence="raise", comm=None,
            allow_one_class=False, metrics=None):
        """Train by mini-batch gradient descent; returns a History.

        epochs: the epoch to stop at (with initial_epoch, the one to start from, as in Keras).
        lr: a number or a fastbp.optim schedule; None keeps the optimizer's own (0.1 for SGD).
        optimizer: a name ("sgd", "momentum", "nesterov", "adam", "adamw") or a fastbp.optim
            object, whose state carries over between fits; None continues the network's current
            optimizer (SGD at first).
        sample_weight: (n,) weights scaling each row's loss; class_weight: {class: weight} or
            "balanced" (n / (n_classes * count)); both multiply.
        early_stopping: stop when `monitor` ("val_loss", "val_score" or "loss") has not improved
            by min_delta for `patience` epochs; restore_best_weights returns to the best epoch.
            Monitoring a validation figure needs validation_split or validation_data.
        verbose: 0 silent, 1 a progress bar within each epoch, 2 one line per epoch.
        comm: an mpi4py communicator (MPI.COMM_WORLD, or a group split from it) to train
            data-parallel over MPI (fastbp.distributed): each rank passes its own shard;
            batch_size is per rank; weights stay identical on every rank of the communicator.
        on_divergence: when a loss or weight turns non-finite, the weights from before the failing
            epoch are kept and "raise" raises FloatingPointError, "warn" warns and returns.
        allow_one_class: accept classifier targets holding a single class (refused by default: it
            is almost always a filtered or sorted-and-split data set).
        metrics: names of figures to record after every epoch, on the training rows as `name`
            and on the validation rows as `val_name` (inference mode, at the epoch's end): for
            a classifier "accuracy", "precision", "recall", "f1" (macro averages); for a
            regressor "r2", "mae", "rmse". Each costs a prediction over the rows per epoch.
        y of a classifier may hold text labels (any non-numeric labels): the first fit learns
            their sorted set as `classes_`, and predict_classes answers in them.
        `history.history["loss"]` has each epoch's mean training loss (batch losses before their
        update, weighted by batch size, with the penalty). The History is also `self.history`,
        kept up to date epoch by epoch: after an interruption (Ctrl-C, a callback raising) it
        holds the completed epochs, and the weights are those of the last completed epoch (or
        batch, with verbose=1).
        """
        def train():
            return self._run(self._plan(
                X, y, epochs=epochs, batch_size=batch_size, lr=lr, shuffle=shuffle,
                validation_split=validation_split, validation_data=validation_data, verbose=verbose,
                optimizer=optimizer, sample_weight=sample_weight, class_weight=class_weight,
                callbacks=callbacks, early_stopping=early_stopping, patience=patience, min_delta=min_delta,
                monitor=monitor, restore_best_weights=restore_best_weights, initial_epoch=initial_epoch,
                on_divergence=on_divergence, comm=comm, allow_one_class=allow_one_class, metrics=metrics))
        if comm is None:
            return train()
        from .distributed import guarded
        return guarded(comm, train)

    def _plan(self, *args, **kwargs):
        classes = self.classes_
        try:
            return self._check_plan(*args, **kwargs)
        except BaseException:
            self.classes_ = classes   # a refused fit learns no labels either
            raise

    def _check_plan(self, X, y, *, epochs, batch_size, lr, shuffle, validation_split, validation_data, verbose,
              optimizer, sample_weight, class_weight, callbacks, early_stopping, patience, min_delta, monitor,
              restore_best_weights, initial_epoch, on_divergence, comm, allow_one_class=False, metrics=None):
        """Check every argument and lay out the run; nothing is trained or changed on refusal
        but the optimizer choice."""
        epochs = data.check_positive_int(epochs, "epochs")
        batch_size = data.check_positive_int(batch_size, "batch_size")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) \
                or not 0 <= initial_epoch < epochs:
            raise ValueError(f"initial_epoch must be an integer in [0, epochs), got {initial_epoch!r}")
        if verbose not in (0, 1, 2, False, True):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        if on_divergence not in ("raise", "warn"):
            raise ValueError(f"on_divergence must be 'raise' or 'warn', got {on_divergence!r}")
        dist = None
        if comm is not None:
            from .distributed import Distributed
            dist = Distributed(comm, self._backend)
            self._rank = dist.rank
            if dist.rank != 0:
                verbose = 0
            elif verbose == 1:
                verbose = 2   # a progress bar within epochs would need Python between batches
        names = [] if metrics is None else check_names(metrics, self.spec.output, self.spec.n_out)
        X, Y = self._XY(X, y, learn=True)
        if not allow_one_class:
            data.check_two_classes(Y, self.spec)
        SW = data.sample_weights(sample_weight, class_weight, Y, self.spec, self.dtype)
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
            X, Xv, Y, Yv, SW = X[:split], X[split:], Y[:split], Y[split:], SW[:split]
        opt = self._take_optimizer(optimizer, lr)
        cbs = self._callbacks(callbacks, early_stopping, patience, min_delta, monitor,
                              restore_best_weights, Xv is not None, verbose, epochs, X.shape[0])
        cbs.insert(0, History())   # first: the epoch is on record before any user callback runs
        return _Plan(X=X, Y=Y, SW=SW, Xv=Xv, Yv=Yv, epochs=epochs, initial_epoch=initial_epoch,
                     batch_size=batch_size, shuffle=shuffle, opt=opt, callbacks=cbs,
                     progress=next((cb for cb in cbs if isinstance(cb, ProgressBar)), None),
                     on_divergence=on_divergence, dist=dist, metrics=names)

    def _run(self, plan):
        """Run the planned epochs: many in one compiled call unless Python has work between
        epochs (validation, callbacks, a plateau schedule, MPI)."""
        cbs, opt, dist, n = plan.callbacks, plan.opt, plan.dist, plan.X.shape[0]
        history = self.history = cbs[0]
        for cb in cbs:
            cb.network = self
        self.stop_training = False
        if dist is None:   # compile before any callback draws: a compile notice never cuts a progress bar
            self._backend.prepare(self._params, self._state, plan.X, plan.Y, plan.SW, plan.batch_size, self._counter,
                                  opt, plan.progress is not None, plan.epochs - plan.initial_epoch)
        for cb in cbs:   # plain objects need only on_epoch_end
            getattr(cb, "on_train_begin", lambda logs: None)({})
        per_epoch = plan.Xv is not None or len(cbs) > 1 or opt.needs_logs or dist is not None or bool(plan.metrics)
        if dist is not None:
            self._rank_rng = dist.start(self._params, self._state, n, plan.batch_size, self.seed, self._drop_key,
                                        self._rank_rng)
        epoch = plan.initial_epoch
        try:
            while epoch < plan.epochs and not self.stop_training:
                k = 1 if per_epoch else next(data.epoch_chunks(n, plan.epochs - epoch))
                t0 = time.perf_counter()
                orders = data.epoch_orders(dist.rng if dist is not None else self._rng, n, k, plan.shuffle)
                lrs = opt.rates(epoch, k, n)
                snap = self.snapshot()
                committed = False
                recorded, seen, done = len(history.epoch), opt.samples_seen, self.epochs_done
                try:
                    losses, ran = self._train_chunk(plan, orders, lrs, epoch)
                    if ran < k or not np.isfinite(losses).all() or not np.isfinite(self._params).all():
                        self.restore(snap)
                        committed = True
                        message = (f"training diverged (non-finite loss or weights) in epoch {epoch + ran} "
                                   f"with lr={lrs[min(ran, k) - 1]:g}; the weights from before epoch "
                                   f"{epoch + 1} were kept. Try a smaller lr, clip_norm, or scaled inputs.")
                        if plan.on_divergence == "raise":
                            raise FloatingPointError(message)
                        warnings.warn(message, RuntimeWarning, stacklevel=3)
                        break
                    seconds = (time.perf_counter() - t0) / k
                    if k > 1:   # a run of epochs with no Python between them: record it in bulk
                        history.extend(range(epoch, epoch + k), loss=losses, lr=lrs, time=[seconds] * k)
                        opt.samples_seen += n * k
                        epoch += k
                        self.epochs_done = epoch
                        committed = True
                        continue
                    logs = self._epoch_logs(plan, losses[0], float(lrs[0]), seconds)
                    opt.samples_seen += n
                    history.on_epoch_end(epoch, logs)
                    epoch += 1
                    self.epochs_done = epoch
                    committed = True
                except BaseException:
                    # interrupted (Ctrl-C arrives when the compiled call returns, so anywhere in
                    # the bookkeeping after it) before the epoch was committed: go back to its
                    # start, so weights, history and counts agree
                    if not committed and plan.progress is None:
                        self.restore(snap)
                        history.truncate(recorded)
                        opt.samples_seen = seen
                        self.epochs_done = done
                    raise
                if opt.needs_logs:
                    opt.lr.on_epoch_end(logs)
                for cb in cbs[1:]:
                    cb.on_epoch_end(epoch - 1, logs)
        finally:
            for cb in cbs:
                getattr(cb, "on_train_end", lambda logs: None)({})
        return history

    def _train_chunk(self, plan, orders, lrs, epoch):
        """One run of epochs (one row of `orders` each): (mean losses, epochs run)."""
        if plan.dist is not None:
            return plan.dist.train(self._params, self._state, plan.X, plan.Y, plan.SW, orders, lrs, plan.batch_size,
                                   self._counter, plan.opt)
        if plan.progress is not None:
            return self._epoch_with_progress(plan.X, plan.Y, plan.SW, orders[0], plan.batch_size, float(lrs[0]), plan.opt,
                                             plan.progress, epoch)
        return self._backend.train(self._params, self._state, plan.X, plan.Y, plan.SW, orders, lrs, plan.batch_size,
                                   self._counter, plan.opt)

    def _epoch_logs(self, plan, loss, lr, seconds):
        logs = {"loss": float(loss), "lr": float(lr), "time": seconds}
        table = for_output(self.spec.output, self.spec.n_out)
        if plan.metrics:
            P = self._backend.predict(self._params, self._state, plan.X)
            logs.update((name, table[name](plan.Y, P)) for name in plan.metrics)
        if plan.Xv is not None:
            P = self._backend.predict(self._params, self._state, plan.Xv)
            logs["val_loss"] = self._backend.loss(self._params, self._state, plan.Xv, plan.Yv)
            logs["val_score"] = self._score(plan.Xv, plan.Yv, P)
            logs.update((f"val_{name}", table[name](plan.Yv, P)) for name in plan.metrics)
            if plan.dist is not None:   # every rank sees the figures of all validation rows
                logs["val_loss"] = plan.dist.mean(logs["val_loss"], plan.Xv.shape[0])
                logs["val_score"] = plan.dist.mean(logs["val_score"], plan.Xv.shape[0])
        return logs

    def partial_fit(self, X, y, batch_size=32, lr=None, sample_weight=None, class_weight=None,
                    optimizer=None, shuffle=True):
        """One epoch over X, y, continuing from the current weights and optimizer state (a batch
        may hold a single class here, unlike in fit)."""
        return self._run(self._plan(
            X, y, epochs=self.epochs_done + 1, batch_size=batch_size, lr=lr, shuffle=shuffle, validation_split=0.0,
            validation_data=None, verbose=0, optimizer=optimizer, sample_weight=sample_weight,
            class_weight=class_weight, callbacks=None, early_stopping=False, patience=10, min_delta=0.0,
            monitor="val_loss", restore_best_weights=True, initial_epoch=self.epochs_done, on_divergence="raise",
            comm=None, allow_one_class=True))

    def _take_optimizer(self, optimizer, lr):
        if optimizer is None:
            opt = self.optimizer if self.optimizer is not None else get_optimizer("sgd")
        else:
            opt = get_optimizer(optimizer)
        if lr is not None:
            opt.lr = lr
        opt.bind(self.n_params, self.dtype)
        self.optimizer = opt
        return opt

    def _callbacks(self, callbacks, early_stopping, patience, min_delta, monitor, restore,
                   validating, verbose, epochs, n):
        cbs = list(callbacks or [])
        for cb in cbs:
            if not isinstance(cb, Callback) and not hasattr(cb, "on_epoch_end"):
                raise TypeError(f"callbacks must have an on_epoch_end(epoch, logs) method; got {cb!r}")
        if early_stopping:
            if monitor.startswith("val_") and not validating:
                raise ValueError(f"early_stopping monitors {monitor!r} but there is no validation "
                                 f"data: pass validation_split (say 0.1) or validation_data, or "
                                 f"monitor='loss'")
            cbs.append(EarlyStopping(monitor, patience, min_delta, restore))
        if verbose == 1:
            cbs.append(ProgressBar(epochs, n))
        elif verbose == 2:
            cbs.append(EpochLine(epochs))
        return cbs

    def _epoch_with_progress(self, X, Y, SW, order, batch_size, lr, opt, bar, epoch):
        """One epoch in pieces of whole batches, each about PROGRESS_SECONDS long."""
        n, start, total, per_call = X.shape[0], 0, 0.0, 1
        bar.start_epoch(epoch)
        while start < n:
            stop = min(n, start + per_call * batch_size)
            t0 = time.perf_counter()
            total += self._backend.train_rows(self._params, self._state, X, Y, SW, order, start,
                                              stop, batch_size, lr, self._counter, opt)
            spent = time.perf_counter() - t0
            bar.advance(stop - start, total / stop)
            if not np.isfinite(total):
                return np.array([np.nan]), 1   # the epoch ran (and failed): the caller restores
            start = stop
            per_call = max(1, int(per_call * min(4.0, PROGRESS_SECONDS / max(spent, 1e-6))))
        return np.array([total / n]), 1

    # ---- pickling (joblib, multiprocessing, scikit-learn's clone-and-fit tools) ----
    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_backend"]   # compiled kernels and workspaces: rebuilt on unpickling
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        # unpickled buffers start anywhere, and may be read-only (joblib's memory maps)
        self._params = aligned.on_line(self._params)
        for name in ("_state", "_counter"):
            if not getattr(self, name).flags.writeable:
                setattr(self, name, getattr(self, name).copy())
        self._backend = _make_backend(self.backend, self.spec, self.dtype, self._drop_key)

    # ---- files ----
    def save(self, path):
        """Write the whole model (architecture, weights, batch-norm statistics, optimizer and its
        state, random streams) to one .npz file, atomically. No pickle. After a distributed fit
        only rank 0 writes (the weights are the same on every rank)."""
        if self._rank != 0:
            return
        opt = self.optimizer
        config = {"spec": self.spec.config(), "dtype": self.dtype.name, "backend": self.backend, "seed": self.seed,
                  "drop_key": str(self._drop_key), "rng_state": self._rng.bit_generator.state,
                  "epochs_done": self.epochs_done, "optimizer": opt.get_config() if opt is not None else None,
                  "metadata": self.metadata,
                  "classes": None if self.classes_ is None else self.classes_.tolist()}
        arrays = {"params": self._params, "state": self._state, "counter": self._counter}
        if opt is not None and opt.get_state() is not None:
            arrays["opt_m"], arrays["opt_v"], _ = opt.state_arrays()
        io.write(path, config, arrays)

    @classmethod
    def load(cls, path, backend=None):
        """A Network from a file written by save; backend overrides the saved one. Refuses
        truncated, corrupted, tampered or foreign files with a ValueError."""
        cfg, arrays = io.read(path)
        path = os.fspath(path)
        try:
            net = cls(dtype=cfg["dtype"], seed=cfg["seed"], backend=backend or cfg["backend"], **cfg["spec"])
            net._drop_key = int(cfg["drop_key"])
            net._backend = _make_backend(net.backend, net.spec, net.dtype, net._drop_key)
            expected = {"params": (net.n_params,), "state": (net.spec.n_state,), "counter": (1,)}
            for name, shape in expected.items():
                arr = arrays.get(name)
                want = np.int64 if name == "counter" else net.dtype
                if arr is None or arr.shape != shape or arr.dtype != want:
                    raise io.invalid(path, f"array {name!r} should be {np.dtype(want)} of shape {shape}, found "
                                           f"{None if arr is None else (arr.dtype, arr.shape)}")
                if not np.all(np.isfinite(arr)):
                    raise io.invalid(path, f"array {name!r} holds NaN or infinite values")
            net._params[...] = arrays["params"]
            net._state[...] = arrays["state"]
            net._counter[...] = arrays["counter"]
            net._rng.bit_generator.state = cfg["rng_state"]
            net.epochs_done = int(cfg["epochs_done"])
            metadata = cfg.get("metadata", {})
            if not isinstance(metadata, dict):
                raise io.invalid(path, "its metadata is not a JSON object")
            net.metadata = metadata
            if cfg.get("classes") is not None:
                net.classes_ = np.asarray(cfg["classes"])
            if cfg["optimizer"] is not None:
                m, v = arrays.get("opt_m"), arrays.get("opt_v")
                if m is None or v is None or m.dtype != net.dtype or v.dtype != net.dtype:
                    raise io.invalid(path, "the optimizer's state arrays are missing or of the wrong dtype")
                net.optimizer = optimizer_from_config(cfg["optimizer"], m.copy(), v.copy())
                net.optimizer.bind(net.n_params, net.dtype)
        except (KeyError, TypeError) as exc:
            raise io.invalid(path, f"its config is incomplete or malformed ({type(exc).__name__}: {exc})") from None
        return net


@dataclass
class _Plan:
    """A checked fit: its data (training, validation), epochs, optimizer, callbacks (the History
    first), and, in a distributed fit, the MPI side (distributed.Distributed)."""
    X: np.ndarray
    Y: np.ndarray
    SW: np.ndarray
    Xv: np.ndarray | None
    Yv: np.ndarray | None
    epochs: int
    initial_epoch: int
    batch_size: int
    shuffle: bool
    opt: object
    callbacks: list
    progress: ProgressBar | None
    on_divergence: str
    dist: object = None
    metrics: list = None


load = Network.load
