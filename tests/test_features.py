"""Training features on both backends: regularisation, batch norm, optimizers, schedules,
weights, callbacks, early stopping, partial fits, saving and resuming."""
import numpy as np
import pytest

import fastbp
from fastbp import optim
from conftest import pair, problem, tol
from test_gradcheck import check as gradcheck

BACKENDS = ["cpu", "numpy"]


# ---- gradients with the features on ----

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
    gradcheck(net, *problem(sizes, "softmax", n=7))


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


def test_dropout_masks_agree_across_backends():
    sizes = [4, 8, 6, 2]
    cpu, ref = pair(sizes, "float64", hidden="relu", dropout=0.4)
    X, y = problem(sizes, "softmax", n=16)
    for step in (0, 3):
        lc, gc = cpu._backend.loss_and_gradients(cpu._params, cpu._state, *cpu._XY(X, y), dropout_step=step)
        lr_, gr = ref._backend.loss_and_gradients(ref._params, ref._state, *ref._XY(X, y), dropout_step=step)
        assert lc == pytest.approx(lr_, rel=1e-10)
        np.testing.assert_allclose(gc, gr, **tol("float64"))


# ---- whole runs: cpu == numpy ----

RUNS = {
    "sgd": dict(optimizer="sgd"),
    "momentum": dict(optimizer=lambda: optim.Momentum(lr=0.05, momentum=0.8)),
    "nesterov": dict(optimizer=lambda: optim.Nesterov(lr=0.05)),
    "adam": dict(optimizer=lambda: optim.Adam(lr=0.01, weight_decay=1e-3)),
    "adamw": dict(optimizer=lambda: optim.AdamW(lr=0.01)),
    "clip": dict(optimizer=lambda: optim.SGD(lr=0.5, clip_norm=0.1)),
    "step_decay": dict(lr=lambda: optim.StepDecay(0.2, drop=0.5, every=2)),
    "exp_decay": dict(lr=lambda: optim.ExponentialDecay(0.2, rate=0.7)),
    "invscaling": dict(lr=lambda: optim.InverseScaling(0.5, power_t=0.25)),
    "plateau": dict(lr=lambda: optim.ReduceOnPlateau(0.3, factor=0.5, patience=0, min_delta=10.0)),
    "weights": dict(sample_weight=lambda: np.linspace(0.1, 2, 45), class_weight="balanced"),
}
NETS = {"plain": {}, "dropout": dict(dropout=0.3), "batch_norm": dict(batch_norm=True, bn_momentum=0.8),
        "everything": dict(dropout=[0.2, 0.1], batch_norm=[False, True], l1=1e-3, l2=1e-2)}


@pytest.mark.parametrize("net_kind", list(NETS))
@pytest.mark.parametrize("run", list(RUNS))
def test_training_runs_agree(run, net_kind, dtype, kernel_mode):
    sizes = [5, 8, 6, 3]
    cpu, ref = pair(sizes, dtype, seed=4, hidden="tanh", **NETS[net_kind])
    X, y = problem(sizes, "softmax", n=45, seed=4)
    hists = []
    for net in (cpu, ref):
        kw = {k: (v() if callable(v) else v) for k, v in RUNS[run].items()}
        hists.append(net.fit(X, y, epochs=5, batch_size=8, **kw).history)
    t = {k: v * 20 for k, v in tol(dtype).items()}   # 30 dependent steps amplify rounding
    for key in ("loss", "lr"):
        np.testing.assert_allclose(hists[0][key], hists[1][key], **t)
    for (a, b), (c, d) in zip(cpu.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, c, **t)
        np.testing.assert_allclose(b, d, **t)
    for x, z in zip(cpu.get_batch_norm(), ref.get_batch_norm()):
        for u, v in zip(x, z):
            np.testing.assert_allclose(u, v, **t)
    np.testing.assert_allclose(cpu.predict(X), ref.predict(X), **t)
    if cpu.optimizer.m.size:
        np.testing.assert_allclose(cpu.optimizer.m, ref.optimizer.m, **t)


def test_schedules_set_the_rate_per_epoch():
    X, y = problem([3, 4, 2], "softmax", n=20)
    h = fastbp.Network([3, 4, 2], seed=0).fit(X, y, epochs=5, batch_size=5,
                                              lr=optim.StepDecay(0.4, drop=0.5, every=2))
    assert h.history["lr"] == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1])
    h = fastbp.Network([3, 4, 2], seed=0).fit(X, y, epochs=3, batch_size=5,
                                              lr=optim.InverseScaling(0.3, power_t=0.5))
    assert h.history["lr"] == pytest.approx([0.3, 0.3 / 21 ** 0.5, 0.3 / 41 ** 0.5])
    h = fastbp.Network([3, 4, 2], seed=0).fit(X, y, epochs=4, batch_size=5,
                                              lr=optim.ReduceOnPlateau(0.3, factor=0.5, patience=0,
                                                                       min_delta=100.0))
    # the first epoch sets the baseline; none after improves on it by 100, so each one halves
    assert h.history["lr"] == pytest.approx([0.3, 0.3, 0.15, 0.075])


# ---- optimizer steps by hand ----

def one_step(optimizer, g_of_w, w0=0.5, steps=2):
    """A 1-1 linear network, no bias effect: the gradient of mse for x=1, y=0 is 2w + 2b."""
    net = fastbp.Network([1, 1], output="linear", loss="mse", dtype="float64", backend="cpu")
    net.set_weights([(np.array([[w0]]), np.array([0.0]))])
    out = []
    for _ in range(steps):
        net.fit(np.array([[1.0]]), np.array([0.0]), epochs=1, batch_size=1, optimizer=optimizer)
        out.append(net.get_weights()[0][0][0, 0])
    return out


def test_momentum_by_hand():
    # w=0.5, b=0: dw = 2(w+b) = 1.  m1 = -0.1*1 = -0.1, w1 = 0.4; b1 = -0.1.
    # dw = 2(0.4 - 0.1) = 0.6.  m2 = 0.9*(-0.1) - 0.1*0.6 = -0.15, w2 = 0.25
    assert one_step(optim.Momentum(lr=0.1, momentum=0.9), None) == pytest.approx([0.4, 0.25])


def test_nesterov_by_hand():
    # step 1: m1 = -0.1; w1 = 0.5 + 0.9*(-0.1) - 0.1*1 = 0.31; b1 = 0 - 0.09 - 0.1 = -0.19
    # step 2: dw = 2(0.31 - 0.19) = 0.24; m2 = -0.09 - 0.024 = -0.114; w2 = 0.31 - 0.1026 - 0.024
    assert one_step(optim.Nesterov(lr=0.1, momentum=0.9), None) == pytest.approx([0.31, 0.1834])


def test_adam_by_hand():
    # step 1: g=1; m=0.1, v=0.001; m_hat=1, v_hat=1; w1 = 0.5 - 0.1*1/(1+1e-8); b1 = -0.1
    # step 2: g = 2(0.4 - 0.1) = 0.6; m = 0.09 + 0.06 = 0.15, v = 0.000999 + 0.00036 = 0.001359
    #         m_hat = 0.15/0.19, v_hat = 0.001359/0.001999; w2 = 0.4 - 0.1 m_hat/sqrt(v_hat)
    m_hat, v_hat = 0.15 / 0.19, 0.001359 / (1 - 0.999 ** 2)
    expect = [0.5 - 0.1 / (1 + 1e-8), 0.4 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)]
    assert one_step(optim.Adam(lr=0.1), None) == pytest.approx(expect, rel=1e-7)


def test_optimizer_state_persists_across_fits_and_belongs_to_the_optimizer():
    X, y = problem([3, 4, 2], "softmax", n=20)
    opt = optim.Adam(lr=0.01)
    a = fastbp.Network([3, 4, 2], seed=0)
    a.fit(X, y, epochs=2, batch_size=5, optimizer=opt)
    a.fit(X, y, epochs=1, batch_size=5, optimizer=opt)
    b = fastbp.Network([3, 4, 2], seed=0)
    b.fit(X, y, epochs=3, batch_size=5, optimizer=optim.Adam(lr=0.01))
    np.testing.assert_allclose(a.get_weights()[0][0], b.get_weights()[0][0], rtol=1e-5)
    assert opt.t[0] == 12 and a.optimizer is opt
    with pytest.raises(ValueError, match="new optimizer"):
        fastbp.Network([3, 9, 2]).fit(X, y, optimizer=opt)
    with pytest.raises(ValueError, match="Did you mean 'adam'"):
        a.fit(X, y, optimizer="adma")


# ---- weights ----

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


# ---- callbacks and early stopping ----

def test_callback_sees_logs_and_can_stop():
    class StopAt(fastbp.callbacks.Callback):
        def __init__(self):
            self.seen = []

        def on_epoch_end(self, epoch, logs):
            self.seen.append((epoch, sorted(logs)))
            if epoch == 2:
                self.network.stop_training = True

    X, y = problem([3, 4, 2], "softmax", n=20)
    cb = StopAt()
    h = fastbp.Network([3, 4, 2], seed=0).fit(X, y, epochs=10, validation_split=0.2, callbacks=[cb])
    assert len(h.history["loss"]) == 3 and [e for e, _ in cb.seen] == [0, 1, 2]
    assert cb.seen[0][1] == ["loss", "lr", "time", "val_loss", "val_score"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_early_stopping_stops_and_restores_best(backend):
    """A large lr makes validation loss bounce; training stops `patience` epochs after the best,
    and the network returns to the best epoch's weights."""
    X, y = fastbp.datasets.make_moons(200, noise=0.3, seed=0)
    net = fastbp.Network([2, 64, 2], seed=0, backend=backend, dtype="float64")
    best = {}

    class Keep(fastbp.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            best[epoch] = (logs["val_loss"], self.network.get_weights())

    h = net.fit(X, y, epochs=300, batch_size=8, lr=0.5, validation_split=0.3, early_stopping=True,
                patience=3, callbacks=[Keep()])
    vl = h.history["val_loss"]
    b = int(np.argmin(vl))
    assert len(vl) == b + 4 < 300                   # stopped 3 epochs after the best
    for (w, _), (wb, _) in zip(net.get_weights(), best[b][1]):
        np.testing.assert_array_equal(w, wb)
    assert net.loss(X[140:], y[140:]) == pytest.approx(vl[b], rel=1e-9)


def test_early_stopping_needs_validation():
    X, y = problem([3, 4, 2], "softmax", n=20)
    with pytest.raises(ValueError, match="validation_split"):
        fastbp.Network([3, 4, 2]).fit(X, y, early_stopping=True)
    h = fastbp.Network([3, 4, 2]).fit(X, y, epochs=3, early_stopping=True, monitor="loss")
    assert len(h.history["loss"]) >= 1


# ---- partial fits, resumption, saving ----

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


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_load_predicts_identically_and_resumes_exactly(backend, tmp_path):
    X, y = problem([4, 7, 5, 3], "softmax", n=50)
    kw = dict(hidden=["relu", ("leaky_relu", {"slope": 0.2})], dropout=[0.3, 0.0],
              batch_norm=[True, False], l2=1e-3, seed=7, backend=backend)
    fit = dict(batch_size=8, validation_split=0.2)
    whole = fastbp.Network([4, 7, 5, 3], **kw)
    whole.fit(X, y, epochs=6, optimizer=optim.AdamW(lr=optim.ExponentialDecay(0.01, 0.9)), **fit)
    half = fastbp.Network([4, 7, 5, 3], **kw)
    half.fit(X, y, epochs=3, optimizer=optim.AdamW(lr=optim.ExponentialDecay(0.01, 0.9)), **fit)
    path = tmp_path / "model.npz"
    half.save(path)
    loaded = fastbp.load(path)
    assert repr(loaded) == repr(half)
    np.testing.assert_array_equal(loaded.predict(X), half.predict(X))
    assert loaded.optimizer.get_config() == half.optimizer.get_config()
    loaded.fit(X, y, epochs=6, initial_epoch=3, **fit)
    np.testing.assert_allclose(loaded.predict(X), whole.predict(X), **tol("float32"))
    for (a, _), (b, _) in zip(loaded.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(a, b, **tol("float32"))


def test_load_into_the_other_backend(tmp_path):
    X, y = problem([3, 5, 2], "softmax", n=20)
    net = fastbp.Network([3, 5, 2], seed=0, batch_norm=True, backend="cpu")
    net.fit(X, y, epochs=2)
    net.save(tmp_path / "m.npz")
    ref = fastbp.load(tmp_path / "m.npz", backend="numpy")
    assert ref.backend == "numpy"
    np.testing.assert_allclose(ref.predict(X), net.predict(X), **tol("float32"))


def test_save_is_atomic(tmp_path, monkeypatch):
    X, y = problem([3, 5, 2], "softmax", n=20)
    net = fastbp.Network([3, 5, 2], seed=0)
    path = tmp_path / "m.npz"
    net.save(path)
    before = path.read_bytes()
    net.fit(X, y, epochs=3)

    def broken(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        net.save(path)
    assert path.read_bytes() == before                     # the earlier file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]   # no temporary left behind


def test_load_refuses_foreign_and_tampered_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a valid fastbp model"):
        fastbp.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", params=np.zeros(3))
    with pytest.raises(ValueError, match="no fastbp config"):
        fastbp.load(tmp_path / "other.npz")
    np.savez(tmp_path / "obj.npz", config=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a valid fastbp model"):
        fastbp.load(tmp_path / "obj.npz")
    net = fastbp.Network([3, 5, 2], seed=0)
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = dict(f)
    arrays["params"] = arrays["params"][:-1]
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ValueError, match="params"):
        fastbp.load(tmp_path / "cut.npz")


# ---- does regularisation regularise? ----

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


def test_progress_bar_advances_within_an_epoch(capsys, monkeypatch):
    import fastbp.network as network
    monkeypatch.setattr(network, "PROGRESS_SECONDS", 0.0)   # redraw after every call
    X, y = problem([3, 4, 2], "softmax", n=64)
    net = fastbp.Network([3, 4, 2], seed=0)
    calls = []
    real = net._backend.train_rows
    net._backend.train_rows = lambda *a: calls.append(a[7] - a[6]) or real(*a)
    net.fit(X, y, epochs=1, batch_size=8, verbose=1)
    assert sum(calls) == 64 and len(calls) > 1
