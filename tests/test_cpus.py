"""fastbp/cpus.py: the CPUs a process may use (affinity mask, cgroup quota), and the thread
count the kernels start with."""
import os
import subprocess
import sys

import pytest

from fastbp import cpus


def _tree(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize("text,want", [("max 100000", None), ("150000 100000", 1.5), ("100000 100000", 1.0),
                                       ("", None), ("garbage", None), ("-1 100000", None)])
def test_v2_cpu_max(text, want):
    assert cpus._v2_quota(text) == want


def test_cgroup_v2_takes_the_least_quota_up_the_tree(tmp_path):
    root = _tree(tmp_path, {"cpu.max": "max 100000", "job/cpu.max": "300000 100000",
                            "job/step/cpu.max": "max 100000", "proc": "0::/job/step\n"})
    assert cpus.cgroup_quota(root, os.path.join(root, "proc")) == 3.0
    root2 = _tree(tmp_path / "b", {"cpu.max": "50000 100000", "job/cpu.max": "300000 100000", "proc": "0::/job\n"})
    assert cpus.cgroup_quota(root2, os.path.join(root2, "proc")) == 0.5


def test_cgroup_v1_and_none(tmp_path):
    root = _tree(tmp_path, {"cpu/docker/cpu.cfs_quota_us": "250000", "cpu/docker/cpu.cfs_period_us": "100000",
                            "cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000",
                            "proc": "4:memory:/docker\n2:cpu,cpuacct:/docker\n"})
    assert cpus.cgroup_quota(root, os.path.join(root, "proc")) == 2.5
    empty = _tree(tmp_path / "e", {"proc": "0::/\n"})
    assert cpus.cgroup_quota(empty, os.path.join(empty, "proc")) is None
    assert cpus.cgroup_quota(str(tmp_path / "missing"), str(tmp_path / "missing" / "proc")) is None


def test_usable_is_the_least_of_cores_mask_and_rounded_up_quota(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(cpus, "affinity", lambda: 6)
    monkeypatch.setattr(cpus, "cgroup_quota", lambda: 2.5)
    assert cpus.usable() == (3, "16 cores, affinity mask 6, cgroup CPU quota 2.5")
    monkeypatch.setattr(cpus, "cgroup_quota", lambda: None)
    assert cpus.usable() == (6, "16 cores, affinity mask 6")
    monkeypatch.setattr(cpus, "cgroup_quota", lambda: 0.2)
    assert cpus.usable()[0] == 1


CHILD = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
         "import fastbp.kernels.cpu.threads, numba; print(numba.get_num_threads())")


@pytest.mark.parametrize("env,want", [({}, "1"), ({"NUMBA_NUM_THREADS": "2"}, "2")])
def test_a_process_pinned_to_one_cpu_starts_one_thread_unless_told(env, want):
    """A fresh process restricted to one CPU (as taskset does) gets one kernel thread, where
    Numba alone would start one per core; NUMBA_NUM_THREADS set by the user wins."""
    base = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", CHILD], env={**base, **env}, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == want
