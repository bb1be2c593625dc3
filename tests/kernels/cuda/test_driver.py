"""fastbp/kernels/cuda/driver.py and backend.py: a whole fit on the device equals the numpy one."""
import numpy as np
import pytest

import fastbp


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


def test_full_batch_objective_with_sample_weights_equals_numpy():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((12, 3)), rng.poisson(1.0, 12)
    sw = rng.uniform(0, 2, 12)
    nets = [fastbp.Network([3, 5, 1], hidden="tanh", output="exp", seed=0, backend=b, dtype="float64", l2=1e-3)
            for b in ("cuda", "numpy")]
    theta = np.concatenate([np.r_[w.ravel(), b] for w, b in nets[1].get_weights()])
    (vc, gc), (vr, gr) = (net.objective(X, y, sw)(theta) for net in nets)
    assert vc == pytest.approx(vr, rel=1e-9)
    np.testing.assert_allclose(gc, gr, rtol=1e-8, atol=1e-12)
