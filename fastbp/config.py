"""Every knob of the compiled kernels, in one place; kernels never hard-code them.

FASTMATH: LLVM flags for the kernels. "reassoc" lets LLVM vectorize reductions (dot products);
"contract" allows fused multiply-add. We leave out "nnan"/"ninf" so NaN and infinity checks stay
meaningful. Set the environment variable FASTBP_FASTMATH=0 before import for strict IEEE order.
CACHE: keep compiled kernels on disk (numba's cache=True) so a new process does not recompile.
CACHE_DIR: where. Numba invalidates a cached function only when its own file changes, yet a
driver inlines kernels from other files; so the directory is named by a hash of every source
the kernels depend on, and an edit anywhere starts a fresh cache. FASTBP_CACHE_DIR overrides
the parent directory (default: NUMBA_CACHE_DIR if set, else ~/.cache/fastbp).
EVAL_CHUNK: rows per block when predicting or scoring, bounding the scratch memory.
REDUCE_CHUNKS: how many partial sums a long reduction (penalty, gradient norm) is split into.
PARALLEL_MIN_FLOP: a training batch (or evaluation block) of fewer floating-point operations runs
on one thread, through the single-threaded twins of the kernels (measured crossover, see
scripts/crossover.py); FASTBP_PARALLEL_MIN_FLOP overrides it.
"""
import contextlib
import hashlib
import os
import types
from pathlib import Path

import numba
from numba import njit

from .kernels import blas_library

FASTMATH = (set() if os.environ.get("FASTBP_FASTMATH", "1") == "0"
            else {"reassoc", "contract", "arcp", "nsz"})
CACHE = os.environ.get("FASTBP_CACHE", "1") != "0"
# Division by zero gives inf or NaN (NumPy's rule) rather than raising (Python's): the check
# Python's rule puts before every division keeps a loop from vectorising (Adam's update on one
# thread: 12.5 against 3.2 us for 6,400 parameters). Non-finite results are caught where they
# matter: the fit stops on a non-finite loss or weight.
ERROR_MODEL = "numpy"
EVAL_CHUNK = 1024
REDUCE_CHUNKS = 64   # fixed chunks for long sums: thread-count-independent, no allocation
# a multi-threaded training step cuts gemm_tiled layers by W's rows (dense.split_by_inputs);
# FASTBP_SPLIT_INPUTS=0 cuts them by batch rows, as inference does
SPLIT_INPUTS = os.environ.get("FASTBP_SPLIT_INPUTS", "1") != "0"
SPLIT_MIN_WEIGHTS = 32 * 1024   # gains from 192 x 192 (1.09x), none at 128 x 128 (--split)
# dense.forward_path / backward_path choose a layer's kernels by these (scripts/crossover.py):
SERIAL_MACS = 512 * 1024   # narrow backward passes of fewer multiply-adds: one thread (dense._serial_layer)
GEMM_NARROW = 16          # gemm_nt forward from 8 rows for layers of fewer outputs than this
GEMM_MIN_WEIGHTS = 64     # the naive loops below this many weights
GEMM_PANEL_BYTES = 512 * 1024   # gemm_nt's B panel, and the most weights gemm_tiled takes:
                                # L2-resident (2 MB per core here)


def _vector_bytes():
    # AVX-512's 64-byte vectors where the CPU Numba compiles for has them, else AVX2's 32 (LLVM
    # splits them further on narrower targets: correct, slower). FASTBP_VECTOR_BYTES overrides.
    import llvmlite.binding as ll
    if os.environ.get("FASTBP_VECTOR_BYTES"):
        return int(os.environ["FASTBP_VECTOR_BYTES"])
    features = numba.config.CPU_FEATURES or ll.get_host_cpu_features().flatten()
    return 64 if "+avx512f" in features.split(",") else 32


# gemm_tiled's micro-tile (kernels/cpu/tiles.py): TILE_ROWS rows x TILE_VECTORS vectors of C
# in registers, TILE_ROWS * TILE_VECTORS accumulators of the 32 vector registers AVX-512 has
# (of 16 with AVX2). 8 x 2 zmm measured 143 GFLOP/s on one core at 16 x 64 x 64 against 130 for
# 6 x 2 and 111 for 4 x 1.
VECTOR_BYTES = _vector_bytes()
TILE_ROWS = 8 if VECTOR_BYTES >= 64 else 6
TILE_VECTORS = 2
# OpenBLAS (NumPy's own, see kernels/blas_library.py) for the products of a dense layer whose
# weights outgrow GEMM_PANEL_BYTES, from this many multiply-adds (batch rows x n_in x n_out);
# each thread calls it on a block of at least BLAS_ROWS rows or columns.
# FASTBP_BLAS=0 before import keeps every product in the hand-written kernels.
BLAS = blas_library.FOUND
BLAS_MIN_MACS = 2 ** 22
BLAS_ROWS = 16
PARALLEL_MIN_FLOP = int(os.environ.get("FASTBP_PARALLEL_MIN_FLOP", 20_000_000))
# CUDA launch geometry. The simulator runs every GPU thread as a Python thread: tests shrink
# the blocks (FASTBP_CUDA_TILE=4, FASTBP_CUDA_BLOCK=32) so that partial tiles and several blocks
# stay cheap to cover.
CUDA_TILE = int(os.environ.get("FASTBP_CUDA_TILE", 16))     # GEMM tiles: CUDA_TILE^2 threads
CUDA_BLOCK = int(os.environ.get("FASTBP_CUDA_BLOCK", 256))  # threads per 1-D block


def _source_hash():
    # everything compiled code depends on: the kernel sources, the modules whose constants they
    # import (spec.py's codes, optim.py's slots, this file), the fastmath flags, numba's version,
    pkg = Path(__file__).parent
    # whether, with which index width, OpenBLAS is called, the vector width of the tiles, and
    # whether training steps split layers by inputs
    h = hashlib.sha1((numba.__version__ + repr(sorted(FASTMATH)) + repr((BLAS, blas_library.BITS, VECTOR_BYTES, SPLIT_INPUTS))).encode())
    for f in sorted([pkg / "config.py", pkg / "spec.py", pkg / "optim.py", *(pkg / "kernels").rglob("*.py")]):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


_parent = (os.environ.get("FASTBP_CACHE_DIR") or numba.config.CACHE_DIR
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


# Every compiled function, in definition order: (dispatcher, python function, options).
_REGISTRY = []
_ONE_THREAD = {}


def _compile(fn, parallel, **options):
    with _cache_dir():
        dispatcher = njit(parallel=parallel, cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL,
                          **options)(fn)
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
    loops can lose their vectorisation: gemm_nt's tiles ran 40 us against 6)."""
    return _compile(fn, False)


def twin_is(replacement):
    """Give a compiled function a hand-written single-threaded twin (instead of a clone of it)."""
    def register(dispatcher):
        _ONE_THREAD[dispatcher] = replacement
        return dispatcher
    return register


# A module may define THREADED = True: its twins see False. Numba prunes a branch on such a
# constant before it compiles anything the branch calls, so the twins skip code only threads use
# (driver.py's split by inputs: the first compile of a single-threaded fit, 27.5 against 22.6 s).
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
        with _cache_dir():
            _ONE_THREAD[dispatcher] = njit(parallel=False, cache=CACHE, fastmath=FASTMATH,
                                           error_model=ERROR_MODEL,
                                           **options)(clone)
    for original, twin_globals in _TWIN_GLOBALS.values():
        twin_globals.update({k: _ONE_THREAD.get(v, v) if isinstance(v, CPUDispatcher) else v
                             for k, v in original.items()})
        if "THREADED" in original:   # see THREADED
            twin_globals["THREADED"] = False
