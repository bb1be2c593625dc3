"""Every kernel over a few shapes: numpy reference, parallel cpu kernel, single-threaded twin.

The cases are fastbp.bench's, the same that `python -m fastbp bench` prints. Compilation
happens in setup (one untimed call), never in the timed code.
"""
import numpy as np

from fastbp import bench

SHAPES = ["16x32x64", "64x256x256", "256x784x1024"]
KERNELS = [name for name, *_ in bench._cases(2, 2, 2, np.dtype("float32"))]


class Kernel:
    params = (KERNELS, SHAPES, ["numpy", "cpu", "cpu-1thread"], ["float32", "float64"])
    param_names = ["kernel", "shape", "backend", "dtype"]
    timeout = 120

    def setup(self, kernel, shape, backend, dtype):
        B, n_in, n_out = (int(x) for x in shape.split("x"))
        cases = {name: (np_fn, k_fn) for name, _, np_fn, k_fn in bench._cases(B, n_in, n_out, np.dtype(dtype))}
        np_fn, k_fn = cases[kernel]
        modules = bench.kernel_modules(one_thread=backend == "cpu-1thread")
        self.fn = np_fn if backend == "numpy" else (lambda: k_fn(modules))
        self.fn()

    def time_kernel(self, kernel, shape, backend, dtype):
        self.fn()
