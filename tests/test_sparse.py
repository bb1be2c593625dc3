"""Sparse input end to end: a fit on a CSR matrix against the dense fit of the same matrix (the
same algorithm, so the same weights), against the numpy backend's scipy products (the oracle),
against finite differences; lazy updates against the oracle's; the input checks."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp
from fastbp.optim import OPTIMIZERS

from conftest import tol

sp = pytest.importorskip("scipy.sparse")


def text_like(n=90, cols=60, density=0.08, seed=0, classes=3):
    """A sparse problem with an empty row, an empty column and a row sharing the first row's
    columns, and labels the non-zeros decide."""
    rng = np.random.default_rng(seed)
    M = sp.random(n, cols, density=density, random_state=seed).toarray()
    M[3] = 0
    M[:, 5] = 0
    M[7] = (M[0] != 0) * rng.random(cols)
    y = (M @ rng.standard_normal((cols, classes))).argmax(axis=1)
    return sp.csr_matrix(M), y


def weights(net):
    return np.concatenate([a.ravel() for W in net.get_weights() for a in W])


def fit(X, y, backend="cpu", dtype="float64", optimizer="sgd", epochs=3, features=False, **kw):
    extra = dict(dropout=0.2, batch_norm=True) if features else {}
    net = fastbp.Network([X.shape[1], 12, 3], dtype=dtype, seed=1, backend=backend, **extra, **kw)
    opt = OPTIMIZERS[optimizer](lr=0.05) if isinstance(optimizer, str) else optimizer
    net.fit(X, y, epochs=epochs, batch_size=16, optimizer=opt)
    return net


@pytest.mark.parametrize("features", [False, True], ids=["plain", "dropout+bn"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_sparse_fit_is_the_dense_fit(optimizer, features, dtype, kernel_mode):
    X, y = text_like()
    sparse = fit(X, y, "cpu", dtype, optimizer, features=features)
    dense = fit(X.toarray(), y, "cpu", dtype, optimizer, features=features)
    np.testing.assert_allclose(weights(sparse), weights(dense), **tol(dtype))
    np.testing.assert_allclose(sparse.predict(X), dense.predict(X.toarray()), **tol(dtype))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cpu_on_csr_matches_the_numpy_backend_on_csr(optimizer, dtype):
    X, y = text_like(seed=2)
    cpu, ref = (fit(X, y, b, dtype, optimizer, features=True, l2=1e-3) for b in ("cpu", "numpy"))
    np.testing.assert_allclose(weights(cpu), weights(ref), **{k: 10 * v for k, v in tol(dtype).items()})
    np.testing.assert_allclose(cpu.loss(X, y), ref.loss(X, y), **tol(dtype))


def test_penalty_and_clipping_with_plain_sgd_match_dense():
    # plain SGD skips untouched rows only without l1/l2 and clipping: with them, every row moves
    X, y = text_like(seed=3)
    opt = lambda: fastbp.optim.SGD(lr=0.1, clip_norm=0.5)   # noqa: E731
    a = fit(X, y, optimizer=opt(), l1=1e-3, l2=1e-3)
    b = fit(X.toarray(), y, optimizer=opt(), l1=1e-3, l2=1e-3)
    np.testing.assert_allclose(weights(a), weights(b), **tol("float64"))


def test_gradients_by_finite_differences():
    X, y = text_like(n=20, cols=15, density=0.2, seed=4)
    net = fastbp.Network([15, 6, 3], dtype="float64", seed=0, hidden="tanh")
    f = net.objective(X, y)
    theta = np.concatenate([np.r_[W.ravel(), b] for W, b in net.get_weights()])
    value, grad = f(theta)
    rng = np.random.default_rng(0)
    for i in rng.choice(theta.size, 25, replace=False):
        e = np.zeros_like(theta)
        e[i] = 1e-6
        numeric = (f(theta + e)[0] - f(theta - e)[0]) / 2e-6
        assert abs(numeric - grad[i]) <= 1e-6 + 1e-5 * abs(numeric)
    np.testing.assert_allclose(f(theta)[0], value)
    dense = fastbp.Network([15, 6, 3], dtype="float64", seed=0, hidden="tanh").objective(X.toarray(), y)
    np.testing.assert_allclose(dense(theta)[1], grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_lazy_updates_match_the_oracle_and_differ_from_dense(optimizer):
    X, y = text_like(seed=5)
    make = lambda: OPTIMIZERS[optimizer](lr=0.05, lazy=True)   # noqa: E731
    cpu, ref = fit(X, y, "cpu", optimizer=make()), fit(X, y, "numpy", optimizer=make())
    np.testing.assert_allclose(weights(cpu), weights(ref), **tol("float64"))
    dense = fit(X, y, "cpu", optimizer=optimizer)
    assert np.abs(weights(cpu) - weights(dense)).max() > 1e-4   # a different algorithm, not a no-op
    # a row no batch touched keeps its initial value, moments and all
    fresh = fastbp.Network([X.shape[1], 12, 3], dtype="float64", seed=1)
    np.testing.assert_array_equal(cpu.get_weights()[0][0][5], fresh.get_weights()[0][0][5])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 40), cols=st.integers(1, 25), density=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
       shared=st.booleans(), batch=st.integers(1, 9), seed=st.integers(0, 2 ** 16))
def test_random_sparsity_patterns(n, cols, density, shared, batch, seed):
    rng = np.random.default_rng(seed)
    M = sp.random(n, cols, density=density, random_state=seed).toarray()
    if shared:   # every row holds the same columns
        M = np.where(M[:1] != 0, rng.random((n, cols)) + 0.1, 0.0) if M[0].any() else np.ones((n, cols))
    y = rng.integers(0, 2, n)
    nets = []
    for X in (sp.csr_matrix(M), M):
        net = fastbp.Network([cols, 5, 2], dtype="float64", seed=seed)
        net.fit(X, y, epochs=2, batch_size=batch, optimizer="adam", allow_one_class=True)
        nets.append(net)
    np.testing.assert_allclose(weights(nets[0]), weights(nets[1]), **tol("float64"))


def test_every_entry_point_and_format():
    X, y = text_like(seed=6)
    net = fastbp.Network([X.shape[1], 8, 3], dtype="float32", seed=0)
    ref = fastbp.Network([X.shape[1], 8, 3], dtype="float32", seed=0)
    for a, b in ((net, X), (ref, X.toarray())):
        a.partial_fit(b, y, batch_size=16, shuffle=False)
    np.testing.assert_allclose(weights(net), weights(ref), **tol("float32"))
    for form in (X.tocsc(), X.tocoo(), sp.csr_array(X), sp.lil_matrix(X)):
        np.testing.assert_allclose(net.predict(form), ref.predict(X.toarray()), **tol("float32"))
    assert net.score(X.tocsc(), y) == ref.score(X.toarray(), y)
    np.testing.assert_allclose(net.loss(X, y), ref.loss(X.toarray(), y), **tol("float32"))
    for (dW, db), (rW, rb) in zip(net.gradients(X, y), ref.gradients(X.toarray(), y)):
        np.testing.assert_allclose(dW, rW, **tol("float32"))
        np.testing.assert_allclose(db, rb, **tol("float32"))
    h = net.fit(X, y, epochs=2, validation_split=0.2)
    assert np.isfinite(h.history["val_loss"]).all()
    counts = sp.csr_matrix((X != 0).astype(np.int64))   # integer counts convert like dense integers
    np.testing.assert_allclose(net.predict(counts), net.predict(counts.toarray()), **tol("float32"))


def test_unsorted_and_duplicate_indices_are_summed_without_touching_the_input():
    data, indices, indptr = np.array([1.0, 2.0, 3.0, 4.0]), np.array([3, 1, 3, 0]), np.array([0, 3, 4])
    X = sp.csr_matrix((data, indices, indptr), shape=(2, 4))   # row 0: column 3 twice, unsorted
    X.has_sorted_indices = False
    before = (X.data.copy(), X.indices.copy())
    net = fastbp.Network([4, 3, 2], dtype="float64", seed=0)
    np.testing.assert_allclose(net.predict(X), net.predict(np.array([[0, 2.0, 0, 4.0], [4.0, 0, 0, 0]])))
    np.testing.assert_array_equal(X.data, before[0])
    np.testing.assert_array_equal(X.indices, before[1])


@pytest.mark.parametrize("bad, message", [
    (lambda X: X.multiply(np.nan).tocsr(), "NaN or infinite"),
    (lambda X: X[:, :-1], "features but the network's input layer has"),
    (lambda X: X[:0], "no rows"),
    (lambda X: X.astype(np.complex128), "real numbers"),
])
def test_bad_sparse_input_gets_the_dense_errors(bad, message):
    X, y = text_like()
    net = fastbp.Network([X.shape[1], 4, 3], seed=0)
    with pytest.raises((ValueError, TypeError), match=message):
        net.fit(bad(X), y[:bad(X).shape[0]])


def test_lazy_needs_a_boolean():
    with pytest.raises(TypeError, match="lazy"):
        fastbp.optim.Adam(lazy="yes")


def test_a_saved_lazy_optimizer_stays_lazy(tmp_path):
    X, y = text_like()
    net = fit(X, y, optimizer=fastbp.optim.Adam(lr=0.01, lazy=True))
    net.save(tmp_path / "m.npz")
    assert fastbp.load(tmp_path / "m.npz").optimizer.lazy


def test_bag_of_words_is_sparse_zipf_and_learnable():
    from fastbp.datasets import make_bag_of_words
    X, y = make_bag_of_words(n_samples=1200, n_features=3000, nnz_per_row=40, n_classes=4, seed=0)
    assert X.format == "csr" and X.dtype == np.float32 and X.has_canonical_format
    assert 30 < X.nnz / X.shape[0] < 50 and set(np.unique(y)) == {0, 1, 2, 3}
    counts = np.sort(X.getnnz(axis=0))[::-1]
    assert counts[0] > 20 * np.median(counts[counts > 0])   # a few words in most rows: Zipf
    X2, y2 = make_bag_of_words(n_samples=1200, n_features=3000, nnz_per_row=40, n_classes=4, seed=0)
    assert (X != X2).nnz == 0 and np.array_equal(y, y2)
    net = fastbp.Network([3000, 32, 4], seed=0)
    net.fit(X[:1000], y[:1000], epochs=10, batch_size=32, lr=0.1)
    assert net.score(X[1000:], y[1000:]) > 0.6   # chance: 0.25
