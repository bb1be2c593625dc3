"""fastbp against the peers a user would otherwise reach for, on the workloads of WORKLOADS.md,
side by side in one run, each peer in a process of its own: a lean NumPy loop, fastbp's numpy backend, JAX (a jitted epoch with
lax.scan, and the whole fit as one program), torch.compile, PyTorch eager, scikit-learn's
MLPClassifier and fastbp's cpu backend.

Each peer trains from fastbp's initial weights on fastbp's epoch orders (scikit-learn draws its
own), plain SGD at lr 0.1; compilation is excluded (each peer fits once before it is timed); the
time is the minimum of at least --repeats warm fits, more for short fits (until they add up to
--least seconds: the first few calls of a millisecond fit time Python's warm-up), and the training
accuracy stands beside it so that a fast wrong answer shows. Peers whose package is missing are
skipped with a note (pip install 'fastbp[peers]').

    python scripts/peers.py                          # every workload, every peer installed
    python scripts/peers.py digits mid --repeats 5
    python scripts/peers.py seed --peers lean,numpy --epochs 10    # a quick look
    python scripts/peers.py --features               # Adam + dropout + batch norm: fastbp, PyTorch
"""
import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("FASTBP_TIERED", "0")   # warm speed: the fastest builds, never a quick one (kernels/tier.py)

import numpy as np

from fastbp import peers as P
from fastbp.bench import limits
from fastbp.busy import BUSY, Watch
from fastbp.workloads import MAX_FITS, WORKLOADS

# --peers names -> the peers' table names
SHORT = {"lean": "lean NumPy", "numpy": "numpy backend", "jax": "JAX jit + scan",
         "jax-fit": "JAX, one program", "torch-compile": "torch.compile", "torch": "PyTorch eager",
         "sklearn": "scikit-learn", "cpu": "fastbp cpu"}
TARGETS = {"seed": 2.0, "tabular": 2.0, "digits": 2.0, "mid": 1.5, "wide": 1.1}


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return f"{model}, {usable} CPUs usable"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dense = [n for n, w in WORKLOADS.items() if not w.sparse]   # text: scripts/sparse_peers.py
    p.add_argument("names", nargs="*", default=dense, metavar="workload",
                   help=f"workloads (default: all of {', '.join(dense)})")
    p.add_argument("--peers", default=",".join(SHORT),
                   help=f"comma-separated, from {','.join(SHORT)} (default: all)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=3,
                   help="warm fits timed per peer, at least (the minimum is shown; default 3)")
    # 5 s: on a shared 2-CPU machine two threads at times run no faster than one, in spells of
    # 1-10 s (the README's "Against the peers", on mid); a threaded peer's three fits could all fall in one
    p.add_argument("--least", type=float, default=5.0,
                   help="seconds of timed fits per peer, at least: short fits repeat until then "
                        f"(at most {MAX_FITS} fits; default 5)")
    p.add_argument("--epochs", type=int, help="instead of each workload's own epoch count (quick looks)")
    p.add_argument("--features", action="store_true",
                   help="Adam (lr 0.001), dropout 0.2 and batch norm on every hidden layer, for the peers "
                        "that offer them (fastbp, PyTorch)")
    p.add_argument("--one", nargs=2, metavar=("WORKLOAD", "PEER"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    wrong = [n for n in args.names if n not in dense]
    if wrong:
        p.error(f"unknown workload {', '.join(wrong)}; choose from {', '.join(dense)}")
    chosen = args.peers.split(",")
    unknown = [c for c in chosen if c not in SHORT]
    if unknown:
        p.error(f"--peers: unknown {', '.join(unknown)}; choose from {','.join(SHORT)}")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if not args.least >= 0:
        p.error("--least must be a number of seconds >= 0")
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be at least 1")
    if args.one:
        return one(args)
    short = {v: k for k, v in SHORT.items()}
    everyone = P.all_peers()
    peers = [everyone[SHORT[c]] for c in chosen]
    for peer in list(peers):
        why = P.missing(peer)
        if why:
            print(f"skipped {peer.name}: {why}")
            peers.remove(peer)

    print(f"{time.strftime('%Y-%m-%d')}, {machine()}, Python {platform.python_version()}, "
          f"NumPy {np.__version__}")
    print(" ".join(["command: python scripts/peers.py"] + (argv if argv is not None else sys.argv[1:])))
    limit, limit_others = limits([args.dtype])[args.dtype]   # first, before any peer's threads
    print(f"{args.dtype} GEMM limit (NumPy's BLAS, 2048-cube, measured first): {limit:.0f} GFLOP/s")
    print(f"warm fits, minimum of at least {args.repeats} (and {args.least:g} s of fits); seconds (training "
          "accuracy); " + ("Adam + dropout 0.2 + batch norm" if args.features else "plain SGD"))
    if args.features:
        for peer in [q for q in peers if not getattr(q, "features", False)]:
            print(f"skipped {peer.name}: no batch norm, dropout or Adam here")
            peers.remove(peer)
    names = [peer.name for peer in peers]
    print("| workload | " + " | ".join(names) + " | fastbp cpu vs fastest peer | numpy backend / lean |"
          + " others |")
    print("|---" * (len(names) + 4) + "|")
    watch = Watch(worst=limit_others)
    for name in args.names:
        w = workload(name, args)
        watch.restart()
        results = {peer.name: measure(name, short[peer.name], args) for peer in peers}
        cells = [f"{t:.3g} s ({acc:.3f})" for t, acc in results.values()]
        others = watch.row_others()
        print(f"| {name} | " + " | ".join(cells) + f" | {verdict(name, w, results, limit)} | "
              f"{ratio(results, 'numpy backend', 'lean NumPy')} | "
              + ("?" if others is None else f"{others:.2f}" + ("*" if others >= BUSY else "")) + " |",
              flush=True)
    print("fastest peer: the fastest of lean NumPy, JAX, PyTorch and scikit-learn in this run "
          "(fastbp's own backends excluded); target: " +
          ", ".join(f"{n} {t}x" for n, t in TARGETS.items()) + " (wide also at 90 % of the GEMM limit)")
    print("\n".join(watch.footer()))
    return 0


def workload(name, args):
    w = WORKLOADS[name]
    return dataclasses.replace(w, epochs=args.epochs) if args.epochs else w


def measure(name, peer, args):
    """(time, accuracy) of one peer on one workload, in a process of its own: no peer runs beside
    another's threads, compile caches or interpreter hooks (with JAX and torch.compile loaded in
    the same process, fastbp's seed fit was measurably slower than alone)."""
    cmd = [sys.executable, __file__, name, "--one", name, peer, "--dtype", args.dtype,
           "--repeats", str(args.repeats), "--least", str(args.least)] \
        + (["--epochs", str(args.epochs)] if args.epochs else []) + (["--features"] if args.features else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{peer} on {name} failed:\n{out.stderr}")
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def one(args):
    name, short = args.one
    peer = P.all_peers()[SHORT[short]]
    problem = P.problem(workload(name, args), args.dtype, features=args.features)
    print(json.dumps(P.time_peer(peer, problem, args.repeats, args.least)))
    return 0


def ratio(results, a, b):
    if a not in results or b not in results:
        return "-"
    return f"{results[a][0] / results[b][0]:.2f}x"


def verdict(name, w, results, limit):
    """fastbp cpu's speed-up over the fastest peer, against the workload's target."""
    rivals = {k: v for k, v in results.items() if k not in ("fastbp cpu", "numpy backend")}
    if "fastbp cpu" not in results or not rivals:
        return "-"
    fastest = min(rivals, key=lambda k: rivals[k][0])
    speedup = rivals[fastest][0] / results["fastbp cpu"][0]
    text = f"{speedup:.2f}x {fastest}"
    target = TARGETS.get(name)
    if target is not None:
        text += f" ({'met' if speedup >= target else 'missed'}: {target}x)"
    if name == "wide":
        text += f", {w.gflop / results['fastbp cpu'][0] / limit:.0%} of GEMM limit"
    return text


if __name__ == "__main__":
    sys.exit(main())
