"""Whether other processes took this process's CPUs while it measured something: the check that
`fastbp bench` and scripts/workloads.py print beside their figures, because a timing taken on a
busy machine measures the scheduler rather than the code (a kernel of a few microseconds then
reads as thousands).

On Linux, /proc/stat counts the time each CPU spent busy. The CPUs this process may use (its
affinity mask) were busy for the process's own CPU time (its children's included) and for
everyone else's: the difference, over the wall time of the measurement, is how many CPUs other
processes (or, on a virtual machine, its host: steal time) held on average. Elsewhere the
1-minute load average at the start, against the usable CPUs, is the only hint.
"""
from __future__ import annotations

import os
import time

# others' average use, in CPUs, above which a measurement is flagged as taken on a busy machine
BUSY = 0.25
PROC_STAT = "/proc/stat"


def busy_seconds(text, cpus):
    """Seconds that the CPUs numbered in `cpus` spent busy, from the text of /proc/stat: user,
    nice, system, irq, softirq and steal (idle and iowait are the CPU waiting for work)."""
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for line in text.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(f) for f in fields[:8]] + [0] * (8 - len(fields[:8]))
            user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
            total += user + nice + system + irq + softirq + steal
    return total / hz


def own_seconds():
    """CPU seconds this process and its waited-for children have used."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


FOOTNOTE = ("others: CPUs that other processes held while the row was measured (* busy: its times are "
            "the scheduler's, not fastbp's)")


class Watch:
    """Started at a measurement's start; others() then tells how many CPUs other processes held
    on average since, and warning() says so in a line when it is enough to spoil the figures.
    For a table measured row by row: restart() before each row, row_others() after it, and
    footer() under the table (`worst`: a figure measured before the rows, such as the GEMM
    limit's others)."""

    def __init__(self, stat=PROC_STAT, worst=None):
        self.stat = stat
        self.worst = worst
        try:
            self.cpus = os.sched_getaffinity(0)
        except (AttributeError, OSError):
            self.cpus = set(range(os.cpu_count() or 1))
        self.restart()

    def _busy(self):
        try:
            with open(self.stat) as f:
                return busy_seconds(f.read(), self.cpus)
        except OSError:
            return None

    def restart(self):
        self.start = (time.monotonic(), self._busy(), own_seconds())
        self.load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    def others(self):
        """CPUs that other processes used on average since the start, or None where /proc/stat
        is missing."""
        wall0, busy0, own0 = self.start
        busy = self._busy()
        if busy is None or busy0 is None:
            return None
        wall = max(time.monotonic() - wall0, 1e-9)
        return max(0.0, (busy - busy0) - (own_seconds() - own0)) / wall

    def row_others(self):
        """others() since the last restart(), kept if it is the worst so far."""
        others = self.others()
        if others is not None and (self.worst is None or others > self.worst):
            self.worst = others
        return others

    def footer(self):
        """The lines under a table of rows: what its others column means, and the warning of its
        worst row when that one was busy."""
        warning = self.warning(self.worst)
        return [FOOTNOTE, warning] if warning else [FOOTNOTE]

    def warning(self, others=None):
        """'' on a quiet machine; else a line that says the figures were taken on a busy one."""
        others = self.others() if others is None else others
        n = len(self.cpus)
        if others is not None:
            if others < BUSY:
                return ""
            return (f"busy machine: other processes held {others:.1f} of the {n} CPUs this process may use "
                    f"while it measured, so these figures are slower and noisier than on a quiet machine; "
                    f"measure again when `uptime` shows a load near 0")
        if self.load is not None and self.load > n / 2:
            return (f"the machine may be busy: the 1-minute load average was {self.load:.1f} on {n} CPUs "
                    f"at the start (this platform cannot say who used them)")
        return ""
