"""Each CPU kernel against its reference.py twin, on random data and at shape edges.

Mirrors fastbp/kernels/cpu/: dense, activations, losses, optim. Both dtypes: one kernel
source serves both, and float32 must stay float32 (no silent float64 promotion).
"""
import numpy as np
import pytest

from conftest import tol
from fastbp import reference as ref
from fastbp.kernels.cpu import activations as act_k, dense as dense_k, losses as loss_k, optim
from fastbp.spec import ACTIVATIONS, LOSSES

SHAPES = [(1, 1, 1), (3, 5, 2), (17, 33, 9), (64, 7, 40)]  # (batch, n_in, n_out)


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("B,n_in,n_out", SHAPES)
def test_dense_forward(B, n_in, n_out, dtype):
    rng = np.random.default_rng(B * n_in)
    A, W, b = rand(rng, (B, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, n_out, dtype)
    Z = np.full((B, n_out), np.nan, dtype=dtype)  # every entry must be written
    dense_k.dense_forward(Z, A, W, b)
    assert Z.dtype == dtype
    np.testing.assert_allclose(Z, ref.dense_forward(A, W, b), **tol(dtype))


@pytest.mark.parametrize("B,n_in,n_out", SHAPES)
@pytest.mark.parametrize("need_dA", [True, False])
def test_dense_backward(B, n_in, n_out, need_dA, dtype):
    rng = np.random.default_rng(B + n_out)
    A, W, dZ = rand(rng, (B, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, (B, n_out), dtype)
    dA = np.full((B, n_in), np.nan, dtype=dtype)
    dW = np.full((n_in, n_out), np.nan, dtype=dtype)
    db = np.full(n_out, np.nan, dtype=dtype)
    dense_k.dense_backward(dA, dW, db, dZ, A, W, need_dA)
    rdW, rdb, rdA = ref.dense_backward(dZ, A, W)
    np.testing.assert_allclose(dW, rdW, **tol(dtype))
    np.testing.assert_allclose(db, rdb, **tol(dtype))
    if need_dA:
        np.testing.assert_allclose(dA, rdA, **tol(dtype))
    else:
        assert np.isnan(dA).all(), "dA must be left alone for the first layer"


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
    act_k.activation_forward(A, Z, ACTIVATIONS[name][0], param)
    rA = ref.activation_forward(name, Z, dtype(param) if name != "maxout" else param, units)
    assert np.isfinite(A).all()
    np.testing.assert_allclose(A, rA, **tol(dtype))
    if name == "softmax":
        return  # fused with cross-entropy; tested with the losses
    dA = rand(rng, A.shape, dtype)
    dZ = np.full(Z.shape, np.nan, dtype=dtype)
    act_k.activation_backward(dZ, dA, Z, A, ACTIVATIONS[name][0], param)
    rdZ = ref.activation_backward(name, dA, Z, rA, dtype(param) if name != "maxout" else param, units)
    assert np.isfinite(dZ).all() and dZ.dtype == dtype
    np.testing.assert_allclose(dZ, rdZ, **tol(dtype))


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
    rows = np.empty(B, dtype=dtype)
    loss_k.loss_rows(rows, Z, A, Y, code, param)
    value = loss_k.batch_loss(rows, code, m)
    expect = ref.loss_forward(loss, Z, A, Y, dtype(param))
    assert np.isfinite(value)
    np.testing.assert_allclose(value, expect, rtol=tol(dtype)["rtol"])
    dZ = np.full_like(Z, np.nan)
    scratch = np.empty_like(A)
    loss_k.loss_backward(dZ, scratch, Z, A, Y, code, param, value, ACTIVATIONS[output][0], 0.0)
    rdZ = ref.loss_backward(loss, Z, A, Y, dtype(param), expect, output, 0.0)
    assert np.isfinite(dZ).all()
    np.testing.assert_allclose(dZ, rdZ, **tol(dtype))


def test_sgd_update(dtype):
    rng = np.random.default_rng(3)
    p, g = rand(rng, 1001, dtype), rand(rng, 1001, dtype)
    expect = p - dtype(0.05) * g
    optim.sgd_update(p, g, 0.05)
    np.testing.assert_allclose(p, expect, **tol(dtype))


@pytest.fixture(params=[np.float32, np.float64])
def dtype(request):
    return request.param


F32_PROBE = r"""
import re, numpy as np
from fastbp.kernels.cpu import activations as a, dense as d, optim as o
f = np.float32
Z = np.ones((4, 6), f); A = np.ones_like(Z); W = np.ones((6, 6), f); b = np.zeros(6, f)
d.dense_forward(Z, A, W, b); d.dense_backward(A, W, b, Z, A, W, True)
a.activation_forward(A, Z, 5, f(1)); a.activation_backward(Z, A, Z, A, 5, f(1))
o.sgd_update(b, b, 0.1)
for k in (d.dense_forward, d.dense_backward, a.activation_forward, a.activation_backward, o.sgd_update):
    for ir in k.inspect_llvm().values():
        ops = re.findall(r"= (?:fadd|fmul|fsub|fdiv)[a-z ]* (double|float)", ir)
        print(k.__name__, ops.count("double"), ops.count("float"))
"""


def test_float32_kernels_do_no_float64_arithmetic():
    """A float64 literal in a kernel silently runs float32 math in double precision (slower,
    and different from the reference). Compile fresh (inspection needs uncached code) and read
    the LLVM IR of the float32 specialisations."""
    import subprocess
    import sys
    import os
    env = dict(os.environ, FASTBP_CACHE="0")
    out = subprocess.run([sys.executable, "-c", F32_PROBE], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout.split("\n")
    rows = [line.split() for line in out if line.strip()]
    assert len(rows) == 5
    for name, n_double, n_float in rows:
        assert int(n_float) > 0, f"{name}: no float32 arithmetic found; the probe is broken"
        assert int(n_double) == 0, f"{name}: {n_double} float64 operations in the float32 kernel"
