"""Analytic gradients against central finite differences, float64, on both backends."""
import numpy as np
import pytest

from conftest import HIDDEN, OUTPUT_LOSS, ids, problem
import fastbp


def numeric_gradient(net, X, Y, eps=1e-6):
    """Central differences of the mean loss with respect to every flat parameter."""
    params = net._params
    backend = net._backend
    g = np.empty_like(params)
    for i in range(params.size):
        old = params[i]
        params[i] = old + eps
        up = backend.loss(params, net._state, X, Y)
        params[i] = old - eps
        down = backend.loss(params, net._state, X, Y)
        params[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def check(net, X, y):
    # random biases too: zero-initialised biases make maxout pieces tie exactly behind a dead
    # relu, a kink where finite differences are meaningless
    rng = np.random.default_rng(net.n_params)
    net._params[...] = rng.normal(0, 0.6, size=net.n_params)
    Xc, Y = net._XY(X, y)
    loss, analytic = net._backend.loss_and_gradients(net._params, net._state, Xc, Y)
    numeric = numeric_gradient(net, Xc, Y)
    assert np.isclose(loss, net.loss(X, y), rtol=1e-12)
    # a wrong derivative is off by O(1) relative; finite differences agree to ~1e-7
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)
    assert np.abs(analytic).max() > 1e-6, "gradient is trivially zero: the check proves nothing"


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("hidden", HIDDEN, ids=ids)
def test_hidden_activations(hidden, backend):
    sizes = [3, 5, 4, 2]  # two hidden layers: the gradient passes through the activation twice
    net = fastbp.Network(sizes, hidden=hidden, output="linear", loss="mse", dtype="float64",
                         seed=1, backend=backend)
    check(net, *problem(sizes, "linear", n=7, seed=2))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("output,loss", OUTPUT_LOSS, ids=[f"{o}-{ids(l)}" for o, l in OUTPUT_LOSS])
def test_output_loss_pairs(output, loss, backend):
    sizes = [4, 6, 3]
    net = fastbp.Network(sizes, hidden="tanh", output=output, loss=loss, dtype="float64",
                         seed=3, backend=backend)
    check(net, *problem(sizes, output, n=9, seed=4))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("seed", range(4))
def test_random_deep_networks(seed, backend, kernel_mode):
    """Depth 3 and 4, mixed per-layer activations, a random output/loss pair."""
    rng = np.random.default_rng(seed)
    depth = 3 + seed % 2
    sizes = [int(s) for s in rng.integers(1, 7, size=depth + 1)]
    sizes[-1] = max(sizes[-1], 2)
    hidden = [HIDDEN[i] for i in rng.integers(0, len(HIDDEN), size=depth - 1)]
    output, loss = OUTPUT_LOSS[int(rng.integers(len(OUTPUT_LOSS)))]
    net = fastbp.Network(sizes, hidden=hidden, output=output, loss=loss, dtype="float64",
                         seed=seed, backend=backend)
    check(net, *problem(sizes, output, n=6, seed=seed))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_single_layer_and_one_hot_targets(backend):
    """No hidden layer; soft (non-integer-sum) targets are refused, one-hot rows accepted."""
    net = fastbp.Network([3, 4], output="softmax", dtype="float64", seed=5, backend=backend)
    X, y = problem([3, 4], "softmax", n=8, seed=5)
    check(net, X, np.eye(4)[y])
