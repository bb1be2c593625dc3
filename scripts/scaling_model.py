"""Will data-parallel training over MPI pay? Measured figures for the five workloads, and a
projection of parallel efficiency at 2 to 256 ranks on 25 and 100 Gb/s networks.

    python scripts/scaling_model.py                      # measure here, then project
    mpiexec -n 2 python scripts/scaling_model.py --measure-allreduce   # (run by the above)

Measured on this machine: the compute time of one training step (a whole single-process fit of
the workload divided by its steps), and the time of one all-reduce of the flat gradient between
2 ranks (through shared memory here, so it is a floor, not a network figure).

Model (ring all-reduce, no overlap of communication with compute, weak scaling: batch per rank
fixed): t_allreduce(p) = 2 (p - 1) alpha + 2 (p - 1) / p * bytes / beta, with alpha the per-message
latency (5 us, typical of a data-centre network with MPI) and beta the link bandwidth;
efficiency(p) = t_step / (t_step + t_allreduce(p)).
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("FASTBP_TIERED", "0")   # warm speed: the fastest builds, never a quick one (kernels/tier.py)

import numpy as np

ALPHA = 5e-6
NETWORKS = {"25 Gb/s": 25e9 / 8, "100 Gb/s": 100e9 / 8}
RANKS = [2, 4, 8, 16, 32, 64, 128, 256]


def measure_allreduce():
    """Under mpiexec: print JSON {workload: seconds per all-reduce of its gradient (+1 value)}."""
    from mpi4py import MPI

    from fastbp.workloads import WORKLOADS
    comm = MPI.COMM_WORLD
    result = {}
    for name, w in WORKLOADS.items():
        n = sum(a * b + b for a, b in zip(w.sizes[:-1], w.sizes[1:])) + 1
        send, recv = np.ones(n), np.zeros(n)
        reps = max(20, min(2000, int(2e8 // (n * 8 + 1))))
        for _ in range(5):
            comm.Allreduce(send, recv)
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(reps):
            comm.Allreduce(send, recv)
        result[name] = (time.perf_counter() - t0) / reps
    if comm.rank == 0:
        print(json.dumps(result))


def step_times():
    """Seconds of compute per training step, single process, warm, per workload."""
    from fastbp.workloads import WORKLOADS, time_fit
    out = {}
    for name, w in WORKLOADS.items():
        steps = w.epochs * -(-w.n_samples // w.batch_size)
        out[name] = time_fit(w, "cpu", repeats=3) / steps
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--measure-allreduce", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure_allreduce:
        return measure_allreduce()
    from fastbp.workloads import WORKLOADS
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    measured = subprocess.run([mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", "2", sys.executable,
                               __file__, "--measure-allreduce"], capture_output=True, text=True, check=True)
    allreduce = json.loads(measured.stdout.strip().splitlines()[-1])
    steps = step_times()
    print("Measured on this machine (2 ranks, shared memory for the all-reduce):")
    print(f"{'workload':9s} {'params':>9s} {'step us':>9s} {'allreduce us':>13s} {'ratio':>7s}")
    sizes = {}
    for name, w in WORKLOADS.items():
        n = sum(a * b + b for a, b in zip(w.sizes[:-1], w.sizes[1:]))
        sizes[name] = n
        print(f"{name:9s} {n:9d} {steps[name] * 1e6:9.1f} {allreduce[name] * 1e6:13.1f} "
              f"{allreduce[name] / steps[name]:7.2f}")
    for net_name, beta in NETWORKS.items():
        print(f"\nProjected parallel efficiency, {net_name}, alpha {ALPHA * 1e6:.0f} us (ring all-reduce, float64 "
              f"gradient, batch per rank fixed):")
        print(f"{'workload':9s}" + "".join(f" {p:>6d}" for p in RANKS))
        for name in WORKLOADS:
            nbytes = 8 * (sizes[name] + 1)
            row = ""
            for p in RANKS:
                t_ar = 2 * (p - 1) * ALPHA + 2 * (p - 1) / p * nbytes / beta
                row += f" {steps[name] / (steps[name] + t_ar):6.0%}"
            print(f"{name:9s}{row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
