"""The buffers the kernels write start on a cache line (fastbp/aligned.py)."""
import pickle

import numpy as np
import pytest

from fastbp import Network, aligned
from fastbp.kernels.cpu.driver import workspace


def _on_line(a):
    return a.ctypes.data % aligned.CACHE_LINE == 0


@pytest.mark.parametrize("shape", [0, 1, 7, (3, 5), (64, 256)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_zeros_are_aligned_zeros(shape, dtype):
    for _ in range(8):   # NumPy's own offsets vary from one allocation to the next
        a = aligned.zeros(shape, dtype)
        assert (_on_line(a) or a.size == 0) and a.flags.c_contiguous and a.flags.writeable
        assert a.dtype == dtype and a.shape == np.zeros(shape).shape and not a.any()


def test_on_line_copies_only_when_needed():
    raw = np.arange(100, dtype=np.float32)
    good = aligned.on_line(raw)
    assert aligned.on_line(good) is good
    shifted = aligned.zeros(101, np.float32)[1:]   # 4 bytes past a line
    shifted[:] = np.arange(100)
    fixed = aligned.on_line(shifted)
    assert fixed is not shifted and _on_line(fixed) and np.array_equal(fixed, shifted)


def test_network_buffers_are_aligned():
    net = Network([5, 16, 3])
    X = np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32)
    net.fit(X, np.arange(40) % 3, epochs=1, batch_size=8, optimizer="adam")
    assert _on_line(net._params) and _on_line(net._backend.grads)
    assert _on_line(net.optimizer.m) and _on_line(net.optimizer.v)
    ws = workspace(net.spec, 8, np.float32)
    assert all(_on_line(a) for a in ws if a.size and a.dtype != np.int64)
    back = pickle.loads(pickle.dumps(net))
    assert _on_line(back._params) and np.array_equal(back._params, net._params)
