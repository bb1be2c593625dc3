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
    loss_k.loss_backward(dZ, scratch, Z, A, Y, SW, code, param, value, ACTIVATIONS[output][0], dtype(0))
    rdZ = ref.loss_backward(loss, Z, A, Y, dtype(param), expect, output, 0.0, SW)
    assert np.isfinite(dZ).all()
    np.testing.assert_allclose(dZ, rdZ, **tol(dtype))


def test_poisson_against_the_reference_and_scikit_learn(dtype):
    """Half the Poisson deviance with an exp output, fused: the kernels against the reference,
    and the reference against scikit-learn's mean_poisson_deviance (an independent formula)."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(12)
    B, m = 13, 3
    Z = rand(rng, (B, m), dtype, 2.0)
    A = np.exp(Z)
    Y = rng.poisson(2.0, (B, m)).astype(dtype)   # zeros included: 0 log 0 = 0
    SW = rng.uniform(0, 2, B).astype(dtype)
    code = LOSSES["poisson"][0]
    rows = np.empty(B, dtype=dtype)
    loss_k.loss_rows(rows, Z, A, Y, SW, code, 0.0)
    value = loss_k.batch_loss(rows, code, m)
    expect = ref.loss_forward("poisson", Z, A, Y, dtype(0), SW)
    np.testing.assert_allclose(value, expect, rtol=tol(dtype)["rtol"])
    ones = np.ones(B, dtype=dtype)
    unweighted = ref.loss_forward("poisson", Z, A, Y, dtype(0), ones)
    theirs = np.mean([metrics.mean_poisson_deviance(Y[:, j], A[:, j]) for j in range(m)]) / 2
    np.testing.assert_allclose(unweighted, theirs, rtol=tol(dtype)["rtol"])
    dZ = np.full_like(Z, np.nan)
    loss_k.loss_backward(dZ, np.empty_like(A), Z, A, Y, SW, code, 0.0, value, ACTIVATIONS["exp"].code, dtype(0))
    np.testing.assert_allclose(dZ, (A - Y) * SW[:, None] / (B * m), **tol(dtype))
    np.testing.assert_allclose(dZ, ref.loss_backward("poisson", Z, A, Y, dtype(0), expect, "exp", 0.0, SW),
                               **tol(dtype))
