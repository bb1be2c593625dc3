"""fastbp/kernels/cpu/workspaces.py: networks of one layout share their single-threaded calls'
workspaces, and nothing of one network's calls reaches another's through them."""
import numpy as np
import pytest

import fastbp
from conftest import tol


def _fit_epochs(net, X, y, epochs, **kw):
    for _ in range(epochs):   # one compiled call each, so that calls of two networks can alternate
        net.fit(X, y, epochs=1, batch_size=8, **kw)


CASES = {
    "sgd": (dict(), dict(optimizer="sgd", lr=0.1)),
    "adam+dropout+bn": (dict(dropout=0.3, batch_norm=True, l2=1e-3), dict(optimizer="adam", lr=0.01)),
    "sparse": (dict(), dict(optimizer="adam", lr=0.01)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_networks_of_one_layout_share_a_workspace_and_train_as_if_alone(case, dtype):
    """Two networks of one layout, fit alternately epoch by epoch on different data, end where
    each ends fit alone, and predict and score alike: batch-norm statistics, dropout outputs,
    sparse batches' row lists, every buffer one call writes, is written again before the other
    network's call reads it."""
    net_kw, fit_kw = CASES[case]
    rng = np.random.default_rng(0)
    X1, X2 = rng.standard_normal((40, 6)), rng.standard_normal((40, 6)) * 3
    y1, y2 = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    if case == "sparse":
        sp = pytest.importorskip("scipy.sparse")
        X1, X2 = (sp.random(40, 6, density=0.4, format="csr", random_state=s) for s in (1, 2))

    def make(seed):
        return fastbp.Network([6, 10, 3], dtype=dtype, seed=seed, **net_kw)

    alone = []
    for seed, X, y in ((1, X1, y1), (2, X2, y2)):
        net = make(seed)
        _fit_epochs(net, X, y, 4, **fit_kw)
        alone.append((net.predict(X), net.loss(X, y)))
        del net

    a, b = make(1), make(2)
    for _ in range(4):
        _fit_epochs(a, X1, y1, 1, **fit_kw)
        _fit_epochs(b, X2, y2, 1, **fit_kw)
    assert a._backend.workspace(8, X=X1).zbuf is b._backend.workspace(8, X=X2).zbuf, "no workspace shared"
    for net, X, y, (P, loss) in ((a, X1, y1, alone[0]), (b, X2, y2, alone[1])):
        np.testing.assert_allclose(net.predict(X), P, **tol(dtype))
        np.testing.assert_allclose(net.loss(X, y), loss, **tol(dtype))


def test_parallel_calls_get_a_workspace_of_their_own(monkeypatch):
    """A parallel call lets other Python threads run while its threads work: it must not share."""
    from fastbp import config
    monkeypatch.setattr(config, "PARALLEL_MIN_FLOP", 0)
    a, b = (fastbp.Network([6, 10, 3], seed=s) for s in (1, 2))
    assert a._backend.threaded(8)
    assert a._backend.workspace(8).zbuf is not b._backend.workspace(8).zbuf
    monkeypatch.setattr(config, "PARALLEL_MIN_FLOP", 2**62)
    assert a._backend.workspace(8).zbuf is b._backend.workspace(8).zbuf


def test_no_driver_releases_the_gil():
    """Sharing rests on single-threaded drivers holding the GIL for the whole call."""
    from fastbp.kernels.compile import variant
    from fastbp.kernels.cpu import distributed, driver
    entries = [driver.train_epochs, driver.evaluate, driver.loss_and_gradients,
               driver.penalties, distributed.train_epochs_mpi]
    for entry in entries:
        for d in (entry, variant(entry, THREADED=False)):
            assert not d.targetoptions.get("nogil"), f"{d.py_func.__qualname__} is compiled nogil"


def test_kept_least_recently_used_first_within_the_byte_limit():
    from fastbp.kernels.cpu import driver
    from fastbp.kernels.cpu.workspaces import SharedWorkspaces
    specs = [fastbp.Network([4, n, 2]).spec for n in (8, 16, 32)]
    sizes = [sum(a.nbytes for a in driver.workspace(s, 8, np.float64) if isinstance(a, np.ndarray)) for s in specs]
    limit = [sizes[0] + sizes[1]]
    kept = SharedWorkspaces(limit=lambda: limit[0])
    first = kept.get(specs[0], 8, np.float64)
    assert kept.get(specs[0], 8, np.float64) is first and len(kept) == 1
    kept.get(specs[1], 8, np.float64)
    assert kept.kept_bytes() == sizes[0] + sizes[1]
    kept.get(specs[0], 8, np.float64)   # used: now the most recent
    kept.get(specs[2], 8, np.float64)   # over the limit: the least recently used (specs[1]) goes
    assert kept.kept_bytes() <= limit[0]
    assert kept.get(specs[0], 8, np.float64) is first
    limit[0] = 0                          # one larger than the limit is made, not kept
    ws = kept.get(specs[1], 16, np.float32)
    assert ws.xb.shape == (16, 4) and ws.xb.dtype == np.float32
    assert kept.get(specs[1], 16, np.float32) is not ws
    # another dtype, capacity or kind is another workspace
    assert kept.get(specs[0], 8, np.float32) is not first and kept.get(specs[0], 4, np.float64) is not first
    assert kept.get(specs[0], 8, np.float64, training=False) is not first
