"""Warm fit times of two checkouts of fastbp side by side: did a change move the speed?

Each round runs one fresh process per checkout, in turn (so drift of the machine hits both
alike); each process times every workload's warm fits (fastbp.workloads.time_fit on the cpu
backend) and the table shows, per workload, the best process of each checkout.

    git worktree add /tmp/before HEAD~3
    python scripts/compare_trees.py /tmp/before .              # plain SGD, 2 rounds
    python scripts/compare_trees.py /tmp/before . --features --rounds 3
"""
import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("FASTBP_TIERED", "0")   # warm speed: the fastest builds, never a quick one (kernels/tier.py)

CODE = r"""
import json, sys
from fastbp.workloads import WORKLOADS, time_fit
features, names = sys.argv[1] == "1", sys.argv[2].split(",")
print(json.dumps({n: time_fit(WORKLOADS[n], "cpu", "float32", 3 if n == "wide" else 5, features) for n in names}))
"""


def times(tree, features, names):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    out = subprocess.run([sys.executable, "-c", CODE, "1" if features else "0", ",".join(names)],
                         cwd=tree, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{tree}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before", help="a checkout of fastbp (a git worktree)")
    p.add_argument("after", help="another checkout")
    p.add_argument("--features", action="store_true", help="Adam, dropout 0.2 and batch norm")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--names", default="seed,tabular,digits,mid,wide")
    args = p.parse_args(argv)
    names = args.names.split(",")
    for tree in (args.before, args.after):   # compile both first, untimed
        times(tree, args.features, ["seed"])
    runs = {args.before: [], args.after: []}
    for _ in range(args.rounds):
        for tree in runs:
            runs[tree].append(times(tree, args.features, names))
    print(f"load average {os.getloadavg()[0]:.2f}; best of {args.rounds} processes, each the minimum of its "
          f"warm fits; {'Adam + dropout + batch norm' if args.features else 'plain SGD'}")
    print(f"{'workload':9s} {'before s':>9s} {'after s':>9s} {'after/before':>12s}")
    for n in names:
        b, a = (min(r[n] for r in runs[t]) for t in (args.before, args.after))
        print(f"{n:9s} {b:9.4f} {a:9.4f} {a / b:12.3f}")


if __name__ == "__main__":
    main()
