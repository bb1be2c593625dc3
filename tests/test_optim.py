"""fastbp/optim.py: schedules, each optimizer's steps worked by hand, and state that belongs to
the optimizer."""
import numpy as np
import pytest

import fastbp
from fastbp import optim
from conftest import problem


def test_schedules_set_the_rate_per_epoch():
    X, y = problem([3, 4, 2], "softmax", n=20)
    h = fastbp.Network([3, 4, 2], seed=0).fit(X, y, epochs=5, batch_size=5,
                                              lr=optim.StepDecay(0.4, drop=0.5, every=2))
    assert h.history["lr"] == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1])
    h = fastbp.Network([3, 4, 2], seed=0).fit(X, y, epochs=3, batch_size=5,
                                              lr=optim.InverseScaling(0.3, power_t=0.5))
    assert h.history["lr"] == pytest.approx([0.3, 0.3 / 21 ** 0.5, 0.3 / 41 ** 0.5])
    h = fastbp.Network([3, 4, 2], seed=0).fit(X, y, epochs=4, batch_size=5,
                                              lr=optim.ReduceOnPlateau(0.3, factor=0.5, patience=0,
                                                                       min_delta=100.0))
    # the first epoch sets the baseline; none after improves on it by 100, so each one halves
    assert h.history["lr"] == pytest.approx([0.3, 0.3, 0.15, 0.075])


def one_step(optimizer, g_of_w, w0=0.5, steps=2):
    """A 1-1 linear network, no bias effect: the gradient of mse for x=1, y=0 is 2w + 2b."""
    net = fastbp.Network([1, 1], output="linear", loss="mse", dtype="float64", backend="cpu")
    net.set_weights([(np.array([[w0]]), np.array([0.0]))])
    out = []
    for _ in range(steps):
        net.fit(np.array([[1.0]]), np.array([0.0]), epochs=1, batch_size=1, optimizer=optimizer)
        out.append(net.get_weights()[0][0][0, 0])
    return out


def test_momentum_by_hand():
    # w=0.5, b=0: dw = 2(w+b) = 1.  m1 = -0.1*1 = -0.1, w1 = 0.4; b1 = -0.1.
    # dw = 2(0.4 - 0.1) = 0.6.  m2 = 0.9*(-0.1) - 0.1*0.6 = -0.15, w2 = 0.25
    assert one_step(optim.Momentum(lr=0.1, momentum=0.9), None) == pytest.approx([0.4, 0.25])


def test_nesterov_by_hand():
    # step 1: m1 = -0.1; w1 = 0.5 + 0.9*(-0.1) - 0.1*1 = 0.31; b1 = 0 - 0.09 - 0.1 = -0.19
    # step 2: dw = 2(0.31 - 0.19) = 0.24; m2 = -0.09 - 0.024 = -0.114; w2 = 0.31 - 0.1026 - 0.024
    assert one_step(optim.Nesterov(lr=0.1, momentum=0.9), None) == pytest.approx([0.31, 0.1834])


def test_adam_by_hand():
    # step 1: g=1; m=0.1, v=0.001; m_hat=1, v_hat=1; w1 = 0.5 - 0.1*1/(1+1e-8); b1 = -0.1
    # step 2: g = 2(0.4 - 0.1) = 0.6; m = 0.09 + 0.06 = 0.15, v = 0.000999 + 0.00036 = 0.001359
    #         m_hat = 0.15/0.19, v_hat = 0.001359/0.001999; w2 = 0.4 - 0.1 m_hat/sqrt(v_hat)
    m_hat, v_hat = 0.15 / 0.19, 0.001359 / (1 - 0.999 ** 2)
    expect = [0.5 - 0.1 / (1 + 1e-8), 0.4 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)]
    assert one_step(optim.Adam(lr=0.1), None) == pytest.approx(expect, rel=1e-7)


def test_optimizer_state_persists_across_fits_and_belongs_to_the_optimizer():
    X, y = problem([3, 4, 2], "softmax", n=20)
    opt = optim.Adam(lr=0.01)
    a = fastbp.Network([3, 4, 2], seed=0)
    a.fit(X, y, epochs=2, batch_size=5, optimizer=opt)
    a.fit(X, y, epochs=1, batch_size=5, optimizer=opt)
    b = fastbp.Network([3, 4, 2], seed=0)
    b.fit(X, y, epochs=3, batch_size=5, optimizer=optim.Adam(lr=0.01))
    np.testing.assert_allclose(a.get_weights()[0][0], b.get_weights()[0][0], rtol=1e-5)
    assert opt.t[0] == 12 and a.optimizer is opt
    with pytest.raises(ValueError, match="new optimizer"):
        fastbp.Network([3, 9, 2]).fit(X, y, optimizer=opt)
    with pytest.raises(ValueError, match="Did you mean 'adam'"):
        a.fit(X, y, optimizer="adma")


def test_state_copies_and_puts_back_in_place():
    """get_state copies; set_state writes into the arrays the kernels hold (never rebinds them)."""
    X, y = problem([3, 4, 2], "softmax", n=20)
    opt = optim.Adam(lr=0.01)
    assert opt.get_state() is None   # nothing bound yet
    net = fastbp.Network([3, 4, 2], seed=0)
    net.fit(X, y, epochs=1, batch_size=5, optimizer=opt)
    m, v, t = opt.state_arrays()
    saved = opt.get_state()
    net.fit(X, y, epochs=2, batch_size=5)
    assert t[0] == 12 and not np.array_equal(m, saved["m"]) and saved["t"][0] == 4
    opt.set_state(saved)
    assert opt.state_arrays()[0] is m and t[0] == 4
    np.testing.assert_array_equal(m, saved["m"])
    np.testing.assert_array_equal(v, saved["v"])
    assert opt.samples_seen == saved["samples_seen"] == 20
