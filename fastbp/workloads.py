"""The benchmark workloads of WORKLOADS.md, shared by scripts/, asv_bench/ and the CLI.

Each is a network, its data and its fit arguments. Data are made from a fixed seed (standard-
normal features, labels = argmax of the features times a fixed random matrix), so every backend
trains on the same problem. "digits" trains on the bundled UCI digits (1,797 x 64, 10 classes).
"text" is the sparse workload: bag-of-words rows (datasets.make_bag_of_words, a scipy CSR matrix)
in 20 topics.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass


from . import datasets
from .network import Network


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple
    hidden: str
    batch_size: int
    n_samples: int
    epochs: int
    nnz_per_row: int = 0   # sparse X with about this many non-zeros per row; 0: dense X

    @property
    def sparse(self):
        return self.nnz_per_row > 0

    def data(self, dtype="float32"):
        if self.name == "seed":
            X, y = datasets.seed_example()
            return X.astype(dtype), y
        if self.name == "digits":
            return datasets.load_digits(dtype)
        if self.sparse:
            return datasets.make_bag_of_words(self.n_samples, self.sizes[0], self.nnz_per_row,
                                              n_classes=self.sizes[-1], seed=0, dtype=dtype)
        return datasets.make_synthetic(self.n_samples, self.sizes[0], max(self.sizes[-1], 1),
                                       seed=0, dtype=dtype)

    def network(self, backend, dtype="float32", seed=0, features=False):
        """features: the issue-3 set switched on (dropout 0.2 and batch norm on every hidden
        layer), to measure what they cost."""
        output = "sigmoid" if self.sizes[-1] == 1 else "softmax"
        extra = dict(dropout=0.2, batch_norm=True) if features else {}
        return Network(list(self.sizes), hidden=self.hidden, output=output, dtype=dtype,
                       seed=seed, backend=backend, **extra)

    def fit_args(self, features=False):
        """Plain SGD at lr 0.1, or with features, Adam at lr 0.001."""
        return dict(epochs=self.epochs, batch_size=self.batch_size, shuffle=True,
                    optimizer="adam" if features else "sgd", lr=0.001 if features else 0.1)

    @property
    def gflop(self):
        """6 x samples x epochs x weights: forward plus both halves of backward (a sparse first
        layer counts the weights its non-zeros select)."""
        weights = sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        if self.sparse:
            weights += (self.nnz_per_row - self.sizes[0]) * self.sizes[1]
        return 6 * self.n_samples * self.epochs * weights / 1e9


WORKLOADS = {w.name: w for w in [
    Workload("seed", (2, 4, 1), "sigmoid", 4, 4, 1000),
    Workload("tabular", (32, 64, 64, 2), "relu", 16, 20_000, 5),
    Workload("digits", (64, 128, 10), "relu", 32, 1_797, 20),
    Workload("mid", (256, 256, 256, 10), "relu", 64, 20_000, 3),
    Workload("wide", (784, 1024, 1024, 10), "relu", 256, 20_000, 1),
    Workload("text", (50_000, 256, 20), "relu", 64, 20_000, 2, nnz_per_row=150),
]}


MAX_FITS = 1000   # the most fits `fastest` times, however short


def fastest(fit, repeats=3, least=0.0, most=MAX_FITS):
    """The least of the seconds `fit()` returns (one timed fit each, its untimed set-up its own):
    at least `repeats` calls, and more, up to `most`, until they add up to `least` seconds. A
    fit of a millisecond is mostly Python, which the first few calls of an interpreter run
    slower (Python 3.11 specialises bytecode after some calls), so three such fits time the
    warm-up, not the fit; a fit of a second or more needs no more than `repeats`."""
    best, spent, fits = float("inf"), 0.0, 0
    while fits < repeats or (spent < least and fits < most):
        took = fit()
        best, spent, fits = min(best, took), spent + took, fits + 1
    return best


def time_fit(workload, backend, dtype="float32", repeats=3, features=False, least=0.0, most=MAX_FITS):
    """Minimum wall time of whole fits (`fastest`'s count), after one untimed fit that compiles."""
    X, y = workload.data(dtype)
    fit = workload.fit_args(features)
    workload.network(backend, dtype, features=features).fit(X, y, **dict(fit, epochs=1))

    def one():
        net = workload.network(backend, dtype, features=features)
        t0 = time.perf_counter()
        net.fit(X, y, **fit)
        return time.perf_counter() - t0
    return fastest(one, repeats, least, most)


def _status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def fit_peak_memory(workload, backend, dtype="float32", features=False):
    """(process peak, fit's peak, fit's allocations) in MB, for a fit in this process: the
    process's resident high-water mark at the end; how far the fit raised it above the resident
    memory it started from, with the data in place and the kernels loaded (by a one-epoch fit
    of two batches, whose memory is released first); and the peak of the NumPy and Python
    allocations the fit made (tracemalloc, which sees no allocator reuse). Call it in a fresh
    process per backend. Linux only (the high-water mark is reset through /proc/self/clear_refs);
    None elsewhere."""
    import gc
    import tracemalloc
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    X, y = workload.data(dtype)
    fit = workload.fit_args(features)
    rows = min(X.shape[0], 2 * workload.batch_size)
    workload.network(backend, dtype, features=features).fit(X[:rows], y[:rows], **dict(fit, epochs=1))
    net = workload.network(backend, dtype, features=features)
    gc.collect()
    before = _status_mb("VmHWM")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")   # VmHWM := VmRSS
    start = _status_mb("VmRSS")
    tracemalloc.start()
    net.fit(X, y, **fit)
    allocated = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    peak = _status_mb("VmHWM")
    return max(before, peak), peak - start, allocated
