"""Analytic gradients against central finite differences, float64, on both backends."""
import numpy as np
import pytest

from conftest import BACKENDS, HIDDEN, OUTPUT_LOSS, ids, problem
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


def training_loss_check(net, X, y, step):
    """Finite differences of the training-mode loss (batch statistics, dropout masks of `step`)."""
    rng = np.random.default_rng(net.n_params)
    net._params[...] = rng.normal(0, 0.6, size=net.n_params)
    Xc, Y = net._XY(X, y)
    f = lambda: net._backend.loss_and_gradients(net._params, net._state, Xc, Y, dropout_step=step)
    _, analytic = f()
    numeric = np.empty_like(analytic)
    eps = 1e-6
    for i in range(net.n_params):
        old = net._params[i]
        net._params[i] = old + eps
        up = f()[0]
        net._params[i] = old - eps
        numeric[i] = (up - f()[0]) / (2 * eps)
        net._params[i] = old
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)
    return analytic


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("l1,l2", [(0.01, 0.0), (0.0, 0.05), (0.02, 0.03)])
def test_gradcheck_penalties(l1, l2, backend):
    sizes = [3, 5, 4, 2]
    net = fastbp.Network(sizes, hidden="tanh", l1=l1, l2=l2, dtype="float64", seed=1, backend=backend)
    check(net, *problem(sizes, "softmax", n=7))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hidden", ["tanh", "relu", "maxout"])
def test_gradcheck_batch_norm(hidden, backend):
    sizes = [3, 5, 4, 3]
    net = fastbp.Network(sizes, hidden=hidden, batch_norm=True, output="linear", loss="mse",
                         dtype="float64", seed=2, backend=backend)
    g = training_loss_check(net, *problem(sizes, "linear", n=9), step=None)
    gamma_grads = [g[r[7]:r[7] + 2 * r[1] * r[2]] for r in net.spec.layers if r[6]]
    assert all(np.abs(gg).max() > 1e-6 for gg in gamma_grads)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_dropout_with_fixed_mask(backend, kernel_mode):
    sizes = [4, 8, 6, 2]
    net = fastbp.Network(sizes, hidden="elu", dropout=[0.3, 0.5], batch_norm=[True, False], l2=0.01,
                         dtype="float64", seed=3, backend=backend)
    X, y = problem(sizes, "softmax", n=8)
    g = training_loss_check(net, X, y, step=5)
    g_other = net._backend.loss_and_gradients(net._params, net._state, *net._XY(X, y), dropout_step=6)[1]
    assert not np.allclose(g, g_other)    # another step, another mask: the mask is really applied
