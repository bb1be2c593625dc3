"""fastbp/kernels/cpu/threads.py: the parts every thread takes cover an axis exactly once, and
start on multiples of 16 (no cache line shared between two threads' float32 parts); the OpenMP
spin count set before Numba's pool starts."""
import os
import subprocess
import sys

import pytest

from fastbp import config

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


SPIN = """
import os
import fastbp.kernels.cpu.threads
print(os.environ.get("GOMP_SPINCOUNT"))
"""


@pytest.mark.parametrize("env, spins", [({}, str(config.OMP_SPINCOUNT)), ({"GOMP_SPINCOUNT": "77"}, "77"),
                                        ({"OMP_WAIT_POLICY": "active"}, None),
                                        ({"FASTBP_OMP_SPINCOUNT": "0"}, None)])
def test_the_openmp_spin_count_is_set_before_the_pool_starts_unless_the_user_set_one(env, spins):
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY",
                                                              "FASTBP_OMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", SPIN], env=dict(base, **env), capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(spins)]
