"""fastbp/kernels/cpu/gemm_nt.py: the register-blocked C = A B^T."""

import numpy as np

from fastbp.kernels.cpu import dense as dense_k


def test_gemm_nt_in_panels():
    """A long summed axis makes B's panels 4 rows wide: several panels, the last one partial,
    and partial row blocks too."""
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((7, 40000)), rng.standard_normal((10, 40000))
    bias = rng.standard_normal(10)
    C = np.full((7, 10), np.nan)
    dense_k.gemm_nt(C, A, B, bias, True)
    np.testing.assert_allclose(C, A @ B.T + bias, rtol=1e-9, atol=1e-9)
