"""fastbp/kernels/cpu/views.py: uncounted views cut the same elements as NumPy's slices, and a
borrowed (named) tuple reads the same arrays as the tuple it came from."""
import numpy as np
from numba import njit

from fastbp.kernels import args
from fastbp.kernels.cpu.views import borrow, view1d, view2d


@njit
def _cut(buf, off, rows, cols):
    return view1d(buf, off, rows * cols).sum(), view2d(buf, off, rows, cols)[rows - 1, cols - 1]


@njit
def _read(net):
    net = borrow(net)
    net.grads[:] = net.params * 2   # writes through the borrowed view reach the caller's array
    return net.params.sum() + net.layers[1, 0] + net.layer_f[0, 1]


def test_views_cut_what_slices_cut():
    buf = np.arange(100.0)
    total, corner = _cut(buf, 7, 3, 5)
    assert total == buf[7:22].sum() and corner == buf[7:22].reshape(3, 5)[2, 4]


def test_borrowed_named_tuples_read_and_write_the_callers_arrays():
    params, grads = np.arange(6.0), np.zeros(6)
    net = args.Net(params, grads, np.zeros(1), np.arange(4).reshape(2, 2), np.ones((2, 2)) * 0.5,
                   np.zeros((1, 2), dtype=np.int64))
    assert _read(net) == params.sum() + 2 + 0.5
    np.testing.assert_array_equal(grads, params * 2)
