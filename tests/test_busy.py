"""fastbp/busy.py: CPU time read from /proc/stat text, other processes' share on fake clocks, the
warning's thresholds, and a real competing process seen as one."""
import os
import subprocess
import sys
import time

import pytest

from fastbp import busy

HZ = os.sysconf("SC_CLK_TCK")
STAT = """cpu  {t0} 0 0 0 0 0 0 0 0 0
cpu0 {u0} 5 {s0} 999 50 1 2 {steal0} 0 0
cpu1 {u1} 0 0 999 0 0 0 0 0 0
cpu2 7000 0 0 0 0 0 0 0 0 0
intr 1 2 3
ctxt 99
"""


def stat(u0=0, s0=0, steal0=0, u1=0):
    return STAT.format(t0=u0 + u1, u0=u0, s0=s0, steal0=steal0, u1=u1)


def test_busy_seconds_counts_the_given_cpus_and_not_idle_or_iowait():
    text = stat(u0=100, s0=20, steal0=30, u1=40)
    # cpu0: user 100 + nice 5 + system 20 + irq 1 + softirq 2 + steal 30; cpu1: user 40
    assert busy.busy_seconds(text, {0}) == pytest.approx(158 / HZ)
    assert busy.busy_seconds(text, {0, 1}) == pytest.approx(198 / HZ)
    assert busy.busy_seconds(text, {1, 5}) == pytest.approx(40 / HZ)   # the total line is not a CPU


class FakeClocks:
    def __init__(self, monkeypatch):
        self.wall, self.own = 100.0, 3.0
        monkeypatch.setattr(busy.time, "monotonic", lambda: self.wall)
        monkeypatch.setattr(busy, "own_seconds", lambda: self.own)


def test_others_is_busy_time_less_the_process_own_over_the_wall_time(tmp_path, monkeypatch):
    clocks = FakeClocks(monkeypatch)
    path = tmp_path / "stat"
    path.write_text(stat(u0=10 * HZ, u1=10 * HZ))
    watch = busy.Watch(str(path))
    watch.cpus = {0, 1}
    watch.restart()
    # 2 s later: the CPUs were busy 3.5 s more, 1.5 s of it this process's
    path.write_text(stat(u0=12 * HZ, u1=int(11.5 * HZ)))
    clocks.wall += 2.0
    clocks.own += 1.5
    assert watch.others() == pytest.approx(1.0)
    assert "held 1.0 of the 2 CPUs" in watch.warning()
    clocks.own += 2.5   # more own time than the CPUs were busy (ticks round): none, not negative
    assert watch.others() == 0.0 and watch.warning() == ""


def test_a_table_keeps_its_worst_row_and_warns_under_it(tmp_path, monkeypatch):
    clocks = FakeClocks(monkeypatch)
    path = tmp_path / "stat"
    path.write_text(stat())
    watch = busy.Watch(str(path), worst=0.1)   # the limit, measured before the rows
    watch.cpus = {0, 1}
    busy_ticks = 0
    for others in (0.0, 0.6, 0.2):   # CPUs other processes held during each 1 s row
        watch.restart()
        busy_ticks += int(others * HZ)
        path.write_text(stat(u0=busy_ticks))
        clocks.wall += 1.0
        assert watch.row_others() == pytest.approx(others, abs=1.5 / HZ)
    assert watch.worst == pytest.approx(0.6, abs=1.5 / HZ)
    lines = watch.footer()
    assert lines[0] == busy.FOOTNOTE and len(lines) == 2 and "busy machine" in lines[1]
    quiet = busy.Watch(str(path), worst=0.0)
    assert quiet.footer() == [busy.FOOTNOTE]


def test_the_warning_thresholds(tmp_path, monkeypatch):
    watch = busy.Watch(str(tmp_path / "missing"))
    assert watch.others() is None
    assert watch.warning(busy.BUSY * 0.9) == ""
    assert "busy machine" in watch.warning(busy.BUSY)
    n = len(watch.cpus)
    watch.load = n   # no /proc/stat: the load average at the start is the hint
    assert "load average" in watch.warning()
    watch.load = 0.0
    assert watch.warning() == ""


@pytest.mark.skipif(not os.path.exists(busy.PROC_STAT), reason="needs Linux's /proc/stat")
def test_a_competing_busy_process_is_seen():
    watch = busy.Watch()
    spin = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"])
    try:
        time.sleep(1.0)
        others = watch.others()   # before waiting for it: its CPU time is not yet this process's own
    finally:
        spin.kill()
        spin.wait()
    assert others >= 0.6, others   # about 1 (more where other work shares the CPUs)
