"""fastbp/kernels/cpu/reduce.py: chunked sums over any range, exact to float64 rounding, and the
same on one thread as on several (the chunks, not the threads, fix the order)."""
import numpy as np
import pytest

from fastbp.kernels.compile import one_thread
from fastbp.kernels.cpu.reduce import weighted_sum

from .support import rand


@pytest.mark.parametrize("start,stop", [(0, 0), (0, 1), (3, 70), (0, 1001), (17, 1000)])
def test_weighted_sum_over_a_range(start, stop, dtype):
    x = rand(np.random.default_rng(stop), 1001, dtype)
    part = x[start:stop].astype(np.float64)
    want = 0.3 * np.abs(part).sum() + 0.7 * (part * part).sum()
    parallel = weighted_sum(x, start, stop, 0.3, 0.7, np.full(64, np.nan))
    single = one_thread(weighted_sum)(x, start, stop, 0.3, 0.7, np.full(64, np.nan))
    assert parallel == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert single == parallel
