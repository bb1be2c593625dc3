"""fastbp/kernels/cpu/blas.py and kernels/blas_library.py: OpenBLAS called from the kernels, its
thread setting held and restored, and every product without it."""

import numpy as np
import pytest

from fastbp import reference as ref
from fastbp.kernels import blas_library
from fastbp.kernels.cpu import dense as dense_k


@pytest.mark.skipif(not blas_library.FOUND, reason="no OpenBLAS found")
def test_openblas_held_to_one_thread_and_restored():
    """Inside one_thread (nested, as concurrent fits nest) OpenBLAS runs on one thread; the last
    to leave restores what the process had."""
    lib = blas_library.LIBRARY
    before = lib.get_threads()
    lib.set_threads(2)
    outside = lib.get_threads()   # 2, or fewer where OpenBLAS caps it to the cores
    try:
        with blas_library.one_thread():
            assert lib.get_threads() == 1
            with blas_library.one_thread():
                assert lib.get_threads() == 1
            assert lib.get_threads() == 1
        assert lib.get_threads() == outside
        with pytest.raises(RuntimeError):
            with blas_library.one_thread():
                raise RuntimeError("a failing fit")
        assert lib.get_threads() == outside
    finally:
        lib.set_threads(before)


@pytest.mark.skipif(not blas_library.FOUND, reason="no OpenBLAS found")
def test_gemm_blas_outside_a_driver_restores_openblas_threads():
    """Called directly (no one_thread around it), gemm_blas holds OpenBLAS to one thread for
    its own length and gives the process its setting back."""
    lib = blas_library.LIBRARY
    before = lib.get_threads()
    lib.set_threads(2)
    outside = lib.get_threads()
    try:
        rng = np.random.default_rng(5)
        A, W, b = rng.standard_normal((70, 250)), rng.standard_normal((250, 260)), rng.standard_normal(260)
        Z = np.empty((70, 260))
        dense_k.dense_forward_blas(Z, A, W, b)
        assert lib.get_threads() == outside
        np.testing.assert_allclose(Z, ref.dense_forward(A, W, b), rtol=1e-10, atol=1e-10)
    finally:
        lib.set_threads(before)


BLAS_OFF_PROBE = r"""
import numpy as np
from fastbp import config, reference as ref
from fastbp.kernels import blas_library
from fastbp.kernels.cpu import dense
assert not config.BLAS and not blas_library.FOUND
rng = np.random.default_rng(0)
A, W, b = rng.standard_normal((70, 300)), rng.standard_normal((300, 320)), rng.standard_normal(320)
assert dense.forward_path(70, W) == dense.BLOCKED and dense.backward_path(70, W) == dense.BLOCKED
Z = np.empty((70, 320))
dense.dense_forward(Z, A, W, b, np.empty((320, 300)))
np.testing.assert_allclose(Z, ref.dense_forward(A, W, b), rtol=1e-10, atol=1e-10)
print("ok")
"""


def test_without_openblas_every_product_runs_in_fastbp_kernels():
    """FASTBP_BLAS=0 (as where no OpenBLAS is found): a shape whose weights outgrow L2 takes
    the blocked path, and the kernels compile and link without the OpenBLAS symbols."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, FASTBP_BLAS="0")
    out = subprocess.run([sys.executable, "-c", BLAS_OFF_PROBE], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
