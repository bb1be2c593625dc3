"""fastbp/kernels/cache_lock.py: two processes saving entries of one function into Numba's disk
cache at once keep every entry, each naming its own data (Numba's own saves, unlocked, lost
172 of 400 entries and named the wrong data for 26 in the same race)."""
import subprocess
import sys

import pytest
from numba.core import caching

from fastbp.kernels import cache_lock

# saves `n` entries of one function's index in `directory`, once the other writer is ready too
WRITER = r"""
import os, sys, time
from numba.core import caching
from fastbp.kernels import cache_lock
directory, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cache_lock.apply(directory)
index = caching.IndexDataCacheFile(directory, "kernel", "stamp")
open(os.path.join(directory, "ready-" + who), "w").close()
deadline = time.time() + 60
while len([f for f in os.listdir(directory) if f.startswith("ready-")]) < 2 and time.time() < deadline:
    pass
for i in range(n):
    index.save((who, i), f"{who}{i}")
"""

pytestmark = pytest.mark.skipif(cache_lock.fcntl is None, reason="no flock on this system")


def test_two_processes_saving_one_functions_entries_at_once_keep_them_all(tmp_path):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), who, "200"]) for who in "ab"]
    assert all(w.wait(timeout=300) == 0 for w in writers)
    index = caching.IndexDataCacheFile(str(tmp_path), "kernel", "stamp")
    entries = index._load_index()
    assert sorted(entries) == sorted((who, i) for who in "ab" for i in range(200))
    assert all(index._load_data(name) == f"{who}{i}" for (who, i), name in entries.items())


def test_saves_outside_fastbps_cache_are_left_to_numba(tmp_path, monkeypatch):
    taken = []
    monkeypatch.setattr(cache_lock, "locked", lambda d: taken.append(d) or _nothing())
    cache_lock.apply(str(tmp_path / "ours"))
    for d in ("theirs", "ours/fastbp"):
        (tmp_path / d).mkdir(parents=True)
    caching.IndexDataCacheFile(str(tmp_path / "theirs"), "f", "s").save(("k",), "v")
    caching.IndexDataCacheFile(str(tmp_path / "ours" / "fastbp"), "f", "s").save(("k",), "v")
    assert taken == [str(tmp_path / "ours" / "fastbp")]


def _nothing():
    import contextlib
    return contextlib.nullcontext()
