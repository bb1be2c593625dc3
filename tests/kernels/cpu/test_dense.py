"""fastbp/kernels/cpu/dense.py: every dense path (naive, tiled, split by inputs, blocked,
OpenBLAS, the dispatch) against the reference, at shape edges, on 1, 2 and 3 threads."""

import numba
import numpy as np
import pytest

from fastbp import reference as ref
from fastbp.kernels import blas_library
from fastbp.kernels.compile import one_thread
from fastbp.kernels.cpu import dense as dense_k
from conftest import tol
from .support import SHAPES, rand


DENSE = ["naive", "tiled", "tiled one thread", "split", "blocked",
         pytest.param("blas", marks=pytest.mark.skipif(not blas_library.FOUND, reason="no OpenBLAS found")),
         "dispatch"]


def dense_fns(impl):
    """(forward, backward) taking the scratch arrays, for one implementation."""
    if impl == "naive":
        return (lambda Z, A, W, b, Wt: dense_k.dense_forward_naive(Z, A, W, b),
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: dense_k.dense_backward_naive(dA, dW, db, dZ, A, W, need))
    if impl == "tiled":
        return (lambda Z, A, W, b, Wt: dense_k.dense_forward_tiled(Z, A, W, b),
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: dense_k.dense_backward_tiled(dA, dW, db, dZ, A, W, need, Wt))
    if impl == "tiled one thread":   # dw_and_da's sequential branch

        fwd, bwd = one_thread(dense_k.dense_forward_tiled), one_thread(dense_k.dense_backward_tiled)
        return (lambda Z, A, W, b, Wt: fwd(Z, A, W, b),
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: bwd(dA, dW, db, dZ, A, W, need, Wt))
    if impl == "split":   # a training step's cut by W's rows (the partial products in scratch)
        def forward(Z, A, W, b, Wt):
            partials = np.full((numba.get_num_threads() - 1) * Z.size, np.nan, Z.dtype)
            dense_k.dense_forward_split(Z, A, W, b, partials)
            dense_k.add_partials(Z, partials, Z, 0, Z.dtype.type(0), False)
        return (forward,
                # Wt flat, as the drivers pass the workspace's (the same compiled kernel)
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: dense_k.dense_backward_split(dA, dW, db, dZ, A, W, need,
                                                                                             Wt.reshape(-1)))
    if impl == "blocked":
        return (dense_k.dense_forward_blocked,
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: dense_k.dense_backward_blocked(dA, dW, db, dZ, A, W, need, At, dZt))
    if impl == "blas":
        return (lambda Z, A, W, b, Wt: dense_k.dense_forward_blas(Z, A, W, b),
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: dense_k.dense_backward_blas(dA, dW, db, dZ, A, W, need))
    return dense_k.dense_forward, dense_k.dense_backward


@pytest.mark.parametrize("impl", DENSE)
@pytest.mark.parametrize("B,n_in,n_out", SHAPES)
def test_dense_forward(B, n_in, n_out, impl, dtype):
    rng = np.random.default_rng(B * n_in)
    A, W, b = rand(rng, (B, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, n_out, dtype)
    Z = np.full((B, n_out), np.nan, dtype=dtype)  # every entry must be written
    with blas_library.one_thread():
        dense_fns(impl)[0](Z, A, W, b, np.empty((n_out, n_in), dtype))
    np.testing.assert_allclose(Z, ref.dense_forward(A, W, b), **tol(dtype))


@pytest.mark.parametrize("impl", DENSE)
@pytest.mark.parametrize("B,n_in,n_out", SHAPES)
@pytest.mark.parametrize("need_dA", [True, False])
def test_dense_backward(B, n_in, n_out, need_dA, impl, dtype):
    rng = np.random.default_rng(B + n_out)
    A, W, dZ = rand(rng, (B, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, (B, n_out), dtype)
    dA = np.full((B, n_in), np.nan, dtype=dtype)
    dW = np.full((n_in, n_out), np.nan, dtype=dtype)
    db = np.full(n_out, np.nan, dtype=dtype)
    with blas_library.one_thread():
        dense_fns(impl)[1](dA, dW, db, dZ, A, W, need_dA, np.empty((n_out, n_in), dtype),
                           np.empty((n_in, B), dtype), np.empty((n_out, B), dtype))
    rdW, rdb, rdA = ref.dense_backward(dZ, A, W)
    np.testing.assert_allclose(dW, rdW, **tol(dtype))
    np.testing.assert_allclose(db, rdb, **tol(dtype))
    if need_dA:
        np.testing.assert_allclose(dA, rdA, **tol(dtype))
    else:
        assert np.isnan(dA).all(), "dA must be left alone for the first layer"


def test_dispatch_reaches_every_dense_path():
    """SHAPES exercise each path through dense_forward and dense_backward, so the dispatch tests
    above cover them all."""
    paths = {(dense_k.forward_path(B, np.empty((n_in, n_out))), dense_k.backward_path(B, np.empty((n_in, n_out))))
             for B, n_in, n_out in SHAPES}
    reached = {p for pair in paths for p in pair}
    expected = {dense_k.NAIVE, dense_k.TILED, dense_k.BLOCKED} | ({dense_k.BLAS} if blas_library.FOUND else set())
    assert reached == expected


@pytest.mark.parametrize("B,n_in,n_out", [(16, 64, 1), (16, 64, 2), (5, 33, 3), (16, 70, 4), (32, 128, 5),
                                          (17, 33, 9), (32, 128, 10), (16, 64, 20)])
def test_narrow_backward_serial(B, n_in, n_out, dtype):
    """An output layer's backward pass on the calling thread, for the widths it treats
    differently (1 column; 2 to 4, shuffled; 5 to a vector, windows; wider, blocks), with and
    without the rows and columns left over from whole vectors and tiles."""
    rng = np.random.default_rng(B + n_in + n_out)
    A, W, dZ = rand(rng, (B, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, (B, n_out), dtype)
    dA, dW, db = (np.full(s, np.nan, dtype) for s in [(B, n_in), (n_in, n_out), n_out])
    dense_k.narrow_backward_serial(dA, dW, db, dZ, A, W, np.full((n_out, n_in), np.nan, dtype))
    np.testing.assert_allclose(dA, dZ.astype(np.float64) @ W.T, **tol(dtype))
    np.testing.assert_allclose(dW, A.T.astype(np.float64) @ dZ, **tol(dtype))
    np.testing.assert_allclose(db, dZ.astype(np.float64).sum(axis=0), **tol(dtype))


@pytest.mark.parametrize("n_in,n_out,need_dA", [(64, 128, False), (64, 64, True), (128, 10, True)])
def test_tiled_backward_in_a_variant(n_in, n_out, need_dA, dtype):
    """dense_backward_tiled in variants narrowed to the layer's own kind (tiled_kind) and to none
    of it (kernels/cpu/needs.py left it out): both give the reference's gradients, the second by
    the naive loops."""
    from fastbp.kernels.compile import variant
    rng = np.random.default_rng(n_in + n_out)
    B = 16
    A, W, dZ = rand(rng, (B, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, (B, n_out), dtype)
    kind = dense_k.tiled_kind.py_func(B, W, need_dA)
    for kinds in ((kind,), tuple(k for k in range(4) if k != kind)):
        backward = variant(dense_k.dense_backward_tiled, THREADED=False, TILED_KINDS=kinds)
        dA, dW, db = (np.full(s, np.nan, dtype) for s in [(B, n_in), (n_in, n_out), n_out])
        backward(dA, dW, db, dZ, A, W, need_dA, np.full((n_out, n_in), np.nan, dtype))
        np.testing.assert_allclose(dW, A.T.astype(np.float64) @ dZ, **tol(dtype))
        np.testing.assert_allclose(db, dZ.astype(np.float64).sum(axis=0), **tol(dtype))
        if need_dA:
            np.testing.assert_allclose(dA, dZ.astype(np.float64) @ W.T, **tol(dtype))


THREE_THREADS_PROBE = r"""
import numba, numpy as np
from fastbp.kernels.cpu import dense
from fastbp.spec import ACTIVATIONS
assert numba.get_num_threads() == 3 and ACTIVATIONS["relu"][0] == 3
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    for B, n_in, n_out in [(37, 130, 71), (9, 70, 66), (5, 33, 40)]:
        A, W, dZ = (rng.standard_normal(s).astype(dtype) for s in [(B, n_in), (n_in, n_out), (B, n_out)])
        dA, dW, db = np.empty((B, n_in), dtype), np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
        for split in (False, True):
            dA, dW, db = (np.full(s, np.nan, dtype) for s in [(B, n_in), (n_in, n_out), n_out])
            if split:
                dense.dense_backward_split(dA, dW, db, dZ, A, W, True, np.empty(n_out * n_in, dtype))
            else:
                dense.dw_and_da(dA, dW, db, dZ, A, W, np.empty((n_out, n_in), dtype))
            np.testing.assert_allclose(dA, dZ.astype(np.float64) @ W.T, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(dW, A.T.astype(np.float64) @ dZ, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(db, dZ.astype(np.float64).sum(axis=0), rtol=1e-4, atol=1e-4)
        Z, partials = np.full((B, n_out), np.nan, dtype), np.full(2 * B * n_out, np.nan, dtype)
        b = rng.standard_normal(n_out).astype(dtype)
        dense.dense_forward_split(Z, A, W, b, partials)
        act = np.full((B, n_out), np.nan, dtype)
        dense.add_partials(Z, partials, act, 3, dtype(0), True)   # 3: relu, in the same pass
        np.testing.assert_allclose(Z, A.astype(np.float64) @ W + b, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(act, np.maximum(Z, 0))
print("ok")
"""


def test_thread_splits_with_an_odd_thread_count():
    """dw_and_da: two threads give dW one and dA the other; three give dW two. The split
    kernels: each thread its block of W's rows. The split arithmetic (row blocks of dW, column
    panels of dA, the rows of W each transposes, the partial products) must cover every output
    once, whatever the count (here, in a subprocess, three)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", THREE_THREADS_PROBE], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.parametrize("n_in, n_out", [(4, 4), (64, 8), (200, 10), (256, 256), (1024, 512), (2048, 2048)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_paths_over_finds_every_path_of_every_batch_size(n_in, n_out, dtype):
    """needs.py compiles the paths paths_over names; a batch size whose path it missed would
    run the naive loops. Checked against asking the rules at every batch size."""
    W = np.broadcast_to(np.zeros(1, dtype), (n_in, n_out))
    for max_rows in (1, 7, 8, 100, 600):
        scanned = tuple({rule(r, W) for r in range(1, max_rows + 1)}
                        for rule in (dense_k.forward_path.py_func, dense_k.backward_path.py_func))
        assert dense_k.paths_over(max_rows, W) == scanned
