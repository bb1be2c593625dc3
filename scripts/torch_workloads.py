"""The five workloads of WORKLOADS.md in PyTorch (a plain nn.Sequential, SGD lr 0.1, the same
batches and epochs), for comparison only: PyTorch is never a fastbp dependency.

    python scripts/torch_workloads.py [--device cuda] [--repeats 3]
"""
import argparse
import time

import numpy as np

from fastbp.workloads import WORKLOADS


def fit_time(w, device, repeats):
    import torch
    X, y = w.data("float32")
    Xt = torch.tensor(X, device=device)
    yt = torch.tensor(y, device=device)
    layers = []
    for a, b in zip(w.sizes[:-1], w.sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.Sigmoid() if w.hidden == "sigmoid" else torch.nn.ReLU()]
    layers = layers[:-1]
    binary = w.sizes[-1] == 1
    loss_fn = torch.nn.BCEWithLogitsLoss() if binary else torch.nn.CrossEntropyLoss()
    target = yt.float().reshape(-1, 1) if binary else yt.long()
    best = float("inf")
    for r in range(repeats + 1):
        torch.manual_seed(0)
        model = torch.nn.Sequential(*layers).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(w.epochs):
            perm = torch.randperm(len(Xt), device=device)
            for s in range(0, len(Xt), w.batch_size):
                idx = perm[s:s + w.batch_size]
                opt.zero_grad()
                loss_fn(model(Xt[idx]), target[idx]).backward()
                opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if r:   # the first run warms up
            best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    for name, w in WORKLOADS.items():
        if w.sparse:   # scripts/sparse_peers.py times PyTorch's sparse product on it
            continue
        print(f"{name:9s} torch-{args.device} {fit_time(w, args.device, args.repeats):.4f} s", flush=True)
    return 0


if __name__ == "__main__":
    np.random.seed(0)
    raise SystemExit(main())
