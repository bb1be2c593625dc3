"""How fastbp's kernels are compiled: the decorators, the disk cache, the single-threaded twins.

The settings these read (fastmath flags, error model, caching on or off, where the cache lives)
are in fastbp/config.py; this module is the machinery.

CACHE_DIR: Numba invalidates a cached function only when its own file changes, yet a driver
inlines kernels from other files; so the directory is named by a hash of every source the
kernels depend on, and an edit anywhere starts a fresh cache.
"""
import contextlib
import hashlib
import os
import types
from pathlib import Path

import numba
from numba import njit

from .. import config
from . import blas_library


def _source_hash():
    # everything compiled code depends on: the kernel sources (this package, compile machinery
    # included), the modules whose constants they import (spec.py's codes, optim.py's slots,
    # config.py), the fastmath flags, numba's version, whether and with which index width
    # OpenBLAS is called, the vector width of the tiles, and whether training steps split layers
    # by inputs
    pkg = Path(__file__).parent.parent
    h = hashlib.sha1((numba.__version__ + repr(sorted(config.FASTMATH))
                      + repr((blas_library.FOUND, blas_library.BITS, config.VECTOR_BYTES,
                              config.SPLIT_INPUTS))).encode())
    for f in sorted([pkg / "config.py", pkg / "spec.py", pkg / "optim.py", *(pkg / "kernels").rglob("*.py")]):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


_parent = (config.CACHE_PARENT or numba.config.CACHE_DIR
           or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "fastbp"))
CACHE_DIR = os.path.join(_parent, "kernels-" + _source_hash())


@contextlib.contextmanager
def _cache_dir():
    # numba picks a function's cache location when it is decorated: point it at CACHE_DIR
    # for fastbp's kernels only, leaving other libraries' caching as it was
    old = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = CACHE_DIR
    try:
        yield
    finally:
        numba.config.CACHE_DIR = old


def _jit(fn, parallel, **options):
    with _cache_dir():
        return njit(parallel=parallel, cache=config.CACHE, fastmath=config.FASTMATH,
                    error_model=config.ERROR_MODEL, **options)(fn)


# Every compiled function, in definition order: (dispatcher, python function, options).
_REGISTRY = []
_ONE_THREAD = {}


def _compile(fn, parallel, **options):
    dispatcher = _jit(fn, parallel, **options)
    _REGISTRY.append((dispatcher, fn, options))
    return dispatcher


def kernel(fn):
    """Compile a loop kernel whose `prange` loops run on Numba's thread pool."""
    return _compile(fn, True)


def serial(fn):
    """Compile glue that runs on one thread (drivers that call kernels, small helpers)."""
    return _compile(fn, False, inline="always")


def serial_kernel(fn):
    """Compile a loop kernel that runs on the calling thread, as a function of its own: unlike
    `serial` glue it is not inlined into its callers (inlined into a whole training step, tight
    loops can lose their vectorisation)."""
    return _compile(fn, False)


def twin_is(replacement):
    """Give a compiled function a hand-written single-threaded twin (instead of a clone of it)."""
    def register(dispatcher):
        _ONE_THREAD[dispatcher] = replacement
        return dispatcher
    return register


# A module may import THREADED (True): its twins see False. Numba prunes a branch on such a
# constant before it compiles anything the branch calls, so the twins skip code only threads use
# (driver.py's split by inputs), which shortens the first compile of a single-threaded fit.
THREADED = True


def one_thread(dispatcher):
    """The single-threaded twin of a compiled function, from the same source: its `prange`
    loops run as plain loops and everything it calls is such a twin too. Parallel regions cost
    microseconds to start, which dominates small layers and batches (see PARALLEL_MIN_FLOP)."""
    if dispatcher not in _ONE_THREAD:
        _make_twins()
    return _ONE_THREAD[dispatcher]


_TWIN_GLOBALS = {}   # id(module globals) -> (module globals, the twins' copy of them)


def _make_twins():
    # Clone each function with a copy of its module's globals in which every compiled
    # function is replaced by its twin; numba resolves those names when it first compiles.
    from numba.core.registry import CPUDispatcher
    for dispatcher, fn, options in _REGISTRY:
        if dispatcher in _ONE_THREAD:
            continue
        _, twin_globals = _TWIN_GLOBALS.setdefault(id(fn.__globals__), (fn.__globals__, {}))
        clone = types.FunctionType(fn.__code__, twin_globals, fn.__name__, fn.__defaults__,
                                   fn.__closure__)
        clone.__qualname__ = fn.__qualname__ + "__one_thread"   # its own cache entry
        clone.__module__ = fn.__module__
        _ONE_THREAD[dispatcher] = _jit(clone, False, **options)
    for original, twin_globals in _TWIN_GLOBALS.values():
        twin_globals.update({k: _ONE_THREAD.get(v, v) if isinstance(v, CPUDispatcher) else v
                             for k, v in original.items()})
        if "THREADED" in original:   # see THREADED
            twin_globals["THREADED"] = False
