"""fastbp/kernels/cpu/threads.py: the parts every thread takes cover an axis exactly once, and
start on multiples of 16 (no cache line shared between two threads' float32 parts)."""
import pytest

from fastbp.kernels.compile import one_thread
from fastbp.kernels.cpu.threads import even_part, thread_count


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 100, 257, 4096])
@pytest.mark.parametrize("parts", [1, 2, 3, 5])
def test_even_parts_tile_the_axis(n, parts):
    cuts = [even_part(n, k, parts) for k in range(parts)]
    assert cuts[0][0] == 0 and cuts[-1][1] == n
    for (a0, a1), (b0, b1) in zip(cuts, cuts[1:]):
        assert a1 == b0 and a0 <= a1
    assert all(a0 % 16 == 0 or a0 == n for a0, _ in cuts)


def test_thread_count_is_numba_s_and_one_in_the_twins():
    import numba
    assert thread_count() == numba.get_num_threads()
    assert one_thread(thread_count)() == 1
