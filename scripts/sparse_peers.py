"""The sparse workload ("text" in WORKLOADS.md) side by side in one run: fastbp on CSR, fastbp on
the same data densified (a cut of the rows: the whole would be 4 GB), the numpy backend on CSR,
scikit-learn's MLPClassifier on CSR, and PyTorch on CPU (torch.sparse.mm, and EmbeddingBag with
sparse gradients, its idiomatic bag-of-words layer). Each peer: plain SGD, lr 0.1, batch 64, the
epochs of the workload, warm (one untimed fit first), minimum of --repeats, with its training
accuracy beside its time. The timer covers the training only: the model is built (its weights
drawn) before it starts and scored after it stops, except in scikit-learn, whose fit draws its
weights itself. Then the fit's memory (fresh processes).

    python scripts/sparse_peers.py                 # the whole table
    python scripts/sparse_peers.py --rows 2000 --repeats 1 --no-memory   # a quick look
    python scripts/sparse_peers.py --crossover     # sparse fits on one thread and on all
"""
import argparse
import json
import os
import subprocess
import sys
import time
import warnings

os.environ.setdefault("FASTBP_TIERED", "0")   # warm speed: the fastest builds, never a quick one (kernels/tier.py)

import numpy as np

from fastbp.workloads import WORKLOADS

W = WORKLOADS["text"]


def fastbp_fit(X, y, backend, epochs):
    """(seconds, training accuracy)"""
    net = W.network(backend)
    t0 = time.perf_counter()
    net.fit(X, y, **dict(W.fit_args(), epochs=epochs))
    return time.perf_counter() - t0, net.score(X, y)


def sklearn_fit(X, y, epochs):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=W.sizes[1:-1], activation="relu", solver="sgd", alpha=0.0,
                        batch_size=W.batch_size, learning_rate_init=0.1, momentum=0.0, max_iter=epochs,
                        shuffle=True, random_state=0, n_iter_no_change=10 ** 9, tol=0.0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return time.perf_counter() - t0, clf.score(X, y)


def torch_fit(X, y, epochs, embedding_bag):
    import torch
    torch.manual_seed(0)
    n_in, hidden, n_out = W.sizes
    if embedding_bag:   # the first layer as a sum of weighted embedding rows, sparse gradient
        first = torch.nn.EmbeddingBag(n_in, hidden, mode="sum", sparse=True)
        with torch.no_grad():   # fastbp's (He) initialisation instead of N(0, 1), which learns little
            first.weight.normal_(0.0, (2 / n_in) ** 0.5)
        bias = torch.nn.Parameter(torch.zeros(hidden))
        params = [first.weight, bias]
    else:
        first = torch.nn.Parameter(torch.randn(n_in, hidden) * (2 / n_in) ** 0.5)
        bias = torch.nn.Parameter(torch.zeros(hidden))
        params = [first, bias]
    out = torch.nn.Linear(hidden, n_out)
    opt = torch.optim.SGD(params + list(out.parameters()), lr=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()
    Y = torch.from_numpy(y)
    rng = np.random.default_rng(0)

    def layer(rows):
        Xb = X[rows]
        if embedding_bag:
            return first(torch.from_numpy(Xb.indices.astype(np.int64)), torch.from_numpy(Xb.indptr[:-1].astype(np.int64)),
                         per_sample_weights=torch.from_numpy(Xb.data)) + bias
        sp = torch.sparse_csr_tensor(torch.from_numpy(Xb.indptr.astype(np.int64)),
                                     torch.from_numpy(Xb.indices.astype(np.int64)), torch.from_numpy(Xb.data),
                                     size=Xb.shape)
        return torch.sparse.mm(sp, first) + bias

    t0 = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(X.shape[0])
        for s in range(0, X.shape[0], W.batch_size):
            rows = order[s:s + W.batch_size]
            opt.zero_grad()
            loss = loss_fn(out(torch.relu(layer(rows))), Y[rows])
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        pred = np.concatenate([out(torch.relu(layer(np.arange(s, min(s + 4096, X.shape[0]))))).argmax(1).numpy()
                               for s in range(0, X.shape[0], 4096)])
    return seconds, float(np.mean(pred == y))


def timed(fit, repeats):
    """The fastest of `repeats` fits (seconds, its accuracy), after a warm-up fit."""
    fit(warm=True)
    return min(fit(warm=False) for _ in range(repeats))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=W.n_samples, help=f"rows of the data (default {W.n_samples})")
    p.add_argument("--dense-rows", type=int, default=2000,
                   help="rows of the densified cut fastbp trains on densely (default 2000)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip", default="", help="peers to leave out, comma-separated (numpy,sklearn,torch,dense)")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory table")
    p.add_argument("--crossover", action="store_true",
                   help="instead: fits of sparse networks on one thread and on all, beside the choice fastbp makes")
    args = p.parse_args(argv)
    if args.crossover:
        return crossover(args)
    skip = set(filter(None, args.skip.split(",")))
    X, y = W.data()
    X, y = X[:args.rows], y[:args.rows]
    epochs, n = W.epochs, X.shape[0]
    print(f"text workload: {n} x {X.shape[1]} CSR float32, {X.nnz / n:.0f} non-zeros per row, "
          f"{'-'.join(map(str, W.sizes))} relu/softmax, batch {W.batch_size}, {epochs} epochs, SGD lr 0.1; "
          f"warm, minimum of {args.repeats}")
    rows = {}
    rows["fastbp cpu, CSR"] = timed(lambda warm: fastbp_fit(X, y, "cpu", 1 if warm else epochs), args.repeats)
    if "dense" not in skip:
        cut = min(args.dense_rows, n)
        Xd = X[:cut].toarray()
        t, s = timed(lambda warm: fastbp_fit(Xd, y[:cut], "cpu", 1 if warm else epochs), args.repeats)
        rows[f"fastbp cpu, dense ({cut} rows, time x {n / cut:.0f})"] = (t * n / cut, s)
        del Xd
    if "numpy" not in skip:
        rows["fastbp numpy backend, CSR"] = timed(lambda warm: fastbp_fit(X, y, "numpy", 1 if warm else epochs), 1)
    if "sklearn" not in skip:
        try:
            rows["scikit-learn MLPClassifier, CSR"] = timed(lambda warm: sklearn_fit(X, y, 1 if warm else epochs), 1)
        except ImportError:
            print("(scikit-learn not installed: skipped)")
    if "torch" not in skip:
        try:
            import torch
            torch.set_num_threads(max(1, torch.get_num_threads()))
            rows[f"PyTorch {torch.__version__} sparse.mm, CPU"] = timed(
                lambda warm: torch_fit(X, y, 1 if warm else epochs, False), args.repeats)
            rows["PyTorch EmbeddingBag(sparse=True), CPU"] = timed(
                lambda warm: torch_fit(X, y, 1 if warm else epochs, True), args.repeats)
        except ImportError:
            print("(PyTorch not installed: skipped)")
    ours = rows["fastbp cpu, CSR"][0]
    print(f"{'':46s} {'seconds':>9s} {'accuracy':>9s} {'vs fastbp':>10s}")
    for name, (t, s) in rows.items():
        print(f"{name:46s} {t:9.3f} {s:9.3f} {t / ours:9.1f}x", flush=True)
    peers = {k: v[0] for k, v in rows.items() if not k.startswith("fastbp")}
    if "fastbp numpy backend, CSR" in rows:
        print(f"target: >= 10x the numpy backend: {rows['fastbp numpy backend, CSR'][0] / ours:.1f}x")
    if peers:
        best = min(peers, key=peers.get)
        print(f"target: >= 3x the fastest other peer ({best}): {peers[best] / ours:.1f}x")
    if args.memory:
        memory(X)
    return 0


def crossover(args):
    """When threads pay on sparse input: one epoch of bag-of-words networks of several widths
    and batch sizes, on one thread and on all (config.PARALLEL_MIN_FLOP pushed to either side),
    beside the weighted work fastbp's choice reads (config.SPARSE_MAC_WEIGHT)."""
    from fastbp import Network, config
    from fastbp.kernels.cpu.backend import CpuBackend
    from fastbp.datasets import make_bag_of_words
    X, y = make_bag_of_words(n_samples=min(args.rows, 10_000), n_classes=20)
    default = config.PARALLEL_MIN_FLOP
    print(f"one epoch on {X.shape[0]} rows of {X.shape[1]} columns, {X.nnz / X.shape[0]:.0f} non-zeros per row, "
          f"minimum of {args.repeats}; threads chosen at weighted MFLOP >= {default / 1e6:g}")
    print(f"{'hidden':>6s} {'batch':>5s} {'weighted MFLOP':>14s} {'1 thread s':>10s} {'threads s':>10s} {'chosen':>8s}")
    for hidden, batch in [(32, 32), (64, 32), (64, 64), (128, 32), (256, 16), (256, 64)]:
        best = {}
        for name, limit in (("one", 10 ** 15), ("all", 0)):
            config.PARALLEL_MIN_FLOP = limit
            Network([X.shape[1], hidden, 20], seed=0).fit(X[:500], y[:500], epochs=1, batch_size=batch, lr=0.1)
            times = []
            for _ in range(args.repeats):
                net = Network([X.shape[1], hidden, 20], seed=0)
                t0 = time.perf_counter()
                net.fit(X, y, epochs=1, batch_size=batch, lr=0.1)
                times.append(time.perf_counter() - t0)
            best[name] = min(times)
        config.PARALLEL_MIN_FLOP = default
        backend = CpuBackend(Network([X.shape[1], hidden, 20], seed=0).spec, "float32", 0)
        weighted = 2 * 3 * batch * backend.macs(X)
        print(f"{hidden:6d} {batch:5d} {weighted / 1e6:14.1f} {best['one']:10.4f} {best['all']:10.4f} "
              f"{'threads' if backend.threaded(batch, 3, X) else 'one':>8s}", flush=True)
    return 0


def memory(X):
    """The fit's peak resident memory (fresh process) against data + parameters + optimizer state."""
    code = ("import json; from fastbp.workloads import WORKLOADS, fit_peak_memory; "
            "print(json.dumps(fit_peak_memory(WORKLOADS['text'], 'cpu')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result is None:
        print("memory: needs Linux's /proc/self/clear_refs")
        return
    data = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2 ** 20
    params = sum(a * b + b for a, b in zip(W.sizes[:-1], W.sizes[1:])) * 4 / 2 ** 20
    print(f"memory, MB: the CSR data {data:.1f}, the parameters {params:.1f} (plain SGD keeps no optimizer state); "
          f"the warm fit raised resident memory by {result[1]:.1f} and allocated at most {result[2]:.1f}; "
          f"dense X would be {X.shape[0] * X.shape[1] * 4 / 2 ** 20:.0f}")


if __name__ == "__main__":
    sys.exit(main())
