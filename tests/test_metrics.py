"""fastbp/metrics.py against scikit-learn's metrics, an independent implementation."""
import numpy as np
import pytest

from fastbp import metrics

sk = pytest.importorskip("sklearn.metrics")


def one_hot(labels, k):
    return np.eye(k)[labels]


@pytest.mark.parametrize("seed", range(4))
def test_classifier_figures_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    k = 5
    true = rng.integers(0, k, 80)
    pred = np.where(rng.random(80) < 0.6, true, rng.integers(0, k - 1, 80))   # class k-1 rarely predicted
    if seed == 0:
        pred[pred == k - 1] = 0   # a class never predicted: precision 0 by zero_division=0
    Y, P = one_hot(true, k), one_hot(pred, k) * 0.7 + 0.06   # outputs, not one-hot: argmax decides
    np.testing.assert_array_equal(metrics.confusion_matrix(Y, P), sk.confusion_matrix(true, pred, labels=range(k)))
    assert metrics.accuracy(Y, P) == pytest.approx(sk.accuracy_score(true, pred))
    for ours, theirs in ((metrics.precision, sk.precision_score), (metrics.recall, sk.recall_score),
                         (metrics.f1, sk.f1_score)):
        assert ours(Y, P) == pytest.approx(theirs(true, pred, average="macro", labels=range(k), zero_division=0),
                                           rel=1e-12)


def test_one_sigmoid_output_is_two_classes():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 2, 50)
    p = np.clip(true * 0.6 + rng.random(50) * 0.5, 0, 1)
    pred = (p > 0.5).astype(int)
    Y, P = true[:, None].astype(float), p[:, None]
    np.testing.assert_array_equal(metrics.confusion_matrix(Y, P), sk.confusion_matrix(true, pred))
    assert metrics.f1(Y, P) == pytest.approx(sk.f1_score(true, pred, average="macro"))


def test_several_sigmoid_units_are_independent_labels():
    """Multilabel: accuracy is every label of a row right (scikit-learn's subset accuracy), and
    the other figures average over labels, not over an argmax that would take them as classes."""
    rng = np.random.default_rng(3)
    Y = (rng.random((60, 4)) < 0.4).astype(float)
    P = np.clip(Y * 0.5 + rng.random((60, 4)) * 0.6, 0, 1)
    table = metrics.for_output("sigmoid", 4)
    assert table is metrics.MULTILABEL
    pred = (P > 0.5).astype(int)
    assert table["accuracy"](Y, P) == pytest.approx(sk.accuracy_score(Y.astype(int), pred))
    for name, theirs in (("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)):
        assert table[name](Y, P) == pytest.approx(theirs(Y.astype(int), pred, average="macro", zero_division=0))


def test_regressor_figures_match_scikit_learn():
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((60, 3))
    P = Y + 0.3 * rng.standard_normal((60, 3))
    assert metrics.mae(Y, P) == pytest.approx(sk.mean_absolute_error(Y, P))
    assert metrics.rmse(Y, P) == pytest.approx(np.sqrt(sk.mean_squared_error(Y, P)))
    assert metrics.r2(Y, P) == pytest.approx(sk.r2_score(Y, P))


def test_names_are_checked_against_the_kind_of_network():
    assert metrics.check_names("f1", "softmax", 3) == ["f1"]
    with pytest.raises(ValueError, match="'mae' is not a metric of a classifier"):
        metrics.check_names(["mae"], "sigmoid", 1)
    with pytest.raises(ValueError, match="'accuracy' is not a metric of a regressor"):
        metrics.check_names(["accuracy"], "linear", 1)
