"""Thread helpers every kernel shares: how many threads a parallel region has, and how to cut an
axis into parts that no two threads share a cache line of."""
import os

import llvmlite.ir as lir
import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.ufunc import parallel as numba_parallel

from ... import config, cpus
from ..compile import serial, twin_is

# One thread per CPU this process may use (its affinity mask, its cgroup's quota), not per core
# of the machine, which is Numba's default; NUMBA_NUM_THREADS set by the user wins.
USABLE = cpus.usable()   # (CPUs, why): what sized the pool; fastbp info shows it
if "NUMBA_NUM_THREADS" not in os.environ and USABLE[0] < numba.config.NUMBA_NUM_THREADS:
    if not numba_parallel._is_initialized:
        numba.config.NUMBA_NUM_THREADS = USABLE[0]   # the pool starts with that many
    else:   # someone started the pool first: use fewer of its threads
        numba.set_num_threads(USABLE[0])

# libgomp (Numba's OpenMP layer on Linux) reads its spin count when it loads, as the pool starts
# below: a thread that waits at a region's end spins that many times before it sleeps. Its default
# (300,000, milliseconds of spinning) keeps a waiting thread on a core that, on a busy machine, the
# thread it waits for needs; config.OMP_SPINCOUNT spins long enough for the gaps between a quiet
# step's regions. GOMP_SPINCOUNT or OMP_WAIT_POLICY set by the user wins.
if config.OMP_SPINCOUNT and not {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & set(os.environ):
    os.environ["GOMP_SPINCOUNT"] = str(config.OMP_SPINCOUNT)

# Start Numba's thread pool now (milliseconds), which registers the entry point _numba_threads
# calls: code loaded from the disk cache does not start it before it runs (a serial driver that
# called a threaded kernel crashed on an unresolved entry point).
numba_parallel._launch_threads()


@intrinsic
def _numba_threads(typingctx):
    """Numba's current thread count, read through its thread pool's C entry point (so that the
    kernel stays cacheable: numba.get_num_threads() in compiled code is not)."""
    numba_parallel._launch_threads()

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, lir.FunctionType(cgutils.intp_t, []),
                                            "get_num_threads")
        return builder.call(fn, [])
    return types.intp(), codegen


@intrinsic
def _set_numba_threads(typingctx, n):
    """Numba's set_num_threads(n) for the calling thread's later parallel regions, through the
    same C entry points (numba.set_num_threads in compiled code is not cacheable either). Both are
    declared with intp as Numba's own parallel lowering declares them: one module may hold both
    declarations."""
    numba_parallel._launch_threads()

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, lir.FunctionType(lir.VoidType(), [cgutils.intp_t]),
                                            "set_num_threads")
        builder.call(fn, [args[0]])
        return context.get_dummy_value()
    return types.void(types.intp), codegen


@serial
def _one():
    return 1


@twin_is(_one)
@serial
def thread_count():
    """Numba's thread count; 1 in the single-threaded twins (which must not start the pool)."""
    return _numba_threads()


@serial
def thread_share(n, k, threads):
    """(start, stop) of thread k's part of range(n) in `threads` contiguous near-equal parts, as
    prange over range(n) would cut it, in int64 whatever integer k is: a prange index is signed
    where Numba types the kernel and unsigned in the loop body's own function, and a callee
    given either would be compiled for each (compile.kernel)."""
    k = np.int64(k)
    return n * k // threads, n * (k + 1) // threads


@serial
def even_part(n, k, parts):
    """Part k of `parts` near-equal parts of range(n), cut at multiples of 16 (elements: 64 bytes
    of float32, so that parts written by different threads share no cache line; rows of W: whole
    transpose blocks)."""
    blocks = (n + 15) // 16
    return min(n, blocks * k // parts * 16), min(n, blocks * (k + 1) // parts * 16)


@serial
def _keep(n):
    pass


@twin_is(_keep)
@serial
def set_thread_count(n):
    """Run the calling thread's later parallel regions on n threads (1 <= n <= the pool's size);
    nothing in the single-threaded twins."""
    _set_numba_threads(n)
