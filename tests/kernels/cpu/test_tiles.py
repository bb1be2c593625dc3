"""fastbp/kernels/cpu/tiles.py: the register-tiled GEMM and the vector transposes, on AVX-512
and (forced) AVX2 vectors."""

import numpy as np
import pytest

from fastbp.kernels.compile import one_thread
from conftest import tol
from .support import rand


TILE_SHAPES = [(1, 1, 1), (8, 16, 32), (16, 64, 64), (19, 5, 100), (37, 130, 71), (130, 40, 3)]


@pytest.mark.parametrize("m,K,n", TILE_SHAPES)
@pytest.mark.parametrize("a_trans", [False, True])
@pytest.mark.parametrize("threads", ["parallel", "one"])
def test_gemm_tiled(m, K, n, a_trans, threads, dtype):
    from fastbp.kernels.cpu import tiles
    rng = np.random.default_rng(m * K + n)
    opA, B, bias = rand(rng, (m, K), dtype), rand(rng, (K, n), dtype), rand(rng, n, dtype)
    A = np.ascontiguousarray(opA.T) if a_trans else opA
    fn = tiles.gemm_tiled if threads == "parallel" else one_thread(tiles.gemm_tiled)
    for has_bias in (True, False):
        C = np.full((m, n), np.nan, dtype)
        fn(C, A, B, bias, has_bias, a_trans)
        expect = opA.astype(np.float64) @ B + (bias if has_bias else 0)
        np.testing.assert_allclose(C, expect, **tol(dtype))


def test_gemm_tiled_into_views_of_wider_rows(dtype):
    """The tiles read the row strides of C and B, and both strides of A: blocks of wider
    arrays, as the drivers' workspace views are not, must come out right too."""
    from fastbp.kernels.cpu import tiles
    rng = np.random.default_rng(5)
    big_A, big_B = rand(rng, (40, 90), dtype), rand(rng, (70, 80), dtype)
    big_C = np.zeros((30, 100), dtype)
    A, B, C = big_A[3:20, 5:69], big_B[2:66, 1:77], big_C[4:21, 10:86]
    tiles.gemm_tiled(C, A, B, np.zeros(76, dtype), False, False)
    np.testing.assert_allclose(C, A.astype(np.float64) @ B, **tol(dtype))
    assert not big_C[:4].any() and not big_C[21:].any() and not big_C[:, :10].any() and not big_C[:, 86:].any()


@pytest.mark.parametrize("m,n", [(1, 1), (3, 5), (16, 16), (17, 33), (64, 256), (130, 300), (300, 70), (37, 3), (300, 2)])
def test_transpose(m, n, dtype):
    """Vector blocks, the columns right of them and the rows below them; the one-thread path
    (small), the parallel one and narrow matrices (gather_narrow); exact."""
    from fastbp.kernels.cpu import tiles
    M = rand(np.random.default_rng(m + n), (m, n), dtype)
    for fn in (tiles.transpose, one_thread(tiles.transpose)):
        T = np.full((n, m), np.nan, dtype)
        fn(T, M)
        np.testing.assert_array_equal(T, M.T)


@pytest.mark.parametrize("w,lane", [(16, 4), (8, 2), (8, 4), (4, 2)])
def test_transpose_plan_transposes(w, lane):
    """The shuffle rounds of every vector shape (AVX-512 and AVX2, float32 and float64), run
    on labelled elements in NumPy: the last round holds the columns in order, and every mask
    draws from the two sources only."""
    from fastbp.kernels.cpu import tiles
    M = np.arange(w * w).reshape(w, w)
    rows = list(M)
    for shuffles in tiles.transpose_plan(w, lane):
        assert all(len(mask) == w and 0 <= min(mask) and max(mask) < 2 * w for _, _, mask in shuffles)
        rows = [np.concatenate([rows[a], rows[b]])[mask] for a, b, mask in shuffles]
    np.testing.assert_array_equal(np.array(rows), M.T)
    with pytest.raises(ValueError, match="no transpose plan"):
        tiles.transpose_plan(w, 8)


@pytest.mark.parametrize("m", [1, 7, 16, 33, 64, 128])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 10, 15, 20])
def test_gather_narrow_then_scatter_narrow(m, n, dtype):
    """Gathering W^T and scattering it back into W, exact: the shuffled vector blocks (2 to
    NARROW_SHUFFLED columns), the windows (5 to 15 columns: from the rows' starts, and from
    their ends where a window would pass M's end; 16 rows of 10 float32 columns fit neither),
    the rows below them, the element loops (1 column; scattering 5 or more) and the blocks of
    transpose_rows (16 float32 or 8 float64 columns and more). A narrow matrix whose rows are
    not adjacent (a view of wider rows) takes the element loops."""
    from fastbp.kernels.cpu import tiles
    rng = np.random.default_rng(m * 10 + n)
    M = rand(rng, (m, n), dtype)
    wide = rand(rng, (m, n + 3), dtype)
    for source in (M, wide[:, 1:n + 1]):
        T = np.full((n, m), np.nan, dtype)
        tiles.gather_narrow(T, source)
        np.testing.assert_array_equal(T, source.T)
        # scattered into the front of a longer buffer: nothing past M is written
        buf = np.full(m * n + 64, np.nan, dtype) if source is M else np.full((m, n + 3), np.nan, dtype)
        back = buf[:m * n].reshape(m, n) if source is M else buf[:, :n]
        tiles.scatter_narrow(back, T)
        np.testing.assert_array_equal(back, source)
        assert source is not M or np.isnan(buf[m * n:]).all()


@pytest.mark.parametrize("n", [2, 3, 4, 10])
def test_narrow_transposes_a_variant_leaves_out(n, dtype):
    """Variants narrowed to no shuffle, or to windows only (the widths of a network's layers,
    kernels/cpu/needs.py), move a narrow matrix whose kind they lack element by element, still
    exactly: a pruned branch must leave the whole matrix to the element loops."""
    from fastbp.kernels.compile import variant
    from fastbp.kernels.cpu import tiles
    rng = np.random.default_rng(n)
    M = rand(rng, (53, n), dtype)
    bare = dict(NARROW_SHUFFLES=(), NARROW_WINDOWS=False)
    for values in (bare, dict(bare, NARROW_WINDOWS=True), dict(bare, NARROW_SHUFFLES=(n,)), {}):
        gather, scatter = (variant(f, **values) for f in (tiles.gather_narrow, tiles.scatter_narrow))
        T = np.full((n, 53), np.nan, dtype)
        gather(T, M)
        np.testing.assert_array_equal(T, M.T)
        back = np.full_like(M, np.nan)
        scatter(back, T)
        np.testing.assert_array_equal(back, M)


@pytest.mark.parametrize("m", [1, 2, 5, 7])
@pytest.mark.parametrize("K,n", [(1, 1), (16, 64), (9, 70), (33, 20)])
@pytest.mark.parametrize("a_trans", [False, True])
def test_row_product(m, K, n, a_trans, dtype):
    """C = op(A) B for fewer rows than a tile, all rows or all but the first: whole row tiles,
    the columns right of them (70 = 2 tiles and 6 columns in float32), or (20) no whole tile."""
    from fastbp.kernels.cpu import tiles
    rng = np.random.default_rng(m + K + n)
    opA, B = rand(rng, (m, K), dtype), rand(rng, (K, n), dtype)
    A = np.ascontiguousarray(opA.T) if a_trans else opA
    C = np.full((m, n), np.nan, dtype)
    tiles.row_product(C, A, B, a_trans, 0, m)
    expect = opA.astype(np.float64) @ B
    np.testing.assert_allclose(C, expect, **tol(dtype))
    part = np.full((m, n), np.nan, dtype)   # rows 1 to m only: row 0 untouched
    tiles.row_product(part, A, B, a_trans, 1, m)
    np.testing.assert_allclose(part[1:], expect[1:], **tol(dtype))
    assert np.isnan(part[0]).all()


TILE_CONFIG_PROBE = r"""
import numpy as np
from fastbp import config
from fastbp.kernels.cpu import tiles
assert (config.VECTOR_BYTES, config.TILE_ROWS) == (32, 6) and "contract" not in config.FASTMATH
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    A, B = rng.standard_normal((27, 40)).astype(dtype), rng.standard_normal((40, 70)).astype(dtype)
    C = np.empty((27, 70), dtype)
    tiles.gemm_tiled(C, A, B, np.zeros(70, dtype), False, False)
    np.testing.assert_allclose(C, A.astype(np.float64) @ B, rtol=1e-4, atol=1e-4)
    T = np.empty((40, 27), dtype)
    tiles.transpose(T, A)
    np.testing.assert_array_equal(T, A.T)
    for n in (2, 3, 4):
        N, T = A[:, :n].copy(), np.empty((n, 27), dtype)
        tiles.gather_narrow(T, N)
        np.testing.assert_array_equal(T, N.T)
        back = np.empty_like(N)
        tiles.scatter_narrow(back, T)
        np.testing.assert_array_equal(back, N)
    C = np.empty((3, 70), dtype)
    tiles.row_product(C, A[:3], B, False, 0, 3)
    np.testing.assert_allclose(C, A[:3].astype(np.float64) @ B, rtol=1e-4, atol=1e-4)
print("ok")
"""


def test_tiles_with_avx2_vectors_and_strict_math():
    """The configuration of a machine without AVX-512 (32-byte vectors, 6-row tiles) and
    FASTBP_FASTMATH=0 (multiply then add, no fused multiply-add): the other code the intrinsics
    emit, compiled fresh in a subprocess."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, FASTBP_VECTOR_BYTES="32", FASTBP_FASTMATH="0", FASTBP_CACHE="0")
    out = subprocess.run([sys.executable, "-c", TILE_CONFIG_PROBE], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
