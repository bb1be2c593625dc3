"""The asv suite and the comparison tools still import and run (a short pass, no timing claims)."""
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "asv_bench"))


@pytest.mark.skipif(shutil.which("asv") is None, reason="asv is not installed (pip install '.[test]')")
def test_asv_check():
    out = subprocess.run(["asv", "check", "--python=same"], cwd=ROOT / "asv_bench", capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, HOME=os.environ.get("HOME", "/tmp")))
    assert out.returncode == 0 and "No problems found" in out.stdout, out.stdout + out.stderr


def test_a_quick_pass_over_each_benchmark_class():
    kernels = importlib.import_module("benchmarks.bench_kernels")
    workloads = importlib.import_module("benchmarks.bench_workloads")
    for params in (("dense_forward", "16x32x64", "cpu", "float32"),
                   ("adam_update", "16x32x64", "cpu-1thread", "float64"),
                   ("softmax_cross_entropy", "16x32x64", "numpy", "float32")):
        b = kernels.Kernel()
        b.setup(*params)
        b.time_kernel(*params)
    fit = workloads.Fit()
    fit.setup("seed", "cpu", "float32", "adam+dropout+bn")
    fit.time_fit("seed", "cpu", "float32", "adam+dropout+bn")
    assert workloads.Speedup().track_speedup("seed", "float32", "sgd") > 0


def test_bench_command_json():
    out = subprocess.run([sys.executable, "-m", "fastbp", "bench", "--shapes", "8x16x16", "--seconds",
                          "0.001", "--json"], capture_output=True, text=True, timeout=300, check=True)
    data = json.loads(out.stdout)
    assert list(data["gemm_limit_gflops"]) == ["float32"] and data["gemm_limit_gflops"]["float32"] > 0
    names = {r["kernel"] for r in data["results"]}
    assert {"dense_forward", "dense_backward", "adam_update", "relu_forward"} <= names
    assert {r["backend"] for r in data["results"]} == {"numpy", "cpu", "cpu-1thread"}
    assert all("others" in r for r in data["results"])   # the busy-machine check beside each row


def test_bench_limit_comes_first_and_every_column_takes_the_faster_cpu_kernel(monkeypatch):
    """The limit is measured before any kernel (after them, Numba's spinning threads share the
    cores with BLAS and the limit reads low); GFLOP/s, share of the limit and numpy/cpu are all
    of the faster of the parallel kernel and its twin."""
    from fastbp import bench
    order = []
    monkeypatch.setattr(bench, "sgemm_gflops", lambda dtype: order.append(("limit", np.dtype(dtype).name)) or 100.0)
    real = bench.best_time
    monkeypatch.setattr(bench, "best_time", lambda fn, *a: order.append("kernel") or real(fn, 1e-4, 1))
    results, limit = bench.compare("4x8x8", ("float32", "float64"))
    assert order[:2] == [("limit", "float32"), ("limit", "float64")] and "kernel" not in order[:2]
    assert {d: g for d, (g, _) in limit.items()} == {"float32": 100.0, "float64": 100.0}
    text = bench.table(results, limit)
    by = {}
    for r in results:
        by.setdefault((r["kernel"], r["dtype"]), {})[r["backend"]] = r
    rows = {(line.split()[0], line.split()[2]): line.split() for line in text.splitlines()
            if line.split() and (line.split()[0], line.split()[2] if len(line.split()) > 2 else "") in by}
    assert len(rows) == len(by)
    for key, cols in rows.items():
        best = min(by[key]["cpu"], by[key]["cpu-1thread"], key=lambda r: r["seconds"])
        assert float(cols[6]) == pytest.approx(best["gflops"], abs=0.006)
        assert float(cols[7].rstrip("%")) == pytest.approx(100 * best["gflops"] / 100.0, abs=0.6)
        assert float(cols[8].rstrip("x")) == pytest.approx(by[key]["numpy"]["seconds"] / best["seconds"], rel=0.01,
                                                           abs=0.006)


def test_contention_script_help_and_tiny_run():
    script = str(ROOT / "scripts" / "contention.py")
    out = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=60, check=True)
    assert "--busy" in out.stdout and "--tiny" in out.stdout
    out = subprocess.run([sys.executable, script, "--tiny"], capture_output=True, text=True, timeout=300, check=True)
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("seed")]
    assert [r[1] for r in rows] == ["0", "1"]   # quiet, then one busy process that the script started
    for r in rows:
        times = [float(x) for x in r[2:6]]
        assert all(t > 0 for t in times)
        assert float(r[6].rstrip("x")) == pytest.approx(times[0] / min(times[1], times[2]), rel=0.01, abs=0.006)
    assert float(rows[1][-1]) >= 0.5   # its busy process held about one CPU
    assert "worst ratio" in out.stdout
