"""fastbp/kernels/cuda/dense.py against the reference."""
import numpy as np
import pytest
from numba import cuda

from fastbp import reference as ref
from fastbp.kernels.cuda import dense as dense_k
from fastbp.spec import ACTIVATIONS

from .support import DTYPES, TOL, dev, rand


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,n_in,n_out", [(5, 7, 6), (9, 3, 10)])   # partial 4x4 tiles, 2-3 blocks a side
def test_dense_forward_backward(B, n_in, n_out, dtype):
    rng = np.random.default_rng(B)
    A, W, b, dZ = rand(rng, (B, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, n_out, dtype), \
        rand(rng, (B, n_out), dtype)
    Z, act = cuda.device_array((B, n_out), dtype), cuda.device_array((B, n_out), dtype)
    dense_k.dense_forward(Z, dev(A), dev(W), dev(b), act, ACTIVATIONS["tanh"][0], 0.0)
    np.testing.assert_allclose(Z.copy_to_host(), ref.dense_forward(A, W, b), **TOL[dtype])
    np.testing.assert_allclose(act.copy_to_host(), np.tanh(ref.dense_forward(A, W, b)), **TOL[dtype])
    dA, dW, db = (cuda.device_array(s, dtype) for s in ((B, n_in), (n_in, n_out), n_out))
    dense_k.dense_backward(dA, dW, db, dev(dZ), dev(A), dev(W), True)
    for got, want in zip((dW, db, dA), ref.dense_backward(dZ, A, W)):
        np.testing.assert_allclose(got.copy_to_host(), want, **TOL[dtype])
