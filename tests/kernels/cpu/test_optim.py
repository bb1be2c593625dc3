"""fastbp/kernels/cpu/optim.py: every optimizer's update, the gradient norm and its scaling."""

import numpy as np
import pytest

import fastbp
from fastbp import reference as ref
from fastbp.kernels.cpu import optim
from conftest import tol
from .support import rand


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
        m, v, t = kern.state_arrays()
        t[0] += 1
        optim.optimizer_update(pk, g, m, v, kern.code, 0.05, kern.hyper(), t[0])
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
