"""Whole fits of the WORKLOADS.md workloads, per backend and dtype.

Compilation happens in setup (an untimed one-epoch fit), never in the timed code.
"""
from fastbp.workloads import WORKLOADS


class Fit:
    params = (list(WORKLOADS), ["numpy", "cpu"], ["float32", "float64"])
    param_names = ["workload", "backend", "dtype"]
    timeout = 300
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self, name, backend, dtype):
        self.w = WORKLOADS[name]
        self.X, self.y = self.w.data(dtype)
        self.w.network(backend, dtype).fit(self.X, self.y, **dict(self.w.fit_args(), epochs=1))
        self.net = self.w.network(backend, dtype)

    def time_fit(self, name, backend, dtype):
        self.net.fit(self.X, self.y, **self.w.fit_args())

    def peakmem_fit(self, name, backend, dtype):
        self.net.fit(self.X, self.y, **self.w.fit_args())
