"""fastbp/kernels/cuda/regularize.py: dropout (the cpu's masks), batch norm, penalties."""
import numpy as np
import pytest
from numba import cuda

from fastbp import reference as ref
from fastbp.kernels.cuda import optim as optim_k, regularize as reg_k

from .support import TOL, dev, rand


def test_dropout_masks_are_the_cpus():
    rng = np.random.default_rng(3)
    A = rand(rng, (7, 9), np.float32)
    D = cuda.device_array((7, 9), np.float32)
    reg_k.dropout_forward(D, dev(A), 0.4, 12345, 17, 2)
    np.testing.assert_allclose(D.copy_to_host(), A * ref.dropout_mask(A.shape, 0.4, 12345, 17, 2), rtol=1e-6)


def test_batchnorm_forward_backward_inference():
    dtype = np.float64
    rng = np.random.default_rng(4)
    Z, gamma, beta, dY = rand(rng, (6, 5), dtype), rand(rng, 5, dtype), rand(rng, 5, dtype), rand(rng, (6, 5), dtype)
    Zd, H, mean, inv_std = dev(Z), cuda.device_array((6, 5), dtype), cuda.device_array(5, dtype), \
        cuda.device_array(5, dtype)
    rm, rv = dev(np.zeros(5)), dev(np.ones(5))
    reg_k.batchnorm_forward(Zd, H, mean, inv_std, rm, rv, dev(gamma), dev(beta), 1e-5, 0.9, True)
    Yw, Hw, mw, vw = ref.batchnorm_forward(Z, gamma, beta, 1e-5)
    np.testing.assert_allclose(Zd.copy_to_host(), Yw, **TOL[dtype])
    np.testing.assert_allclose(rm.copy_to_host(), 0.1 * mw, **TOL[dtype])
    np.testing.assert_allclose(rv.copy_to_host(), 0.9 + 0.1 * vw * 6 / 5, **TOL[dtype])
    dZ, dg, dbeta = dev(dY), cuda.device_array(5, dtype), cuda.device_array(5, dtype)
    reg_k.batchnorm_backward(dZ, dg, dbeta, H, inv_std, dev(gamma))
    for got, want in zip((dZ, dg, dbeta), ref.batchnorm_backward(dY, Hw, vw, gamma, 1e-5)):
        np.testing.assert_allclose(got.copy_to_host(), want, **TOL[dtype])
    Zi = dev(Z)
    reg_k.batchnorm_inference(Zi, dev(gamma), dev(beta), dev(mw), dev(vw), 1e-5)
    np.testing.assert_allclose(Zi.copy_to_host(), gamma * (Z - mw) / np.sqrt(vw + 1e-5) + beta, **TOL[dtype])


def test_penalty_and_clipping():
    rng = np.random.default_rng(5)
    params, grads = rng.standard_normal(70), rng.standard_normal(70)
    ranges = [(0, 30), (40, 65)]
    out, g = cuda.to_device(np.zeros(1)), dev(grads)
    reg_k.penalty(out, g, dev(params), ranges, 0.01, 0.02, True)
    value, grad = ref.penalty(params, ranges, 0.01, 0.02)
    assert out.copy_to_host()[0] == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(g.copy_to_host(), grads + grad, rtol=1e-12)
    sumsq = cuda.device_array(1, np.float64)
    optim_k.grad_norm(sumsq, g)
    optim_k.scale(g, sumsq, 0.5)
    assert np.linalg.norm(g.copy_to_host()) == pytest.approx(0.5, rel=1e-12)
