"""The cpu backend equals the numpy reference: predictions, losses, gradients, whole training
runs from the same seed (same initial weights, same shuffles), in float32 and float64."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fastbp import optim
from conftest import HIDDEN, OUTPUT_LOSS, assert_same_state, ids, pair, problem, tol


@pytest.mark.parametrize("hidden", HIDDEN, ids=ids)
def test_hidden_activations_agree(hidden, dtype, kernel_mode):
    sizes = [5, 8, 6, 3]
    cpu, ref = pair(sizes, dtype, hidden=hidden, output="softmax")
    X, y = problem(sizes, "softmax", n=31)
    assert_same_state(cpu, ref, X, y, dtype)


@pytest.mark.parametrize("output,loss", OUTPUT_LOSS, ids=[f"{o}-{ids(l)}" for o, l in OUTPUT_LOSS])
def test_training_runs_agree(output, loss, dtype, kernel_mode):
    """Five epochs of SGD with shuffling and a partial last batch (37 rows, batch 8)."""
    sizes = [4, 7, 5, 3]
    cpu, ref = pair(sizes, dtype, seed=2, hidden="tanh", output=output, loss=loss)
    X, y = problem(sizes, output, n=37, seed=2)
    hc = cpu.fit(X, y, epochs=5, batch_size=8, lr=0.05)
    hr = ref.fit(X, y, epochs=5, batch_size=8, lr=0.05)
    t = {k: v * 10 for k, v in tol(dtype).items()}  # 25 dependent updates amplify rounding
    np.testing.assert_allclose(hc.history["loss"], hr.history["loss"], **t)
    for (w, b), (rw, rb) in zip(cpu.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(w, rw, **t)
        np.testing.assert_allclose(b, rb, **t)
    # training moved the weights: the comparison is not of two untouched initialisations
    moved = [np.abs(w - w0).max() for (w, _), (w0, _) in
             zip(cpu.get_weights(), pair(sizes, dtype, seed=2, hidden="tanh", output=output,
                                         loss=loss)[0].get_weights())]
    assert min(moved) > 1e-4


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depth=st.integers(1, 4), widths=st.lists(st.integers(1, 12), min_size=5, max_size=5),
       hidden=st.sampled_from(HIDDEN), out_loss=st.sampled_from(OUTPUT_LOSS),
       n=st.integers(2, 40), batch=st.integers(1, 50), dtype=st.sampled_from(["float32", "float64"]),
       seed=st.integers(0, 2**16))
def test_random_networks_agree(depth, widths, hidden, out_loss, n, batch, dtype, seed):
    output, loss = out_loss
    sizes = widths[:depth + 1]
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    cpu, ref = pair(sizes, dtype, seed=seed, hidden=hidden, output=output, loss=loss)
    X, y = problem(sizes, output, n=n, seed=seed)
    if output in ("softmax", "sigmoid"):   # fit refuses a classifier one class to learn from
        y[:2] = [0, 1] if output == "softmax" else [[0] * sizes[-1], [1] * sizes[-1]]
    assert_same_state(cpu, ref, X, y, dtype, scale=10)
    cpu.fit(X, y, epochs=2, batch_size=batch, lr=0.01)
    ref.fit(X, y, epochs=2, batch_size=batch, lr=0.01)
    assert_same_state(cpu, ref, X, y, dtype, scale=50)


def test_training_on_the_blocked_path_agrees(dtype, kernel_mode):
    """Layers large enough for the register-blocked dense kernels (and partial tiles)."""
    sizes = [70, 66, 41, 5]
    cpu, ref = pair(sizes, dtype, seed=5, hidden="relu", dropout=0.1, batch_norm=[True, False])
    X, y = problem(sizes, "softmax", n=101, seed=5)
    # batches of 40 rows take the blocked path in every layer; the last, of 21, only in the narrow one
    hc = cpu.fit(X, y, epochs=3, batch_size=40, lr=0.05)
    hr = ref.fit(X, y, epochs=3, batch_size=40, lr=0.05)
    t = {k: v * 20 for k, v in tol(dtype).items()}
    np.testing.assert_allclose(hc.history["loss"], hr.history["loss"], **t)
    for (w, b), (rw, rb) in zip(cpu.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(w, rw, **t)
    np.testing.assert_allclose(cpu.predict(X), ref.predict(X), **t)


SPLIT_OPTIMIZERS = {"sgd": lambda o: o.SGD(lr=0.05), "momentum": lambda o: o.Momentum(lr=0.05),
                    "adam": lambda o: o.Adam(lr=0.005, weight_decay=1e-3),
                    "adamw clipped": lambda o: o.AdamW(lr=0.005, clip_norm=0.5)}


@pytest.mark.parametrize("opt", list(SPLIT_OPTIMIZERS))
def test_training_split_by_inputs_agrees(opt, dtype, monkeypatch):
    """Parallel training steps cut layers gemm_tiled takes by W's rows (dense.split_by_inputs),
    each thread updating its own rows (driver.update_by_owner): every optimizer, with batch norm
    (its vectors updated in parts) and dropout, against the reference."""
    import numba
    from fastbp import config, optim
    from fastbp.kernels.cpu import dense
    monkeypatch.setattr(config, "PARALLEL_MIN_FLOP", 0)
    sizes = [200, 184, 180, 3]   # two layers of >= config.SPLIT_MIN_WEIGHTS; a narrow output layer
    cpu, ref = pair(sizes, dtype, seed=7, hidden="relu", dropout=0.1, batch_norm=[False, True])
    if numba.get_num_threads() == 2:   # as on CI and the dev machine: the path under test is taken
        split = [dense.split_by_inputs(24, W, np.empty(10**6, W.dtype)) for W, _ in cpu.get_weights()]
        assert split == [True, True, False]
    X, y = problem(sizes, "softmax", n=101, seed=7)
    hc = cpu.fit(X, y, epochs=3, batch_size=24, optimizer=SPLIT_OPTIMIZERS[opt](optim))
    hr = ref.fit(X, y, epochs=3, batch_size=24, optimizer=SPLIT_OPTIMIZERS[opt](optim))
    t = {k: v * 20 for k, v in tol(dtype).items()}   # 15 dependent steps amplify rounding
    np.testing.assert_allclose(hc.history["loss"], hr.history["loss"], **t)
    for (w, b), (rw, rb) in zip(cpu.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(w, rw, **t)
        np.testing.assert_allclose(b, rb, **t)
    for x, z in zip(cpu.get_batch_norm(), ref.get_batch_norm()):
        for u, v in zip(x, z):
            np.testing.assert_allclose(u, v, **t)
    if cpu.optimizer.m.size:
        np.testing.assert_allclose(cpu.optimizer.m, ref.optimizer.m, **t)
        np.testing.assert_allclose(cpu.optimizer.v, ref.optimizer.v, **t)


def test_dropout_masks_agree_across_backends():
    sizes = [4, 8, 6, 2]
    cpu, ref = pair(sizes, "float64", hidden="relu", dropout=0.4)
    X, y = problem(sizes, "softmax", n=16)
    for step in (0, 3):
        lc, gc = cpu._backend.loss_and_gradients(cpu._params, cpu._state, *cpu._XY(X, y), dropout_step=step)
        lr_, gr = ref._backend.loss_and_gradients(ref._params, ref._state, *ref._XY(X, y), dropout_step=step)
        assert lc == pytest.approx(lr_, rel=1e-10)
        np.testing.assert_allclose(gc, gr, **tol("float64"))


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
def test_training_features_agree(run, net_kind, dtype, kernel_mode):
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


@pytest.mark.parametrize("output,loss", [("softmax", "cross_entropy"), ("exp", "poisson"), ("linear", "mse")])
def test_full_batch_objective_in_blocks_agrees(output, loss, dtype):
    """Network.objective: the cpu backend runs the rows in blocks of config.EVAL_CHUNK (2,500
    rows: three blocks, the last partial) with sample weights and the penalty; the numpy
    reference takes them as one batch. Values and gradients agree, at other weights the
    objective moves with them (each call sets the weights it is given), and theta and the
    gradient are laid out as get_weights() and gradients() flattened layer by layer."""
    from fastbp import config
    sizes = [6, 9, 3]
    n = 2 * config.EVAL_CHUNK + 452
    X, y = problem(sizes, output, n=n, seed=5)
    sw = np.random.default_rng(6).uniform(0, 2, n)
    cpu, ref = pair(sizes, dtype, seed=7, hidden="tanh", output=output, loss=loss, l2=1e-3)
    f_cpu, f_ref = cpu.objective(X, y, sw), ref.objective(X, y, sw)
    flat = lambda pairs: np.concatenate([np.r_[a.ravel(), b] for a, b in pairs])   # noqa: E731
    theta0 = flat(cpu.get_weights())
    theta1 = theta0 * 1.5 + 0.1
    for theta in (theta0, theta1):
        (vc, gc), (vr, gr) = f_cpu(theta), f_ref(theta)
        assert gc.dtype == np.float64 and gc.shape == theta.shape
        np.testing.assert_allclose(vc, vr, **tol(dtype))
        np.testing.assert_allclose(gc, gr, **tol(dtype))
    assert not np.isclose(f_cpu(theta0)[0], f_cpu(theta1)[0])
    np.testing.assert_allclose(flat(cpu.get_weights()), theta1.astype(dtype))
    # unit sample weights: the plain gradient of the network at those weights
    ref.set_weights(cpu.get_weights())
    np.testing.assert_allclose(cpu.objective(X, y)(theta1)[1], flat(ref.gradients(X, y)), **tol(dtype))
    with pytest.raises(ValueError, match="NaN"):
        f_cpu(np.full_like(theta0, np.nan))
    with pytest.raises(ValueError, match="shape"):
        f_cpu(theta0[1:])
    np.testing.assert_allclose(flat(cpu.get_weights()), theta1.astype(dtype))   # refused: left alone
