"""fastbp/kernels/cpu/backend.py: evaluation in blocks, and parallel drivers from several Python
threads at once."""
import os
import subprocess
import sys

import pytest

from compile_events import compiled
from conftest import assert_same_state, pair, problem


def test_evaluation_in_blocks_matches_one_pass(monkeypatch):
    """predict/loss run over blocks of EVAL_CHUNK rows; block edges must not change results."""
    from fastbp import config
    cpu, ref = pair([3, 9, 4], "float64", output="softmax")
    X, y = problem([3, 9, 4], "softmax", n=50)
    monkeypatch.setattr(config, "EVAL_CHUNK", 7)   # 50 rows = 7 full blocks + 1 of 1 row
    assert_same_state(cpu, ref, X, y, "float64")


CONCURRENT_PROBE = r"""
import threading, numpy as np, fastbp, numba
X, y = fastbp.datasets.make_synthetic(2000, 256, 10)
nets = [fastbp.Network([256, 256, 256, 10], seed=i) for i in range(3)]   # big enough for threads
nets[0].fit(X, y, epochs=1, batch_size=64)
errors = []
def work(net):
    try:
        net.fit(X, y, epochs=2, batch_size=64)
        net.predict(X)
    except BaseException as exc:
        errors.append(exc)
ts = [threading.Thread(target=work, args=(n,)) for n in nets]
[t.start() for t in ts]; [t.join() for t in ts]
print(numba.threading_layer(), len(errors), all(np.isfinite(n.predict(X)).all() for n in nets))
"""


@pytest.mark.parametrize("layer", ["workqueue", "default"])
def test_concurrent_fits_from_python_threads_do_not_crash(layer):
    """Under the workqueue layer, two threads in parallel kernels at once abort the process;
    fastbp serialises its parallel drivers, so concurrent fits finish."""
    env = dict(os.environ)
    if layer == "workqueue":
        env["NUMBA_THREADING_LAYER"] = "workqueue"
    out = subprocess.run([sys.executable, "-c", CONCURRENT_PROBE], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    used, n_errors, finite = out.stdout.split()
    assert n_errors == "0" and finite == "True"
    if layer == "workqueue":
        assert used == "workqueue"


# The rest of the suite runs the general build (tests/conftest.py); these fits run the variants
# users get, each compiled for its network (needs.py). A feature a variant left out would be
# skipped, and the fit would part from the reference.
VARIANT_FITS = {
    "plain": (dict(hidden="sigmoid", output="sigmoid"), dict(optimizer="sgd")),
    "everything": (dict(hidden="relu", output="softmax", dropout=0.2, batch_norm=True, l1=1e-3, l2=1e-2),
                   dict(optimizer=lambda: __import__("fastbp").optim.Adam(lr=0.01, clip_norm=0.5))),
    "regression": (dict(hidden=["tanh", "elu"], output="linear", loss="huber"),
                   dict(optimizer=lambda: __import__("fastbp").optim.Nesterov(lr=0.05))),
}


@pytest.mark.parametrize("kind", list(VARIANT_FITS))
def test_variant_fits_match_the_reference(kind, monkeypatch):
    import numpy as np
    from fastbp import config
    from conftest import tol
    from fastbp.kernels.cpu import needs
    monkeypatch.setattr(config, "SPECIALIZE", True)
    monkeypatch.setattr(needs, "general_built", lambda dtype: False)   # (the suite builds it)
    net_kw, fit_kw = VARIANT_FITS[kind]
    sizes = [5, 8, 6, 3]
    cpu, ref = pair(sizes, "float64", seed=3, **net_kw)
    X, y = problem(sizes, net_kw["output"], n=40, seed=3)
    for net in (cpu, ref):
        net.fit(X, y, epochs=4, batch_size=16, **{k: v() if callable(v) else v for k, v in fit_kw.items()})
    assert any(len(key) > 1 for key in cpu._backend.variants()), "the fit ran the general build"
    t = {k: v * 20 for k, v in tol("float64").items()}
    for (a, b), (c, d) in zip(cpu.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, c, **t)
        np.testing.assert_allclose(b, d, **t)
    assert_same_state(cpu, ref, X, y, "float64", scale=20)


@pytest.mark.parametrize("sparse", [False, True])
def test_read_only_inputs_run_the_drivers_compiled_for_writable_ones(sparse):
    """Numba types a read-only array apart from a writable one, so without the backend's
    read-only views a user's read-only X (a memory map, pandas' copy-on-write arrays) would
    compile every driver again. A fit, loss, gradients and predictions on read-only X, y and
    sample weights after the same calls on writable ones compile nothing, and give the same
    numbers."""
    import numpy as np
    from fastbp import Network

    X, y = problem([5, 7, 3], "softmax", n=40)
    X = X.astype(np.float32)
    sw = np.linspace(0.5, 1.5, len(X))
    if sparse:
        from scipy import sparse as sp
        X[np.abs(X) < 0.8] = 0
        X = sp.csr_matrix(X)

    def frozen(a):
        a = a.copy()
        if sparse and hasattr(a, "indptr"):
            for part in (a.data, a.indices, a.indptr):
                part.flags.writeable = False
        else:
            a.flags.writeable = False
        return a

    def run(X, y, sw):
        net = Network([5, 7, 3], seed=3, batch_norm=True)
        net.fit(X, y, epochs=2, batch_size=8, sample_weight=sw, verbose=0)
        return flat(net.get_weights()), net.loss(X, y), flat(net.gradients(X, y)), net.predict(X)

    def flat(pairs):
        return np.concatenate([a.ravel() for pair in pairs for a in pair])

    writable = run(X, y, sw)
    with compiled() as names:
        read_only = run(frozen(X), frozen(y), frozen(sw))
    assert len(names) == 0
    for a, b in zip(writable, read_only):
        np.testing.assert_array_equal(a, b)


def test_the_drivers_built_for_dense_x_serve_sparse_x(monkeypatch):
    """Dense X reaches the drivers with empty CSR arrays in its workspace, sparse X with its own
    (read-only views): unless the two have one Numba type, a sparse fit compiles every driver of
    the general build (`fastbp compile --all`) a second time. After the general build's calls on
    dense X, a fit, loss, gradients and predictions on sparse X compile nothing."""
    import numpy as np
    from scipy import sparse as sp
    from fastbp import Network, config

    monkeypatch.setattr(config, "SPECIALIZE", False)
    X, y = problem([6, 5, 3], "softmax", n=30)
    X[np.abs(X) < 0.8] = 0

    def run(X):
        net = Network([6, 5, 3], seed=2, dtype="float64")
        net.fit(X, y, epochs=2, batch_size=8, verbose=0)
        return net.loss(X, y), net.gradients(X, y), net.predict(X)

    run(X)
    with compiled() as names:
        run(sp.csr_matrix(X))
    assert names == []


def test_predict_and_loss_run_one_compiled_driver(monkeypatch):
    """predict and loss are one driver (driver.evaluate), each passing an empty array for the
    half it does not use: unless those empties have the types of the real arrays, the second
    call compiles the driver again, and the whole forward pass with it."""
    import numpy as np
    from fastbp import Network, config
    from fastbp.kernels.compile import variant
    from fastbp.kernels.cpu import driver

    monkeypatch.setattr(config, "SPECIALIZE", True)
    X, y = problem([4, 9, 3], "softmax", n=30)
    net = Network([4, 9, 3], seed=1, dtype="float32")
    net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    P = net.predict(X)
    loss = net.loss(X, y)
    ref = Network([4, 9, 3], seed=1, dtype="float32", backend="numpy")
    ref.set_weights(net.get_weights())
    np.testing.assert_allclose(P, ref.predict(X), rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(ref.loss(X, y), rel=1e-5)
    evaluates = {variant(driver.evaluate, **dict(key)) for key in net._backend.variants()}
    sigs = [s for d in evaluates for s in d.signatures if str(s[0].dtype) == "float32"]
    assert len(sigs) == 1, sigs


def test_only_drivers_that_may_call_openblas_hold_it_to_one_thread(monkeypatch):
    """A driver call holds OpenBLAS to one thread (blas_library.one_thread) where its variant
    may take the OpenBLAS path; an all-naive variant, as a small network's, skips the hold."""
    from fastbp import config
    from fastbp.kernels.cpu import dense
    from fastbp.kernels.cpu import needs as needs_module
    from fastbp.kernels.cpu.backend import _reaches_blas
    from fastbp.optim import SGD
    from fastbp.spec import make_spec
    monkeypatch.setattr(config, "SPECIALIZE", True)   # the suite runs the general build
    monkeypatch.setattr(needs_module, "general_built", lambda dtype: False)
    small = needs_module.needs(make_spec([2, 4, 1], output="sigmoid"), "float64", False, 4, SGD(0.1))
    wide = needs_module.needs(make_spec([784, 1024, 1024, 10]), "float32", True, 256, SGD(0.1))
    assert not _reaches_blas(small)
    assert _reaches_blas((("THREADED", True),))   # the general build reaches every path
    assert _reaches_blas(wide) == (dense.BLAS in dict(wide)["FORWARD_PATHS"] + dict(wide)["BACKWARD_PATHS"])
    assert _reaches_blas(wide) == dense.BLAS_FOUND


class _Build:
    """A stand-in for one build of a driver: counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1

    def ran(self):
        return self.calls > 0


class _Marker:
    """A stand-in for kernels/tier.Marker: whether the disk cache holds the fastest build."""

    def __init__(self):
        self.in_cache, self.marked, self.asked = False, 0, 0

    def built(self):
        return self.in_cache

    def mark(self):
        self.marked += 1

    def build_in_background(self):
        self.asked += 1


def _tiers(monkeypatch):
    from fastbp.kernels.cpu import backend
    marker = _Marker()
    monkeypatch.setattr(backend.tier, "Marker", lambda dispatcher, args: marker)
    fastest, quick = _Build(), _Build()
    return backend._Tiers(fastest, quick, None), fastest, quick, marker


def test_short_calls_run_the_quick_build_until_the_fastest_is_in_the_cache(monkeypatch):
    tiers, fastest, quick, marker = _tiers(monkeypatch)
    short = tiers.caller(True)
    assert not short.ran()
    short(1)
    short(2)
    assert (quick.calls, fastest.calls, marker.asked) == (2, 0, 1)   # one background build, not one a call
    assert short.ran()   # (prepare has nothing left to load)
    marker.in_cache = True   # the background build is done
    assert not short.ran()   # (prepare loads the fastest build before the fit)
    short(3)
    short(4)
    assert (quick.calls, fastest.calls, marker.marked) == (2, 2, 0)


def test_long_calls_run_the_fastest_build_and_record_it(monkeypatch):
    tiers, fastest, quick, marker = _tiers(monkeypatch)
    tiers.caller(False)(1)
    assert (quick.calls, fastest.calls, marker.marked, marker.asked) == (0, 1, 1, 0)
    tiers.caller(True)(2)   # this process has it: short calls run it too
    assert (quick.calls, fastest.calls, marker.marked, marker.asked) == (0, 2, 1, 0)


def test_the_work_of_a_call_picks_its_build(monkeypatch):
    import numpy as np
    from fastbp import Network, config
    from fastbp.kernels.cpu import backend, needs
    from fastbp.optim import SGD
    monkeypatch.setattr(config, "SPECIALIZE", True)
    monkeypatch.setattr(config, "TIERED", True)
    monkeypatch.setattr(needs, "general_built", lambda dtype: False)   # (the suite builds it)
    # (not where MPI's tests imported mpi4py into this worker: tier.usable says no inside MPI jobs)
    monkeypatch.setattr(backend.tier, "usable", lambda: config.TIERED)
    b = Network([64, 300, 10], seed=0)._backend
    X, opt = np.zeros((100, 64), np.float32), SGD(0.1)
    threaded = b.threaded(32, 3, X)
    tiers = backend._tiers_for(b.needs(threaded, 32, opt), b.needs(threaded, 32, opt, quick=True), "float32", True)
    most = config.NAIVE_FLOPS * config.QUICK_MAX_SECONDS
    assert b.drivers(32, optimizer=opt, X=X, flop=most) is tiers[True]
    assert b.drivers(32, optimizer=opt, X=X, flop=most + 1) is tiers[False]
    assert b.drivers(32, optimizer=opt, X=X) is backend._drivers_for(b.needs(threaded, 32, opt), "float32", True)
    monkeypatch.setattr(config, "TIERED", False)   # FASTBP_TIERED=0: the fastest build, still recorded
    assert b.drivers(32, optimizer=opt, X=X, flop=1) is tiers[False]
