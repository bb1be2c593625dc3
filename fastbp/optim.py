"""Optimizers and learning-rate schedules. No model knowledge.

An optimizer owns its hyper-parameters and its state (moment vectors, step count, samples seen);
a network only hands it flat parameter and gradient vectors. Passing the same optimizer object to
several `fit` calls continues its state; it is saved with the model. The update itself is one
kernel over all parameters (kernels/cpu/optim.py, and reference.optimizer_update).
"""
from __future__ import annotations

import numpy as np

from . import aligned
from .data import check_number
from .spec import did_you_mean

OPT_SGD, OPT_MOMENTUM, OPT_NESTEROV, OPT_ADAM, OPT_ADAMW = range(5)   # kernel codes
H_MOMENTUM, H_BETA1, H_BETA2, H_EPS, H_DECAY = range(5)   # slots of Optimizer.hyper()


# ---- schedules ----

class Schedule:
    """A learning rate per epoch. `needs_logs`: it reads each epoch's figures (Python per epoch)."""
    needs_logs = False

    def __init__(self, lr):
        self.lr = check_number(lr, "lr", low_open=True)

    def __call__(self, epoch, samples_seen):
        return self.lr

    def on_epoch_end(self, logs):
        pass

    def get_config(self):
        return {"name": type(self).__name__, **{k: v for k, v in vars(self).items()}}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    pass


class StepDecay(Schedule):
    """lr * drop ** (epoch // every)."""

    def __init__(self, lr, drop=0.5, every=10):
        super().__init__(lr)
        self.drop = check_number(drop, "drop", low_open=True)
        self.every = int(check_number(every, "every", low=1))

    def __call__(self, epoch, samples_seen):
        return self.lr * self.drop ** (epoch // self.every)


class ExponentialDecay(Schedule):
    """lr * rate ** epoch."""

    def __init__(self, lr, rate=0.96):
        super().__init__(lr)
        self.rate = check_number(rate, "rate", low_open=True)

    def __call__(self, epoch, samples_seen):
        return self.lr * self.rate ** epoch


class InverseScaling(Schedule):
    """lr / (samples_seen + 1) ** power_t, as scikit-learn's 'invscaling' (updated per epoch)."""

    def __init__(self, lr, power_t=0.5):
        super().__init__(lr)
        self.power_t = check_number(power_t, "power_t")

    def __call__(self, epoch, samples_seen):
        return self.lr / (samples_seen + 1) ** self.power_t


class ReduceOnPlateau(Schedule):
    """Multiply the rate by `factor` when `monitor` has not improved by `min_delta` for
    `patience` epochs (never below min_lr)."""
    needs_logs = True

    def __init__(self, lr, factor=0.1, patience=10, min_delta=1e-4, monitor="loss", min_lr=0.0):
        super().__init__(lr)
        self.factor = check_number(factor, "factor", high=1.0, low_open=True)
        self.patience = int(check_number(patience, "patience"))
        self.min_delta = check_number(min_delta, "min_delta")
        self.monitor = monitor
        self.min_lr = check_number(min_lr, "min_lr")
        self.current = self.lr
        self.best = float("inf")
        self.wait = 0

    def __call__(self, epoch, samples_seen):
        return self.current

    def on_epoch_end(self, logs):
        if self.monitor not in logs:
            raise ValueError(f"ReduceOnPlateau monitors {self.monitor!r}, which this fit does not "
                             f"report (it has {sorted(logs)}); pass validation data or monitor='loss'")
        value = logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.current = max(self.current * self.factor, self.min_lr)
                self.wait = 0


SCHEDULES = {c.__name__: c for c in (Constant, StepDecay, ExponentialDecay, InverseScaling, ReduceOnPlateau)}


def schedule_from_config(cfg):
    cfg = dict(cfg)
    cls = SCHEDULES[cfg.pop("name")]
    state = {k: cfg.pop(k) for k in ("current", "best", "wait") if k in cfg}
    sched = cls(**cfg)
    vars(sched).update(state)
    return sched


# ---- optimizers ----

class Optimizer:
    """The base of every optimizer; by itself, plain SGD.

    lr: a number or a Schedule (None: the optimizer's default). clip_norm: rescale the gradient
    when its global L2 norm exceeds this (None: never).
    lazy: on sparse input, update only the rows of the first layer's weights that the batch's
        non-zero columns touch, moments included (TensorFlow's LazyAdam, PyTorch's SparseAdam):
        much faster on wide bag-of-words inputs, but a different algorithm, since a row's
        momentum or Adam moments do not decay while it is untouched. Off by default: a sparse
        fit then gives the dense fit's result. (Plain SGD without l1/l2 or clipping skips the
        untouched rows anyway, which is exact.) No effect on dense input.
    """
    code, name, default_lr = OPT_SGD, "sgd", 0.1
    n_moments = 0

    def __init__(self, lr=None, clip_norm=None, lazy=False):
        self.lr = lr if lr is not None else self.default_lr
        self.clip_norm = None if clip_norm is None else check_number(clip_norm, "clip_norm", low_open=True)
        if not isinstance(lazy, (bool, np.bool_)):
            raise TypeError(f"lazy must be True or False, got {lazy!r}")
        self.lazy = bool(lazy)
        self.m = self.v = None
        self.t = np.zeros(1, dtype=np.int64)   # updates applied (Adam's bias correction counts it)
        self.samples_seen = 0

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("lazy", False)   # pickled before the option existed
        for name in ("m", "v", "t"):   # unpickled from a read-only memory map (joblib): writable copies
            arr = getattr(self, name)
            if arr is not None and not arr.flags.writeable:
                setattr(self, name, aligned.on_line(arr))

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = value if isinstance(value, Schedule) else check_number(value, "lr", low_open=True)

    def lr_at(self, epoch, samples_ahead=0):
        """The rate for `epoch`, which starts `samples_ahead` samples after those seen so far."""
        if isinstance(self._lr, Schedule):
            return self._lr(epoch, self.samples_seen + samples_ahead)
        return self._lr

    def rates(self, epoch, k, n):
        """(k,) float64: the rates of epochs epoch .. epoch + k - 1 of n samples each; a constant
        rate is one array rather than k calls (the seed workload runs 1,000 one-batch epochs)."""
        if isinstance(self._lr, Schedule):
            return np.array([self.lr_at(epoch + i, i * n) for i in range(k)], dtype=np.float64)
        return np.full(k, float(self._lr))

    @property
    def needs_logs(self):
        return isinstance(self._lr, Schedule) and self._lr.needs_logs

    def hyper(self):
        h = np.zeros(5)
        for slot, name in ((H_MOMENTUM, "momentum"), (H_BETA1, "beta1"), (H_BETA2, "beta2"),
                           (H_EPS, "eps"), (H_DECAY, "weight_decay")):
            h[slot] = getattr(self, name, 0.0)
        return h

    # ---- state: the moment vectors, the step count, the samples seen ----
    def state_arrays(self):
        """(m, v, t): the live state arrays, which the update kernels change in place (m and v
        empty where the optimizer keeps no such moment; t an int64[1])."""
        return self.m, self.v, self.t

    def get_state(self):
        """A copy of the state (None before the first bind): what set_state puts back."""
        if self.m is None:
            return None
        return {"m": self.m.copy(), "v": self.v.copy(), "t": self.t.copy(), "samples_seen": self.samples_seen}

    def set_state(self, state):
        """Put back a get_state() copy, in place (arrays the kernels hold stay valid)."""
        if state is None:
            return
        for live, saved in ((self.m, state["m"]), (self.v, state["v"]), (self.t, state["t"])):
            live[...] = saved
        self.samples_seen = state["samples_seen"]

    def bind(self, n_params, dtype):
        """Allocate the state for a network of n_params, or check that it belongs to one."""
        if self.m is None:
            sizes = [n_params if k < self.n_moments else 0 for k in range(2)]
            self.m, self.v = (aligned.zeros(s, dtype) for s in sizes)
        elif (self.n_moments and self.m.size != n_params) or self.m.dtype != np.dtype(dtype):
            raise ValueError(f"this {type(self).__name__} holds state for {self.m.size} {self.m.dtype} "
                             f"parameters, but the network has {n_params} {np.dtype(dtype)}; "
                             f"use a new optimizer object for it")

    # saving
    def get_config(self):
        hyper = {k: getattr(self, k) for k in ("momentum", "beta1", "beta2", "eps", "weight_decay")
                 if hasattr(self, k)}
        lr = self._lr.get_config() if isinstance(self._lr, Schedule) else self._lr
        return {"name": self.name, "lr": lr, "clip_norm": self.clip_norm, "lazy": self.lazy, **hyper,
                "t": int(self.t[0]), "samples_seen": int(self.samples_seen)}

    def __repr__(self):
        cfg = self.get_config()
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in cfg.items() if k != 'name')})"


class SGD(Optimizer):
    """Plain stochastic gradient descent: p -= lr * g."""


class Momentum(Optimizer):
    """Heavy-ball momentum: m = momentum m - lr g; p += m."""
    code, name, default_lr = OPT_MOMENTUM, "momentum", 0.01
    n_moments = 1

    def __init__(self, lr=None, momentum=0.9, clip_norm=None, lazy=False):
        super().__init__(lr, clip_norm, lazy)
        self.momentum = check_number(momentum, "momentum", high=1.0)


class Nesterov(Momentum):
    """Nesterov momentum: m = momentum m - lr g; p += momentum m - lr g."""
    code, name = OPT_NESTEROV, "nesterov"


class Adam(Optimizer):
    """Adam (Kingma & Ba); weight_decay adds decay * p to the gradient (L2 through the moments)."""
    code, name, default_lr = OPT_ADAM, "adam", 0.001
    n_moments = 2

    def __init__(self, lr=None, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, clip_norm=None, lazy=False):
        super().__init__(lr, clip_norm, lazy)
        self.beta1 = check_number(beta1, "beta1", high=1.0)
        self.beta2 = check_number(beta2, "beta2", high=1.0)
        self.eps = check_number(eps, "eps", low_open=True)
        self.weight_decay = check_number(weight_decay, "weight_decay")


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p -= lr * weight_decay * p."""
    code, name = OPT_ADAMW, "adamw"

    def __init__(self, lr=None, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, clip_norm=None, lazy=False):
        super().__init__(lr, beta1, beta2, eps, weight_decay, clip_norm, lazy)


OPTIMIZERS = {c.name: c for c in (SGD, Momentum, Nesterov, Adam, AdamW)}


def get_optimizer(value):
    """An Optimizer from a name or an Optimizer object (returned as is)."""
    if isinstance(value, Optimizer):
        return value
    if isinstance(value, str) and value.lower() in OPTIMIZERS:
        return OPTIMIZERS[value.lower()]()
    raise ValueError(f"unknown optimizer {value!r}; choose one of {', '.join(OPTIMIZERS)} or pass an "
                     f"object such as fastbp.optim.Adam(beta1=0.9)." + did_you_mean(value, OPTIMIZERS))


def optimizer_from_config(cfg, m, v):
    cfg = dict(cfg)
    cls = OPTIMIZERS[cfg.pop("name")]
    t, seen = cfg.pop("t"), cfg.pop("samples_seen")
    lr = cfg.pop("lr")
    opt = cls(lr=schedule_from_config(lr) if isinstance(lr, dict) else lr, **cfg)
    opt.t[0], opt.samples_seen = t, seen
    opt.m, opt.v = m, v
    return opt
