"""Whole fits of the WORKLOADS.md workloads, per backend and dtype, plain SGD and with the
training features (Adam, dropout 0.2, batch norm). Compilation happens in setup (an untimed
one-epoch fit), never in the timed code."""
from fastbp import peers, workloads
from fastbp.workloads import WORKLOADS

FEATURES = ["sgd", "adam+dropout+bn"]


class Fit:
    params = (list(WORKLOADS), ["numpy", "cpu"], ["float32", "float64"], FEATURES)
    param_names = ["workload", "backend", "dtype", "features"]
    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self, name, backend, dtype, features):
        self.w = WORKLOADS[name]
        self.features = features != "sgd"
        if self.w.sparse and backend == "numpy" and self.features:
            # NumPy's Adam over the text network's 12.8 million weights, 626 steps: minutes a fit
            raise NotImplementedError("too slow to time")
        self.X, self.y = self.w.data(dtype)
        self.fit = self.w.fit_args(self.features)
        self.w.network(backend, dtype, features=self.features).fit(self.X, self.y, **dict(self.fit, epochs=1))
        self.net = self.w.network(backend, dtype, features=self.features)

    def time_fit(self, name, backend, dtype, features):
        self.net.fit(self.X, self.y, **self.fit)

    def peakmem_fit(self, name, backend, dtype, features):
        self.net.fit(self.X, self.y, **self.fit)


class Speedup:
    """numpy time / cpu time, both measured here in one process (minimum of 3 warm fits)."""
    params = (list(WORKLOADS), ["float32", "float64"], FEATURES)
    param_names = ["workload", "dtype", "features"]
    timeout = 900
    unit = "x"

    def track_speedup(self, name, dtype, features):
        w, f = WORKLOADS[name], features != "sgd"
        return workloads.time_fit(w, "numpy", dtype, 3, f) / workloads.time_fit(w, "cpu", dtype, 3, f)


class AgainstLean:
    """Ratios against the lean NumPy loop a user would write for the same fit (fastbp.peers:
    same initial weights, same epoch orders), each measured here in one process, minimum of at
    least 3 warm fits and 0.5 s of them (peers.time_peer says why): the numpy backend's time
    over the lean loop's (the baseline's honesty, goal at most 1.2) and the lean loop's over
    fastbp cpu's (the speed-up a user sees)."""
    params = ([n for n, w in WORKLOADS.items() if not w.sparse], ["float32", "float64"])
    param_names = ["workload", "dtype"]
    timeout = 900
    unit = "x"
    least = 0.5   # seconds of timed fits per peer, at least

    def setup(self, name, dtype):
        self.problem = peers.problem(WORKLOADS[name], dtype)

    def _time(self, peer):
        return peers.time_peer(peer, self.problem, 3, self.least)[0]

    def track_numpy_over_lean(self, name, dtype):
        return self._time(peers.Fastbp("numpy")) / self._time(peers.Lean())

    def track_lean_over_cpu(self, name, dtype):
        return self._time(peers.Lean()) / self._time(peers.Fastbp("cpu"))
