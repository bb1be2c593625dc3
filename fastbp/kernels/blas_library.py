"""NumPy's own OpenBLAS, made callable from the compiled kernels.

The largest matrix products of a network (the wide workload's 784 x 1024 and 1024 x 1024
layers at batch 256) run faster through OpenBLAS's sgemm, called from the compiled code one call
per thread on a block of the output, than in the hand-written kernels (scripts/crossover.py
--blas; the README has the figures). dense.py sends products above a measured size to OpenBLAS
and keeps its own kernels for every other shape.

No new dependency: NumPy's wheels bundle OpenBLAS (symbols prefixed `scipy_` and, for 64-bit
indices, suffixed `64_`) and a NumPy built against a system OpenBLAS has it mapped into the
process. This module finds that library, checks its sgemm on a small product, and registers
the gemm and thread-count entry points with LLVM under fixed names (`fastbp_sgemm`, ...), so
the compiled kernels refer to them by name and stay cacheable on disk: each import registers the
current addresses again.

Where no OpenBLAS is found (another BLAS, or FASTBP_BLAS=0 before import), FOUND is False and
the kernels never reach the call: every product runs in the hand-written kernels.
"""
import contextlib
import ctypes
import threading
from pathlib import Path

import numpy as np

from .. import config

# (sgemm, dgemm, set threads, get threads, bits of the index type), most specific first
_VARIANTS = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", "scipy_openblas_set_num_threads64_",
     "scipy_openblas_get_num_threads64_", 64),
    ("scipy_cblas_sgemm", "scipy_cblas_dgemm", "scipy_openblas_set_num_threads",
     "scipy_openblas_get_num_threads", 32),
    ("cblas_sgemm64_", "cblas_dgemm64_", "openblas_set_num_threads64_", "openblas_get_num_threads64_", 64),
    ("cblas_sgemm", "cblas_dgemm", "openblas_set_num_threads", "openblas_get_num_threads", 32),
)
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112   # CBLAS enum values


class Library:
    """A found OpenBLAS: where, its gemm addresses and index width, its thread controls."""

    def __init__(self, path, handle, names):
        sgemm, dgemm, set_threads, get_threads, bits = names
        self.path, self.bits = str(path), bits
        self.sgemm = getattr(handle, sgemm)
        self.dgemm = getattr(handle, dgemm)
        self.set_threads = getattr(handle, set_threads)
        self.set_threads.argtypes, self.set_threads.restype = [ctypes.c_int], None
        self.get_threads = getattr(handle, get_threads)
        self.get_threads.argtypes, self.get_threads.restype = [], ctypes.c_int
        index = ctypes.c_int64 if bits == 64 else ctypes.c_int32
        self.sgemm.restype = None
        self.sgemm.argtypes = [ctypes.c_int] * 3 + [index] * 3 + [ctypes.c_float, ctypes.c_void_p, index,
                                                                  ctypes.c_void_p, index, ctypes.c_float,
                                                                  ctypes.c_void_p, index]

    def describe(self):
        return f"OpenBLAS ({self.bits}-bit indices) at {self.path}"


def _candidates():
    here = Path(np.__file__).parent
    for folder in (here.parent / "numpy.libs", here / ".dylibs"):   # NumPy's wheels
        if folder.is_dir():
            yield from sorted(p for p in folder.iterdir() if "openblas" in p.name.lower())
    maps = Path("/proc/self/maps")                                  # a system OpenBLAS NumPy loaded
    if maps.exists():
        seen = set()
        for line in maps.read_text().splitlines():
            path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
            if "openblas" in path.lower() and path.startswith("/") and path not in seen:
                seen.add(path)
                yield Path(path)


def _works(lib):
    """A 2 x 3 by 3 x 2 product through the found sgemm, against NumPy's."""
    A = np.arange(6, dtype=np.float32).reshape(2, 3)
    B = np.arange(6, dtype=np.float32).reshape(3, 2) - 2
    C = np.full((2, 2), np.nan, dtype=np.float32)
    lib.sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, 2, 2, 3, 1.0, A.ctypes.data, 3, B.ctypes.data, 2, 0.0,
              C.ctypes.data, 2)
    return bool(np.array_equal(C, A @ B))


def find():
    """The OpenBLAS NumPy uses, or None."""
    if not config.BLAS:
        return None
    for path in _candidates():
        try:
            handle = ctypes.CDLL(str(path))
        except OSError:
            continue
        for names in _VARIANTS:
            if all(hasattr(handle, n) for n in names[:4]):
                lib = Library(path, handle, names)
                if _works(lib):
                    return lib
    return None


LIBRARY = find()
FOUND = LIBRARY is not None
BITS = LIBRARY.bits if FOUND else 64
DESCRIPTION = LIBRARY.describe() if FOUND else "none (every product in fastbp's own kernels)"

if FOUND:
    import llvmlite.binding as llvm
    for name, fn in (("fastbp_sgemm", LIBRARY.sgemm), ("fastbp_dgemm", LIBRARY.dgemm),
                     ("fastbp_blas_set_threads", LIBRARY.set_threads),
                     ("fastbp_blas_get_threads", LIBRARY.get_threads)):
        llvm.add_symbol(name, ctypes.cast(fn, ctypes.c_void_p).value)


_lock = threading.Lock()
_holders = 0
_saved = 1


@contextlib.contextmanager
def one_thread():
    """OpenBLAS on one thread for the length of a driver call.

    The kernels call OpenBLAS from each of Numba's threads at once, each on its own block of
    the output; were OpenBLAS to start its own threads too, the two pools would fight over the
    cores, and a small product waits milliseconds for threads it does not need.
    gemm_blas holds OpenBLAS to one thread around each call by itself; this holds it for a whole
    driver call, so that the kernels find it set. OpenBLAS's setting is process-wide (its
    per-thread setting is not, in NumPy's build): concurrent fits share one save and restore,
    and NumPy's BLAS calls elsewhere in the process run on one thread meanwhile."""
    global _holders, _saved
    if not FOUND:
        yield
        return
    with _lock:
        if _holders == 0:
            _saved = LIBRARY.get_threads()
            LIBRARY.set_threads(1)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                LIBRARY.set_threads(_saved)
