"""Where do threads start to pay? Times training steps of square networks on one thread and on
all threads, and prints the work per batch at which the parallel kernels win: the measured
basis of config.PARALLEL_MIN_FLOP.

    python scripts/crossover.py [--batch 32] [--dtype float32]
"""
import argparse
import time

import numba
import numpy as np

import fastbp
from fastbp import config


def step_time(width, batch, dtype, parallel):
    config.PARALLEL_MIN_FLOP = 0 if parallel else 2 ** 62
    X, y = fastbp.datasets.make_synthetic(batch * 50, width, 10, dtype=dtype)
    net = fastbp.Network([width, width, width, 10], dtype=dtype, seed=0)
    net.fit(X, y, epochs=1, batch_size=batch)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        net.fit(X, y, epochs=1, batch_size=batch)
        best = min(best, (time.perf_counter() - t0) / 50)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--dtype", default="float32")
    args = p.parse_args()
    print(f"{numba.get_num_threads()} threads, batch {args.batch}, {args.dtype}, networks w-w-w-10")
    print(f"{'width':>6s} {'MFLOP/batch':>12s} {'1 thread us':>12s} {'parallel us':>12s} {'faster':>9s}")
    for width in (16, 32, 64, 96, 128, 192, 256, 384, 512):
        flop = 6 * args.batch * (2 * width * width + 10 * width)
        one, par = (step_time(width, args.batch, args.dtype, p) for p in (False, True))
        print(f"{width:6d} {flop / 1e6:12.2f} {one * 1e6:12.1f} {par * 1e6:12.1f} "
              f"{'parallel' if par < one else '1 thread':>9s}")


if __name__ == "__main__":
    main()
