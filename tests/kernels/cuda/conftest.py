"""The CUDA kernel tests run where a GPU is, or under Numba's CUDA simulator: tests/test_cuda.py
runs this folder with NUMBA_ENABLE_CUDASIM=1, 4x4 tiles and 32-thread blocks, so that tiny shapes
still leave partial tiles and need more than one block. Elsewhere nothing here is collected."""
import os
import sys
import threading

import numpy as np


def _speed_up_the_simulator():
    """The simulator runs each CUDA thread of a block as a Python thread, and a thread waiting at
    a barrier (cuda.syncthreads) gets the interpreter back only when the running one is made to
    yield it: at Python's thread switch interval, 5 ms by default, which made every tiled GEMM
    launch take a good part of a second. A 0.1 ms interval takes the simulated tests from about
    36 s to 9 s.

    Switching that often exposes a race in the simulator itself (numba-cuda 0.30): its
    cuda.shared.array looks the block's array up by the calling line and creates it when absent,
    unlocked, so two threads of one block could each create one and work on different "shared"
    tiles (tests/kernels/cuda/test_driver.py failed about 1 run in 4). The lookup and creation
    are made one step here, under a lock; the key and the arrays are the simulator's own."""
    from numba.core import types
    from numba.np import numpy_support
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    unlocked = FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:   # dynamic shared memory, or the simulator's refusal
            return unlocked(self, shape, dtype, alignment)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)   # as the simulator keys it
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        with lock:
            found = self._allocations.get(key)
            if found is None:
                found = self._allocations[key] = np.empty(shape, dtype)
        return found

    FakeCUDAShared.array = array
    sys.setswitchinterval(1e-4)


try:
    from numba import cuda
    _usable = cuda.is_available()
except ImportError:
    _usable = False


if not _usable:
    collect_ignore_glob = ["test_*.py"]
elif os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    _speed_up_the_simulator()
