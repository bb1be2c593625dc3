"""fastbp/kernels/cuda/optim.py: every optimizer's update against the reference."""
import numpy as np
import pytest

import fastbp
from fastbp import reference as ref
from fastbp.kernels.cuda import optim as optim_k

from .support import dev


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_optimizer_updates(name):
    rng = np.random.default_rng(6)
    params, grads = rng.standard_normal(40), rng.standard_normal(40)
    opt = fastbp.optim.get_optimizer(name)
    opt.bind(40, np.float64)
    m0, v0, t = opt.state_arrays()
    m0[:] = rng.standard_normal(m0.size)
    v0[:] = rng.uniform(0, 1, v0.size)
    t[0] = 3
    p, m, v = dev(params), dev(m0 if m0.size else np.zeros(1)), dev(v0 if v0.size else np.zeros(1))
    optim_k.optimizer_update(p, dev(grads), m, v, opt.code, 0.01, dev(opt.hyper()), 4)
    ref.optimizer_update(params, grads, opt, 0.01)
    np.testing.assert_allclose(p.copy_to_host(), params, rtol=1e-12)
    if m0.size:
        np.testing.assert_allclose(m.copy_to_host(), m0, rtol=1e-12)
    if v0.size:
        np.testing.assert_allclose(v.copy_to_host(), v0, rtol=1e-12)
