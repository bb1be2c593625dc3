"""fastbp/kernels/cpu/losses.py against the reference, saturated inputs included."""

import numpy as np
import pytest

from fastbp import reference as ref
from fastbp.kernels.cpu import losses as loss_k
from fastbp.spec import ACTIVATIONS, LOSSES
from conftest import tol
from .support import rand


LOSS_CASES = [("mse", "linear"), ("rmse", "sigmoid"), ("huber", "linear"), ("huber", "tanh"),
              ("binary_cross_entropy", "sigmoid"), ("cross_entropy", "softmax")]


@pytest.mark.parametrize("loss,output", LOSS_CASES)
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_losses(loss, output, scale, dtype):
    rng = np.random.default_rng(11)
    B, m = 13, 4
    Z = rand(rng, (B, m), dtype, scale)
    A = ref.activation_forward(output, Z, 0.0, m).astype(dtype)
    if output == "softmax":
        Y = np.eye(m, dtype=dtype)[rng.integers(0, m, B)]
    elif output == "sigmoid":
        Y = rng.integers(0, 2, (B, m)).astype(dtype)
    else:
        Y = rand(rng, (B, m), dtype)
    code, param = LOSSES[loss][0], 0.7 if loss == "huber" else 0.0
    SW = rng.uniform(0, 2, B).astype(dtype)   # sample weights
    rows = np.empty(B, dtype=dtype)
    loss_k.loss_rows(rows, Z, A, Y, SW, code, param)
    value = loss_k.batch_loss(rows, code, m)
    expect = ref.loss_forward(loss, Z, A, Y, dtype(param), SW)
    assert np.isfinite(value)
    np.testing.assert_allclose(value, expect, rtol=tol(dtype)["rtol"])
    dZ = np.full_like(Z, np.nan)
    scratch = np.empty_like(A)
    loss_k.loss_backward(dZ, scratch, Z, A, Y, SW, code, param, value, ACTIVATIONS[output][0], 0.0)
    rdZ = ref.loss_backward(loss, Z, A, Y, dtype(param), expect, output, 0.0, SW)
    assert np.isfinite(dZ).all()
    np.testing.assert_allclose(dZ, rdZ, **tol(dtype))
