"""fastbp/kernels/cuda/sparse.py against scipy's products, and a sparse fit on the device against
the numpy backend's (plain and lazy)."""
import numpy as np
import pytest
from numba import cuda

import fastbp
from fastbp.kernels.cuda import sparse as sk

from .support import DTYPES, TOL, dev, rand

sp = pytest.importorskip("scipy.sparse")


def batch(dtype):
    M = sp.random(20, 11, density=0.3, random_state=0).toarray()
    M[2] = 0                  # an empty row
    M[5] = (M[0] != 0) * 2.0  # a row sharing every column of row 0: colliding atomic adds
    X = sp.csr_matrix(M.astype(dtype))
    csr = (dev(X.indptr.astype(np.int64)), dev(X.indices.astype(np.int32)), dev(X.data))
    order = np.array([5, 0, 2, 7, 0, 19, 11], dtype=np.int64)
    rows = cuda.device_array(len(order), np.int64)
    sk.batch_rows(rows, dev(order), 0, len(order))
    return X, csr, order, rows


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_backward_match_scipy(dtype):
    X, csr, order, rows = batch(dtype)
    rng = np.random.default_rng(0)
    W, b, dZ = rand(rng, (11, 6), dtype), rand(rng, 6, dtype), rand(rng, (len(order), 6), dtype)
    Z = cuda.device_array((len(order), 6), dtype)
    sk.sparse_forward(Z, dev(W), dev(b), rows, csr)
    np.testing.assert_allclose(Z.copy_to_host(), X[order] @ W + b, **TOL[dtype])
    dW, db = dev(np.full((11, 6), 9.0, dtype)), cuda.device_array(6, dtype)
    sk.sparse_backward(dW, db, dev(dZ), rows, csr)
    np.testing.assert_allclose(dW.copy_to_host(), X[order].T @ dZ, **TOL[dtype])
    np.testing.assert_allclose(db.copy_to_host(), dZ.sum(axis=0), **TOL[dtype])
    mask = dev(np.zeros(11, np.uint8))
    sk.mark_rows(mask, rows, len(order), csr)
    np.testing.assert_array_equal(mask.copy_to_host(), (X[order].getnnz(axis=0) > 0).astype(np.uint8))


# (plain SGD takes the same device path as Adam: the GPU has no fused step; the simulator is slow)
@pytest.mark.parametrize("lazy", [False, True], ids=["adam", "lazy adam"])
def test_sparse_fit_equals_numpy(lazy):
    rng = np.random.default_rng(3)
    X = sp.random(24, 10, density=0.25, random_state=3, format="csr")
    y = rng.integers(0, 3, 24)
    nets = [fastbp.Network([10, 5, 3], seed=0, backend=b, dtype="float64") for b in ("cuda", "numpy")]
    for net in nets:
        net.fit(X, y, epochs=1, batch_size=8, optimizer=fastbp.optim.Adam(lr=0.01, lazy=lazy))
    for (a, c), (b, d) in zip(nets[0].get_weights(), nets[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(c, d, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(nets[0].predict(X), nets[1].predict(X), rtol=1e-9, atol=1e-11)
    for (a, _), (b, _) in zip(nets[0].gradients(X, y), nets[1].gradients(X, y)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
