"""The CUDA backend where there is no GPU: every kernel compiled to PTX for the H200 (sm_90), each
kernel run against the reference under the CUDA simulator, and the errors a user without a GPU
gets. (On a machine with a GPU, tests/kernels/cuda/ also runs directly on it.)"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastbp

cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed (pip install '.[cuda]')")
ROOT = Path(__file__).resolve().parent.parent


def _kernels():
    from fastbp.kernels.cuda import activations as a, common as c, dense as d, driver as dr, losses as lo
    from fastbp.kernels.cuda import optim as o, regularize as r, sparse as s
    M, V = "{t}[:, ::1]", "{t}[::1]"
    F, I, B, D = "float64", "int64", "boolean", "float64[::1]"
    return {
        "gemm_tiled": (d.gemm_tiled, [M, M, M, V, B, B, B, M, I, F]),
        "column_sums": (d.column_sums, [V, M]),
        "activation forward": (a._elementwise_forward, [M, M, I, F]),
        "softmax/maxout forward": (a._rowwise_forward, [M, M, I, I]),
        "activation backward": (a._elementwise_backward, [M, M, M, M, I, F]),
        "maxout backward": (a._maxout_backward, [M, M, M, I]),
        "loss_rows": (lo._loss_rows, [V, M, M, M, V, I, F]),
        "batch_loss": (lo._batch_loss, [V, V, I, I, I, D, F]),
        "fused delta": (lo._fused_delta, [M, M, M, V, I]),
        "output delta": (lo._output_delta, [M, M, M, M, V, I, F, V]),
        "dropout": (r._dropout, [M, M, F, "uint64", "{t}"]),
        "batchnorm forward": (r._bn_forward, [M, M, V, V, V, V, V, V, F, F, B]),
        "batchnorm inference": (r._bn_inference, [M, V, V, V, V, F]),
        "batchnorm backward": (r._bn_backward, [M, V, V, M, V, V]),
        "penalty": (r._penalty, [D, V, V, I, I, F, F, B]),
        "sum of squares": (o._sum_squares, [D, V]),
        "clip": (o._clip, [V, D, F]),
        "optimizer_update": (o._update, [V, V, V, V, I, F, D, I, I, I, I, "uint8[::1]"]),
        "sparse forward": (s._forward, [M, M, V, "int64[::1]", "int64[::1]", "int32[::1]", V]),
        "sparse scatter": (s._scatter, [M, M, "int64[::1]", "int64[::1]", "int32[::1]", V]),
        "sparse column sums": (s._column_sums, [V, M]),
        "sparse mark": (s._mark, ["uint8[::1]", "int64[::1]", I, "int64[::1]", "int32[::1]"]),
        "batch rows": (s._take, ["int64[::1]", "int64[::1]", I, I]),
        "evaluation rows": (s._count, ["int64[::1]", I, I]),
        "fill": (c.fill, [V, F]),
        "gather": (dr._gather, [M, M, V, M, M, V, "int64[::1]", I, I]),
        "add_scaled": (dr._add_scaled, [D, D, F]),
    }


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", reason="PTX needs the real compiler")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_kernel_compiles_to_ptx_for_sm90(dtype):
    failures = []
    kernels = _kernels()
    for name, (kernel, sig) in kernels.items():
        signature = "void(" + ", ".join(s.format(t=dtype) for s in sig) + ")"
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
            assert ".target sm_90" in ptx
        except Exception as exc:   # collect them all: one report names every broken kernel
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures)
    assert len(kernels) == 27


def test_kernels_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", FASTBP_CUDA_TILE="4", FASTBP_CUDA_BLOCK="32")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n0", "-p", "no:cacheprovider", str(ROOT / "tests" / "kernels" / "cuda")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = out.stdout[-3000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    assert " passed" in tail and "skipped" not in tail.split("\n")[-2], tail


@pytest.mark.skipif(cuda.is_available(), reason="a GPU is present")
def test_without_a_gpu_cuda_is_a_clear_error_and_auto_is_cpu():
    with pytest.raises(RuntimeError, match="needs an NVIDIA GPU.*backend='cpu'"):
        fastbp.Network([2, 3, 2], backend="cuda")
    net = fastbp.Network([2, 3, 2], backend="auto", seed=0)
    assert type(net._backend).__name__ == "CpuBackend"
    net.fit(np.zeros((4, 2)), [0, 1, 0, 1], epochs=1)
