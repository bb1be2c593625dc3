"""fastbp/reference.py on its own (the kernels are checked against it elsewhere): the shortcuts
its backend takes on the targets Network hands it."""
import numpy as np
import pytest

from fastbp import reference as R


@pytest.mark.parametrize("weights", [False, True])
def test_the_one_hot_softmax_gradient_is_the_general_one(dtype, weights):
    """The backend skips the row sums of one-hot targets (data.encode_targets makes every
    softmax target one-hot): the same numbers to the last bit. Soft targets still need them."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((16, 10)).astype(dtype)
    a = R.activation_forward("softmax", z, 0.0, 10)
    w = rng.random(16).astype(dtype) if weights else None
    y = np.eye(10, dtype=dtype)[rng.integers(0, 10, 16)]
    general = R.loss_backward("cross_entropy", z, a, y, 0.0, 1.0, "softmax", 0.0, w)
    assert np.array_equal(R.loss_backward("cross_entropy", z, a, y, 0.0, 1.0, "softmax", 0.0, w, one_hot=True),
                          general)
    soft = y * 2   # rows summing to 2: not what one_hot promises
    assert not np.allclose(R.loss_backward("cross_entropy", z, a, soft, 0.0, 1.0, "softmax", 0.0, w, one_hot=True),
                           R.loss_backward("cross_entropy", z, a, soft, 0.0, 1.0, "softmax", 0.0, w))
