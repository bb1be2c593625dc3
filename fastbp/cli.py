"""The command line: `python -m fastbp demo`. Parsing and printing only; no math."""
from __future__ import annotations

import argparse
import sys
import time



def _timed_fit(backend, X, y, repeats, **fit):
    """Minimum wall time of `repeats` fits from the same seed, and the last network."""
    from .network import Network
    best = float("inf")
    for _ in range(repeats):
        net = Network([2, 4, 1], hidden="sigmoid", output="sigmoid", seed=0, backend=backend)
        t0 = time.perf_counter()
        hist = net.fit(X, y, **fit)
        best = min(best, time.perf_counter() - t0)
    return best, net, hist


def demo(args):
    from . import datasets
    from .network import Network

    X, y = datasets.seed_example()
    fit = dict(epochs=1000, batch_size=4, lr=0.1)
    print("The article's network: 2 inputs -> 4 sigmoid -> 1 sigmoid, binary cross-entropy,")
    print("plain SGD, lr 0.1, batch 4, 1000 epochs, on the article's 4 points.\n")

    t0 = time.perf_counter()
    Network([2, 4, 1], hidden="sigmoid", output="sigmoid", seed=0).fit(X, y, epochs=1, batch_size=4)
    print(f"kernels ready in {time.perf_counter() - t0:.2f} s (compiled once, then cached on disk)\n")

    cpu_s, net, hist = _timed_fit("cpu", X, y, args.repeats, **fit)
    losses = hist.history["loss"]
    for e in (0, 9, 99, 249, 499, 749, 999):
        print(f"  epoch {e + 1:4d}  loss {losses[e]:.4f}")
    acc = net.score(X, y)
    print(f"\nfinal training accuracy: {acc:.0%} ({int(round(acc * len(y)))}/{len(y)})")
    print("predictions:", " ".join(f"{p:.3f}" for p in net.predict(X).ravel()), "  labels:", *y.tolist())

    np_s, _, _ = _timed_fit("numpy", X, y, args.repeats, **fit)
    print(f"\nwhole fit, minimum of {args.repeats}: cpu {cpu_s * 1e3:.2f} ms, numpy reference "
          f"{np_s * 1e3:.2f} ms -> {np_s / cpu_s:.1f}x")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="fastbp", description="Fast backpropagation for "
                                     "fully-connected networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train the article's example and compare with the numpy backend")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per backend (default 5)")
    p.set_defaults(func=demo)
    # `bench` has its own parser (fastbp.bench.main); listed here for --help
    sub.add_parser("bench", help="time every kernel on each backend against the sgemm limit "
                   "(options: fastbp bench --help)")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from .bench import main as bench_main
        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
