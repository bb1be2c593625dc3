"""Training: a step worked by hand, the last partial batch, convergence, divergence,
regularisation that generalises."""
import numpy as np
import pytest

import fastbp
from conftest import BACKENDS, problem


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_step_worked_by_hand(backend):
    # Network 2 -> 2 relu -> 1 linear, mse, one sample x = [1, 2], target 1, lr 0.1.
    # W1 = [[0.1, 0.2], [0.3, -0.4]], b1 = [0, 0.1], W2 = [[0.5], [0.6]], b2 = [0.2]
    # forward:  Z1 = x W1 + b1 = [0.1 + 0.6, 0.2 - 0.8 + 0.1] = [0.7, -0.5];  A1 = relu = [0.7, 0]
    #           Z2 = 0.7 * 0.5 + 0 * 0.6 + 0.2 = 0.55;  loss = (0.55 - 1)^2 = 0.2025
    # backward: dZ2 = 2 (0.55 - 1) = -0.9;  dW2 = A1^T dZ2 = [[-0.63], [0]];  db2 = [-0.9]
    #           dA1 = dZ2 W2^T = [-0.45, -0.54];  dZ1 = dA1 * (Z1 > 0) = [-0.45, 0]
    #           dW1 = x^T dZ1 = [[-0.45, 0], [-0.9, 0]];  db1 = [-0.45, 0]
    # update:   W1 = [[0.145, 0.2], [0.39, -0.4]], b1 = [0.045, 0.1], W2 = [[0.563], [0.6]], b2 = [0.29]
    # after:    Z1 = [0.145 + 0.78 + 0.045, -0.5] -> A1 = [0.97, 0];  Z2 = 0.97 * 0.563 + 0.29 = 0.83611
    net = fastbp.Network([2, 2, 1], hidden="relu", output="linear", loss="mse", dtype="float64",
                         backend=backend)
    net.set_weights([([[0.1, 0.2], [0.3, -0.4]], [0.0, 0.1]), ([[0.5], [0.6]], [0.2])])
    x, y = np.array([[1.0, 2.0]]), np.array([1.0])
    assert net.loss(x, y) == pytest.approx(0.2025, abs=1e-14)
    (dW1, db1), (dW2, db2) = net.gradients(x, y)
    np.testing.assert_allclose(dW2, [[-0.63], [0]], atol=1e-14)
    np.testing.assert_allclose(db2, [-0.9], atol=1e-14)
    np.testing.assert_allclose(dW1, [[-0.45, 0], [-0.9, 0]], atol=1e-14)
    np.testing.assert_allclose(db1, [-0.45, 0], atol=1e-14)
    hist = net.fit(x, y, epochs=1, batch_size=1, lr=0.1)
    assert hist.history["loss"] == [pytest.approx(0.2025, abs=1e-14)]   # loss before the step
    (W1, b1), (W2, b2) = net.get_weights()
    np.testing.assert_allclose(W1, [[0.145, 0.2], [0.39, -0.4]], atol=1e-14)
    np.testing.assert_allclose(b1, [0.045, 0.1], atol=1e-14)
    np.testing.assert_allclose(W2, [[0.563], [0.6]], atol=1e-14)
    np.testing.assert_allclose(b2, [0.29], atol=1e-14)
    assert net.predict(x)[0, 0] == pytest.approx(0.83611, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_last_partial_batch_is_trained(backend):
    """5 rows, batch 4, no shuffle: exactly two SGD steps, on rows 0-3 then on row 4.
    (The article's loop stops before a partial batch, and with 3 rows never updates at all.)"""
    X, y = problem([3, 4, 2], "softmax", n=5)
    net = fastbp.Network([3, 4, 2], dtype="float64", seed=0, backend=backend)
    by_hand = fastbp.Network([3, 4, 2], dtype="float64", seed=0, backend=backend)
    w = by_hand.get_weights()
    for rows in (slice(0, 4), slice(4, 5)):
        g = by_hand.gradients(X[rows], y[rows])
        w = [(W - 0.3 * dW, b - 0.3 * db) for (W, b), (dW, db) in zip(w, g)]
        by_hand.set_weights(w)
    net.fit(X, y, epochs=1, batch_size=4, lr=0.3, shuffle=False)
    for (a, b), (c, d) in zip(net.get_weights(), w):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b, d, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_larger_than_data_is_one_batch(backend):
    X, y = problem([3, 4, 2], "softmax", n=5)
    a = fastbp.Network([3, 4, 2], dtype="float64", seed=0, backend=backend)
    b = fastbp.Network([3, 4, 2], dtype="float64", seed=0, backend=backend)
    a.fit(X, y, epochs=3, batch_size=500)
    b.fit(X, y, epochs=3, batch_size=5)
    for (w1, b1), (w2, b2) in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(w1, w2, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_article_example_reaches_full_accuracy(backend):
    X, y = fastbp.datasets.seed_example()
    net = fastbp.Network([2, 4, 1], hidden="sigmoid", output="sigmoid", seed=0, backend=backend)
    hist = net.fit(X, y, epochs=1000, batch_size=4, lr=0.1)
    assert net.score(X, y) == 1.0
    losses = hist.history["loss"]
    assert len(losses) == 1000 and losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_moons_reach_95_percent(backend):
    X, y = fastbp.datasets.make_moons(600, noise=0.1, seed=1)
    net = fastbp.Network([2, 32, 32, 2], hidden="relu", seed=0, backend=backend)
    net.fit(X[:400], y[:400], epochs=60, batch_size=16, lr=0.1)
    assert net.score(X[:400], y[:400]) >= 0.95
    assert net.score(X[400:], y[400:]) >= 0.95   # held out: it learnt the shape, not the points


def test_spirals_reach_95_percent():
    X, y = fastbp.datasets.make_spirals(600, n_classes=3, noise=0.1, seed=0)
    net = fastbp.Network([2, 64, 64, 3], hidden="tanh", seed=0)
    net.fit(X, y, epochs=300, batch_size=16, lr=0.1)
    assert net.score(X, y) >= 0.95


@pytest.mark.parametrize("verbose", [0, 1])   # 1: the epoch runs in pieces for the progress bar
@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_stops_with_clear_error_and_keeps_weights(backend, verbose):
    X, y = problem([3, 8, 1], "linear", n=64)
    net = fastbp.Network([3, 8, 1], output="linear", loss="mse", seed=0, backend=backend)
    net.fit(X, y * 1e3, epochs=1, lr=1e-9)
    before = net.get_weights()
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="in epoch 1 .*smaller lr"):
        net.fit(X, y * 1e30, epochs=5, lr=10.0, verbose=verbose)
    for (a, _), (b, _) in zip(net.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(net.predict(X)).all()


def test_dropout_and_l2_shrink_the_generalisation_gap():
    """A wide network on 40 noisy points over-fits; dropout and l2 each cut the gap between
    validation and training loss (the penalty, in both, cancels) by a clear margin."""
    X, y = fastbp.datasets.make_moons(1040, noise=0.35, seed=3)
    Xt, yt, Xv, yv = X[:40], y[:40], X[40:], y[40:]

    def gap(**kw):
        net = fastbp.Network([2, 256, 256, 2], seed=0, **kw)
        net.fit(Xt, yt, epochs=400, batch_size=8, lr=0.1)
        return net.loss(Xv, yv) - net.loss(Xt, yt)

    plain = gap()
    assert plain > 0.5                       # it does over-fit (measured: 0.85)
    assert gap(dropout=0.5) < 0.5 * plain    # measured: 0.14
    assert gap(l2=3e-3) < 0.6 * plain        # measured: 0.34
