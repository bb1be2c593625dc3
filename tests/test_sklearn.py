"""fastbp.sklearn against scikit-learn's own estimator checks, in its tools, and on its data."""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastbp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# the defaults (adam), and the full-batch solver; the checks feed float64, float32 and sparse X
ESTIMATORS = [MLPClassifier(random_state=0), MLPRegressor(random_state=0),
              MLPClassifier(solver="lbfgs", random_state=0), MLPRegressor(solver="lbfgs", random_state=0)]


def expected_failures(estimator):
    """Checks fastbp's estimators fail, and why."""
    if estimator.solver == "lbfgs" and isinstance(estimator, MLPClassifier):
        # L-BFGS fits this tiny multilabel set to saturation: some sigmoid outputs round to exactly
        # 1.0, where the check wants < 1. scikit-learn's own MLPClassifier(solver="lbfgs") fails it
        # the same way (same initial weights, same 47 iterations, the same loss to 1e-10).
        return {"check_classifiers_multilabel_output_format_predict_proba":
                "saturated sigmoid outputs equal 1.0, as scikit-learn's own lbfgs MLP's do"}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


# ---- beyond the generic checks ----

from sklearn import datasets as skdata  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier, MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


@pytest.fixture(scope="module")
def iris():
    X, y = skdata.load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_fitted_attributes_match_sklearns(iris):
    X, y = iris
    ours = _quiet(MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=30, random_state=0).fit, X, y)
    theirs = _quiet(SkMLPClassifier(hidden_layer_sizes=(16, 8), max_iter=30, random_state=0).fit, X, y)
    for name in ("n_layers_", "n_outputs_", "out_activation_", "n_iter_", "t_", "n_features_in_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in theirs.intercepts_]
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert len(ours.loss_curve_) == ours.n_iter_ and ours.loss_ == ours.loss_curve_[-1]
    assert ours.best_loss_ == min(ours.loss_curve_)
    assert ours.predict_proba(X).shape == theirs.predict_proba(X).shape
    np.testing.assert_allclose(ours.predict_proba(X).sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.exp(ours.predict_log_proba(X)), ours.predict_proba(X), rtol=1e-6)
    # the exported weights are the network's: predicting by hand from them agrees
    h = np.maximum(X @ ours.coefs_[0] + ours.intercepts_[0], 0)
    h = np.maximum(h @ ours.coefs_[1] + ours.intercepts_[1], 0)
    z = h @ ours.coefs_[2] + ours.intercepts_[2]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(axis=1, keepdims=True), ours.predict_proba(X), rtol=1e-4, atol=1e-6)


def test_binary_string_labels_and_early_stopping():
    X, y = skdata.load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    labels = np.array(["benign", "malignant"])[y]
    clf = _quiet(MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, n_iter_no_change=5,
                               learning_rate_init=0.01, max_iter=300, random_state=0).fit, X, labels)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1
    assert set(clf.predict(X)) <= set(labels)
    assert clf.best_loss_ is None and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.n_iter_ < 300, "early stopping never stopped"
    assert clf.score(X, labels) > 0.95


def test_solvers_schedules_and_lbfgs(iris):
    X, y = iris
    for kw in (dict(solver="sgd", learning_rate="constant", learning_rate_init=0.1),
               dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5),
               dict(solver="sgd", learning_rate="adaptive", nesterovs_momentum=False, learning_rate_init=0.1),
               dict(solver="sgd", momentum=0.0, learning_rate_init=0.1),
               dict(solver="adam", learning_rate_init=0.01), dict(solver="lbfgs")):
        clf = _quiet(MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, random_state=0, **kw).fit, X, y)
        assert clf.score(X, y) > 0.9, kw
    with pytest.raises(ValueError, match="lbfgs.*dropout and batch_norm"):
        MLPClassifier(solver="lbfgs", dropout=0.1).fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="swish").fit(X, y)


def test_partial_fit_warm_start_and_pickle(iris):
    import pickle
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    theirs = SkMLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)
    for _ in range(50):
        clf.partial_fit(X, y, classes=[0, 1, 2])
        theirs.partial_fit(X, y, classes=[0, 1, 2])
    # as scikit-learn: n_iter_ counts this call's epochs, t_ every sample seen; and with the same
    # initial weights and one full batch per epoch, the same path (summation order aside)
    assert clf.n_iter_ == theirs.n_iter_ == 1 and clf.t_ == theirs.t_ == 50 * len(X)
    assert clf.loss_ == pytest.approx(theirs.loss_, rel=1e-5)
    assert clf.score(X, y) == theirs.score(X, y) > 0.8
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :3], y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    warm = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, warm_start=True, random_state=0)
    _quiet(warm.fit, X, y)
    first = warm.coefs_[0].copy()
    _quiet(warm.fit, X, y)
    assert warm.n_iter_ == 5 and warm.t_ == 10 * len(X) and not np.array_equal(first, warm.coefs_[0])


def test_pipeline_grid_search_cross_val(iris):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=100, learning_rate_init=0.01, random_state=0))
    scores = _quiet(cross_val_score, pipe, X, y, cv=3)
    assert scores.mean() > 0.85
    grid = GridSearchCV(MLPClassifier(max_iter=50, learning_rate_init=0.01, random_state=0),
                        {"hidden_layer_sizes": [(8,), (32,)], "alpha": [1e-4, 1e-2]}, cv=3)
    _quiet(grid.fit, X, y)
    assert grid.best_score_ > 0.85 and grid.best_params_["hidden_layer_sizes"] in [(8,), (32,)]


# Accuracy (R^2) within one point of scikit-learn's own MLP: same hyper-parameters and split,
# the mean over 5 seeds, solver by solver.
SOLVERS = [dict(solver="lbfgs"), dict(solver="sgd", learning_rate_init=0.05), dict(solver="adam", learning_rate_init=0.01)]
CASES = [("digits", skdata.load_digits, (32,)), ("wine", skdata.load_wine, (32,)),
         ("breast_cancer", skdata.load_breast_cancer, (32,))]


def _compare(ours_cls, sk_cls, X, y, **kw):
    Xt, Xv, yt, yv = train_test_split(StandardScaler().fit_transform(X), y, random_state=0)
    return [np.mean([_quiet(cls(random_state=s, **kw).fit, Xt, yt).score(Xv, yv) for s in range(5)])
            for cls in (ours_cls, sk_cls)]


@pytest.mark.parametrize("solver", SOLVERS, ids=[s["solver"] for s in SOLVERS])
@pytest.mark.parametrize("name,load,hidden", CASES, ids=[c[0] for c in CASES])
def test_accuracy_within_a_point_of_sklearn(name, load, hidden, solver):
    X, y = load(return_X_y=True)
    ours, theirs = _compare(MLPClassifier, SkMLPClassifier, X, y, hidden_layer_sizes=hidden, max_iter=100, **solver)
    assert ours >= theirs - 0.01, (ours, theirs)


@pytest.mark.parametrize("solver", SOLVERS, ids=[s["solver"] for s in SOLVERS])
def test_regression_r2_within_a_point_of_sklearn(solver):
    X, y = skdata.make_friedman1(800, noise=1.0, random_state=0)
    y = (y - y.mean()) / y.std()
    ours, theirs = _compare(MLPRegressor, SkMLPRegressor, X, y, hidden_layer_sizes=(32,), max_iter=200, **solver)
    assert ours >= theirs - 0.01, (ours, theirs)


# Same initial weights and, with one full batch in a fixed order, the same steps as scikit-learn:
# every loss's scale, the penalty, the sgd rate and Adam's epsilon line up (fastbp.sklearn's doc).
def _problems():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    w = rng.standard_normal((5, 3))
    return {"multiclass": (MLPClassifier, SkMLPClassifier, X, (X @ w).argmax(axis=1)),
            "binary": (MLPClassifier, SkMLPClassifier, X, (X @ w)[:, 0] > 0),
            "multilabel": (MLPClassifier, SkMLPClassifier, X, (X @ w > 0).astype(int)),
            "squared_error_3_targets": (MLPRegressor, SkMLPRegressor, X, X @ w),
            "poisson": (MLPRegressor, SkMLPRegressor, X, rng.poisson(np.exp(0.3 * X @ w[:, 0])))}


STEPS = [dict(solver="sgd", momentum=0.0), dict(solver="sgd", nesterovs_momentum=True),
         dict(solver="sgd", nesterovs_momentum=False, learning_rate="invscaling"), dict(solver="adam"),
         dict(solver="lbfgs")]


@pytest.mark.parametrize("steps", STEPS, ids=lambda kw: "-".join(map(str, kw.values())))
@pytest.mark.parametrize("problem", list(_problems()))
def test_same_start_and_steps_as_sklearn(problem, steps):
    ours_cls, sk_cls, X, y = _problems()[problem]
    kw = dict(hidden_layer_sizes=(7, 4), alpha=0.01, batch_size=len(X), shuffle=False, max_iter=5,
              learning_rate_init=0.01, random_state=3, activation="tanh", **steps)
    if problem == "poisson":
        kw["loss"] = "poisson"
    ours, theirs = (_quiet(cls(**kw).fit, X, y) for cls in (ours_cls, sk_cls))
    assert ours.n_iter_ == theirs.n_iter_ and ours.coefs_[0].dtype == np.float64
    # Adam: fastbp adds epsilon to the bias-corrected sqrt(v), scikit-learn to the raw one (both
    # forms are in Kingma & Ba), which moves a weight whose gradient is near epsilon by up to a
    # few hundredths of the 5 steps' 0.05 (and Adam is blind to a gradient's scale anyway)
    rtol, atol = (1e-3, 5e-4) if steps["solver"] == "adam" else (1e-6, 1e-9)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    if problem == "squared_error_3_targets":   # the penalty part of loss_ is 1/3 of theirs
        penalty = 0.5 * kw["alpha"] * sum((w ** 2).sum() for w in theirs.coefs_) / len(X)
        assert theirs.loss_ - penalty <= ours.loss_ <= theirs.loss_
    else:
        assert ours.loss_ == pytest.approx(theirs.loss_, rel=rtol)


@pytest.mark.parametrize("activation", ["relu", "logistic"])
def test_initial_weights_are_sklearns(activation):
    """The estimators draw scikit-learn's initial weights from the same random state: after one
    step at a negligible rate, both sets of weights are still the initial ones, and equal."""
    X, y = skdata.load_iris(return_X_y=True)
    kw = dict(hidden_layer_sizes=(9, 5), activation=activation, solver="sgd", learning_rate_init=1e-12,
              max_iter=1, random_state=11)
    ours, theirs = _quiet(MLPClassifier(**kw).fit, X, y), _quiet(SkMLPClassifier(**kw).fit, X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cls,kw,match", [
    (MLPClassifier, dict(alpha=-1), r"alpha must be a number in \[0, inf\)"),
    (MLPClassifier, dict(beta_1=1.0), r"beta_1 must be a number in \[0, 1\)"),
    (MLPClassifier, dict(learning_rate_init=0), r"learning_rate_init must be a number in \(0, inf\)"),
    (MLPClassifier, dict(tol="small"), "tol must be a number"),
    (MLPClassifier, dict(n_iter_no_change=0), "n_iter_no_change must be a positive integer or np.inf"),
    (MLPClassifier, dict(solver="newton"), "solver must be one of 'lbfgs', 'sgd', 'adam'"),
    (MLPClassifier, dict(hidden_layer_sizes=(3, 0)), "hidden_layer_sizes must be > 0"),
    (MLPClassifier, dict(dtype="int8"), "dtype must be None"),
    (MLPRegressor, dict(loss="huber"), "loss must be 'squared_error' or 'poisson'"),
    (MLPRegressor, dict(solver="lbfgs", batch_norm=True), "lbfgs.*batch_norm need solver='sgd' or 'adam'"),
])
def test_bad_parameters_name_the_argument_and_train_nothing(cls, kw, match):
    X, y = np.random.default_rng(0).standard_normal((20, 3)), np.arange(20) % 2
    est = cls(**kw)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


def test_poisson_regressor_refuses_negative_targets_and_predicts_rates():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 3))
    y = rng.poisson(np.exp(0.5 * X[:, 0]))
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson").fit(X, y - 3)
    est = _quiet(MLPRegressor(loss="poisson", solver="lbfgs", hidden_layer_sizes=(4,), random_state=0).fit, X, y)
    assert est.out_activation_ == "exp" and np.all(est.predict(X) > 0)
    theirs = _quiet(SkMLPRegressor(loss="poisson", solver="lbfgs", hidden_layer_sizes=(4,), random_state=0).fit, X, y)
    np.testing.assert_allclose(est.predict(X), theirs.predict(X), rtol=1e-4)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sparse_X_trains_through_the_sparse_kernels_like_dense_and_like_sklearn(solver):
    # the same CSR data: fastbp on CSR, fastbp on the dense copy, scikit-learn's MLP on CSR
    import scipy.sparse as sp
    X = sp.random(120, 40, density=0.1, random_state=0, format="csr")
    y = (X @ np.random.default_rng(0).standard_normal(40) > 0).astype(int)
    kw = dict(hidden_layer_sizes=(10,), solver=solver, max_iter=5, random_state=0, learning_rate_init=0.05)
    sparse, dense = _quiet(MLPClassifier(**kw).fit, X, y), _quiet(MLPClassifier(**kw).fit, X.toarray(), y)
    theirs = _quiet(SkMLPClassifier(**kw).fit, X, y)
    # Adam's epsilon sits elsewhere than scikit-learn's (see the README), which shows most on the
    # weights of columns a sparse batch leaves at zero gradient: it is compared with dense only
    for ours in (dense,) if solver == "adam" else (dense, theirs):
        for a, b in zip(sparse.coefs_ + sparse.intercepts_, ours.coefs_ + ours.intercepts_):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(sparse.predict_proba(X.tocsc()), ours.predict_proba(X.toarray()),
                                   rtol=1e-6, atol=1e-8)
    assert sp.issparse(sparse._validate_X(X, reset=False))   # not densified on the way in
