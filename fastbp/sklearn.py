"""scikit-learn drop-ins: MLPClassifier and MLPRegressor on fastbp's kernels.

    from fastbp.sklearn import MLPClassifier      # instead of sklearn.neural_network's
    clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=50, random_state=0).fit(X, y)

Same parameter names and meanings as scikit-learn's MLP, the same fitted attributes (coefs_,
intercepts_, loss_curve_, n_iter_, ...), and the same stopping rule: training ends when the
training loss (or, with early_stopping, the validation score) has not improved by `tol` for
more than n_iter_no_change epochs. Ours on top: dtype, dropout, batch_norm, backend.

How the losses line up with scikit-learn's: cross-entropies are the same; scikit-learn's
squared error is half of fastbp's MSE, so the regressor reports half of fastbp's loss, and
with solver="sgd" halves the step so that each update equals scikit-learn's. alpha is the
L2 strength in scikit-learn's form (0.5 * alpha * ||W||^2 / batch_size added to each batch's
loss). The weights start from fastbp's initialisation (He for relu, Glorot otherwise), not
scikit-learn's, so the two fit the same model along different paths.

Needs scikit-learn (`pip install fastbp[sklearn]`).
"""
from __future__ import annotations

import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import type_of_target, unique_labels
    from sklearn.utils.validation import check_is_fitted, validate_data, _check_sample_weight
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fastbp.sklearn needs scikit-learn: pip install 'fastbp[sklearn]'") from exc

from .callbacks import Callback
from .network import Network
from .optim import Adam, InverseScaling, Momentum, Nesterov, SGD

ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "linear": "linear", "sigmoid": "sigmoid", "leaky_relu": "leaky_relu", "elu": "elu"}
OUT_ACTIVATION = {"softmax": "softmax", "sigmoid": "logistic", "linear": "identity"}


class _SklearnStopping(Callback):
    """scikit-learn's end-of-epoch bookkeeping: the loss curve, validation scores, the
    no-improvement count with `tol`, 'adaptive' rate cuts, and the best validation weights."""

    def __init__(self, est, loss_scale, validation):
        self.est, self.loss_scale, self.validation = est, loss_scale, validation

    def on_epoch_end(self, epoch, logs):
        est, net = self.est, self.network
        loss = logs["loss"] * self.loss_scale
        est.loss_curve_.append(loss)
        est.loss_ = loss
        est.n_iter_ += 1
        est.t_ += est._n_train
        if self.validation is not None:
            score = est._score_net(*self.validation)
            est.validation_scores_.append(score)
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best = net.snapshot(optimizer=False)
            improved = score >= est._best_for_tol + est.tol
            est._best_for_tol = max(est._best_for_tol, score)
        else:
            improved = loss <= est.best_loss_ - est.tol
            est.best_loss_ = min(est.best_loss_, loss)
        est._no_improvement = 0 if improved else est._no_improvement + 1
        if est._no_improvement > est.n_iter_no_change:
            if est.learning_rate == "adaptive" and est.solver == "sgd":
                opt = net.optimizer
                if opt.lr > 1e-6:
                    opt.lr = opt.lr / 5
                    est._no_improvement = 0
                    if est.verbose:
                        print(f"Setting learning rate to {opt.lr:f}")
                    return
            est._converged = True
            net.stop_training = True
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")


class _BaseMLP(BaseEstimator):
    _out = None   # set per fit: the output activation

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, dtype="float32", dropout=0.0, batch_norm=False, backend="cpu"):
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
    def _check_params(self):
        def bad(name, why):
            raise ValueError(f"{type(self).__name__}: {name} {why}, got {getattr(self, name)!r}")
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if np.isscalar(sizes) else list(sizes)
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in sizes):
            bad("hidden_layer_sizes", "must be positive integers, e.g. (100,) or (64, 32)")
        if self.activation not in ACTIVATIONS:
            bad("activation", f"must be one of {sorted(ACTIVATIONS)}")
        if self.solver == "lbfgs":
            raise ValueError(f"{type(self).__name__}: solver='lbfgs' is not implemented by fastbp, which "
                             f"trains by mini-batch backpropagation; use solver='adam' or 'sgd', or "
                             f"sklearn.neural_network.{type(self).__name__} for L-BFGS")
        if self.solver not in ("sgd", "adam"):
            bad("solver", "must be 'sgd' or 'adam'")
        if self.learning_rate not in ("constant", "invscaling", "adaptive"):
            bad("learning_rate", "must be 'constant', 'invscaling' or 'adaptive'")
        for name, low, high in (("alpha", 0, None), ("learning_rate_init", 0, None), ("tol", 0, None),
                                ("momentum", 0, 1), ("validation_fraction", 0, 1), ("beta_1", 0, 1),
                                ("beta_2", 0, 1), ("epsilon", 0, None), ("power_t", 0, None)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v):
                bad(name, "must be a finite number")
            strict_low = name in ("learning_rate_init", "epsilon", "validation_fraction")
            if v < low or (strict_low and v == low) or (high is not None and v > high) or \
                    (name in ("validation_fraction", "beta_1", "beta_2") and v >= 1):
                bad(name, f"must be in {'(' if strict_low else '['}{low}, {high if high is not None else 'inf'}"
                    f"{')' if name in ('validation_fraction', 'beta_1', 'beta_2') or high is None else ']'}")
        for name in ("max_iter", "n_iter_no_change"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                bad(name, "must be a positive integer")
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, (int, np.integer))
                                              and not isinstance(self.batch_size, bool) and self.batch_size > 0)):
            bad("batch_size", "must be 'auto' or a positive integer")
        return [int(s) for s in sizes]

    def _batch(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn(f"Got batch_size larger than sample size. It is going to be clipped to {n}",
                          UserWarning, stacklevel=3)
        return int(min(self.batch_size, n))

    # ---- the network ----
    def _new_network(self, n_in, n_out, sizes, seed, l2):
        return Network([n_in, *sizes, n_out], hidden=ACTIVATIONS[self.activation], output=self._out,
                       dtype=self.dtype, seed=seed, backend=self.backend, dropout=self.dropout,
                       batch_norm=self.batch_norm, l2=l2)

    def _optimizer(self, loss_scale):
        lr0 = self.learning_rate_init * (loss_scale if self.solver == "sgd" else 1.0)
        if self.solver == "adam":
            return Adam(lr=lr0, beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon)
        # 'adaptive' divides a plain rate by 5 on a plateau (_SklearnStopping)
        lr = InverseScaling(lr0, self.power_t) if self.learning_rate == "invscaling" else lr0
        if self.momentum > 0:
            cls = Nesterov if self.nesterovs_momentum else Momentum
            return cls(lr=lr, momentum=self.momentum)
        return SGD(lr=lr)

    def _fit(self, X, Y, sample_weight, incremental):
        sizes = self._check_params()
        n = X.shape[0]
        batch = self._batch(n)
        fresh = not (hasattr(self, "network_") and (self.warm_start or incremental))
        loss_scale = self._loss_scale(Y)
        if fresh:
            rng = check_random_state(self.random_state)
            self._seed = int(rng.randint(np.iinfo(np.int32).max))
            n_out = len(self.classes_) if self._out == "softmax" else Y.shape[1]
            # scikit-learn adds 0.5 * alpha * ||W||^2 / batch to each batch's loss; our MSE is
            # twice its squared error, so the regressor's penalty doubles with it (loss_scale 0.5)
            l2 = 0.5 * self.alpha / batch / loss_scale
            self.network_ = self._new_network(X.shape[1], n_out, sizes, self._seed, l2)
            self.network_.optimizer = self._optimizer(loss_scale)
            self.n_iter_, self.t_ = 0, 0
            self.loss_curve_ = []
            self.best_loss_ = np.inf
            self.loss_ = None
            self._no_improvement = 0
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None
            self._best_for_tol = -np.inf
        net = self.network_
        validation = None
        if self.early_stopping and not incremental:
            stratify = Y if self._out == "softmax" else None
            idx = np.arange(n)
            try:
                tr, va = train_test_split(idx, test_size=self.validation_fraction, random_state=self._seed,
                                          stratify=stratify)
            except ValueError:   # a class too small to stratify
                tr, va = train_test_split(idx, test_size=self.validation_fraction, random_state=self._seed)
            X, Y, Xv, Yv = X[tr], Y[tr], X[va], Y[va]
            sample_weight = None if sample_weight is None else sample_weight[tr]
            validation = (Xv, Yv)
            if self.best_loss_ is not None and not self.validation_scores_:
                self.best_loss_ = None   # scikit-learn: no best_loss_ when stopping on validation
        self._n_train = X.shape[0]
        self._converged = False
        self._best = None
        cb = _SklearnStopping(self, loss_scale, validation)
        epochs = 1 if incremental else self.max_iter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # -1/+1 label mapping is ours to do
            net.fit(X, Y, epochs=net.epochs_done + epochs, initial_epoch=net.epochs_done,
                    batch_size=min(batch, X.shape[0]), shuffle=self.shuffle, sample_weight=sample_weight,
                    callbacks=[cb])
        if validation is not None and self._best is not None:
            net.restore(self._best)   # the best validation epoch's weights, as scikit-learn
        if not incremental and not self._converged:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          f"optimization hasn't converged yet.", ConvergenceWarning)
        self._export()
        return self

    def _export(self):
        net = self.network_
        weights = net.get_weights()
        self.coefs_ = [w for w, _ in weights]
        self.intercepts_ = [b for _, b in weights]
        self.n_layers_ = len(weights) + 1
        self.n_outputs_ = net.sizes[-1]
        self.out_activation_ = OUT_ACTIVATION[self._out]

    def _predict_raw(self, X):
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32], order="C")
        return self.network_.predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


def _column_to_1d(y):
    """A column vector of labels is one target, as scikit-learn treats it (with its warning)."""
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the "
                      "shape of y to (n_samples,), for example using ravel().", DataConversionWarning,
                      stacklevel=3)
        return y.ravel()
    return y


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's MLPClassifier, trained by fastbp. Binary targets get one logistic
    output, multiclass a softmax, multilabel indicator matrices one logistic output per label."""

    def _loss_scale(self, Y):
        # binary cross-entropy: fastbp averages over outputs too, scikit-learn over samples only
        return float(Y.shape[1]) if self._out == "sigmoid" else 1.0

    def _encode(self, y, first):
        kind = type_of_target(y, input_name="y")
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"Unknown label type: {kind}. MLPClassifier needs class labels "
                             f"(binary, multiclass or a multilabel indicator matrix); for real-valued "
                             f"targets use MLPRegressor")
        if first:
            if kind == "multilabel-indicator":
                self.classes_ = np.arange(y.shape[1])
                self._multilabel = True
            else:
                self.classes_ = unique_labels(y)
                self._multilabel = False
            if len(self.classes_) < 2 and not self._multilabel:
                raise ValueError(f"MLPClassifier needs samples of at least 2 classes in the data, but "
                                 f"the data contains only one class: {self.classes_[0]!r}")
            self._out = "sigmoid" if self._multilabel or len(self.classes_) == 2 else "softmax"
        if self._multilabel:
            return np.asarray(y, dtype=np.float64)
        missing = np.setdiff1d(unique_labels(y), self.classes_)
        if missing.size:
            raise ValueError(f"y holds labels {missing.tolist()} that are not in classes_ "
                             f"{self.classes_.tolist()}")
        codes = np.searchsorted(self.classes_, y)
        if self._out == "sigmoid":
            return codes.reshape(-1, 1).astype(np.float64)
        return codes

    def fit(self, X, y, sample_weight=None):
        """Train from scratch (or from the current weights with warm_start) for up to max_iter
        epochs."""
        X, y = validate_data(self, X, y, multi_output=True, dtype=[np.float64, np.float32], order="C")
        y = _column_to_1d(y)
        sample_weight = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        if not (self.warm_start and hasattr(self, "network_")):
            Y = self._encode(y, True)
        else:
            Y = self._encode(y, False)
        return self._fit(X, Y, sample_weight, incremental=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over X, y. The first call needs `classes`: every label that will appear."""
        first = not hasattr(self, "network_")
        X, y = validate_data(self, X, y, multi_output=True, reset=first, dtype=[np.float64, np.float32],
                             order="C")
        y = _column_to_1d(y)
        sample_weight = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        if first:
            if classes is None and type_of_target(y) != "multilabel-indicator":
                raise ValueError("classes must be passed on the first call to partial_fit: every "
                                 "label the classifier will see, e.g. classes=np.unique(y_all)")
            self._encode(np.asarray(classes) if classes is not None else y, True)
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"`classes={list(classes)}` is not the same as on the first call to "
                             f"partial_fit ({self.classes_.tolist()})")
        return self._fit(X, self._encode(y, False), sample_weight, incremental=True)

    def _score_net(self, X, Y):
        P = self.network_.predict(X)
        if self._out == "softmax":
            return float(np.mean(P.argmax(axis=1) == Y))
        return float(accuracy_score(Y > 0.5, P > 0.5))

    def predict_proba(self, X):
        """Class probabilities, (n, n_classes) (multilabel: one probability per label)."""
        P = self._predict_raw(X).astype(np.float64)
        if self._out == "sigmoid" and not self._multilabel:
            return np.hstack([1 - P, P])
        return P

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        P = self._predict_raw(X)
        if self._multilabel:
            return (P > 0.5).astype(int)
        if self._out == "sigmoid":
            return self.classes_[(P[:, 0] > 0.5).astype(int)]
        return self.classes_[P.argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's MLPRegressor (identity output, squared error), trained by fastbp."""
    _out = "linear"

    def _loss_scale(self, Y):
        return 0.5   # scikit-learn's squared error is half of fastbp's MSE

    def fit(self, X, y, sample_weight=None):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32],
                             order="C")
        sample_weight = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        self._y_1d = y.ndim == 1
        return self._fit(X, y.reshape(len(y), -1), sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X, y, from the current weights."""
        first = not hasattr(self, "network_")
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, reset=first,
                             dtype=[np.float64, np.float32], order="C")
        sample_weight = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        if first:
            self._y_1d = y.ndim == 1
        return self._fit(X, y.reshape(len(y), -1), sample_weight, incremental=True)

    def _score_net(self, X, Y):
        return float(r2_score(Y, self.network_.predict(X)))

    def predict(self, X):
        P = self._predict_raw(X).astype(np.float64)
        return P[:, 0] if self._y_1d else P

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
