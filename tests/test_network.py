"""The Network API: construction, weights, inputs, targets, validation, scores, errors."""

import numpy as np
import pytest

import fastbp
from fastbp import optim
from conftest import BACKENDS, problem


def test_repr_sizes_and_parameter_count():
    net = fastbp.Network([4, 5, 3], hidden="maxout", seed=0)
    # maxout with 2 pieces doubles the first layer's pre-activations: 4*10 + 10 + 5*3 + 3
    assert net.n_params == 4 * 10 + 10 + 5 * 3 + 3
    assert [w.shape for w, _ in net.get_weights()] == [(4, 10), (5, 3)]
    assert "maxout" in repr(net) and net.sizes == [4, 5, 3]


def test_seed_reproducible_and_distinct():
    a, b, c = (fastbp.Network([6, 5, 2], seed=s) for s in (1, 1, 2))
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a.get_weights(), b.get_weights()))
    assert not np.array_equal(a.get_weights()[0][0], c.get_weights()[0][0])


@pytest.mark.parametrize("init,hidden,std", [("he", "tanh", np.sqrt(2 / 400)),
                                             ("auto", "relu", np.sqrt(2 / 400)),
                                             ("glorot", "relu", np.sqrt(2 / (400 + 300))),
                                             ("auto", "sigmoid", np.sqrt(2 / (400 + 300))),
                                             ("normal", "relu", 0.05)])
def test_init_scales(init, hidden, std):
    net = fastbp.Network([400, 300, 2], hidden=hidden, init=init, seed=0, dtype="float64")
    W, b = net.get_weights()[0]
    assert W.std() == pytest.approx(std, rel=0.02)   # 120,000 draws: sampling error ~0.2%
    assert abs(W.mean()) < 0.01 * std * 10 and not b.any()


@pytest.mark.parametrize("hidden,factor", [("relu", 6.0), ("sigmoid", 2.0)])
def test_sklearn_init(hidden, factor):
    """init="sklearn": weights and biases uniform in +-sqrt(factor / (fan_in + fan_out)), whose
    standard deviation is that bound / sqrt(3)."""
    net = fastbp.Network([400, 300, 2], hidden=hidden, init="sklearn", seed=0, dtype="float64")
    (W, b), (W2, _) = net.get_weights()
    bound = np.sqrt(factor / 700)
    assert W.std() == pytest.approx(bound / np.sqrt(3), rel=0.02) and np.abs(W).max() <= bound
    assert b.any() and np.abs(b).max() <= bound and np.abs(W2).max() <= np.sqrt(factor / 302)


def test_pretrained_init_and_weight_copies():
    src = fastbp.Network([3, 4, 2], seed=5, dtype="float64")
    net = fastbp.Network([3, 4, 2], init=src.get_weights(), dtype="float32")
    for (a, b), (c, d) in zip(net.get_weights(), src.get_weights()):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, c, rtol=1e-7)
    w = net.get_weights()
    w[0][0][...] = 99           # a copy: the network is untouched
    assert not (net.get_weights()[0][0] == 99).any()


@pytest.mark.parametrize("bad,match", [
    ([(np.zeros((3, 4)), np.zeros(4))], "2 layers"),
    ([(np.zeros((4, 3)), np.zeros(4)), (np.zeros((4, 2)), np.zeros(2))], r"W has shape \(4, 3\)"),
    ([(np.zeros((3, 4)), np.zeros(5)), (np.zeros((4, 2)), np.zeros(2))], r"b has shape"),
    ([(np.full((3, 4), np.nan), np.zeros(4)), (np.zeros((4, 2)), np.zeros(2))], "NaN"),
    ([(np.zeros((3, 4), dtype=complex), np.zeros(4)), (np.zeros((4, 2)), np.zeros(2))], "real"),
])
def test_set_weights_validates(bad, match):
    net = fastbp.Network([3, 4, 2], seed=0)
    before = net.get_weights()
    with pytest.raises((ValueError, TypeError), match=match):
        net.set_weights(bad)
    for (a, _), (b, _) in zip(net.get_weights(), before):   # nothing half-written
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_layouts_and_dtypes_of_input_are_accepted(backend):
    X, y = problem([5, 6, 3], "softmax", n=20)
    net = fastbp.Network([5, 6, 3], seed=0, backend=backend, dtype="float64")
    expect = net.predict(X)
    for variant in (np.asfortranarray(X), X[::-1][::-1], np.repeat(X, 2, axis=1)[:, ::2],
                    X.tolist()):
        np.testing.assert_allclose(net.predict(variant), expect, rtol=1e-12)
    Xi = np.arange(60).reshape(20, 3) % 7
    net_i = fastbp.Network([3, 2], seed=0, backend=backend)
    assert net_i.predict(Xi).dtype == np.float32


def test_contiguous_input_of_the_right_dtype_is_not_copied():
    from fastbp.data import check_X
    X = np.ones((10, 3), dtype=np.float32)
    assert check_X(X, 3, np.float32) is X
    assert check_X(np.asfortranarray(X), 3, np.float32).flags.c_contiguous


def test_targets_labels_onehot_and_pm1():
    X, y = problem([3, 4, 3], "softmax", n=12)
    a, b = (fastbp.Network([3, 4, 3], seed=0) for _ in range(2))
    a.fit(X, y, epochs=2, batch_size=4)
    b.fit(X, np.eye(3)[y], epochs=2, batch_size=4)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    Xs, ys = fastbp.datasets.seed_example()
    c, d = (fastbp.Network([2, 4, 1], hidden="sigmoid", output="sigmoid", seed=0) for _ in range(2))
    c.fit(Xs, ys, epochs=5, batch_size=4)
    with pytest.warns(UserWarning, match="-1/\\+1"):
        d.fit(Xs, 2 * ys - 1, epochs=5, batch_size=4)
    np.testing.assert_array_equal(c.predict(Xs), d.predict(Xs))


@pytest.mark.parametrize("y,match", [
    (np.array([0, 1, 3]), "labels 0..2"),
    (np.array([0, 1, 0.5]), "integer"),
    (np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]]), "one-hot"),
    (np.array([0, 1]), "rows"),
    (np.array([0, 1, np.nan]), "NaN"),
    (np.array(["a", "b", None], dtype=object), "missing labels"),
    (np.array([[0.5, "b"], ["a", 1]], dtype=object)[[0, 1, 0]], "real numbers"),
])
def test_bad_targets(y, match):
    net = fastbp.Network([2, 3], seed=0)
    with pytest.raises((ValueError, TypeError), match=match):
        net.fit(np.zeros((3, 2)), y)


@pytest.mark.parametrize("kwargs,match", [
    (dict(sizes=[3]), "at least"), (dict(sizes=[3, 0, 2]), ">= 1"),
    (dict(hidden="rleu"), "Did you mean 'relu'"), (dict(output="softmx"), "Did you mean 'softmax'"),
    (dict(output="linear", loss="cross_entropy"), "does not fit output 'linear'"),
    (dict(output="softmax", loss="mse"), "cross_entropy"),
    (dict(hidden=["relu"]), "one per hidden layer"),
    (dict(hidden=("elu", {"beta": 1})), "unknown parameter"),
    (dict(hidden=("maxout", {"pieces": 0})), "positive integer"),
    (dict(dtype="float16"), "float32"), (dict(backend="cpux"), "Did you mean 'cpu'"),
    (dict(init="xavier"), "unknown init"), (dict(seed=-1), "seed"),
])
def test_bad_construction(kwargs, match):
    args = dict(sizes=[3, 4, 4, 2])
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        fastbp.Network(args.pop("sizes"), **args)


@pytest.mark.parametrize("kwargs,match", [
    (dict(epochs=0), "epochs"), (dict(batch_size=-2), "batch_size"), (dict(lr=0), "lr"),
    (dict(lr=float("nan")), "lr"), (dict(validation_split=1.5), "validation_split"),
    (dict(validation_data=(1,)), "pair"),
])
def test_bad_fit_arguments(kwargs, match):
    X, y = problem([3, 2], "softmax", n=10)
    with pytest.raises((ValueError, TypeError), match=match):
        fastbp.Network([3, 2], seed=0).fit(X, y, **kwargs)


@pytest.mark.parametrize("X,match", [(np.zeros(3), "1-D"), (np.zeros((0, 3)), "empty"),
                                     (np.zeros((4, 5)), "5 features"),
                                     (np.array([[1, np.inf, 0]]), "infinite")])
def test_bad_inputs(X, match):
    with pytest.raises(ValueError, match=match):
        fastbp.Network([3, 2], seed=0).predict(X)


def test_validation_split_holds_out_the_last_rows():
    X, y = problem([3, 5, 2], "softmax", n=40)
    a, b = (fastbp.Network([3, 5, 2], seed=0) for _ in range(2))
    ha = a.fit(X, y, epochs=3, batch_size=8, validation_split=0.25)
    hb = b.fit(X[:30], y[:30], epochs=3, batch_size=8, validation_data=(X[30:], y[30:]))
    assert set(ha.history) == {"loss", "val_loss", "val_score", "lr", "time"} and ha.epoch == [0, 1, 2]
    for key in ("loss", "val_loss", "val_score"):
        np.testing.assert_allclose(ha.history[key], hb.history[key], rtol=1e-6)
    assert ha.history["val_loss"][-1] == pytest.approx(a.loss(X[30:], y[30:]), rel=1e-6)
    assert ha.history["val_score"][-1] == pytest.approx(a.score(X[30:], y[30:]))


def test_fit_in_pieces_equals_fit_at_once():
    """Epochs run in one compiled call or one per call (when validating): same shuffles."""
    X, y = problem([3, 5, 2], "softmax", n=40)
    a, b = (fastbp.Network([3, 5, 2], seed=0, dtype="float64") for _ in range(2))
    a.fit(X, y, epochs=6, batch_size=8)
    b.fit(X, y, epochs=6, batch_size=8, validation_data=(X, y))
    np.testing.assert_allclose(a.get_weights()[0][0], b.get_weights()[0][0], rtol=1e-12)


def test_shuffle_matters_and_verbose_prints(capsys):
    X, y = problem([3, 5, 2], "softmax", n=40)
    a, b = (fastbp.Network([3, 5, 2], seed=0) for _ in range(2))
    a.fit(X, y, epochs=2, batch_size=8, shuffle=True, verbose=1)
    b.fit(X, y, epochs=2, batch_size=8, shuffle=False)
    assert not np.allclose(a.get_weights()[0][0], b.get_weights()[0][0])
    bar = capsys.readouterr().err
    assert "epoch 2/2" in bar or "40/40" in bar   # tqdm's bar, or the plain fallback
    a.fit(X, y, epochs=2, batch_size=8, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("epoch 2/2 - loss ")


def test_score_definitions():
    X, y = problem([3, 4, 3], "softmax", n=50)
    net = fastbp.Network([3, 4, 3], seed=0)
    assert net.score(X, y) == pytest.approx(np.mean(net.predict(X).argmax(1) == y))
    Xr, yr = problem([3, 4, 2], "linear", n=50)
    reg = fastbp.Network([3, 4, 2], output="linear", seed=0, dtype="float64")
    P = reg.predict(Xr)
    r2 = [1 - ((yr[:, j] - P[:, j]) ** 2).sum() / ((yr[:, j] - yr[:, j].mean()) ** 2).sum()
          for j in range(2)]
    assert reg.score(Xr, yr) == pytest.approx(np.mean(r2))
    reg.set_weights([(np.zeros((3, 4)), np.zeros(4)), (np.zeros((4, 2)), np.zeros(2))])
    const = np.full((50, 2), 0.0)
    assert reg.score(Xr, const) == 1.0   # constant target predicted exactly


def test_gradients_do_not_change_weights():
    X, y = problem([3, 4, 2], "softmax", n=10)
    net = fastbp.Network([3, 4, 2], seed=0)
    before = net.get_weights()
    net.gradients(X, y)
    assert all(np.array_equal(a, c) for (a, _), (c, _) in zip(before, net.get_weights()))


def test_hidden_list_and_parameters_are_used():
    X, y = problem([3, 4, 4, 2], "softmax", n=10)
    a = fastbp.Network([3, 4, 4, 2], hidden=["tanh", ("leaky_relu", {"slope": 0.3})], seed=0)
    b = fastbp.Network([3, 4, 4, 2], hidden=["tanh", ("leaky_relu", {"slope": 0.01})], seed=0)
    assert a.spec.activations == ("tanh", "leaky_relu", "softmax")
    assert a.spec.act_params[1] == 0.3
    assert not np.allclose(a.predict(X * 5), b.predict(X * 5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_partial_fit_and_initial_epoch_continue(backend):
    X, y = problem([3, 6, 2], "softmax", n=30)
    kw = dict(backend=backend, seed=1, dropout=0.2, batch_norm=True, dtype="float64")
    a, b, c = (fastbp.Network([3, 6, 2], **kw) for _ in range(3))
    sched = lambda: optim.StepDecay(0.3, every=1, drop=0.5)
    a.fit(X, y, epochs=4, batch_size=7, optimizer=optim.Adam(lr=sched()))
    b.fit(X, y, epochs=2, batch_size=7, optimizer=optim.Adam(lr=sched()))
    b.fit(X, y, epochs=4, initial_epoch=2, batch_size=7)
    c.fit(X, y, epochs=1, batch_size=7, optimizer=optim.Adam(lr=sched()))
    for _ in range(3):
        c.partial_fit(X, y, batch_size=7)
    for other in (b, c):
        np.testing.assert_allclose(a.get_weights()[0][0], other.get_weights()[0][0], rtol=1e-12)
        np.testing.assert_allclose(a.predict(X), other.predict(X), rtol=1e-12)


def test_snapshot_and_restore_the_training_state():
    """restore() puts back parameters, statistics, the step counter and (when taken) the
    optimizer's state, in place; snapshot(optimizer=False) leaves the optimizer alone."""
    X, y = problem([3, 6, 2], "softmax", n=30)
    net = fastbp.Network([3, 6, 2], seed=1, batch_norm=True, dropout=0.2)
    net.fit(X, y, epochs=1, batch_size=7, optimizer="adam")
    before, P = net.snapshot(), net.predict(X)
    t = net.optimizer.state_arrays()[2][0]
    net.fit(X, y, epochs=2, batch_size=7)
    weights_only = net.snapshot(optimizer=False)
    assert "optimizer" not in weights_only and not np.array_equal(net.predict(X), P)
    net.restore(before)
    np.testing.assert_array_equal(net.predict(X), P)
    assert net.optimizer.state_arrays()[2][0] == t
    net.restore(weights_only)
    assert net.optimizer.state_arrays()[2][0] == t   # the optimizer untouched
    assert not np.array_equal(net.predict(X), P)


# ---- what a Keras or scikit-learn user reaches for ----

def test_summary_lists_every_layer_and_counts_every_parameter(capsys):
    net = fastbp.Network([5, 7, 3, 2], hidden=["relu", "tanh"], dropout=[0.2, 0.0], batch_norm=[True, False],
                         dtype="float64", backend="numpy")
    net.summary()
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("input", "dense"))]
    assert len(rows) == 4
    assert sum(int(r.split()[-1].replace(",", "")) for r in rows) == net.n_params
    assert "tanh" in rows[2] and "yes" in rows[1] and "0.2" in rows[1] and "(None, 7)" in rows[1]
    assert "float64" in out and "backend: numpy" in out and f"{net.n_params:,} trainable" in out


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_labels_train_exactly_as_their_codes(backend, tmp_path):
    X, codes = problem([4, 6, 3], "softmax", n=40)
    names = np.array(["red", "green", "blue"])[codes]          # sorted: blue, green, red
    order = np.searchsorted(["blue", "green", "red"], names)
    a = fastbp.Network([4, 6, 3], seed=0, backend=backend, dtype="float64")
    b = fastbp.Network([4, 6, 3], seed=0, backend=backend, dtype="float64")
    a.fit(X, list(names), epochs=3, batch_size=8)
    b.fit(X, order, epochs=3, batch_size=8)
    assert a.classes_.tolist() == ["blue", "green", "red"] and b.classes_ is None
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.predict_classes(X).tolist() == a.classes_[b.predict_classes(X)].tolist()
    assert a.score(X, names) == b.score(X, order)
    a.save(tmp_path / "m.npz")
    assert fastbp.load(tmp_path / "m.npz").predict_classes(X).tolist() == a.predict_classes(X).tolist()
    with pytest.raises(ValueError, match=r"not fit on: \['purple'\]"):
        a.score(X[:2], ["red", "purple"])


def test_text_labels_refused_where_they_cannot_work():
    X, _ = problem([4, 6, 2], "softmax", n=10)
    words = ["a", "b", "c", "a", "b", "c", "a", "b", "c", "a"]
    net = fastbp.Network([4, 6, 2], seed=0, backend="numpy")
    with pytest.raises(ValueError, match="3 classes but the output layer can tell 2"):
        net.fit(X, words)
    assert net.classes_ is None                                   # a refused fit learns nothing
    with pytest.raises(TypeError, match="only a classifier takes"):
        fastbp.Network([4, 6, 1], output="linear", backend="numpy").fit(X, words)
    with pytest.raises(ValueError, match="never fit on text labels"):
        net.score(X, words)


def test_predict_proba_and_predict_classes():
    X, y = problem([4, 6, 3], "softmax", n=30)
    net = fastbp.Network([4, 6, 3], seed=0, backend="numpy", dtype="float64")
    net.fit(X, y, epochs=2)
    P = net.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(net.predict_classes(X), P.argmax(axis=1))
    binary = fastbp.Network([4, 5, 1], output="sigmoid", seed=0, backend="numpy", dtype="float64")
    binary.fit(X, y == 1, epochs=2)
    P2 = binary.predict_proba(X)
    assert P2.shape == (30, 2)
    np.testing.assert_allclose(P2[:, 1], binary.predict(X)[:, 0])
    np.testing.assert_array_equal(binary.predict_classes(X), (P2[:, 1] > 0.5).astype(int))
    with pytest.raises(TypeError, match="predict_proba is for classifiers"):
        fastbp.Network([4, 5, 1], output="linear", backend="numpy").predict_proba(X)


def test_evaluate_and_fit_metrics_agree_with_scikit_learn():
    skm = pytest.importorskip("sklearn.metrics")
    X, y = fastbp.datasets.make_moons(300, noise=0.3, seed=0)
    net = fastbp.Network([2, 16, 2], seed=0, dtype="float64")
    h = net.fit(X, y, epochs=4, lr=0.1, validation_split=0.25, metrics=["precision", "f1"])
    assert [len(h.history[k]) for k in ("precision", "f1", "val_precision", "val_f1")] == [4] * 4
    report = net.evaluate(X[225:], y[225:])
    assert report["f1"] == pytest.approx(h.history["val_f1"][-1])
    pred = net.predict_classes(X[225:])
    assert report["precision"] == pytest.approx(skm.precision_score(y[225:], pred, average="macro"))
    np.testing.assert_array_equal(report["confusion_matrix"], skm.confusion_matrix(y[225:], pred))
    assert report["loss"] == pytest.approx(h.history["val_loss"][-1])
    reg = fastbp.Network([2, 8, 1], output="linear", seed=0, dtype="float64")
    target = X[:, 0] - X[:, 1]
    reg.fit(X, target, epochs=3, lr=0.05, metrics=["mae"])
    r = reg.evaluate(X, target)
    assert r["mae"] == pytest.approx(skm.mean_absolute_error(target, reg.predict(X)[:, 0]))
    assert r["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(target, reg.predict(X)[:, 0])))
    assert r["r2"] == pytest.approx(reg.score(X, target))
