"""fastbp/data.py: sample and class weights."""

import numpy as np
import pytest

import fastbp
from conftest import BACKENDS, problem


@pytest.mark.parametrize("backend", BACKENDS)
def test_class_and_sample_weights_scale_the_loss(backend):
    """With one batch, the first epoch's loss is sum_i w_i l_i / n over the initial weights."""
    X, y = problem([3, 4, 3], "softmax", n=12)
    net = fastbp.Network([3, 4, 3], seed=0, dtype="float64", backend=backend)
    P = net.predict(X)
    per_row = -np.log(P[np.arange(12), y])
    cw = {0: 2.0, 2: 0.5}
    w = np.array([cw.get(c, 1.0) for c in y]) * np.arange(1, 13)
    h = net.fit(X, y, epochs=1, batch_size=12, class_weight=cw, sample_weight=np.arange(1, 13))
    assert h.history["loss"][0] == pytest.approx(np.sum(w * per_row) / 12, rel=1e-12)
    counts = np.bincount(y, minlength=3)
    net2 = fastbp.Network([3, 4, 3], seed=0, dtype="float64", backend=backend)
    h2 = net2.fit(X, y, epochs=1, batch_size=12, class_weight="balanced")
    wb = 12 / (3 * counts[y])
    assert h2.history["loss"][0] == pytest.approx(np.sum(wb * per_row) / 12, rel=1e-12)


@pytest.mark.parametrize("kw,match", [(dict(sample_weight=np.ones(3)), "shape"),
                                      (dict(sample_weight=-np.ones(12)), "non-negative"),
                                      (dict(class_weight={5: 1.0}), "class label"),
                                      (dict(class_weight="balance"), "balanced"),
                                      (dict(sample_weight=np.zeros(12)), "zero")])
def test_bad_weights(kw, match):
    X, y = problem([3, 4, 3], "softmax", n=12)
    with pytest.raises((ValueError, TypeError), match=match):
        fastbp.Network([3, 4, 3], seed=0).fit(X, y, **kw)


@pytest.mark.parametrize("output, n_out", [("softmax", 4), ("sigmoid", 1)])
def test_a_classifier_needs_two_classes_wherever_they_are(output, n_out):
    """The one-class refusal names the class, and any second class anywhere lets the fit go."""
    from fastbp import data
    net = fastbp.Network([2, 3, n_out], output=output)
    for single in (0, 1, n_out - 1):
        y = np.full(50, single)
        Y = data.encode_targets(y, net.spec, np.float64, 50)
        with pytest.raises(ValueError, match=rf"a single class \({single}\)"):
            data.check_two_classes(Y, net.spec)
        for where in (0, 25, 49):   # another class in the first, a middle or the last row
            other = y.copy()
            other[where] = (single + 1) % max(n_out, 2)
            data.check_two_classes(data.encode_targets(other, net.spec, np.float64, 50), net.spec)
    data.check_two_classes(np.zeros((5, 2)), fastbp.Network([2, 3, 2], output="linear").spec)   # not a classifier


def test_sigmoid_targets_take_0_1_or_plus_minus_1_and_name_what_else_they_got():
    """0/1 pass as they are; -1/+1 map to 0/1 with a warning; anything else is refused, naming
    the values."""
    import warnings
    from fastbp import data
    spec = fastbp.Network([2, 3, 2], output="sigmoid").spec
    y = np.array([[0, 1], [1, 1], [1, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(data.encode_targets(y, spec, np.float32, 3), y)
        np.testing.assert_array_equal(data.encode_targets(np.ones((3, 2)), spec, np.float32, 3), 1)
    with pytest.warns(UserWarning, match="-1/\\+1"):
        np.testing.assert_array_equal(data.encode_targets(2 * y - 1, spec, np.float32, 3), y)
    with pytest.raises(ValueError, match=r"0/1 \(or -1/\+1\) labels, got values \[-1, 0, 1\]"):
        data.encode_targets(np.array([[-1, 0], [1, 1], [1, 0]]), spec, np.float32, 3)   # -1 with 0: neither
