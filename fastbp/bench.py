"""Kernel comparison: each kernel's time and GFLOP/s on the numpy reference, the parallel cpu
kernel and its single-threaded twin, side by side in one run, with the machine's GEMM GFLOP/s
(NumPy's BLAS on a 2048-cube, in each dtype) measured in the same run as the limit line.

The limit is measured first, before any kernel runs, as scripts/workloads.py does, with how
many CPUs other processes held meanwhile beside it: a limit measured while the machine was
busy reads low (single-thread kernels then seem to beat it), and the line says so.

Used by scripts/compare_kernels.py and `python -m fastbp bench`.
"""
from __future__ import annotations

import json
import time

import numpy as np

DEFAULT_SHAPES = "32x64x64,64x256x256,256x784x1024"


def best_time(fn, min_seconds=0.05, repeats=5):
    """Seconds per call: the minimum over `repeats` runs of enough calls to fill min_seconds."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_seconds / once))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def sgemm_gflops(n=2048, dtype=np.float32):
    """NumPy's BLAS GEMM speed on an n-cube of `dtype`: the practical limit of the machine.
    Call it before any of fastbp's parallel kernels run in the process (see the module's note)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    b = a.T.copy()
    return 2 * n ** 3 / best_time(lambda: a @ b, 0.2, 3) / 1e9


def limits(dtypes):
    """{dtype name: (GEMM GFLOP/s, CPUs other processes held meanwhile or None)}, each measured
    by sgemm_gflops."""
    from .busy import Watch
    out = {}
    for d in dtypes:
        watch = Watch()
        out[np.dtype(d).name] = (sgemm_gflops(dtype=np.dtype(d)), watch.others())
    return out


def _cases(B, n_in, n_out, dtype):
    """(name, flop, numpy callable, kernel callable taking the driver module) per kernel."""
    import numba
    from . import aligned, reference as ref
    from .kernels import blas_library
    from .optim import Adam
    from .spec import ACTIVATIONS, LOSSES
    rng = np.random.default_rng(0)
    # on cache lines, as fastbp allocates its own buffers (NumPy's 16-byte alignment would
    # make the times depend on where each array happened to land)
    f = lambda *s: aligned.on_line(rng.standard_normal(s).astype(dtype))
    A, W, b, dZ = f(B, n_in), f(n_in, n_out), f(n_out), f(B, n_out)
    Z, dA, dW, db = f(B, n_out), aligned.zeros((B, n_in), dtype), aligned.zeros(W.shape, dtype), aligned.zeros(n_out, dtype)
    Aout = ref.activation_forward("softmax", Z, 0.0, n_out)   # a valid output for every case
    Y = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, B)]
    SW = np.ones(B, dtype=dtype)
    rows = np.empty(B, dtype=dtype)
    ce, soft = LOSSES["cross_entropy"][0], ACTIVATIONS["softmax"][0]
    P = W.size
    opt = Adam()
    opt.bind(P, dtype)
    flat, gflat = W.reshape(-1).copy(), f(P)
    Wt, At, dZt = aligned.zeros((n_out, n_in), dtype), aligned.zeros((n_in, B), dtype), aligned.zeros((n_out, B), dtype)
    Zpart = aligned.zeros((numba.get_num_threads() - 1) * B * n_out, dtype)
    cases = [
        ("dense_forward", 2 * B * n_in * n_out, lambda: ref.dense_forward(A, W, b),
         lambda k: k["dense"].dense_forward(Z, A, W, b, Wt)),
        ("dense_backward", 4 * B * n_in * n_out, lambda: ref.dense_backward(dZ, A, W),
         lambda k: k["dense"].dense_backward(dA, dW, db, dZ, A, W, True, Wt, At, dZt)),
        ("dense_forward_naive", 2 * B * n_in * n_out, lambda: ref.dense_forward(A, W, b),
         lambda k: k["dense"].dense_forward_naive(Z, A, W, b)),
        ("dense_backward_naive", 4 * B * n_in * n_out, lambda: ref.dense_backward(dZ, A, W),
         lambda k: k["dense"].dense_backward_naive(dA, dW, db, dZ, A, W, True)),
        # the register-tiled path on every shape, whatever the dispatch would pick
        ("dense_forward_tiled", 2 * B * n_in * n_out, lambda: ref.dense_forward(A, W, b),
         lambda k: k["dense"].dense_forward_tiled(Z, A, W, b)),
        ("dense_backward_tiled", 4 * B * n_in * n_out, lambda: ref.dense_backward(dZ, A, W),
         lambda k: k["dense"].dense_backward_tiled(dA, dW, db, dZ, A, W, True, Wt)),
        # a multi-threaded training step's cut by W's rows (dense.split_by_inputs)
        ("dense_forward_split", 2 * B * n_in * n_out, lambda: ref.dense_forward(A, W, b),
         lambda k: (k["dense"].dense_forward_split(Z, A, W, b, Zpart), k["dense"].add_partials(Z, Zpart, Z, 0, 0.0, False))),
        ("dense_backward_split", 4 * B * n_in * n_out, lambda: ref.dense_backward(dZ, A, W),
         lambda k: k["dense"].dense_backward_split(dA, dW, db, dZ, A, W, True, Wt)),
    ]
    if blas_library.FOUND:   # the OpenBLAS path on every shape, whatever the dispatch would pick
        cases += [
            ("dense_forward_blas", 2 * B * n_in * n_out, lambda: ref.dense_forward(A, W, b),
             lambda k: k["dense"].dense_forward_blas(Z, A, W, b)),
            ("dense_backward_blas", 4 * B * n_in * n_out, lambda: ref.dense_backward(dZ, A, W),
             lambda k: k["dense"].dense_backward_blas(dA, dW, db, dZ, A, W, True)),
        ]
    for name in ("relu", "sigmoid", "tanh"):
        code = ACTIVATIONS[name][0]
        cases.append((f"{name}_forward", B * n_out, lambda n=name: ref.activation_forward(n, Z, 0.0, n_out),
                      lambda k, c=code: k["act"].activation_forward(Aout, Z, c, 0.0)))
        cases.append((f"{name}_backward", B * n_out,
                      lambda n=name: ref.activation_backward(n, dZ, Z, Aout, 0.0, n_out),
                      lambda k, c=code: k["act"].activation_backward(dZ, Aout, Z, Aout, c, 0.0)))
    cases.append(("softmax_cross_entropy", 4 * B * n_out,
                  lambda: (ref.loss_forward("cross_entropy", Z, Aout, Y, 0.0),
                           ref.loss_backward("cross_entropy", Z, Aout, Y, 0.0, 1.0, "softmax", 0.0)),
                  lambda k: (k["loss"].loss_rows(rows, Z, Aout, Y, SW, ce, 0.0),
                             k["loss"].loss_backward(dZ, Aout, Z, Aout, Y, SW, ce, 0.0, 1.0, soft, 0.0))))
    cases.append(("sgd_update", 2 * P, lambda: flat.__isub__(0.01 * gflat),
                  lambda k: k["optim"].optimizer_update(flat, gflat, flat[:0], flat[:0], 0, 0.01, opt.hyper(), 1)))
    cases.append(("adam_update", 12 * P,
                  lambda: ref.optimizer_update(flat, gflat, opt, 1e-6),
                  lambda k: k["optim"].optimizer_update(flat, gflat, *opt.state_arrays()[:2], opt.code, 1e-6,
                                                          opt.hyper(), 3)))
    return cases + _sparse_cases(B, n_in, n_out, dtype, W, b, Z, dZ, dW, db)


def _sparse_cases(B, n_in, n_out, dtype, W, b, Z, dZ, dW, db):
    """The first layer on a CSR batch of 5 % non-zeros (kernels/cpu/sparse.py) against scipy's
    products; none without scipy."""
    try:
        from scipy import sparse
    except ImportError:
        return []
    from .kernels.cpu.sparse import FULL
    X = sparse.random(B, n_in, density=0.05, format="csr", random_state=0, dtype=dtype)
    ptr, idx, rows = X.indptr.astype(np.int64), X.indices.astype(np.int32), np.arange(B, dtype=np.int64)
    touched = np.zeros(n_in, np.int64)
    flop = 2 * X.nnz * n_out
    return [
        ("sparse_forward", flop, lambda: X @ W + b,
         lambda k: k["sparse"].sparse_forward(Z, W, b, rows, ptr, idx, X.data)),
        ("sparse_backward", flop, lambda: X.T @ dZ,
         lambda k: k["sparse"].sparse_backward(dW, db, dZ, rows, ptr, idx, X.data, touched, FULL)),
        ("sparse_sgd_step", flop, lambda: W.__isub__(1e-9 * (X.T @ dZ)),
         lambda k: k["sparse"].sgd_step(W, dZ, rows, ptr, idx, X.data, 1e-9)),
    ]


def kernel_modules(one_thread=False):
    """The kernel modules by short name, or views of them whose kernels are the twins."""
    from .kernels.cpu import activations, dense, losses, optim, sparse
    modules = {"dense": dense, "act": activations, "loss": losses, "optim": optim, "sparse": sparse}
    return {k: _Twins(m) for k, m in modules.items()} if one_thread else modules


def compare(shapes=DEFAULT_SHAPES, dtypes=("float32",), min_seconds=0.05):
    """Rows of {kernel, shape, dtype, backend, seconds, gflops, others} and the GEMM limit per
    dtype ({dtype: (GFLOP/s, others)}, measured first); `others` is how many CPUs other processes held while
    the kernel was timed (busy.py), None where the platform cannot say."""
    from .busy import Watch
    limit = limits(dtypes)
    parallel, twin = kernel_modules(), kernel_modules(one_thread=True)
    results = []
    watch = Watch()
    for dtype in dtypes:
        for shape in shapes.split(","):
            B, n_in, n_out = (int(x) for x in shape.lower().split("x"))
            for name, flop, np_fn, k_fn in _cases(B, n_in, n_out, np.dtype(dtype)):
                watch.restart()
                rows = []
                for backend, fn in (("numpy", np_fn), ("cpu", lambda: k_fn(parallel)),
                                    ("cpu-1thread", lambda: k_fn(twin))):
                    s = best_time(fn, min_seconds)
                    rows.append(dict(kernel=name, shape=shape, dtype=dtype, backend=backend,
                                     seconds=s, gflops=flop / s / 1e9))
                others = watch.others()
                results += [dict(r, others=others) for r in rows]
    return results, limit


class _Twins:
    """A kernel module whose attributes are the single-threaded twins of its kernels."""

    def __init__(self, module):
        self._m = module

    def __getattr__(self, name):
        from .kernels.compile import one_thread
        return one_thread(getattr(self._m, name))


def table(results, limit):
    """The rows side by side. "best cpu" is the faster of the parallel kernel and its twin (the
    one a fit would choose), and both its GFLOP/s and the numpy/cpu ratio are of that one."""
    lines = [f"{dtype} GEMM limit (NumPy's BLAS on a 2048-cube, measured first in this run): {gflops:.1f} GFLOP/s"
             f" (others {_others(others)})" for dtype, (gflops, others) in limit.items()] + [""]
    head = f"{'kernel':24s} {'shape':14s} {'dtype':8s}"
    backends = ["numpy", "cpu", "cpu-1thread"]
    lines.append(head + "".join(f" {b + ' us':>15s}" for b in backends)
                 + f" {'best cpu GFLOP/s':>16s} {'of limit':>8s} {'numpy/best':>10s} {'others':>7s}")
    keyed = {}
    for r in results:
        keyed.setdefault((r["kernel"], r["shape"], r["dtype"]), {})[r["backend"]] = r
    for (kernel, shape, dtype), by in keyed.items():
        best = min(by["cpu"], by["cpu-1thread"], key=lambda r: r["seconds"])
        lines.append(f"{kernel:24s} {shape:14s} {dtype:8s}"
                     + "".join(f" {by[b]['seconds'] * 1e6:15.2f}" for b in backends)
                     + f" {best['gflops']:16.2f} {best['gflops'] / limit[dtype][0]:8.0%}"
                     + f" {by['numpy']['seconds'] / best['seconds']:9.2f}x"
                     + f" {_others(by['cpu'].get('others')):>7s}")
    lines += ["", "others: CPUs that other processes held while the row was timed (* busy: its times are "
              "not the kernels')"]
    return "\n".join(lines + _busy_lines([r.get("others") for r in results] + [o for _, o in limit.values()]))


def _others(others):
    from .busy import BUSY
    return "?" if others is None else f"{others:.2f}" + ("*" if others >= BUSY else "")


def _busy_lines(others):
    """The warning for the worst of the rows' `others`, as lines to print under the figures."""
    from .busy import Watch
    known = [o for o in others if o is not None]
    warning = Watch().warning(max(known) if known else None)
    return [warning] if warning else []


def plot(results, limit, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib") from None
    dense = [r for r in results if r["kernel"].startswith("dense")]
    labels = sorted({(r["kernel"], r["shape"], r["dtype"]) for r in dense})
    fig, ax = plt.subplots(figsize=(10, 4 + 0.2 * len(labels)))
    width = 0.27
    for i, backend in enumerate(["numpy", "cpu", "cpu-1thread"]):
        vals = [next(r["gflops"] for r in dense if (r["kernel"], r["shape"], r["dtype"]) == lab
                     and r["backend"] == backend) for lab in labels]
        ax.barh([j + i * width for j in range(len(labels))], vals, height=width, label=backend)
    for dtype, (gflops, _) in limit.items():
        ax.axvline(gflops, color="k", linestyle="--", label=f"{dtype} GEMM limit {gflops:.0f} GFLOP/s")
    ax.set_yticks([j + width for j in range(len(labels))])
    ax.set_yticklabels([f"{k} {s} {d}" for k, s, d in labels])
    ax.set_xlabel("GFLOP/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="fastbp bench", description=__doc__)
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help="batch x n_in x n_out, comma-separated")
    p.add_argument("--dtype", default="float32", help="float32, float64 or both: float32,float64")
    p.add_argument("--seconds", type=float, default=0.05, help="minimum time per measurement")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plot", metavar="PNG", help="draw the dense kernels' GFLOP/s (matplotlib)")
    args = p.parse_args(argv)
    results, limit = compare(args.shapes, args.dtype.split(","), args.seconds)
    if args.json:
        print(json.dumps({"gemm_limit_gflops": {d: g for d, (g, _) in limit.items()},
                          "gemm_limit_others": {d: o for d, (_, o) in limit.items()}, "results": results}, indent=1))
    else:
        print(table(results, limit))
    if args.plot:
        plot(results, limit, args.plot)
    return 0
