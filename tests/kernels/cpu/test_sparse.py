"""kernels/cpu/sparse.py against dense NumPy products of the same CSR rows (scipy builds them)."""
import numpy as np
import pytest

from fastbp.kernels.compile import one_thread
from fastbp.kernels.cpu import sparse as sk
from fastbp.kernels.cpu.driver import read_only

sp = pytest.importorskip("scipy.sparse")


def csr(n, cols, density, dtype, seed=0, shared=False):
    """A CSR matrix with empty rows and columns among its rows, and its indptr, indices and data
    read-only, as the drivers receive a sparse X's arrays (the same compiled kernels); shared:
    every row holds the same columns (every thread's rows of dW collide with every batch row)."""
    rng = np.random.default_rng(seed)
    if shared:
        M = np.zeros((n, cols))
        M[:, rng.choice(cols, max(1, cols // 3), replace=False)] = rng.standard_normal((n, max(1, cols // 3)))
    else:
        M = sp.random(n, cols, density=density, random_state=seed).toarray()
        M[1] = 0            # an empty row
        M[:, 2] = 0         # an empty column
    X = sp.csr_matrix(M.astype(dtype))
    return X, read_only(X.indptr.astype(np.int64)), read_only(X.indices.astype(np.int32)), read_only(X.data)


def kernels(name):
    return [getattr(sk, name), one_thread(getattr(sk, name))]


@pytest.mark.parametrize("shared", [False, True])
def test_forward_is_the_product_of_the_batch_rows(dtype, shared):
    X, ptr, idx, val = csr(40, 30, 0.2, dtype, shared=shared)
    rng = np.random.default_rng(1)
    W, b = rng.standard_normal((30, 9)).astype(dtype), rng.standard_normal(9).astype(dtype)
    rows = np.array([5, 1, 17, 5, 39, 0], dtype=np.int64)   # a repeated row and the empty one
    want = X[rows].toarray().astype(np.float64) @ W + b
    for fn in kernels("sparse_forward"):
        Z = np.full((len(rows), 9), np.nan, dtype=dtype)
        fn(Z, W, b, rows, ptr, idx, val)
        assert Z.dtype == dtype
        np.testing.assert_allclose(Z, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shared", [False, True])
def test_backward_modes(dtype, shared):
    X, ptr, idx, val = csr(40, 30, 0.2, dtype, shared=shared)
    rng = np.random.default_rng(2)
    rows = np.array([3, 1, 3, 20, 7, 33, 12], dtype=np.int64)
    dZ = rng.standard_normal((len(rows), 9)).astype(dtype)
    Xb = X[rows].toarray().astype(np.float64)
    want_dW, want_db = Xb.T @ dZ, dZ.sum(axis=0)
    used = set(np.concatenate([idx[ptr[r]:ptr[r + 1]] for r in rows]).tolist())
    for fn, touched_fn in zip(kernels("sparse_backward"), kernels("list_touched")):
        # FULL: every row of dW is written
        dW = np.full((30, 9), 7.0, dtype=dtype)
        db = np.zeros(9, dtype=dtype)
        fn(dW, db, dZ, rows, ptr, idx, val, np.zeros(30, np.int64), sk.FULL)
        np.testing.assert_allclose(dW, want_dW, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=1e-5)
        # rows only: the used rows are right, the others untouched
        touched, mark = np.zeros(30, np.int64), np.zeros(30, np.uint8)
        n = touched_fn(touched, mark, rows, ptr, idx)
        assert sorted(touched[:n].tolist()) == sorted(used)   # each used column once
        assert not mark.any()
        dW = np.full((30, 9), 7.0, dtype=dtype)
        fn(dW, db, dZ, rows, ptr, idx, val, touched, n)
        np.testing.assert_allclose(dW[touched[:n]], want_dW[touched[:n]], rtol=1e-5, atol=1e-5)
        others = np.setdiff1d(np.arange(30), touched[:n])
        assert np.all(dW[others] == 7.0)
        # FUSED: db only
        dW = np.full((30, 9), 7.0, dtype=dtype)
        db[:] = 0
        fn(dW, db, dZ, rows, ptr, idx, val, touched, sk.FUSED)
        assert np.all(dW == 7.0)
        np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=1e-5)


def test_sgd_step_is_the_dense_step(dtype):
    X, ptr, idx, val = csr(40, 30, 0.25, dtype)
    rng = np.random.default_rng(3)
    rows = np.array([0, 2, 2, 9, 31], dtype=np.int64)
    dZ = rng.standard_normal((len(rows), 6)).astype(dtype)
    W0 = rng.standard_normal((30, 6)).astype(dtype)
    want = W0 - 0.3 * (X[rows].toarray().astype(np.float64).T @ dZ)
    for fn in kernels("sgd_step"):
        W = W0.copy()
        fn(W, dZ, rows, ptr, idx, val, 0.3)
        np.testing.assert_allclose(W, want, rtol=1e-5, atol=1e-5)

