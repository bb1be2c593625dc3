"""How many CPUs this process may really use, and why: its affinity mask (taskset, cpusets)
and its control group's CPU quota (a container's `--cpus`, a CI runner's share), not the
machine's core count, which is what Numba starts one thread per by default.

A quota of 1.5 CPUs rounds up to 2 threads: the scheduler gives the process 1.5 CPUs' time
spread over any cores, and a second thread keeps that half busy.
"""
from __future__ import annotations

import math
import os

CGROUP_ROOT = "/sys/fs/cgroup"


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _v2_quota(text):
    """'max 100000' -> None; '150000 100000' -> 1.5."""
    parts = (text or "").split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_quota(quota_text, period_text):
    try:
        quota, period = int(quota_text), int(period_text)
    except (TypeError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_quota(root=CGROUP_ROOT, proc_cgroup="/proc/self/cgroup"):
    """The CPU quota of this process's control group and of every group above it (the least
    of them), in CPUs, or None when there is none. cgroup v2 (`cpu.max`) and v1
    (`cpu.cfs_quota_us` / `cpu.cfs_period_us`)."""
    paths = {"v2": "/", "v1": "/"}
    for line in (_read(proc_cgroup) or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            paths["v2"] = path or "/"
        elif "cpu" in controllers.split(","):
            paths["v1"] = path or "/"
    quotas = []
    for version, base in (("v2", root), ("v1", os.path.join(root, "cpu"))):
        path = paths[version].strip("/")
        while True:
            here = os.path.join(base, path) if path else base
            if version == "v2":
                q = _v2_quota(_read(os.path.join(here, "cpu.max")))
            else:
                q = _v1_quota(_read(os.path.join(here, "cpu.cfs_quota_us")),
                              _read(os.path.join(here, "cpu.cfs_period_us")))
            if q is not None:
                quotas.append(q)
            if not path:
                break
            path = os.path.dirname(path)
    return min(quotas) if quotas else None


def affinity():
    """CPUs this process may run on (its affinity mask), or None where the OS cannot say."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def usable():
    """(CPUs, why): the threads worth starting, and a line saying what decided it."""
    machine = os.cpu_count() or 1
    mask, quota = affinity(), cgroup_quota()
    n = machine if mask is None else min(mask, machine)
    why = [f"{machine} cores"]
    if mask is not None and mask < machine:
        why.append(f"affinity mask {mask}")
    if quota is not None:
        why.append(f"cgroup CPU quota {quota:g}")
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n), ", ".join(why)
