"""Each CPU kernel against its reference.py twin, on random data and at shape edges.

Mirrors fastbp/kernels/cpu/: dense, activations, losses, optim. Both dtypes: one kernel
source serves both, and float32 must stay float32 (no silent float64 promotion).
"""
import numba
import numpy as np
import pytest

from conftest import tol
from fastbp import reference as ref
import fastbp
from fastbp.kernels.compile import one_thread
from fastbp.kernels.cpu import activations as act_k, dense as dense_k, losses as loss_k, optim
from fastbp.kernels.cpu import regularize as reg
from fastbp.kernels import blas_library
from fastbp.spec import ACTIVATIONS, LOSSES

SHAPES = [(1, 1, 1), (3, 5, 2), (17, 33, 9), (64, 7, 40), (9, 70, 66), (37, 130, 71), (41, 401, 390),
          (301, 130, 120), (301, 200, 9)]
# (batch, n_in, n_out): every shape but the first two leaves partial tiles on the edges of every
# product in the tiled and blocked paths; (17, 33, 9) and (301, 200, 9) are narrow (dW turned
# around in the tiled backward: on one thread, and past config.SERIAL_MACS on all threads);
# (41, 401, 390)'s weights outgrow L2, past config.BLAS_MIN_MACS (OpenBLAS, when found), its
# products cut into blocks of columns and of uneven rows


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


DENSE = ["naive", "tiled", "tiled one thread", "split", "blocked",
         pytest.param("blas", marks=pytest.mark.skipif(not blas_library.FOUND, reason="no OpenBLAS found")),
         "dispatch"]


def dense_fns(impl):
    """(forward, backward) taking the scratch arrays, for one implementation."""
    if impl == "naive":
        return (lambda Z, A, W, b, Wt: dense_k.dense_forward_naive(Z, A, W, b),
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: dense_k.dense_backward_naive(dA, dW, db, dZ, A, W, need))
    if impl == "tiled":
        return (lambda Z, A, W, b, Wt: dense_k.dense_forward_tiled(Z, A, W, b),
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: dense_k.dense_backward_tiled(dA, dW, db, dZ, A, W, need, Wt))
    if impl == "tiled one thread":   # dw_and_da's sequential branch

        fwd, bwd = one_thread(dense_k.dense_forward_tiled), one_thread(dense_k.dense_backward_tiled)
        return (lambda Z, A, W, b, Wt: fwd(Z, A, W, b),
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: bwd(dA, dW, db, dZ, A, W, need, Wt))
    if impl == "split":   # a training step's cut by W's rows (the partial products in scratch)
        def forward(Z, A, W, b, Wt):
            partials = np.full((numba.get_num_threads() - 1) * Z.size, np.nan, Z.dtype)
            dense_k.dense_forward_split(Z, A, W, b, partials)
            dense_k.add_partials(Z, partials, Z, 0, 0.0, False)
        return (forward,
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: dense_k.dense_backward_split(dA, dW, db, dZ, A, W, need, Wt))
    if impl == "blocked":
        return (dense_k.dense_forward_blocked,
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: dense_k.dense_backward_blocked(dA, dW, db, dZ, A, W, need, At, dZt))
    if impl == "blas":
        return (lambda Z, A, W, b, Wt: dense_k.dense_forward_blas(Z, A, W, b),
                lambda dA, dW, db, dZ, A, W, need, Wt, At, dZt: dense_k.dense_backward_blas(dA, dW, db, dZ, A, W, need))
    return dense_k.dense_forward, dense_k.dense_backward


@pytest.mark.parametrize("impl", DENSE)
@pytest.mark.parametrize("B,n_in,n_out", SHAPES)
def test_dense_forward(B, n_in, n_out, impl, dtype):
    rng = np.random.default_rng(B * n_in)
    A, W, b = rand(rng, (B, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, n_out, dtype)
    Z = np.full((B, n_out), np.nan, dtype=dtype)  # every entry must be written
    with blas_library.one_thread():
        dense_fns(impl)[0](Z, A, W, b, np.empty((n_out, n_in), dtype))
    np.testing.assert_allclose(Z, ref.dense_forward(A, W, b), **tol(dtype))


@pytest.mark.parametrize("impl", DENSE)
@pytest.mark.parametrize("B,n_in,n_out", SHAPES)
@pytest.mark.parametrize("need_dA", [True, False])
def test_dense_backward(B, n_in, n_out, need_dA, impl, dtype):
    rng = np.random.default_rng(B + n_out)
    A, W, dZ = rand(rng, (B, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, (B, n_out), dtype)
    dA = np.full((B, n_in), np.nan, dtype=dtype)
    dW = np.full((n_in, n_out), np.nan, dtype=dtype)
    db = np.full(n_out, np.nan, dtype=dtype)
    with blas_library.one_thread():
        dense_fns(impl)[1](dA, dW, db, dZ, A, W, need_dA, np.empty((n_out, n_in), dtype),
                           np.empty((n_in, B), dtype), np.empty((n_out, B), dtype))
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


@pytest.mark.parametrize("name", list(fastbp.optim.OPTIMIZERS))
def test_optimizer_update(name, dtype):
    """Five steps of every optimizer, kernel against reference (own state copies each)."""
    rng = np.random.default_rng(3)
    p = rand(rng, 1001, dtype)
    kern, refo = fastbp.optim.get_optimizer(name), fastbp.optim.get_optimizer(name)
    if name != "sgd":
        for o in (kern, refo):
            o.weight_decay = 0.02 if hasattr(o, "weight_decay") else None
    kern.bind(p.size, dtype)
    refo.bind(p.size, dtype)
    pk, pr = p.copy(), p.copy()
    for _ in range(5):
        g = rand(rng, 1001, dtype)
        kern.t[0] += 1
        optim.optimizer_update(pk, g, kern.m, kern.v, kern.code, 0.05, kern.hyper(), kern.t[0])
        ref.optimizer_update(pr, g, refo, 0.05)
    assert not np.allclose(pk, p)
    np.testing.assert_allclose(pk, pr, **tol(dtype))
    np.testing.assert_allclose(kern.m, refo.m, **tol(dtype))


def test_grad_norm_and_scale(dtype):
    g = np.random.default_rng(0).standard_normal(777).astype(dtype)
    assert optim.grad_norm(g, np.zeros(64)) == pytest.approx(np.linalg.norm(g.astype(np.float64)), rel=1e-6)
    h = g.copy()
    optim.scale(h, 0.5)
    np.testing.assert_allclose(h, g * dtype(0.5), **tol(dtype))


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


@pytest.fixture(params=[np.float32, np.float64])
def dtype(request):
    return request.param


F32_PROBE = r"""
import re, numpy as np
from fastbp.kernels.cpu import activations as a, dense as d, optim as o, tiles as t
f = np.float32
Z = np.ones((4, 6), f); A = np.ones_like(Z); W = np.ones((6, 6), f); b = np.zeros(6, f)
d.dense_forward_naive(Z, A, W, b); d.dense_backward_naive(A, W, b, Z, A, W, True)
d.gemm_nt(Z, A, W, b, True); t.gemm_tiled(Z, A, W, b, True, False); t.gemm_tiled(W, A, Z, b, False, True)
a.activation_forward(A, Z, 5, f(1)); a.activation_backward(Z, A, Z, A, 5, f(1))
o.optimizer_update(b, b, b, b, 3, 0.1, np.zeros(5), 1)
for k in (d.dense_forward_naive, d.dense_backward_naive, d.gemm_nt, t.gemm_tiled, a.activation_forward, a.activation_backward, o.optimizer_update):
    for ir in k.inspect_llvm().values():
        # only the parallel loop bodies: per-element work (scalar set-up may use float64)
        bodies = re.findall(r"define [^\n]*parfor_gufunc.*?\n}", ir, flags=re.S)
        ops = re.findall(r"= (?:fadd|fmul|fsub|fdiv)[a-z ]* (double|float)", "".join(bodies))
        print(k.__name__, ops.count("double"), ops.count("float"))
"""


def test_float32_kernels_do_no_float64_arithmetic():
    """A float64 literal in a kernel silently runs float32 math in double precision (slower,
    and different from the reference). Compile fresh (inspection needs uncached code) and read
    the LLVM IR of the float32 specialisations' parallel loop bodies."""
    import subprocess
    import sys
    import os
    env = dict(os.environ, FASTBP_CACHE="0")
    out = subprocess.run([sys.executable, "-c", F32_PROBE], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout.split("\n")
    rows = [line.split() for line in out if line.strip()]
    assert len(rows) == 7
    for name, n_double, n_float in rows:
        assert int(n_float) > 0, f"{name}: no float32 arithmetic found; the probe is broken"
        assert int(n_double) == 0, f"{name}: {n_double} float64 operations in the float32 kernel"


def test_fast_tanh_is_accurate_everywhere(dtype):
    """The kernels' tanh (one exp, a series near 0) against float64 np.tanh, across the range,
    at the series' switch-over and at the extremes."""
    z = np.concatenate([np.random.default_rng(0).standard_normal(20000) * 4,
                        np.linspace(-0.2, 0.2, 20001), [0.0625, -0.0625, 0.0624999],
                        [0, 1e-30, -1e-30, 1e4, -1e4, 20, -20]]).astype(dtype)
    A = np.empty((1, z.size), dtype)
    act_k.activation_forward(A, z.reshape(1, -1), ACTIVATIONS["tanh"][0], 0.0)
    expect = np.tanh(z.astype(np.float64))
    rel = np.abs(A[0] - expect) / np.maximum(np.abs(expect), np.finfo(dtype).tiny)
    assert rel.max() < (1e-6 if dtype == np.float32 else 1e-13)


def test_gemm_nt_in_panels():
    """A long summed axis makes B's panels 4 rows wide: several panels, the last one partial,
    and partial row blocks too."""
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((7, 40000)), rng.standard_normal((10, 40000))
    bias = rng.standard_normal(10)
    C = np.full((7, 10), np.nan)
    dense_k.gemm_nt(C, A, B, bias, True)
    np.testing.assert_allclose(C, A @ B.T + bias, rtol=1e-9, atol=1e-9)


TILE_SHAPES = [(1, 1, 1), (8, 16, 32), (16, 64, 64), (19, 5, 100), (37, 130, 71), (130, 40, 3)]
# (m, K, n) of C = op(A) B: whole tiles (8 or 6 rows, 32 or 16 columns, per the machine and
# dtype), tiles with columns left over, rows left over, a summed axis shorter than a tile


@pytest.mark.parametrize("m,K,n", TILE_SHAPES)
@pytest.mark.parametrize("a_trans", [False, True])
@pytest.mark.parametrize("threads", ["parallel", "one"])
def test_gemm_tiled(m, K, n, a_trans, threads, dtype):
    from fastbp.kernels.cpu import tiles
    rng = np.random.default_rng(m * K + n)
    opA, B, bias = rand(rng, (m, K), dtype), rand(rng, (K, n), dtype), rand(rng, n, dtype)
    A = np.ascontiguousarray(opA.T) if a_trans else opA
    fn = tiles.gemm_tiled if threads == "parallel" else one_thread(tiles.gemm_tiled)
    for has_bias in (True, False):
        C = np.full((m, n), np.nan, dtype)
        fn(C, A, B, bias, has_bias, a_trans)
        expect = opA.astype(np.float64) @ B + (bias if has_bias else 0)
        np.testing.assert_allclose(C, expect, **tol(dtype))


def test_gemm_tiled_into_views_of_wider_rows(dtype):
    """The tiles read the row strides of C and B, and both strides of A: blocks of wider
    arrays, as the drivers' workspace views are not, must come out right too."""
    from fastbp.kernels.cpu import tiles
    rng = np.random.default_rng(5)
    big_A, big_B = rand(rng, (40, 90), dtype), rand(rng, (70, 80), dtype)
    big_C = np.zeros((30, 100), dtype)
    A, B, C = big_A[3:20, 5:69], big_B[2:66, 1:77], big_C[4:21, 10:86]
    tiles.gemm_tiled(C, A, B, np.zeros(76, dtype), False, False)
    np.testing.assert_allclose(C, A.astype(np.float64) @ B, **tol(dtype))
    assert not big_C[:4].any() and not big_C[21:].any() and not big_C[:, :10].any() and not big_C[:, 86:].any()


@pytest.mark.parametrize("m,n", [(1, 1), (3, 5), (16, 16), (17, 33), (64, 256), (130, 300), (300, 70)])
def test_transpose(m, n, dtype):
    """Vector blocks, the columns right of them and the rows below them; the one-thread path
    (small) and the parallel one; exact."""
    from fastbp.kernels.cpu import tiles
    M = rand(np.random.default_rng(m + n), (m, n), dtype)
    for fn in (tiles.transpose, one_thread(tiles.transpose)):
        T = np.full((n, m), np.nan, dtype)
        fn(T, M)
        np.testing.assert_array_equal(T, M.T)


THREE_THREADS_PROBE = r"""
import numba, numpy as np
from fastbp.kernels.cpu import dense
from fastbp.spec import ACTIVATIONS
assert numba.get_num_threads() == 3 and ACTIVATIONS["relu"][0] == 3
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    for B, n_in, n_out in [(37, 130, 71), (9, 70, 66), (5, 33, 40)]:
        A, W, dZ = (rng.standard_normal(s).astype(dtype) for s in [(B, n_in), (n_in, n_out), (B, n_out)])
        dA, dW, db = np.empty((B, n_in), dtype), np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
        for split in (False, True):
            dA, dW, db = (np.full(s, np.nan, dtype) for s in [(B, n_in), (n_in, n_out), n_out])
            if split:
                dense.dense_backward_split(dA, dW, db, dZ, A, W, True, np.empty((n_out, n_in), dtype))
            else:
                dense.dw_and_da(dA, dW, db, dZ, A, W, np.empty((n_out, n_in), dtype))
            np.testing.assert_allclose(dA, dZ.astype(np.float64) @ W.T, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(dW, A.T.astype(np.float64) @ dZ, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(db, dZ.astype(np.float64).sum(axis=0), rtol=1e-4, atol=1e-4)
        Z, partials = np.full((B, n_out), np.nan, dtype), np.full(2 * B * n_out, np.nan, dtype)
        b = rng.standard_normal(n_out).astype(dtype)
        dense.dense_forward_split(Z, A, W, b, partials)
        act = np.full((B, n_out), np.nan, dtype)
        dense.add_partials(Z, partials, act, 3, 0.0, True)   # 3: relu, in the same pass
        np.testing.assert_allclose(Z, A.astype(np.float64) @ W + b, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(act, np.maximum(Z, 0))
print("ok")
"""


def test_thread_splits_with_an_odd_thread_count():
    """dw_and_da: two threads give dW one and dA the other; three give dW two. The split
    kernels: each thread its block of W's rows. The split arithmetic (row blocks of dW, column
    panels of dA, the rows of W each transposes, the partial products) must cover every output
    once, whatever the count (here, in a subprocess, three)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", THREE_THREADS_PROBE], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


TILE_CONFIG_PROBE = r"""
import numpy as np
from fastbp import config
from fastbp.kernels.cpu import tiles
assert (config.VECTOR_BYTES, config.TILE_ROWS) == (32, 6) and "contract" not in config.FASTMATH
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    A, B = rng.standard_normal((27, 40)).astype(dtype), rng.standard_normal((40, 70)).astype(dtype)
    C = np.empty((27, 70), dtype)
    tiles.gemm_tiled(C, A, B, np.zeros(70, dtype), False, False)
    np.testing.assert_allclose(C, A.astype(np.float64) @ B, rtol=1e-4, atol=1e-4)
    T = np.empty((40, 27), dtype)
    tiles.transpose(T, A)
    np.testing.assert_array_equal(T, A.T)
print("ok")
"""


def test_tiles_with_avx2_vectors_and_strict_math():
    """The configuration of a machine without AVX-512 (32-byte vectors, 6-row tiles) and
    FASTBP_FASTMATH=0 (multiply then add, no fused multiply-add): the other code the intrinsics
    emit, compiled fresh in a subprocess."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, FASTBP_VECTOR_BYTES="32", FASTBP_FASTMATH="0", FASTBP_CACHE="0")
    out = subprocess.run([sys.executable, "-c", TILE_CONFIG_PROBE], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_dispatch_reaches_every_dense_path():
    """SHAPES exercise each path through dense_forward and dense_backward, so the dispatch tests
    above cover them all."""
    paths = {(dense_k.forward_path(B, np.empty((n_in, n_out))), dense_k.backward_path(B, np.empty((n_in, n_out))))
             for B, n_in, n_out in SHAPES}
    reached = {p for pair in paths for p in pair}
    expected = {dense_k.NAIVE, dense_k.TILED, dense_k.BLOCKED} | ({dense_k.BLAS} if blas_library.FOUND else set())
    assert reached == expected


@pytest.mark.skipif(not blas_library.FOUND, reason="no OpenBLAS found")
def test_openblas_held_to_one_thread_and_restored():
    """Inside one_thread (nested, as concurrent fits nest) OpenBLAS runs on one thread; the last
    to leave restores what the process had."""
    lib = blas_library.LIBRARY
    before = lib.get_threads()
    lib.set_threads(2)
    outside = lib.get_threads()   # 2, or fewer where OpenBLAS caps it to the cores
    try:
        with blas_library.one_thread():
            assert lib.get_threads() == 1
            with blas_library.one_thread():
                assert lib.get_threads() == 1
            assert lib.get_threads() == 1
        assert lib.get_threads() == outside
        with pytest.raises(RuntimeError):
            with blas_library.one_thread():
                raise RuntimeError("a failing fit")
        assert lib.get_threads() == outside
    finally:
        lib.set_threads(before)


@pytest.mark.skipif(not blas_library.FOUND, reason="no OpenBLAS found")
def test_gemm_blas_outside_a_driver_restores_openblas_threads():
    """Called directly (no one_thread around it), gemm_blas holds OpenBLAS to one thread for
    its own length and gives the process its setting back."""
    lib = blas_library.LIBRARY
    before = lib.get_threads()
    lib.set_threads(2)
    outside = lib.get_threads()
    try:
        rng = np.random.default_rng(5)
        A, W, b = rng.standard_normal((70, 250)), rng.standard_normal((250, 260)), rng.standard_normal(260)
        Z = np.empty((70, 260))
        dense_k.dense_forward_blas(Z, A, W, b)
        assert lib.get_threads() == outside
        np.testing.assert_allclose(Z, ref.dense_forward(A, W, b), rtol=1e-10, atol=1e-10)
    finally:
        lib.set_threads(before)


BLAS_OFF_PROBE = r"""
import numpy as np
from fastbp import config, reference as ref
from fastbp.kernels import blas_library
from fastbp.kernels.cpu import dense
assert not config.BLAS and not blas_library.FOUND
rng = np.random.default_rng(0)
A, W, b = rng.standard_normal((70, 300)), rng.standard_normal((300, 320)), rng.standard_normal(320)
assert dense.forward_path(70, W) == dense.BLOCKED and dense.backward_path(70, W) == dense.BLOCKED
Z = np.empty((70, 320))
dense.dense_forward(Z, A, W, b, np.empty((320, 300)))
np.testing.assert_allclose(Z, ref.dense_forward(A, W, b), rtol=1e-10, atol=1e-10)
print("ok")
"""


def test_without_openblas_every_product_runs_in_fastbp_kernels():
    """FASTBP_BLAS=0 (as where no OpenBLAS is found): a shape whose weights outgrow L2 takes
    the blocked path, and the kernels compile and link without the OpenBLAS symbols."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, FASTBP_BLAS="0")
    out = subprocess.run([sys.executable, "-c", BLAS_OFF_PROBE], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


CACHED_PROBE = r"""
import numpy as np
from fastbp.kernels.cpu import dense
rng = np.random.default_rng(0)
f = np.float32
for B, n_in, n_out in [(8, 16, 16), (70, 250, 260), (41, 401, 390)]:   # naive, tiled, OpenBLAS
    A, W, dZ = (rng.standard_normal(s).astype(f) for s in [(B, n_in), (n_in, n_out), (B, n_out)])
    dA, dW, db = np.empty((B, n_in), f), np.empty((n_in, n_out), f), np.empty(n_out, f)
    dense.dense_backward(dA, dW, db, dZ, A, W, True, np.empty((n_out, n_in), f), np.empty((n_in, B), f),
                         np.empty((n_out, B), f))
    np.testing.assert_allclose(dA, dZ @ W.T, rtol=1e-4, atol=1e-4)
print("ok")
"""


def test_kernels_loaded_from_the_disk_cache_run():
    """Twice in fresh processes, so that the second loads every kernel from the disk cache.
    Code loaded that way can run before Numba's thread pool has registered the entry point
    that gemm_blas and dw_and_da call (kernels/cpu/threads.py starts the pool at import for that
    reason): a warm `fastbp bench` process crashed on it once."""
    import subprocess
    import sys
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", CACHED_PROBE], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr[-2000:])
