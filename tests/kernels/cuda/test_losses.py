"""fastbp/kernels/cuda/losses.py against the reference."""
import numpy as np
import pytest
from numba import cuda

from fastbp import reference as ref
from fastbp.kernels.cuda import losses as loss_k
from fastbp.spec import ACTIVATIONS, LOSSES

from .support import TOL, dev, rand


OUT_LOSS = [("linear", "mse"), ("tanh", "rmse"), ("linear", "huber"), ("sigmoid", "binary_cross_entropy"),
            ("softmax", "cross_entropy"), ("exp", "poisson")]


@pytest.mark.parametrize("output,loss", OUT_LOSS)
def test_losses(output, loss):
    dtype = np.float64
    rng = np.random.default_rng(2)
    B, m = 6, 3
    Z = rand(rng, (B, m), dtype) * 2
    A = ref.activation_forward(output, Z, 0.0, m)
    Y = np.eye(m)[rng.integers(0, m, B)] if output == "softmax" else rng.integers(0, 2, (B, m)).astype(dtype)
    SW = rng.uniform(0.5, 2, B)
    code, param = LOSSES[loss][0], 0.7
    rows, value, total = cuda.device_array(B, dtype), cuda.device_array(1, dtype), cuda.to_device(np.zeros(1))
    loss_k.loss_rows(rows, dev(Z), dev(A), dev(Y), dev(SW), code, param)
    loss_k.batch_loss(value, rows, B, code, m, total, 2.0)
    want = ref.loss_forward(loss, Z, A, Y, param, SW)
    assert value.copy_to_host()[0] == pytest.approx(want, rel=1e-9)
    assert total.copy_to_host()[0] == pytest.approx(2 * want, rel=1e-9)
    dZ, dA = cuda.device_array((B, m), dtype), cuda.device_array((B, m), dtype)
    out_code = ACTIVATIONS[output][0]
    loss_k.loss_backward(dZ, dA, dev(Z), dev(A), dev(Y), dev(SW), code, param, value, out_code, 0.0)
    np.testing.assert_allclose(dZ.copy_to_host(), ref.loss_backward(loss, Z, A, Y, param, want, output, 0.0, SW),
                               **TOL[dtype])
