"""The five dense workloads of WORKLOADS.md in PyTorch on one device (the peers' nn.Sequential,
SGD lr 0.1, fastbp's initial weights and epoch orders: fastbp.peers.Torch), for comparison
only: PyTorch is never a fastbp dependency. scripts/gpu_check.sh runs it on the GPU;
scripts/peers.py is the side-by-side table on the CPU.

    python scripts/torch_workloads.py [--device cuda] [--repeats 3]
"""
import argparse
import os

os.environ.setdefault("FASTBP_TIERED", "0")   # warm speed: the fastest builds, never a quick one (kernels/tier.py)

from fastbp import peers
from fastbp.workloads import WORKLOADS


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    for name, w in WORKLOADS.items():
        if w.sparse:   # scripts/sparse_peers.py times PyTorch's sparse product on it
            continue
        seconds, acc = peers.time_peer(peers.Torch(device=args.device), peers.problem(w), args.repeats)
        print(f"{name:9s} torch-{args.device} {seconds:.4f} s (training accuracy {acc:.3f})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
