"""What a network is, independent of how it is computed.

The function tables (activation and loss names -> integer codes and default parameters), the
validation of a user's choices, and the flat parameter layout that both backends share.
No math lives here: the numpy reference and the Numba kernels each implement the codes.
"""
from __future__ import annotations

import difflib
from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from . import aligned
from .data import check_number

# An activation: its kernel code; its parameter's name (or None), default and rule ("finite",
# "positive" or "count": a positive integer); the layers it may serve ("hidden", "output" or
# "both"); and what init="auto" draws its layer's weights with ("he" suits the relu family,
# "glorot" the saturating and linear units).
# The codes are the contract between this table, reference.py, kernels/cpu/activations.py and
# kernels/cuda/activations.py.
Activation = namedtuple("Activation", ["code", "param", "default", "rule", "layers", "init"])
ACTIVATIONS = {
    "linear": Activation(0, None, 0.0, None, "both", "glorot"),
    "sigmoid": Activation(1, None, 0.0, None, "both", "glorot"),
    "tanh": Activation(2, None, 0.0, None, "both", "glorot"),
    "relu": Activation(3, None, 0.0, None, "hidden", "he"),
    "leaky_relu": Activation(4, "slope", 0.01, "finite", "hidden", "he"),
    "elu": Activation(5, "alpha", 1.0, "positive", "hidden", "he"),
    "maxout": Activation(6, "pieces", 2, "count", "hidden", "he"),
    "softmax": Activation(7, None, 0.0, None, "output", "glorot"),
    "exp": Activation(8, None, 0.0, None, "output", "glorot"),   # a Poisson rate: log link
}
HIDDEN_ACTIVATIONS = tuple(n for n, a in ACTIVATIONS.items() if a.layers != "output")
OUTPUT_ACTIVATIONS = tuple(n for n, a in ACTIVATIONS.items() if a.layers != "hidden")

# name -> (code, parameter name or None, default parameter value, its rule)
LOSSES = {
    "mse": (0, None, 0.0, None),
    "rmse": (1, None, 0.0, None),
    "huber": (2, "delta", 1.0, "positive"),
    "binary_cross_entropy": (3, None, 0.0, None),
    "cross_entropy": (4, None, 0.0, None),
    "poisson": (5, None, 0.0, None),
}
# Which output activations each loss accepts. The two cross-entropies and the Poisson deviance are
# computed from the pre-activation (log-sum-exp, softplus, y*z), so each is tied to the one
# activation it fuses with.
LOSS_OUTPUTS = {
    "mse": ("linear", "sigmoid", "tanh"),
    "rmse": ("linear", "sigmoid", "tanh"),
    "huber": ("linear", "sigmoid", "tanh"),
    "binary_cross_entropy": ("sigmoid",),
    "cross_entropy": ("softmax",),
    "poisson": ("exp",),
}
DEFAULT_LOSS = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy",
                "linear": "mse", "tanh": "mse", "exp": "poisson"}

INITS = ("auto", "he", "glorot", "normal", "sklearn")
NORMAL_INIT_STD = 0.05  # init="normal": N(0, 0.05^2), Keras' RandomNormal default

# Columns of the integer layer table handed to the kernels, one row per dense layer.
# BN: 1 if batch normalisation follows the dense layer; G_OFF: its scale (gamma) in the flat
# parameters, shift (beta) right after; S_OFF: its running mean in the state vector, variance after.
N_IN, N_UNITS, PIECES, ACT, W_OFF, B_OFF, BN, G_OFF, S_OFF = range(9)
# Columns of the float layer table: the activation's parameter, the dropout rate after it.
ACT_PARAM, DROP = range(2)


def did_you_mean(name, choices):
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def parse_choice(value, table, allowed, what):
    """'name' or ('name', {param: value}) -> (name, param value); errors name `what`."""
    params = {}
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[1], dict):
        value, params = value   # a list too: that is how a tuple comes back from JSON
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a name such as {allowed[0]!r} or a (name, {{param: value}}) "
                        f"tuple, got {value!r}")
    name = value.lower()
    if name not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}."
                         + did_you_mean(value, allowed))
    code, pname, default, rule = table[name][:4]
    extra = set(params) - ({pname} if pname else set())
    if extra:
        hint = f"it takes only {pname!r}" if pname else "it takes no parameters"
        raise ValueError(f"{what} {name!r} got unknown parameter(s) {sorted(extra)}; {hint}")
    param = params.get(pname, default) if pname else 0.0
    if rule == "count":
        if isinstance(param, bool) or not isinstance(param, (int, np.integer)) or param < 1:
            raise ValueError(f"{name} {pname!r} must be a positive integer, got {param!r}")
        param = int(param)
    elif pname:
        param = float(param)
        if not np.isfinite(param) or (rule == "positive" and param <= 0):
            raise ValueError(f"{what} {name!r}: {pname!r} must be a finite "
                             f"{'positive number' if rule == 'positive' else 'number'}, got {param!r}")
    return name, param


@dataclass(frozen=True, eq=False)
class Spec:
    """A validated architecture and its flat parameter layout.

    Layer l maps n_in -> n_units * pieces pre-activations (pieces > 1 only for maxout, whose
    columns are grouped per unit: column u*pieces + p is piece p of unit u), then to n_units
    outputs. Its weights W (n_in, n_units*pieces) and bias b (n_units*pieces,) are views into
    one flat parameter vector, so an optimizer update is one loop over all parameters.
    """
    sizes: tuple
    activations: tuple      # per layer (hidden..., output)
    act_params: tuple       # per layer
    loss: str
    loss_param: float
    layers: np.ndarray      # (L, 9) int64 table, columns N_IN .. S_OFF
    n_params: int
    dropout: tuple = ()     # per layer: rate of inverted dropout on its output (0 for the output layer)
    batch_norm: tuple = ()  # per layer: batch normalisation between dense and activation
    l1: float = 0.0         # penalties on weights (not biases): l1 sum|W| + l2 sum W^2
    l2: float = 0.0
    bn_momentum: float = 0.99   # running = momentum * running + (1 - momentum) * batch statistic
    bn_eps: float = 1e-5
    n_state: int = 0        # running means and variances of the batch-norm layers

    @property
    def n_layers(self):
        return len(self.activations)

    @property
    def n_in(self):
        return self.sizes[0]

    @property
    def n_out(self):
        return self.sizes[-1]

    @property
    def output(self):
        return self.activations[-1]

    @property
    def act_codes(self):
        return np.array([ACTIVATIONS[a][0] for a in self.activations], dtype=np.int64)

    @property
    def loss_code(self):
        return LOSSES[self.loss][0]

    def weight_shapes(self):
        return [((int(r[N_IN]), int(r[N_UNITS] * r[PIECES])), (int(r[N_UNITS] * r[PIECES]),))
                for r in self.layers]

    def views(self, params):
        """[(W, b), ...] as views into the flat vector `params` (also used for gradients)."""
        out = []
        for (wshape, bshape), r in zip(self.weight_shapes(), self.layers):
            w = params[r[W_OFF]:r[W_OFF] + wshape[0] * wshape[1]].reshape(wshape)
            b = params[r[B_OFF]:r[B_OFF] + bshape[0]]
            out.append((w, b))
        return out

    def weight_index(self):
        """Where every layer's W (row by row) and then its b sit in the flat parameter vector,
        layer by layer: the vector Network.objective takes."""
        parts = []
        for (wshape, bshape), r in zip(self.weight_shapes(), self.layers):
            parts += [np.arange(r[W_OFF], r[W_OFF] + wshape[0] * wshape[1]), np.arange(r[B_OFF], r[B_OFF] + bshape[0])]
        return np.concatenate(parts)

    def bn_views(self, params):
        """[(gamma, beta), ...] of the batch-normalised layers, as views into `params`."""
        return [(params[r[G_OFF]:r[G_OFF] + nz], params[r[G_OFF] + nz:r[G_OFF] + 2 * nz])
                for r, nz in self._bn_rows()]

    def state_views(self, state):
        """[(running_mean, running_var), ...] of the batch-normalised layers."""
        return [(state[r[S_OFF]:r[S_OFF] + nz], state[r[S_OFF] + nz:r[S_OFF] + 2 * nz])
                for r, nz in self._bn_rows()]

    def _bn_rows(self):
        return [(r, int(r[N_UNITS] * r[PIECES])) for r in self.layers if r[BN]]

    def initial_state(self, dtype):
        state = np.zeros(self.n_state, dtype=dtype)
        for _, var in self.state_views(state):
            var[...] = 1
        return state

    def layer_floats(self, dtype):
        """(L, 2) table: activation parameter and dropout rate per layer."""
        return np.array([self.act_params, self.dropout], dtype=dtype).T.copy()

    @property
    def weight_ranges(self):
        """(start, stop) of every W in the flat vector: what l1/l2 penalise."""
        return np.array([(r[W_OFF], r[B_OFF]) for r in self.layers], dtype=np.int64)

    def config(self):
        """JSON-able description: make_spec(**config) rebuilds this Spec."""
        def named(name, table, p):
            pname = table[name][1]
            return [name, {pname: p}] if pname else name
        return {"sizes": list(self.sizes),
                "hidden": [named(a, ACTIVATIONS, p) for a, p in zip(self.activations[:-1], self.act_params[:-1])],
                "output": self.output, "loss": named(self.loss, LOSSES, self.loss_param),
                "dropout": list(self.dropout[:-1]), "batch_norm": list(self.batch_norm[:-1]),
                "l1": self.l1, "l2": self.l2, "bn_momentum": self.bn_momentum, "bn_eps": self.bn_eps}


def _per_hidden(value, n_hidden, name, check):
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n_hidden
    if len(values) != n_hidden:
        raise ValueError(f"{name} lists {len(values)} values but the network has {n_hidden} hidden "
                         f"layer(s); give one value, or one per hidden layer")
    return [check(v) for v in values]


def _flag(v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"batch_norm must be True/False or a list of them, got {v!r}")
    return bool(v)


def make_spec(sizes, hidden="relu", output="softmax", loss="auto", dropout=0.0, batch_norm=False,
              l1=0.0, l2=0.0, bn_momentum=0.99, bn_eps=1e-5):
    try:
        sizes = tuple(int(s) for s in sizes)
    except (TypeError, ValueError):
        raise TypeError(f"sizes must be a list of layer widths like [64, 128, 10], got {sizes!r}") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list at least the input and output widths, all >= 1, got {list(sizes)}")
    n_hidden = len(sizes) - 2
    if isinstance(hidden, list) and not (len(hidden) == 2 and isinstance(hidden[1], dict)):
        if len(hidden) != n_hidden:
            raise ValueError(f"hidden lists {len(hidden)} activations but sizes {list(sizes)} has "
                             f"{n_hidden} hidden layer(s); give one name, or one per hidden layer")
        hidden_list = hidden
    else:
        hidden_list = [hidden] * n_hidden
    acts, params = [], []
    for h in hidden_list:
        name, p = parse_choice(h, ACTIVATIONS, HIDDEN_ACTIVATIONS, "hidden activation")
        acts.append(name)
        params.append(p)
    out_name, out_p = parse_choice(output, ACTIVATIONS, OUTPUT_ACTIVATIONS, "output activation")
    acts.append(out_name)
    params.append(out_p)

    if loss is None or (isinstance(loss, str) and loss.lower() == "auto"):
        loss = DEFAULT_LOSS[out_name]
    loss_name, loss_p = parse_choice(loss, LOSSES, tuple(LOSSES), "loss")
    if out_name not in LOSS_OUTPUTS[loss_name]:
        fits = [k for k, v in LOSS_OUTPUTS.items() if out_name in v]
        raise ValueError(f"loss {loss_name!r} does not fit output {out_name!r}: it needs output="
                         f"{' or '.join(map(repr, LOSS_OUTPUTS[loss_name]))}. With output={out_name!r} "
                         f"use loss={' or '.join(map(repr, fits))}.")
    if out_name == "softmax" and sizes[-1] < 2:
        raise ValueError("a softmax output needs at least 2 units; for two classes use output='sigmoid' "
                         "with 1 unit, or sizes ending in 2")

    # dropout rates: the fraction of units dropped, in [0, 1)
    drops = _per_hidden(dropout, n_hidden, "dropout", lambda v: check_number(v, "dropout rate", high=1.0)) + [0.0]
    norms = _per_hidden(batch_norm, n_hidden, "batch_norm", _flag) + [False]
    l1, l2 = check_number(l1, "l1"), check_number(l2, "l2")
    bn_momentum = check_number(bn_momentum, "bn_momentum", high=1.0)
    bn_eps = check_number(bn_eps, "bn_eps", low_open=True)

    rows, off, soff = [], 0, 0
    for l, act in enumerate(acts):
        n_in, units = sizes[l], sizes[l + 1]
        pieces = params[l] if ACTIVATIONS[act].rule == "count" else 1   # maxout's pieces
        nz = units * pieces
        w_off, b_off = off, off + n_in * nz
        off = b_off + nz
        g_off = s_off = -1
        if norms[l]:
            g_off, s_off = off, soff
            off += 2 * nz
            soff += 2 * nz
        rows.append((n_in, units, pieces, ACTIVATIONS[act][0], w_off, b_off, int(norms[l]), g_off, s_off))
    return Spec(sizes=sizes, activations=tuple(acts), act_params=tuple(params), loss=loss_name,
                loss_param=float(loss_p), layers=np.array(rows, dtype=np.int64), n_params=off,
                dropout=tuple(drops), batch_norm=tuple(norms), l1=l1, l2=l2,
                bn_momentum=bn_momentum, bn_eps=bn_eps, n_state=soff)


def init_params(spec, init, rng, dtype):
    """A flat parameter vector initialised per `init` from the Generator `rng`."""
    params = aligned.zeros(spec.n_params, dtype)
    if isinstance(init, str):
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)} or pass a list of "
                             f"(W, b) pairs." + did_you_mean(init, INITS))
        if init == "sklearn":   # drawn as pairs, then set like pre-trained ones
            logistic = all(a == "sigmoid" for a in spec.activations[:-1])
            return init_params(spec, sklearn_weights(spec.weight_shapes(), logistic, rng, dtype), rng, dtype)
        for (w, _b), act, r in zip(spec.views(params), spec.activations, spec.layers):
            fan_in, fan_out = int(r[N_IN]), int(r[N_UNITS])
            kind = init
            if kind == "auto":
                kind = ACTIVATIONS[act].init
            if kind == "he":
                w[...] = rng.standard_normal(w.shape) * np.sqrt(2.0 / fan_in)
            elif kind == "glorot":
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                w[...] = rng.uniform(-limit, limit, size=w.shape)
            else:
                w[...] = rng.standard_normal(w.shape) * NORMAL_INIT_STD
        for gamma, _beta in spec.bn_views(params):
            gamma[...] = 1
        return params
    set_flat(spec, params, init, "init")
    for gamma, _beta in spec.bn_views(params):
        gamma[...] = 1
    return params


def sklearn_weights(shapes, logistic, rng, dtype):
    """scikit-learn's MLP initialisation as [(W, b), ...]: per layer W, then b, uniform in
    +-sqrt(f / (fan_in + fan_out)) with f = 2 for logistic hidden units and 6 otherwise, drawn
    in that order from `rng` (a numpy RandomState seeded as scikit-learn's gives its numbers)."""
    factor = 2.0 if logistic else 6.0
    out = []
    for (fan_in, fan_out), _ in shapes:
        bound = np.sqrt(factor / (fan_in + fan_out))
        w = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype)
        out.append((w, rng.uniform(-bound, bound, fan_out).astype(dtype)))
    return out


def set_flat(spec, params, weights, what="weights"):
    """Copy a list of (W, b) pairs into the flat vector, checking every shape and value."""
    try:
        weights = list(weights)
    except TypeError:
        raise TypeError(f"{what} must be a list of (W, b) pairs, one per layer") from None
    if len(weights) != spec.n_layers:
        raise ValueError(f"{what} has {len(weights)} (W, b) pairs but the network has {spec.n_layers} layers")
    staged = []
    for l, (pair, (wshape, bshape)) in enumerate(zip(weights, spec.weight_shapes())):
        try:
            w, b = pair
        except (TypeError, ValueError):
            raise TypeError(f"{what}[{l}] must be a (W, b) pair") from None
        w, b = np.asarray(w), np.asarray(b)
        for arr, shape, nm in ((w, wshape, "W"), (b, bshape, "b")):
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"{what}[{l}] {nm} must be a real numeric array, got dtype {arr.dtype}")
            if arr.shape != shape:
                raise ValueError(f"{what}[{l}] {nm} has shape {arr.shape}, expected {shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{what}[{l}] {nm} holds NaN or infinite values")
        staged.append((w, b))
    for (w, b), (vw, vb) in zip(staged, spec.views(params)):
        vw[...] = w
        vb[...] = b
