"""fastbp/distributed.py and kernels/cpu/distributed.py: data-parallel training over MPI, on one
machine: 2 and 3 ranks under mpiexec."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mpi4py", reason="pip install '.[mpi]'")
pytest.importorskip("numba_mpi", reason="pip install '.[mpi]'")
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
if MPIEXEC is None:
    pytest.skip("no mpiexec (pip install mpich)", allow_module_level=True)
SCRIPT = Path(__file__).parent / "mpi" / "run_distributed.py"


def mpirun(n, case, tmp_path, timeout=300):
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, str(SCRIPT), case, str(tmp_path)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_train_like_one_process_with_the_global_batch(ranks, tmp_path):
    out = mpirun(ranks, "equivalence", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    for name in ("equivalence.json", "equivalence_l2.json", "equivalence_sparse.json"):
        result = json.loads((tmp_path / name).read_text())
        assert result["identical"], "weights differ between ranks"
        assert result["max_diff"] < 1e-12, result


def test_groups_split_from_the_world_train_apart(tmp_path):
    out = mpirun(3, "split", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    for rank, group in ((0, 2), (1, 2), (2, 1)):
        result = json.loads((tmp_path / f"split_rank{rank}.json").read_text())
        assert result["group"] == group and result["max_diff"] < 1e-12, (rank, result)


def test_only_rank_0_prints_and_saves(tmp_path):
    out = mpirun(2, "output", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    epoch_lines = [line for line in out.stdout.splitlines() if "val_loss" in line]
    assert len(epoch_lines) == 4, out.stdout
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["model_rank0.npz"]


def test_a_second_run_loads_the_distributed_driver_from_the_kernel_cache(tmp_path):
    # the first run compiles what the cache lacks (or nothing, after the tests above)
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
        out = mpirun(2, "compiles", tmp_path / run)
        assert out.returncode == 0, out.stderr[-3000:]
    for rank in (0, 1):
        assert json.loads((tmp_path / "second" / f"compiles_rank{rank}.json").read_text()) == []


def test_a_failing_rank_stops_the_job_instead_of_hanging(tmp_path):
    out = mpirun(2, "failure", tmp_path, timeout=120)   # a hang fails by timeout
    assert out.returncode != 0
    assert "aborting the MPI job" in out.stderr and "NaN" in out.stderr


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_cli_distributed_train(fmt, tmp_path):
    import numpy as np
    import fastbp
    X, y = fastbp.datasets.make_synthetic(300, 4, 3, seed=1, dtype="float64")
    if fmt == "npz":
        np.savez(tmp_path / "d.npz", X=X, y=y)
        args = ["d.npz"]
    else:
        with open(tmp_path / "d.csv", "w") as f:
            f.write("a,b,c,d,label\n" + "".join(",".join(f"{v:.6f}" for v in x) + f",{t}\n" for x, t in zip(X, y)))
        args = ["d.csv", "--target", "label"]
    out = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "fastbp", "train", *args, "--epochs", "30",
                          "--layers", "16", "--lr", "0.01", "--save", "m.npz", "--quiet", "--distributed"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("saved m.npz") == 1 and "300 rows on each of 2 ranks (rank 0: 150)" in out.stdout, out.stdout
    ev = subprocess.run([sys.executable, "-m", "fastbp", "evaluate", "m.npz", *args], cwd=tmp_path,
                        capture_output=True, text=True, timeout=300)
    assert float(ev.stdout.split()[1]) > 0.85, ev.stdout + ev.stderr
