"""Time the five workloads of WORKLOADS.md on each backend, side by side in one run.

    python scripts/workloads.py                 # all workloads, float32, numpy vs cpu
    python scripts/workloads.py --dtype float64 --repeats 5 mid wide
    python scripts/workloads.py --features digits   # with Adam, dropout 0.2 and batch norm
"""
import argparse
import sys

import numba

from fastbp.bench import sgemm_gflops
from fastbp.workloads import WORKLOADS, time_fit


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", default=list(WORKLOADS), help="workloads (default: all)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backends", default="numpy,cpu")
    p.add_argument("--features", action="store_true",
                   help="Adam (lr 0.001), dropout 0.2 and batch norm on every hidden layer")
    args = p.parse_args(argv)
    backends = args.backends.split(",")
    limit = sgemm_gflops(dtype=args.dtype)
    print(f"{args.dtype} gemm limit (NumPy's BLAS on a 2048-cube, this run): {limit:.0f} GFLOP/s")
    print(f"dtype {args.dtype}, minimum of {args.repeats} warm fits, {numba.get_num_threads()} threads"
          + (", Adam + dropout + batch norm" if args.features else ", plain SGD"))
    head = f"{'workload':9s} {'GFLOP':>7s}" + "".join(f" {b + ' s':>10s}" for b in backends)
    print(head + (f" {'ratio':>7s} {'GFLOP/s':>8s} {'of limit':>8s}" if "numpy" in backends and "cpu" in backends else ""))
    for name in args.names:
        w = WORKLOADS[name]
        times = {b: time_fit(w, b, args.dtype, args.repeats, args.features) for b in backends}
        line = f"{name:9s} {w.gflop:7.2f}" + "".join(f" {times[b]:10.4f}" for b in backends)
        if "numpy" in times and "cpu" in times:
            gflops = w.gflop / times["cpu"]
            line += f" {times['numpy'] / times['cpu']:6.2f}x {gflops:8.1f} {gflops / limit:8.0%}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
