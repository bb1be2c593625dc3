"""scikit-learn drop-ins: MLPClassifier and MLPRegressor on fastbp's kernels.

    from fastbp.sklearn import MLPClassifier      # instead of sklearn.neural_network's
    clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=50, random_state=0).fit(X, y)

The same parameters, defaults and meanings as scikit-learn's MLPs (solvers 'lbfgs', 'sgd' and
'adam'; the regressor's loss 'squared_error' or 'poisson'), the same fitted attributes (coefs_,
intercepts_, loss_curve_, n_iter_, ...) with the same dtype (that of X: float32 stays float32,
anything else is float64), the same weight initialisation drawn from the same random_state, and
the same stopping rules. Ours on top: dtype (to force one), dropout, batch_norm, backend.

How the objectives line up. scikit-learn follows the gradient of
    sum over outputs of the mean over rows of the row losses  +  0.5 * alpha * ||W||^2 / rows
(its reported squared error divides by the number of outputs too; its gradient does not).
fastbp's losses average over outputs as well as rows (cross-entropy over rows only), so each
estimator multiplies fastbp's loss by a scale s (the number of outputs; half that for the
squared error, which fastbp does not halve; 1 for softmax) and sets fastbp's l2 to
0.5 * alpha / (rows * s). With solver='sgd' the step uses lr * s, Adam's epsilon is epsilon / s,
and L-BFGS sees s * loss and s * gradient: every update is scikit-learn's. Sample weights are
scaled to mean 1 over the training rows, which makes a full batch's weighted mean scikit-learn's
(it divides each mini-batch by that batch's weight sum, fastbp by its row count).

Needs scikit-learn and scipy (`pip install fastbp[sklearn]`).
"""
from __future__ import annotations

import warnings

import numpy as np

try:
    import scipy.optimize
    import scipy.sparse
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, column_or_1d
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import type_of_target, unique_labels
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
    from threadpoolctl import ThreadpoolController   # a dependency of scikit-learn
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fastbp.sklearn needs scikit-learn: pip install 'fastbp[sklearn]'") from exc

from .callbacks import Callback
from .network import Network
from .optim import Adam, Momentum, Nesterov, SGD
from .spec import sklearn_weights

# scikit-learn's activation names -> fastbp's (ours add leaky_relu and elu)
ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "leaky_relu": "leaky_relu", "elu": "elu"}
# fastbp output activation -> (fastbp loss, scikit-learn's out_activation_)
OUTPUTS = {"softmax": ("cross_entropy", "softmax"), "sigmoid": ("binary_cross_entropy", "logistic"),
           "linear": ("mse", "identity"), "exp": ("poisson", "exp")}
STOCHASTIC = ("sgd", "adam")
SOLVERS = ("lbfgs", "sgd", "adam")
NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values and "
              "need to be preprocessed.")


class _LearningRate:
    """scikit-learn's end-of-epoch learning-rate rules for the stochastic solvers: 'invscaling'
    sets init / (samples seen + 1) ** power_t, and on a plateau 'adaptive' divides by 5 where the
    others stop. The estimator keeps it as `_optimizer`, where scikit-learn's tools read
    `_optimizer.learning_rate`."""

    def __init__(self, init, schedule, power_t):
        self.learning_rate_init = self.learning_rate = init
        self.schedule, self.power_t = schedule, power_t

    def iteration_ends(self, samples_seen):
        if self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (samples_seen + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """True: stop training. False: the rate was cut and training goes on."""
        if self.schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + f" Setting learning rate to {self.learning_rate:f}")
        return False


class _Epochs(Callback):
    """scikit-learn's bookkeeping after each epoch of a stochastic fit: n_iter_, t_, the loss
    curve, validation scores and best weights, the no-improvement count, the learning rate."""

    def __init__(self, est, scale, n_train, validation, incremental):
        self.est, self.scale, self.n_train = est, scale, n_train
        self.validation, self.incremental = validation, incremental

    def on_epoch_end(self, epoch, logs):
        est, net = self.est, self.network
        est._end_epoch(logs["loss"] * est._report_scale(), self.n_train, self.validation, net)
        rate = est._optimizer
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.validation is not None else "Training loss"
            msg = (f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} "
                   f"consecutive epochs.")
            if rate.trigger_stopping(msg, est.verbose):
                net.stop_training = True
                return
            est._no_improvement_count = 0
        if est.solver == "sgd":
            net.optimizer.lr = rate.learning_rate * self.scale
        if est.n_iter_ == est.max_iter and not self.incremental:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the "
                          f"optimization hasn't converged yet.", ConvergenceWarning)


class _BaseMLP(BaseEstimator):
    _loss = None   # the regressor's parameter; the classifier's loss follows its output

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, dtype=None, dropout=0.0, batch_norm=False, backend="cpu"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.backend = backend

    # ---- checks ----
    def _bad(self, name, why):
        raise ValueError(f"{type(self).__name__}: {name} {why}, got {getattr(self, name)!r}")

    def _check_params(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes):
            self._bad("hidden_layer_sizes", "must be integers, e.g. (100,) or (64, 32)")
        if any(s <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        choices = (("activation", tuple(ACTIVATIONS)), ("solver", SOLVERS),
                   ("learning_rate", ("constant", "invscaling", "adaptive")))
        for name, options in choices:
            if getattr(self, name) not in options:
                self._bad(name, f"must be one of {', '.join(map(repr, options))}")
        for name, low, high, open_low, open_high in (
                ("alpha", 0, None, False, False), ("learning_rate_init", 0, None, True, False),
                ("power_t", 0, None, False, False), ("tol", 0, None, False, False),
                ("momentum", 0, 1, False, False), ("validation_fraction", 0, 1, True, True),
                ("beta_1", 0, 1, False, True), ("beta_2", 0, 1, False, True), ("epsilon", 0, None, True, False)):
            v = getattr(self, name)
            number = not isinstance(v, bool) and isinstance(v, (int, float, np.number)) and np.isfinite(v)
            above = high is not None and (v > high or open_high and v == high) if number else False
            if not number or v < low or (open_low and v == low) or above:
                self._bad(name, f"must be a number in {'(' if open_low else '['}{low}, "
                                f"{'inf)' if high is None else str(high) + (')' if open_high else ']')}")
        for name in ("max_iter", "max_fun"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                self._bad(name, "must be a positive integer")
        v = self.n_iter_no_change
        if isinstance(v, bool) or not (isinstance(v, (int, np.integer)) and v >= 1 or v == np.inf):
            self._bad("n_iter_no_change", "must be a positive integer or np.inf")
        v = self.batch_size
        if not (v == "auto" or isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1):
            self._bad("batch_size", "must be 'auto' or a positive integer")
        if self.dtype is not None and np.dtype(self.dtype).name not in ("float32", "float64"):
            self._bad("dtype", "must be None (follow X), 'float32' or 'float64'")
        if self.solver == "lbfgs" and (np.any(self.dropout) or np.any(self.batch_norm)):
            raise ValueError(f"{type(self).__name__}: solver='lbfgs' minimises the full-batch loss of coefs_ "
                             f"and intercepts_ only; dropout and batch_norm need solver='sgd' or 'adam'")
        return [int(s) for s in sizes]

    def _check_solver(self):
        if self.solver not in STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} "
                                 f"is not stochastic.")
        return True

    # ---- data ----
    def _validate_X(self, X, reset, y=None, *, with_y=False, **kw):
        """X (and y) as scikit-learn checks them, of the estimator's dtype: dense C-ordered, or a
        CSR matrix (CSC and others convert), which the network's sparse kernels read as is."""
        dtype = (np.float64, np.float32) if self.dtype is None else np.dtype(self.dtype)
        if not with_y:
            X = validate_data(self, X, reset=reset, accept_sparse=["csr", "csc"], dtype=dtype)
        else:
            X, y = validate_data(self, X, y, reset=reset, accept_sparse=["csr", "csc"], multi_output=True,
                                 dtype=dtype, **kw)
        X = scipy.sparse.csr_matrix(X) if scipy.sparse.issparse(X) else np.ascontiguousarray(X)
        return (X, y) if with_y else X

    def _batch(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        return int(np.clip(self.batch_size, 1, n))

    # ---- the network: coefs_ and intercepts_ are the truth, the Network computes with them ----
    def _init_coefs(self, layer_units, dtype, rng):
        """scikit-learn's initialisation, drawn in its order from the same random state."""
        shapes = [((a, b), (b,)) for a, b in zip(layer_units[:-1], layer_units[1:])]
        weights = sklearn_weights(shapes, self.activation == "logistic", rng, dtype)
        self.coefs_, self.intercepts_ = [w for w, _ in weights], [b for _, b in weights]

    def _network(self, layer_units, dtype, l2, seed):
        """The Network for coefs_ and intercepts_: the current one when its shape and penalty
        still fit (its optimizer and random streams go on), else a new one."""
        out = self._output()
        net = getattr(self, "network_", None)
        fits = (net is not None and net.sizes == list(layer_units) and net.spec.output == out
                and net.dtype == dtype and net.spec.l2 == l2)
        if not fits:
            hidden = ACTIVATIONS[self.activation]
            net = Network(list(layer_units), hidden=hidden, output=out, loss=OUTPUTS[out][0], dtype=dtype.name,
                          seed=seed, backend=self.backend, dropout=self.dropout, batch_norm=self.batch_norm, l2=l2,
                          init=list(zip(self.coefs_, self.intercepts_)))
            old = getattr(self, "network_", None)
            if old is not None and old.optimizer is not None and old.n_params == net.n_params:
                net.optimizer = old.optimizer   # partial_fit goes on with the same moments
            self.network_ = net
        else:
            net.set_weights(list(zip(self.coefs_, self.intercepts_)))   # they may have been assigned
        return net

    def _export(self, net):
        weights = net.get_weights()
        self.coefs_ = [w for w, _ in weights]
        self.intercepts_ = [b for _, b in weights]

    def _synced_network(self):
        """The network, after taking in coefs_ and intercepts_ as they are now (a user may have
        assigned or edited them)."""
        check_is_fitted(self, "coefs_")
        net = getattr(self, "network_", None)
        units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
        dtype = np.dtype(self.coefs_[0].dtype)
        if dtype.name not in ("float32", "float64"):   # assigned by hand as integers, say
            dtype = np.dtype(np.float64)
        if net is None or net.sizes != units:
            return self._network(units, dtype, 0.0, None)
        net.set_weights(list(zip(self.coefs_, self.intercepts_)))
        return net

    def _forward(self, X):
        net = self._synced_network()
        X = self._validate_X(X, reset=False)
        return net.predict(X)

    # ---- fitting ----
    def _fit(self, X, y, sample_weight=None, incremental=False):
        sizes = self._check_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        if self.solver in STOCHASTIC and self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        sample_weight = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        self.n_outputs_ = Y.shape[1]
        layer_units = [X.shape[1], *sizes, self.n_outputs_]
        rng = check_random_state(self.random_state)
        dtype = np.dtype(X.dtype)
        if first_pass:
            self._initialize(layer_units, dtype, rng)
        else:
            dtype = np.dtype(self.coefs_[0].dtype)
        self.n_layers_ = len(layer_units)
        self.out_activation_ = OUTPUTS[self._output()][1]
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, Y, sample_weight, layer_units, dtype, rng)
        else:
            self._fit_stochastic(X, Y, sample_weight, layer_units, dtype, rng, incremental)
        if not all(np.isfinite(w).all() for w in (*self.coefs_, *self.intercepts_)):
            raise ValueError(NON_FINITE)
        return self

    def _initialize(self, layer_units, dtype, rng):
        self.n_iter_, self.t_ = 0, 0
        self._init_coefs(layer_units, dtype, rng)
        self.__dict__.pop("network_", None)
        self.__dict__.pop("_optimizer", None)
        if self.solver in STOCHASTIC:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
            else:
                self.best_loss_, self.validation_scores_, self.best_validation_score_ = np.inf, None, None

    def _scale(self):
        """s: fastbp's loss times s is the function whose gradient scikit-learn follows."""
        k, out = self.n_outputs_, self._output()
        return {"softmax": 1.0, "sigmoid": float(k), "linear": k / 2.0, "exp": float(k)}[out]

    def _report_scale(self):
        """fastbp's loss times this is scikit-learn's loss_: s, except for the squared error,
        which scikit-learn reports as the mean over outputs (half of fastbp's MSE). With several
        targets its penalty term then reads 1/k of scikit-learn's (fastbp's epoch loss does not
        keep the two apart); with one target, and for every other loss, the figures agree."""
        return 0.5 if self._output() == "linear" else self._scale()

    @staticmethod
    def _unit_weights(sample_weight):
        """(weights scaled to mean 1, their mean before): fastbp's batch mean divides by rows,
        scikit-learn's by the weight sum, and its penalty by the weight sum too."""
        if sample_weight is None:
            return None, 1.0
        mean = float(sample_weight.mean())
        return (sample_weight / mean if mean > 0 else sample_weight), (mean if mean > 0 else 1.0)

    def _l2(self, rows, mean_weight):
        """fastbp's l2 for scikit-learn's penalty 0.5 * alpha * ||W||^2 / (the weight sum of the
        rows a step sees), on fastbp's loss (scikit-learn's divided by s)."""
        return 0.5 * self.alpha / (rows * mean_weight * self._scale())

    def _lbfgs_function(self, X, Y, sample_weight, layer_units, dtype, seed):
        """fun(theta) -> (loss, gradient): the function scikit-learn's L-BFGS minimises, at
        weights theta in _pack's layout, computed by the network's full-batch objective."""
        s = self._scale()
        sw, mean_weight = self._unit_weights(sample_weight)
        net = self._network(layer_units, dtype, self._l2(X.shape[0], mean_weight), seed)
        objective = net.objective(X, self._targets(Y), sw)
        order = _layer_order([(c.shape, b.shape) for c, b in zip(self.coefs_, self.intercepts_)])
        back = np.argsort(order)

        def fun(theta):
            if not np.all(np.isfinite(theta)):
                return np.inf, np.zeros_like(theta)
            value, grad = objective(theta[order])
            return s * value, s * grad[back]
        return fun

    def _set_packed(self, theta, dtype):
        """coefs_ and intercepts_ from a vector in _pack's layout."""
        shapes = [(c.shape, b.shape) for c, b in zip(self.coefs_, self.intercepts_)]
        pairs = [(w.astype(dtype), b.astype(dtype)) for w, b in _unpack(np.asarray(theta, dtype=float), shapes)]
        self.coefs_, self.intercepts_ = [w for w, _ in pairs], [b for _, b in pairs]

    def _fit_lbfgs(self, X, Y, sample_weight, layer_units, dtype, rng):
        fun = self._lbfgs_function(X, Y, sample_weight, layer_units, dtype, int(rng.randint(2 ** 31 - 1)))
        # L-BFGS-B's own vector steps call BLAS on a few thousand numbers, where waking BLAS
        # threads costs more than the work (most of a small fit's time): one thread there
        with _blas_controller().limit(limits=1, user_api="blas"):
            res = scipy.optimize.minimize(fun, _pack(self.coefs_, self.intercepts_), method="L-BFGS-B", jac=True,
                                          options={"maxfun": self.max_fun, "maxiter": self.max_iter,
                                                   "gtol": self.tol})
        self.n_iter_ = min(int(res.nit), self.max_iter)
        if res.status != 0:
            warnings.warn(f"lbfgs failed to converge after {res.nit} iteration(s) (status={res.status}):\n"
                          f"{res.message}.\n\nIncrease the number of iterations to improve the convergence "
                          f"(max_iter={self.max_iter}).\nYou might also want to scale the data as shown in:\n"
                          f"    https://scikit-learn.org/stable/modules/preprocessing.html", ConvergenceWarning)
        self.loss_ = float(res.fun) * self._report_scale() / self._scale()
        if not np.all(np.isfinite(res.x)):
            raise ValueError(NON_FINITE)
        self._set_packed(res.x, dtype)   # the network takes them in before it next computes
        if self.verbose:
            print(f"lbfgs: {self.n_iter_} iterations, loss = {self.loss_:.8f}")

    def _fit_stochastic(self, X, Y, sample_weight, layer_units, dtype, rng, incremental):
        s = self._scale()
        if not incremental or not hasattr(self, "_optimizer"):
            schedule = self.learning_rate if self.solver == "sgd" else "constant"
            self._optimizer = _LearningRate(self.learning_rate_init, schedule, self.power_t)
            fresh_optimizer = True
        else:
            fresh_optimizer = False
        validation = None
        if self.early_stopping:
            stratify = Y if is_classifier(self) and self.n_outputs_ == 1 else None
            if sample_weight is None:
                X, Xv, Y, Yv = train_test_split(X, Y, random_state=rng, test_size=self.validation_fraction,
                                                stratify=stratify)
                swv = None
            else:
                X, Xv, Y, Yv, sample_weight, swv = train_test_split(
                    X, Y, sample_weight, random_state=rng, test_size=self.validation_fraction, stratify=stratify)
            if Xv.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                                 "your dataset.")
            validation = (Xv, self._labels(Yv), swv)
        n = X.shape[0]
        batch = self._batch(n)
        sw, mean_weight = self._unit_weights(sample_weight)
        net = self._network(layer_units, dtype, self._l2(batch, mean_weight), int(rng.randint(2 ** 31 - 1)))
        if fresh_optimizer or net.optimizer is None:
            net.optimizer = self._new_optimizer(s)
        self._records()
        cb = _Epochs(self, s, n, validation, incremental)
        self.n_iter_ = 0
        self._best = None
        try:
            if incremental:   # a batch of one class is fine here, as in a stream
                history = net.partial_fit(X, self._targets(Y), batch_size=batch, sample_weight=sw,
                                          shuffle=self.shuffle)
                cb.network = net
                cb.on_epoch_end(net.epochs_done - 1, {"loss": history.history["loss"][-1]})
            else:
                net.fit(X, self._targets(Y), epochs=net.epochs_done + self.max_iter, initial_epoch=net.epochs_done,
                        batch_size=batch, shuffle=self.shuffle, sample_weight=sw, callbacks=[cb],
                        allow_one_class=True)   # scikit-learn fits one class (to a constant)
        except FloatingPointError as exc:
            # the network kept the weights from before the failing epoch
            if validation is None:
                raise ValueError(NON_FINITE) from exc
            self.n_iter_ += 1
            self.loss_curve_.append(float("nan"))
            self.validation_scores_.append(float("nan"))
            warnings.warn(f"Training diverged in epoch {self.n_iter_}; the weights of the best validation "
                          f"score were kept. {exc}", ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if validation is not None and getattr(self, "_best", None) is not None:
            net.restore(self._best)
        self._best = None
        self._export(net)

    def _records(self):
        """The stochastic solvers' records, where a fit by lbfgs or by hand left none."""
        for name, value in (("loss_curve_", []), ("t_", 0), ("_no_improvement_count", 0)):
            if not hasattr(self, name):
                setattr(self, name, value)
        if not hasattr(self, "best_loss_"):
            stopping = self.early_stopping
            self.best_loss_ = None if stopping else np.inf
            self.validation_scores_ = [] if stopping else None
            self.best_validation_score_ = -np.inf if stopping else None

    def _new_optimizer(self, s):
        if self.solver == "adam":
            return Adam(lr=self.learning_rate_init, beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon / s)
        lr = self.learning_rate_init * s
        if self.momentum > 0:
            return (Nesterov if self.nesterovs_momentum else Momentum)(lr=lr, momentum=self.momentum)
        return SGD(lr=lr)

    def _end_epoch(self, loss, n_train, validation, net):
        """scikit-learn's per-epoch records and its no-improvement count."""
        self.n_iter_ += 1
        self.t_ += n_train
        self.loss_ = loss
        self.loss_curve_.append(loss)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
        if validation is not None:
            Xv, yv, swv = validation
            score = self._score_outputs(net.predict(Xv), yv, swv)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best = net.snapshot(optimizer=False)
        else:
            if loss > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, loss)
        self._optimizer.iteration_ends(self.t_)

    def _score_outputs(self, P, y, sample_weight):
        if not np.all(np.isfinite(P)):
            return float("nan")
        return float(self._score_function(y, self._decode(P), sample_weight=sample_weight))

    # ---- scikit-learn's private entry points that its own tests and tools use ----
    def _loss_grad_lbfgs(self, packed_coef_inter, X, y, sample_weight=None, *buffers):
        """(loss, gradient) at the packed weights (all coefs_, then all intercepts_, flattened),
        which it sets as scikit-learn's does: the function solver='lbfgs' minimises, on the
        binarised targets y."""
        dtype = np.dtype(self.coefs_[0].dtype)
        self._set_packed(packed_coef_inter, dtype)
        X = (scipy.sparse.csr_matrix(X, dtype=dtype) if scipy.sparse.issparse(X)
             else np.ascontiguousarray(X, dtype=dtype))
        units = [X.shape[1]] + [c.shape[1] for c in self.coefs_]
        sw = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        fun = self._lbfgs_function(X, np.asarray(y).reshape(X.shape[0], -1), sw, units, dtype, None)
        return fun(_pack(self.coefs_, self.intercepts_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.non_deterministic = False
        return tags


_BLAS = []


def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, made once: a new one (what
    threadpool_limits makes) scans every loaded library, about 3 ms a fit."""
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0]


def _pack(coefs, intercepts):
    """scikit-learn's flat layout: every coefs_ array, then every intercepts_ array (float64)."""
    return np.concatenate([np.ravel(a) for a in (*coefs, *intercepts)]).astype(np.float64, copy=False)


def _layer_order(shapes):
    """The permutation that lays a vector in _pack's layout out layer by layer (W, then b, per
    layer), as Network.objective takes it: layered = packed[order]."""
    w_sizes = [w[0] * w[1] for w, _ in shapes]
    b_sizes = [b[0] for _, b in shapes]
    w_starts = np.cumsum([0] + w_sizes[:-1])
    b_starts = sum(w_sizes) + np.cumsum([0] + b_sizes[:-1])
    return np.concatenate([np.r_[np.arange(ws, ws + wn), np.arange(bs, bs + bn)]
                           for ws, wn, bs, bn in zip(w_starts, w_sizes, b_starts, b_sizes)])


def _unpack(theta, shapes):
    """[(W, b), ...] views into a vector in _pack's layout."""
    out, start = [], 0
    for wshape, _ in shapes:
        size = wshape[0] * wshape[1]
        out.append([theta[start:start + size].reshape(wshape)])
        start += size
    for pair, (_, bshape) in zip(out, shapes):
        pair.append(theta[start:start + bshape[0]])
        start += bshape[0]
    return [tuple(p) for p in out]


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's MLPClassifier, trained by fastbp: log-loss with a softmax output for
    several classes, one logistic output for two, one logistic output per label for a multilabel
    indicator matrix."""
    _score_function = staticmethod(accuracy_score)

    def _output(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "sigmoid"

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._validate_X(X, reset, y, with_y=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)

    @staticmethod
    def _targets(Y):
        return Y.astype(np.float64)

    def _labels(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    def _decode(self, P):
        return self._label_binarizer.inverse_transform(P.ravel() if P.shape[1] == 1 else P)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y (class labels, or a multilabel indicator matrix)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X, y from the current weights. The first call needs `classes`: every
        label the classifier will see, e.g. np.unique(y_all)."""
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self.classes_ = unique_labels(classes)
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if type_of_target(y) == "multilabel-indicator" else classes)
        elif classes is not None and not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, was: "
                             f"{self.classes_!r}")
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Class labels (multilabel: an indicator matrix)."""
        return self._decode(self._forward(X))

    def predict_proba(self, X):
        """Class probabilities, (n, n_classes) (multilabel: one probability per label)."""
        P = self._forward(X)
        if P.shape[1] == 1:
            return np.hstack([1 - P, P])
        return P

    def predict_log_proba(self, X):
        P = self.predict_proba(X)
        return np.log(P, out=P)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's MLPRegressor, trained by fastbp: identity output with the squared error,
    or (loss='poisson') an exp output with half the Poisson deviance."""
    _score_function = staticmethod(r2_score)

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype=None, dropout=0.0,
                 batch_norm=False, backend="cpu"):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         dtype=dtype, dropout=dropout, batch_norm=batch_norm, backend=backend)
        self.loss = loss

    def _check_params(self):
        if self.loss not in ("squared_error", "poisson"):
            self._bad("loss", "must be 'squared_error' or 'poisson'")
        return super()._check_params()

    def _output(self):
        return "exp" if self.loss == "poisson" else "linear"

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._validate_X(X, reset, y, with_y=True, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")
        return X, y.reshape(len(y), -1)

    @staticmethod
    def _targets(Y):
        return Y

    @staticmethod
    def _labels(Y):
        return Y

    @staticmethod
    def _decode(P):
        return P

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and the real-valued target(s) y."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X, y, from the current weights."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predictions (n,) for one target, (n, n_targets) for several, in the weights' dtype."""
        P = self._forward(X)
        return P.ravel() if P.shape[1] == 1 else P

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
