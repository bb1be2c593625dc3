"""fastbp/kernels/cpu/regularize.py: dropout masks, batch norm and the l1/l2 penalties against
the reference."""

import numpy as np
import pytest

from fastbp import reference as ref
from fastbp.kernels.cpu import regularize as reg
from conftest import tol
from .support import rand


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_masks_match_reference(rate, dtype):
    rng = np.random.default_rng(5)
    A = rand(rng, (64, 33), dtype)
    D = np.empty_like(A)
    key, step, layer = np.uint64(0xDEADBEEF12345), 17, 2
    reg.dropout_forward(D, A, dtype(rate), key, step, layer)
    mask = ref.dropout_mask(A.shape, float(dtype(rate)), key, step, layer).astype(dtype)
    np.testing.assert_allclose(D, A * mask, **tol(dtype))
    kept = (mask > 0).mean()
    assert abs(kept - (1 - rate)) < 4 * np.sqrt(rate * (1 - rate) / A.size)   # a fair coin
    dA = rand(rng, A.shape, dtype)
    expect = dA * mask
    reg.dropout_forward(dA, dA, dtype(rate), key, step, layer)   # the backward, in place
    np.testing.assert_allclose(dA, expect, **tol(dtype))
    other = ref.dropout_mask(A.shape, float(dtype(rate)), key, step + 1, layer)
    assert not np.array_equal(other > 0, mask > 0)    # a new step draws a new mask


@pytest.mark.parametrize("B", [1, 2, 37])
def test_batchnorm_forward_backward(B, dtype):
    rng = np.random.default_rng(B)
    n = 11
    Z = rand(rng, (B, n), dtype, 3.0) + dtype(2)
    gamma, beta = rand(rng, n, dtype), rand(rng, n, dtype)
    run_mean, run_var = np.zeros(n, dtype), np.ones(n, dtype)
    H = np.empty_like(Z)
    mean, inv_std = np.empty(n, dtype), np.empty(n, dtype)
    Y = Z.copy()
    reg.batchnorm_forward(Y, H, mean, inv_std, run_mean, run_var, gamma, beta, 1e-5, 0.9, True)
    rY, rH, rmean, rvar = ref.batchnorm_forward(Z, gamma, beta, dtype(1e-5))
    t = {k: v * 10 for k, v in tol(dtype).items()}
    np.testing.assert_allclose(Y, rY, **t)
    np.testing.assert_allclose(run_mean, 0.1 * rmean, **t)
    np.testing.assert_allclose(run_var, 0.9 + 0.1 * rvar * (B / (B - 1) if B > 1 else 1), **t)
    dY = rand(rng, (B, n), dtype)
    dZ, dgamma, dbeta = dY.copy(), np.empty(n, dtype), np.empty(n, dtype)
    reg.batchnorm_backward(dZ, dgamma, dbeta, H, inv_std, gamma)
    rdZ, rdgamma, rdbeta = ref.batchnorm_backward(dY, rH, rvar, gamma, dtype(1e-5))
    np.testing.assert_allclose(dgamma, rdgamma, **t)
    np.testing.assert_allclose(dbeta, rdbeta, **t)
    np.testing.assert_allclose(dZ, rdZ, **t)
    Zi = Z.copy()
    reg.batchnorm_inference(Zi, gamma, beta, run_mean, run_var, 1e-5)
    np.testing.assert_allclose(Zi, gamma * (Z - run_mean) / np.sqrt(run_var + dtype(1e-5)) + beta, **t)


def test_penalties(dtype):
    rng = np.random.default_rng(9)
    params = rand(rng, 200, dtype)
    params[5] = 0
    ranges = np.array([[0, 50], [80, 150]], dtype=np.int64)
    value = reg.penalty_value(params, ranges, 0.01, 0.02, np.zeros(7))
    rvalue, rgrad = ref.penalty(params, ranges, 0.01, 0.02)
    assert value == pytest.approx(rvalue, rel=1e-6)
    grads = rand(rng, 200, dtype)
    expect = grads + rgrad
    reg.penalty_backward(grads, params, ranges, 0.01, 0.02)
    np.testing.assert_allclose(grads, expect, **tol(dtype))
    assert rgrad[60] == 0 and rgrad[5] == 0   # biases (outside the ranges) and sign(0)
