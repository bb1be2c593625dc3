"""fastbp/kernels/cpu/views.py: unchecked views cut the same elements as NumPy's slices."""
import numpy as np
from numba import njit

from fastbp.kernels.cpu.views import view1d, view2d


@njit
def _cut(buf, off, rows, cols):
    return view1d(buf, off, rows * cols).sum(), view2d(buf, off, rows, cols)[rows - 1, cols - 1]


def test_views_cut_what_slices_cut():
    buf = np.arange(100.0)
    total, corner = _cut(buf, 7, 3, 5)
    assert total == buf[7:22].sum() and corner == buf[7:22].reshape(3, 5)[2, 4]
