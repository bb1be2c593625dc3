"""Time the six workloads of WORKLOADS.md (text: sparse) on each backend, side by side in one run.

    python scripts/workloads.py                 # all workloads, float32, numpy vs cpu
    python scripts/workloads.py --dtype float64 --repeats 5 mid wide
    python scripts/workloads.py --features digits   # with Adam, dropout 0.2 and batch norm
    python scripts/workloads.py --memory            # what each warm fit adds to resident memory
"""
import argparse
import os
import sys

os.environ.setdefault("FASTBP_TIERED", "0")   # warm speed: the fastest builds, never a quick one (kernels/tier.py)

import numba

from fastbp.bench import limits
from fastbp.busy import BUSY, Watch
from fastbp.workloads import WORKLOADS, fit_peak_memory, time_fit


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", default=list(WORKLOADS), help="workloads (default: all)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=3, help="warm fits per backend, at least (default 3)")
    p.add_argument("--least", type=float, default=1.0,
                   help="seconds of timed fits per backend, at least: short fits repeat until then (default 1)")
    p.add_argument("--backends", default="numpy,cpu")
    p.add_argument("--features", action="store_true",
                   help="Adam (lr 0.001), dropout 0.2 and batch norm on every hidden layer")
    p.add_argument("--memory", action="store_true",
                   help="instead of times: how much each warm fit raises peak resident memory (Linux)")
    args = p.parse_args(argv)
    backends = args.backends.split(",")
    if args.memory:
        return memory_table(args, backends)
    limit, limit_others = limits([args.dtype])[args.dtype]   # first, before any kernel
    print(f"{args.dtype} GEMM limit (NumPy's BLAS on a 2048-cube, measured first in this run): {limit:.0f} GFLOP/s"
          + ("" if limit_others is None else f" (others {limit_others:.2f}{'*' if limit_others >= BUSY else ''})"))
    print(f"dtype {args.dtype}, minimum of at least {args.repeats} warm fits (and {args.least:g} s of them), "
          f"{numba.get_num_threads()} threads"
          + (", Adam + dropout + batch norm" if args.features else ", plain SGD"))
    head = f"{'workload':9s} {'GFLOP':>7s}" + "".join(f" {b + ' s':>10s}" for b in backends)
    both = "numpy" in backends and "cpu" in backends
    print(head + (f" {'ratio':>7s} {'GFLOP/s':>8s} {'of limit':>8s}" if both else "") + f" {'others':>7s}")
    watch = Watch(worst=limit_others)
    for name in args.names:
        w = WORKLOADS[name]
        watch.restart()
        times = {b: time_fit(w, b, args.dtype, args.repeats, args.features, args.least) for b in backends}
        line = f"{name:9s} {w.gflop:7.2f}" + "".join(f" {times[b]:10.4f}" for b in backends)
        if both:
            gflops = w.gflop / times["cpu"]
            line += f" {times['numpy'] / times['cpu']:6.2f}x {gflops:8.1f} {gflops / limit:8.0%}"
        others = watch.row_others()
        print(line + (f" {'?':>7s}" if others is None else f" {others:6.2f}" + ("*" if others >= BUSY else " ")),
              flush=True)
    print("\n".join(watch.footer()))
    return 0


def memory_table(args, backends):
    """Each (workload, backend) in a fresh process, so that none inherits another's memory."""
    import json
    import subprocess
    print(f"resident memory, MB ({args.dtype}" + (", Adam + dropout + batch norm)" if args.features else
                                                   ", plain SGD)"))
    print("process: the high-water mark of a process that made the data and fitted; fit: how far the "
          "warm fit raised it; alloc: the peak of the fit's allocations (tracemalloc)")
    print(f"{'workload':9s}" + "".join(f" {b + ' process':>14s} {b + ' fit':>10s} {b + ' alloc':>12s}"
                                       for b in backends))
    for name in args.names:
        line = f"{name:9s}"
        for b in backends:
            code = ("import json; from fastbp.workloads import WORKLOADS, fit_peak_memory; "
                    f"print(json.dumps(fit_peak_memory(WORKLOADS[{name!r}], {b!r}, {args.dtype!r}, {args.features})))")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if result is None:
                print("needs Linux's /proc/self/clear_refs")
                return 1
            line += f" {result[0]:14.1f} {result[1]:10.1f} {result[2]:12.2f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
