"""fastbp on a busy machine: each workload's warm fit with 0, 1 and 2 competing busy processes
(started here, each ended by this script and bounded in time by itself), with the default
thread choice, on one thread (NUMBA_NUM_THREADS=1) and on all threads (every batch on Numba's
pool), beside the goal: the default at most 1.25x the faster of the other two.

    python scripts/contention.py                       # every workload, 0, 1 and 2 busy processes
    python scripts/contention.py --busy 1 digits wide  # some of it
    python scripts/contention.py --tiny                # seconds: the seed workload, 0 and 1 busy

Each (workload, setting) runs in --processes fresh processes (the thread settings must be made
before Numba starts its pool), in rounds that take the settings in turn, so that drift of the
machine hits them alike. Each process first fits once untimed (compiling or loading the
kernels) and then times at least --repeats warm fits, more for short fits (until they add up to
--least seconds), each starting with pacing's state reset, as the first fit of a new process.

A setting's figure is the median over its processes of each process's median fit
(--statistic min: of its fastest fit). Under contention the spread from fit to fit is the
scheduler's: one thread shares a core with a busy process most of the time and now and then
has one to itself, so the minimum rewards the setting whose fits spread widest, not the one a
user waits for. And where the scheduler puts a process's threads beside the busy ones differs
from process to process and lasts for the process's life, so one process's figure is partly the
luck of the draw, for every setting alike. The column `others` says how many CPUs other
processes held meanwhile (fastbp/busy.py): about the number of busy processes this script
started, more if something else was running.
"""
import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("FASTBP_TIERED", "0")   # warm speed: the fastest builds, never a quick one (kernels/tier.py)

from fastbp.busy import Watch

GOAL = 1.25
# "all threads": every batch on Numba's whole pool, unpaced; "unpaced": the default thread choice
# without pacing (kernels/cpu/pace.py), which shows what pacing buys under load and costs when quiet
SETTINGS = {"default": {}, "1 thread": {"NUMBA_NUM_THREADS": "1"},
            "all threads": {"FASTBP_PARALLEL_MIN_FLOP": "0", "FASTBP_PACE": "0"},
            "unpaced": {"FASTBP_PACE": "0"}}
FIT = r"""
import json, sys, time
from fastbp.kernels.cpu import pace
from fastbp.workloads import Workload
w, repeats, least = Workload(**json.loads(sys.argv[1])), int(sys.argv[2]), float(sys.argv[3])
X, y = w.data("float32")
fit = w.fit_args(False)
w.network("cpu", "float32").fit(X, y, **dict(fit, epochs=1))   # compiles, or loads from the cache
times = []
while len(times) < repeats or (sum(times) < least and len(times) < 100):
    pace.reset()   # each fit starts as a new process's first one does
    net = w.network("cpu", "float32")
    t0 = time.perf_counter()
    net.fit(X, y, **fit)
    times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""
BURN = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def workloads():
    """The five workloads, the sparse one, and the issue's [64, 512, 512, 10] digits network."""
    from fastbp.workloads import WORKLOADS, Workload
    return dict(WORKLOADS, digits512=Workload("digits", (64, 512, 512, 10), "relu", 32, 1_797, 3))


def fit_time(name, setting, repeats, least, timeout):
    env = dict(os.environ, **SETTINGS[setting])
    spec = json.dumps(dataclasses.asdict(workloads()[name]))
    out = subprocess.run([sys.executable, "-c", FIT, spec, str(repeats), str(least)], env=env,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode:
        raise RuntimeError(f"{name}, {setting}: {out.stderr[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def figure(processes, statistic="median"):
    """A setting's figure from each of its processes' warm fit times: the median over processes
    of each one's median fit (statistic "min": of its fastest)."""
    per_process = statistics.median if statistic == "median" else min
    return statistics.median(per_process(times) for times in processes)


def busy(k, seconds):
    """k processes that spin for at most `seconds` (the caller ends them sooner)."""
    return [subprocess.Popen([sys.executable, "-c", BURN.format(seconds=seconds)]) for _ in range(k)]


def _cpus(others):
    return "?" if others is None else f"{others:6.2f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", default=list(workloads()), help="workloads (default: all)")
    p.add_argument("--busy", default="0,1,2", help="numbers of competing busy processes (default 0,1,2)")
    p.add_argument("--repeats", type=int, default=3, help="warm fits per process, at least (default 3)")
    p.add_argument("--processes", type=int, default=3,
                   help="fresh processes per workload and setting; the figure is their median (default 3)")
    p.add_argument("--statistic", choices=["median", "min"], default="median",
                   help="of each process's warm fits (default median; the figure is the median over processes)")
    p.add_argument("--least", type=float, default=1.0,
                   help="fits repeat until they add up to this many seconds (default 1; at most 100 fits)")
    p.add_argument("--limit", type=int, default=900, help="seconds a busy process may live at most (default 900)")
    p.add_argument("--tiny", action="store_true", help="the seed workload, 0 and 1 busy process, 1 fit")
    args = p.parse_args(argv)
    if args.tiny:
        args.names, args.busy, args.repeats, args.least, args.processes = ["seed"], "0,1", 1, 0.0, 1
    levels = [int(k) for k in args.busy.split(",")]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.2f} before starting; median over {args.processes} fresh "
          f"processes of the {args.statistic} of at least {args.repeats} warm fits (and {args.least:g} s) in each; "
          f"goal: default <= {GOAL}x the faster of 1 thread and all threads")
    print(f"{'workload':9s} {'busy':>4s}" + "".join(f" {s + ' s':>14s}" for s in SETTINGS) + f" {'ratio':>6s} goal   others")
    worst = 0.0
    for k in levels:
        procs = busy(k, args.limit)
        try:
            time.sleep(0.5 if k else 0)   # let them reach their loops
            for name in args.names:
                watch = Watch()
                runs = {s: [] for s in SETTINGS}
                for _ in range(args.processes):
                    for s in SETTINGS:
                        runs[s].append(fit_time(name, s, args.repeats, args.least, args.limit))
                t = {s: figure(runs[s], args.statistic) for s in SETTINGS}
                ratio = t["default"] / min(t["1 thread"], t["all threads"])
                worst = max(worst, ratio)
                print(f"{name:9s} {k:4d}" + "".join(f" {t[s]:14.4g}" for s in SETTINGS)
                      + f" {ratio:5.2f}x {'met' if ratio <= GOAL else 'MISSED':6s} {_cpus(watch.others())}", flush=True)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    print(f"worst ratio {worst:.2f}x (goal {GOAL}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
