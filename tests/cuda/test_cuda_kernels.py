"""Every CUDA kernel against the numpy reference, on tiny shapes that still leave partial tiles
and need more than one block (tests/test_cuda.py runs this file under the CUDA simulator with
4x4 tiles and 32-thread blocks; on a machine with a GPU it runs on the GPU as collected)."""
import warnings

import numpy as np
import pytest

import fastbp
from fastbp import reference as ref
from fastbp.spec import ACTIVATIONS, LOSSES

cuda = pytest.importorskip("numba.cuda")
if not cuda.is_available():
    pytest.skip("no CUDA GPU and not under the simulator (NUMBA_ENABLE_CUDASIM=1)", allow_module_level=True)

from fastbp.kernels.cuda import activations as act_k, dense as dense_k, losses as loss_k  # noqa: E402
from fastbp.kernels.cuda import optim as optim_k, regularize as reg_k  # noqa: E402

warnings.filterwarnings("ignore", category=RuntimeWarning)   # the simulator's uint64 hash arithmetic
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}
DTYPES = [np.float32, np.float64]


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


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


HIDDEN = [("linear", 0.0), ("sigmoid", 0.0), ("tanh", 0.0), ("relu", 0.0), ("leaky_relu", 0.1),
          ("elu", 0.7), ("maxout", 3), ("softmax", 0.0)]


@pytest.mark.parametrize("name,param", HIDDEN)
def test_activations(name, param):
    dtype = np.float64
    rng = np.random.default_rng(1)
    units = 4
    nz = units * (param if name == "maxout" else 1)
    Z = rand(rng, (5, nz), dtype) * 3
    code = ACTIVATIONS[name][0]
    A = cuda.device_array((5, units), dtype)
    act_k.activation_forward(A, dev(Z), code, float(param))
    want = ref.activation_forward(name, Z, param, units)
    np.testing.assert_allclose(A.copy_to_host(), want, **TOL[dtype])
    if name == "softmax":
        return
    dA = rand(rng, (5, units), dtype)
    dZ = cuda.device_array((5, nz), dtype)
    act_k.activation_backward(dZ, dev(dA), dev(Z), dev(want), code, float(param))
    np.testing.assert_allclose(dZ.copy_to_host(), ref.activation_backward(name, dA, Z, want, param, units),
                               **TOL[dtype])


OUT_LOSS = [("linear", "mse"), ("tanh", "rmse"), ("linear", "huber"), ("sigmoid", "binary_cross_entropy"),
            ("softmax", "cross_entropy")]


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


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_optimizer_updates(name):
    rng = np.random.default_rng(6)
    params, grads = rng.standard_normal(40), rng.standard_normal(40)
    opt = fastbp.optim.get_optimizer(name)
    opt.bind(40, np.float64)
    if opt.m.size:
        opt.m[:] = rng.standard_normal(40)
    if opt.v.size:
        opt.v[:] = rng.uniform(0, 1, 40)
    opt.t[0] = 3
    p, m, v = dev(params), dev(opt.m if opt.m.size else np.zeros(1)), dev(opt.v if opt.v.size else np.zeros(1))
    optim_k.optimizer_update(p, dev(grads), m, v, opt.code, 0.01, dev(opt.hyper()), 4)
    ref.optimizer_update(params, grads, opt, 0.01)
    np.testing.assert_allclose(p.copy_to_host(), params, rtol=1e-12)
    if opt.m.size:
        np.testing.assert_allclose(m.copy_to_host(), opt.m, rtol=1e-12)


@pytest.mark.parametrize("features", [{}, dict(dropout=0.2, batch_norm=True, l1=1e-3, l2=1e-3)])
def test_whole_fit_equals_numpy(features):
    X, y = fastbp.datasets.make_moons(30, seed=0)
    nets = [fastbp.Network([2, 6, 2], seed=0, backend=b, dtype="float64", **features) for b in ("cuda", "numpy")]
    for net in nets:
        net.fit(X, y, epochs=2, batch_size=16, optimizer=fastbp.optim.Adam(lr=0.01, clip_norm=1.0))
    np.testing.assert_allclose(nets[0].predict(X), nets[1].predict(X), rtol=1e-8, atol=1e-10)
    assert nets[0].loss(X, y) == pytest.approx(nets[1].loss(X, y), rel=1e-8)
    for (a, _), (b, _) in zip(nets[0].gradients(X, y), nets[1].gradients(X, y)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
