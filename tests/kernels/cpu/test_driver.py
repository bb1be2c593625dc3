"""fastbp/kernels/cpu/driver.py: the compiled epoch loop allocates nothing per batch, gives the
same training on one thread and on two, and its workspace holds the scratch every dense path
takes, and no more."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from conftest import tol


def test_one_and_two_threads_agree():
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here (NUMBA_NUM_THREADS=1)")
    X, y = fastbp.datasets.make_synthetic(3000, 40, 5, seed=3)
    results = []
    old = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            net = fastbp.Network([40, 64, 32, 5], seed=0)
            net.fit(X, y, epochs=2, batch_size=100, lr=0.05)
            results.append((net.get_weights(), net.loss(X, y)))
    finally:
        numba.set_num_threads(old)
    (w1, l1), (w2, l2) = results
    assert l1 == pytest.approx(l2, rel=1e-4)
    for (a, b), (c, d) in zip(w1, w2):
        np.testing.assert_allclose(a, c, **tol(np.float32))


ALLOC_PROBE = r"""
import numpy as np, fastbp
from numba.core.runtime import rtsys
X, y = fastbp.datasets.make_moons(400)
for kw, fit in (({}, {}), (dict(dropout=0.2, batch_norm=True, l1=1e-4, l2=1e-3),
                           dict(optimizer=fastbp.optim.Adam(clip_norm=1.0)))):
    net = fastbp.Network([2, 16, 16, 2], seed=0, **kw)
    for bs in (40, 4):                 # 10 and 100 batches per epoch
        net.fit(X, y, epochs=1, batch_size=bs, **fit)   # a new batch size allocates its workspace
        s0 = rtsys.get_allocation_stats()
        net.fit(X, y, epochs=3, batch_size=bs)
        s1 = rtsys.get_allocation_stats()
        print(s1.alloc - s0.alloc)
# layers past config.BLAS_MIN_MACS: the OpenBLAS path, 10 then 50 batches
Xb = np.random.default_rng(0).standard_normal((1280, 128)).astype(np.float32)
yb = (Xb[:, 0] > 0).astype(int)
net = fastbp.Network([128, 256, 2], seed=0)
net.fit(Xb, yb, epochs=1, batch_size=128)
for epochs in (1, 5):
    s0 = rtsys.get_allocation_stats()
    net.fit(Xb, yb, epochs=epochs, batch_size=128)
    print(rtsys.get_allocation_stats().alloc - s0.alloc)
"""


def test_nothing_is_allocated_per_batch():
    """Numba's runtime counts its allocations (NUMBA_NRT_STATS=1): a fit with 300 batches must
    allocate no more than one with 30, also with dropout, batch norm, penalties, Adam, clipping."""
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    out = subprocess.run([sys.executable, "-c", ALLOC_PROBE], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout.split()
    counts = list(map(int, out))
    assert len(counts) == 6
    for few, many in (counts[:2], counts[2:4]):   # plain, then with every training feature
        assert many == few, f"{many - few} extra allocations for 270 extra batches"
    assert counts[5] == counts[4], f"{counts[5] - counts[4]} extra allocations for 40 extra OpenBLAS-path batches"


@pytest.mark.parametrize("sizes, cap", [([784, 1024, 1024, 10], 256), ([784, 1024, 1024, 10], 7),
                                        ([256, 256, 256, 10], 64), ([64, 512, 3], 32), ([2, 4, 2], 16)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_workspace_scratch_holds_what_every_path_takes_at_every_batch_size(sizes, cap, dtype, training):
    """The dense kernels write their transposes into the workspace's wt, at and dzt unchecked
    (views without bounds): at every batch size up to cap, the path the compiled rules pick
    must find room for W^T (the blocked forward pass; a training step's tiled backward pass)
    and for A^T and dZ^T (a training step's blocked backward pass)."""
    from fastbp.kernels.cpu import dense, driver
    ws = driver.workspace(fastbp.Network(sizes, seed=0).spec, cap, dtype, training=training)
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W = np.empty((n_in, n_out), dtype)
        for b in range(1, cap + 1):
            forward, backward = dense.forward_path(b, W), dense.backward_path(b, W)
            if forward == dense.BLOCKED or training and backward == dense.TILED:
                assert ws.wt.size >= W.size, (n_in, n_out, b)
            if training and backward == dense.BLOCKED:
                assert ws.at.size >= b * n_in and ws.dzt.size >= b * n_out, (n_in, n_out, b)


def test_workspace_holds_no_scratch_for_paths_its_layers_never_take():
    """A wide network's batches of 256 take OpenBLAS, which transposes nothing; only batches of a
    few rows take the blocked path: A^T and dZ^T are sized for those (2 MB less in float32)."""
    from fastbp.kernels import blas_library
    from fastbp.kernels.cpu import driver
    if not blas_library.FOUND:
        pytest.skip("no OpenBLAS found: the wide layers take the blocked path at every batch size")
    ws = driver.workspace(fastbp.Network([784, 1024, 1024, 10], seed=0).spec, 256, np.float32)
    assert 0 < ws.at.size < 16 * 1024 and 0 < ws.dzt.size < 16 * 1024
    tiny = driver.workspace(fastbp.Network([2, 4, 2], seed=0).spec, 16, np.float32)
    assert tiny.wt.size == tiny.at.size == tiny.dzt.size == 0   # the naive loops only
