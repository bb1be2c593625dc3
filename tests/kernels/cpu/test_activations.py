"""fastbp/kernels/cpu/activations.py against the reference, saturated inputs included."""

import numpy as np
import pytest

from fastbp import reference as ref
from fastbp.kernels.cpu import activations as act_k
from fastbp.spec import ACTIVATIONS
from conftest import tol
from .support import rand


ACT_CASES = [("linear", 0.0), ("sigmoid", 0.0), ("tanh", 0.0), ("relu", 0.0), ("leaky_relu", 0.05),
             ("elu", 1.3), ("maxout", 2), ("maxout", 3), ("softmax", 0.0)]


@pytest.mark.parametrize("name,param", ACT_CASES)
@pytest.mark.parametrize("scale", [1.0, 1e4])  # 1e4: saturation must stay finite
def test_activation_forward_backward(name, param, scale, dtype):
    rng = np.random.default_rng(7)
    units = 6
    width = units * (param if name == "maxout" else 1)
    Z = rand(rng, (9, width), dtype, scale)
    Z[0, :] = 0  # the kinks
    A = np.full((9, units), np.nan, dtype=dtype)
    # the parameter in the network's dtype, as the drivers pass it (from the float table
    # args.Net.layer_f): the same compiled kernels, which the session's general build holds
    act_k.activation_forward(A, Z, ACTIVATIONS[name][0], dtype(param))
    rA = ref.activation_forward(name, Z, dtype(param) if name != "maxout" else param, units)
    assert np.isfinite(A).all()
    np.testing.assert_allclose(A, rA, **tol(dtype))
    if name == "softmax":
        return  # fused with cross-entropy; tested with the losses
    dA = rand(rng, A.shape, dtype)
    dZ = np.full(Z.shape, np.nan, dtype=dtype)
    act_k.activation_backward(dZ, dA, Z, A, ACTIVATIONS[name][0], dtype(param))
    rdZ = ref.activation_backward(name, dA, Z, rA, dtype(param) if name != "maxout" else param, units)
    assert np.isfinite(dZ).all() and dZ.dtype == dtype
    np.testing.assert_allclose(dZ, rdZ, **tol(dtype))


def test_tanh_forward_is_accurate_everywhere(dtype):
    """The kernels' tanh (one exp, a series near 0) against float64 np.tanh, across the range,
    at the series' switch-over and at the extremes."""
    z = np.concatenate([np.random.default_rng(0).standard_normal(20000) * 4,
                        np.linspace(-0.2, 0.2, 20001), [0.0625, -0.0625, 0.0624999],
                        [0, 1e-30, -1e-30, 1e4, -1e4, 20, -20]]).astype(dtype)
    A = np.empty((1, z.size), dtype)
    act_k.activation_forward(A, z.reshape(1, -1), ACTIVATIONS["tanh"][0], dtype(0))
    expect = np.tanh(z.astype(np.float64))
    rel = np.abs(A[0] - expect) / np.maximum(np.abs(expect), np.finfo(dtype).tiny)
    assert rel.max() < (1e-6 if dtype == np.float32 else 1e-13)


def test_exp_output_forward_backward(dtype):
    """exp (the Poisson output) overflows like any exp, so it is checked on a moderate range
    (saturation above is about the bounded activations), against np.exp and the reference."""
    rng = np.random.default_rng(8)
    Z = rand(rng, (9, 5), dtype, 4.0)
    A = np.full(Z.shape, np.nan, dtype=dtype)
    act_k.activation_forward(A, Z, ACTIVATIONS["exp"].code, dtype(0))
    np.testing.assert_allclose(A, np.exp(Z.astype(np.float64)), **tol(dtype))
    np.testing.assert_allclose(A, ref.activation_forward("exp", Z, dtype(0), 5), **tol(dtype))
    dA = rand(rng, A.shape, dtype)
    dZ = np.full(Z.shape, np.nan, dtype=dtype)
    act_k.activation_backward(dZ, dA, Z, A, ACTIVATIONS["exp"].code, dtype(0))
    assert dZ.dtype == dtype
    np.testing.assert_allclose(dZ, dA * A, **tol(dtype))
