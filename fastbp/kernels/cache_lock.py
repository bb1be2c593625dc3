"""Numba's disk cache written safely by several processes at once: each save into fastbp's
cache holds a lock on its directory.

Numba keeps one index per compiled function (which file holds the machine code of which
argument types) and saves a new entry by reading the index, picking the first data file name
the index does not use, writing the index back and then the data. Two processes saving entries
of one function at the same time can both read the same index: the second write of the index
drops the first's entry, and both pick the same data file, so the index may name a file that
holds the other entry's code (Numba's own issue 10128 is another race of this kind). fastbp
runs such processes on purpose: the helper of kernels/compile_helper.py beside a first fit,
`fastbp compile` for two dtypes at once, the test suite's workers. Holding an exclusive lock
(flock, released by the system if the process dies) on a file in the function's cache
directory around the whole save makes each save see the ones before it. Loads take no lock:
Numba replaces each file whole, and a load that finds an entry whose data file is not written
yet compiles instead, as Numba does.

Where the system has no flock (Windows), saves are left as Numba makes them.
"""
import contextlib
import os
import threading

from numba.core import caching

try:
    import fcntl
except ImportError:   # (Windows)
    fcntl = None

LOCK_NAME = "index.lock"

_numba_save = caching.IndexDataCacheFile.save
_lock = threading.Lock()
_roots = []


@contextlib.contextmanager
def locked(directory):
    """Hold the lock of the cache directory `directory` (made if missing)."""
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, LOCK_NAME), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # (closing the file releases the lock)


def _save(self, key, data):
    directory = os.path.abspath(self._cache_path)
    if not any(directory == root or directory.startswith(root + os.sep) for root in _roots):
        return _numba_save(self, key, data)   # another library's cache, as Numba keeps it
    with locked(directory):
        return _numba_save(self, key, data)


def apply(root):
    """Lock every save into the cache directory tree `root`; returns whether saves are locked."""
    if fcntl is None:
        return False
    with _lock:
        root = os.path.abspath(root)
        if root not in _roots:
            _roots.append(root)
        caching.IndexDataCacheFile.save = _save
    return True
