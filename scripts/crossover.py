"""Where do threads start to pay? Times training steps of square networks on one thread and on
all threads, and prints the work per batch at which the parallel kernels win: the measured
basis of config.PARALLEL_MIN_FLOP. With --dense: the naive, tiled and blocked dense kernels side
by side, single-threaded, over layer shapes: the basis of dense.forward_path and backward_path.

    python scripts/crossover.py [--batch 32] [--dtype float32]
    python scripts/crossover.py --dense
    python scripts/crossover.py --blas     # parallel: blocked kernels vs OpenBLAS (dense.BLAS)
    python scripts/crossover.py --split --batch 64   # parallel steps, layers split by W's rows or not
    python scripts/crossover.py --naive    # the naive forward loops' two row forms, tiny layers
    python scripts/crossover.py --narrow   # output layers' backward pass and the transposes, in ns
    python scripts/crossover.py --quick    # warm fits on the quick build and the fastest, in GFLOP/s

--quick measures the rate the naive loops of a quick build (kernels/tier.py) train at, against the
fastest build's, on the digits and on 512-wide layers, each dtype: the basis of config.NAIVE_FLOPS
(which must stay below the slowest rate, so that a call taken as short is short).

--split times parallel training steps with config.SPLIT_INPUTS on and off (a compile-time
setting: each in its own process, FASTBP_SPLIT_INPUTS=1 or 0, run twice in turn).
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("FASTBP_TIERED", "0")   # warm speed: the fastest builds, never a quick one (kernels/tier.py)

import numba
import numpy as np

import fastbp
from fastbp import config
from fastbp.kernels import compile
from fastbp.kernels.cpu.dense import naive_row_axpy, naive_row_sums


def step_time(width, batch, dtype, parallel):
    config.PARALLEL_MIN_FLOP = 0 if parallel else 2 ** 62
    X, y = fastbp.datasets.make_synthetic(batch * 100, width, 10, dtype=dtype)
    net = fastbp.Network([width, width, width, 10], dtype=dtype, seed=0)
    net.fit(X, y, epochs=1, batch_size=batch)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        net.fit(X, y, epochs=1, batch_size=batch)
        best = min(best, (time.perf_counter() - t0) / 100)
    return best


def dense_table(dtype):
    from fastbp.bench import best_time
    from fastbp.kernels.cpu import dense as d
    one = compile.one_thread
    rng = np.random.default_rng(0)
    print(f"single-threaded dense kernels, {dtype}, microseconds per call")
    names = ("naive", "tiled", "blocked")
    print(f"{'rows x in x out':>16s} {'fwd naive':>10s} {'tiled':>8s} {'blocked':>8s} {'bwd naive':>10s} "
          f"{'tiled':>8s} {'blocked':>8s} {'chosen':>15s}")
    for B, n_in, n_out in [(4, 2, 4), (16, 32, 64), (16, 64, 64), (16, 64, 2), (8, 128, 128), (32, 32, 32),
                           (32, 64, 128), (32, 128, 10), (64, 256, 256), (64, 256, 10), (128, 64, 64), (256, 784, 1024)]:
        f = lambda *s: rng.standard_normal(s).astype(dtype)
        A, W, b, dZ = f(B, n_in), f(n_in, n_out), f(n_out), f(B, n_out)
        Z, dA, dW = np.empty((B, n_out), dtype), np.empty_like(A), np.empty_like(W)
        Wt, At, dZt = np.empty((n_out, n_in), dtype), np.empty((n_in, B), dtype), np.empty((n_out, B), dtype)
        times = [best_time(g) * 1e6 for g in (
            lambda: one(d.dense_forward_naive)(Z, A, W, b),
            lambda: one(d.dense_forward_tiled)(Z, A, W, b),
            lambda: one(d.dense_forward_blocked)(Z, A, W, b, Wt),
            lambda: one(d.dense_backward_naive)(dA, dW, b, dZ, A, W, True),
            lambda: one(d.dense_backward_tiled)(dA, dW, b, dZ, A, W, True, Wt),
            lambda: one(d.dense_backward_blocked)(dA, dW, b, dZ, A, W, True, At, dZt))]
        chosen = f"{names[d.forward_path(B, W)]}/{names[d.backward_path(B, W)]}"
        print(f"{f'{B}x{n_in}x{n_out}':>16s} {times[0]:10.2f} {times[1]:8.2f} {times[2]:8.2f} {times[3]:10.2f} "
              f"{times[4]:8.2f} {times[5]:8.2f} {chosen:>15s}")


@numba.njit
def _naive_rows(vector, Z, A, W, b, repeats):
    for _ in range(repeats):
        for i in range(A.shape[0]):
            if vector:
                naive_row_axpy(Z, A, W, b, i)
            else:
                naive_row_sums(Z, A, W, b, i)


def naive_table(dtype):
    """The naive forward kernel's two forms of a row on one thread, over layers of fewer than
    config.GEMM_MIN_WEIGHTS weights: each output summed in a register, or a vector loop over the
    outputs. The basis of config.NAIVE_VECTOR_OUTPUTS. Nanoseconds per layer (all its rows)."""
    from fastbp.bench import best_time
    rng = np.random.default_rng(0)
    repeats = 1000
    print(f"naive forward, one thread, {dtype}, nanoseconds per layer; config.NAIVE_VECTOR_OUTPUTS = "
          f"{config.NAIVE_VECTOR_OUTPUTS}")
    print(f"{'rows x in x out':>16s} {'sums':>9s} {'vector':>9s} {'chosen':>8s}")
    for B, n_in, n_out in [(4, 2, 4), (4, 4, 1), (8, 8, 2), (64, 16, 2), (64, 16, 3), (64, 8, 4), (4, 8, 7),
                           (64, 8, 7), (4, 2, 5), (64, 8, 5), (4, 2, 6), (64, 8, 6), (4, 2, 8), (64, 7, 8),
                           (64, 5, 12), (64, 3, 16), (4, 1, 40), (64, 1, 63), (256, 31, 2), (256, 63, 1)]:
        A, W = rng.standard_normal((B, n_in)).astype(dtype), rng.standard_normal((n_in, n_out)).astype(dtype)
        b, Z = rng.standard_normal(n_out).astype(dtype), np.empty((B, n_out), dtype)
        sums, vector = (best_time(lambda v=v: _naive_rows(v, Z, A, W, b, repeats)) / repeats * 1e9
                        for v in (False, True))
        chosen = "vector" if n_out >= config.NAIVE_VECTOR_OUTPUTS else "sums"
        print(f"{f'{B}x{n_in}x{n_out}':>16s} {sums:9.1f} {vector:9.1f} {chosen:>8s}")


def blas_table(dtype, threads):
    """fastbp's own dense kernels against OpenBLAS called from the kernels, per layer shape, with
    the parallel kernels (threads > 1) or their single-threaded twins."""
    from fastbp.bench import best_time
    from fastbp.kernels import blas_library
    from fastbp.kernels.cpu import dense as d
    if not blas_library.FOUND:
        print("no OpenBLAS found: nothing to compare")
        return
    rng = np.random.default_rng(0)
    print(f"{threads} thread(s), {dtype}, microseconds per call; OpenBLAS: {blas_library.DESCRIPTION}")
    k = (lambda fn: fn) if threads > 1 else compile.one_thread
    print(f"{'rows x in x out':>16s} {'MMACs':>7s} {'fwd tiled':>10s} {'blocked':>8s} {'blas':>8s} "
          f"{'bwd tiled':>10s} {'blocked':>8s} {'blas':>8s} {'chosen':>10s}")
    names = ("naive", "tiled", "blocked", "blas")
    for B, n_in, n_out in [(16, 32, 64), (16, 64, 64), (16, 64, 2), (32, 64, 128), (32, 128, 10),
                           (32, 128, 128), (64, 128, 128), (32, 256, 256), (64, 256, 256), (128, 256, 256),
                           (64, 256, 10), (256, 128, 128), (64, 512, 512), (256, 256, 256), (256, 1024, 10),
                           (256, 784, 1024), (256, 1024, 1024)]:
        f = lambda *s: rng.standard_normal(s).astype(dtype)
        A, W, b, dZ = f(B, n_in), f(n_in, n_out), f(n_out), f(B, n_out)
        Z, dA, dW = np.empty((B, n_out), dtype), np.empty_like(A), np.empty_like(W)
        Wt, At, dZt = np.empty((n_out, n_in), dtype), np.empty((n_in, B), dtype), np.empty((n_out, B), dtype)
        with blas_library.one_thread():
            times = [best_time(g) * 1e6 for g in (
                lambda: k(d.dense_forward_tiled)(Z, A, W, b),
                lambda: k(d.dense_forward_blocked)(Z, A, W, b, Wt),
                lambda: k(d.dense_forward_blas)(Z, A, W, b),
                lambda: k(d.dense_backward_tiled)(dA, dW, b, dZ, A, W, True, Wt),
                lambda: k(d.dense_backward_blocked)(dA, dW, b, dZ, A, W, True, At, dZt),
                lambda: k(d.dense_backward_blas)(dA, dW, b, dZ, A, W, True))]
        chosen = f"{names[d.forward_path(B, W)]}/{names[d.backward_path(B, W)]}"
        print(f"{f'{B}x{n_in}x{n_out}':>16s} {B * n_in * n_out / 1e6:7.2f} {times[0]:10.1f} {times[1]:8.1f} "
              f"{times[2]:8.1f} {times[3]:10.1f} {times[4]:8.1f} {times[5]:8.1f} {chosen:>10s}")


@numba.njit
def _calls(fn, n, args):
    for _ in range(n):
        fn(*args)


def per_call(fn, args, calls=20000, repeats=7):
    """Seconds per call of compiled `fn(*args)`, the best of `repeats` loops of `calls` calls
    made from compiled code: from Python, a call costs about a microsecond, more than the
    kernels timed here."""
    _calls(fn, 10, args)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        _calls(fn, calls, args)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


@numba.njit
def _element_transpose(T, M):
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            T[j, i] = M[i, j]


def narrow_table(dtype):
    """One thread: an output layer's backward pass (dense.narrow_backward_serial) against the
    naive loops, and the transposes (tiles.transpose) against an element loop, in ns."""
    from fastbp.kernels.cpu import dense as d, tiles
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(dtype)
    print(f"one thread, {dtype}, ns per call")
    print(f"{'rows x in x out':>16s} {'narrow':>8s} {'naive':>8s}")
    naive = compile.one_thread(d.dense_backward_naive)
    for B, n_in, n_out in [(16, 64, 1), (16, 64, 2), (16, 64, 4), (32, 128, 10), (16, 64, 20)]:
        A, W, dZ = f(B, n_in), f(n_in, n_out), f(B, n_out)
        dA, dW, db, Wt = np.empty_like(A), np.empty_like(W), np.empty(n_out, dtype), np.empty((n_out, n_in), dtype)
        fast = per_call(d.narrow_backward_serial, (dA, dW, db, dZ, A, W, Wt))
        slow = per_call(naive, (dA, dW, db, dZ, A, W, True))
        print(f"{f'{B}x{n_in}x{n_out}':>16s} {fast * 1e9:8.0f} {slow * 1e9:8.0f}")
    print(f"{'transpose m x n':>16s} {'blocks':>8s} {'elements':>8s}")
    transpose = compile.one_thread(tiles.transpose)
    for m, n in [(64, 2), (128, 10), (64, 64), (256, 128)]:
        M, T = f(m, n), np.empty((n, m), dtype)
        fast, slow = per_call(transpose, (T, M)), per_call(_element_transpose, (T, M))
        print(f"{f'{m}x{n}':>16s} {fast * 1e9:8.0f} {slow * 1e9:8.0f}")


WIDTHS = (16, 32, 64, 96, 128, 192, 256, 384, 512)


def split_table(batch, dtype):
    best = {}
    for _ in range(2):
        for split in ("1", "0"):
            out = subprocess.run([sys.executable, __file__, "--parallel-json", "--batch", str(batch), "--dtype", dtype],
                                 env=dict(os.environ, FASTBP_SPLIT_INPUTS=split), capture_output=True, text=True,
                                 check=True).stdout
            for width, t in json.loads(out).items():
                best[split, width] = min(best.get((split, width), float("inf")), t)
    print(f"{numba.get_num_threads()} threads, batch {batch}, {dtype}, networks w-w-w-10, parallel steps")
    print(f"{'width':>6s} {'MFLOP/batch':>12s} {'split us':>10s} {'unsplit us':>11s} {'ratio':>7s}")
    for width in map(str, WIDTHS):
        flop = 6 * batch * (2 * int(width) ** 2 + 10 * int(width))
        a, b = best["1", width], best["0", width]
        print(f"{width:>6s} {flop / 1e6:12.2f} {a * 1e6:10.1f} {b * 1e6:11.1f} {b / a:6.2f}x")


QUICK_NETWORKS = ([64, 128, 10], [64, 512, 512, 10])


def quick_table(epochs=3):
    """Warm fits of the digits on each network, on its quick build and on its fastest: seconds
    per epoch and GFLOP/s (6 x rows x multiply-adds per row a training epoch)."""
    from fastbp.kernels import tier
    X, y = fastbp.datasets.load_digits()
    print(f"{numba.get_num_threads()} threads; digits ({X.shape[0]} rows), batch 32, warm fits of {epochs} epochs")
    print(f"{'network':>20s} {'dtype':>8s} {'quick s/epoch':>14s} {'GFLOP/s':>8s} {'fastest s/epoch':>16s} "
          f"{'GFLOP/s':>8s}")
    config.TIERED, config.QUICK_MAX_SECONDS = True, float("inf")
    tier.Marker.built = lambda self: False         # the quick build, as for a short call before
    tier.Marker.build_in_background = lambda self: False   # its fastest is built; no background build
    for sizes in QUICK_NETWORKS:
        macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        for dtype in ("float32", "float64"):
            row = []
            for quick in (True, False):
                config.QUICK_MAX_SECONDS = float("inf") if quick else 0.0
                net = fastbp.Network(sizes, dtype=dtype, seed=0)
                net.fit(X, y, epochs=1, batch_size=32)   # compiles
                best = float("inf")
                for _ in range(3):
                    t0 = time.perf_counter()
                    net.fit(X, y, epochs=epochs, batch_size=32)
                    best = min(best, (time.perf_counter() - t0) / epochs)
                row += [best, 6 * X.shape[0] * macs / best / 1e9]
            print(f"{str(sizes):>20s} {dtype:>8s} {row[0]:14.4f} {row[1]:8.2f} {row[2]:16.4f} {row[3]:8.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--dense", action="store_true", help="naive vs blocked dense kernels instead")
    p.add_argument("--blas", action="store_true", help="parallel blocked kernels vs OpenBLAS instead")
    p.add_argument("--split", action="store_true", help="parallel steps with and without the split by inputs")
    p.add_argument("--naive", action="store_true", help="the naive forward loops' two row forms instead")
    p.add_argument("--narrow", action="store_true", help="output layers' backward pass and the transposes instead")
    p.add_argument("--quick", action="store_true", help="the quick build's training rate against the fastest's")
    p.add_argument("--parallel-json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        return quick_table()
    if args.parallel_json:
        print(json.dumps({w: step_time(w, args.batch, args.dtype, True) for w in WIDTHS}))
        return None
    if args.split:
        return split_table(args.batch, args.dtype)
    if args.dense:
        return dense_table(args.dtype)
    if args.naive:
        return naive_table(args.dtype)
    if args.narrow:
        return narrow_table(args.dtype)
    if args.blas:
        blas_table(args.dtype, numba.get_num_threads())
        return blas_table(args.dtype, 1)
    print(f"{numba.get_num_threads()} threads, batch {args.batch}, {args.dtype}, networks w-w-w-10")
    print(f"{'width':>6s} {'MFLOP/batch':>12s} {'1 thread us':>12s} {'parallel us':>12s} {'faster':>9s}")
    for width in WIDTHS:
        flop = 6 * args.batch * (2 * width * width + 10 * width)
        one, par = (step_time(width, args.batch, args.dtype, p) for p in (False, True))
        print(f"{width:6d} {flop / 1e6:12.2f} {one * 1e6:12.1f} {par * 1e6:12.1f} "
              f"{'parallel' if par < one else '1 thread':>9s}")


if __name__ == "__main__":
    main()
