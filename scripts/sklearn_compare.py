"""fastbp.sklearn against scikit-learn's own MLP, solver by solver: test accuracy (R^2 for the
regression) and fit time with the same hyper-parameters and split, mean over seeds; then the
cost of one full-batch loss-and-gradient evaluation (what solver='lbfgs' calls each step).

    python scripts/sklearn_compare.py [--seeds 5] [--solvers lbfgs,sgd,adam]

Both sides are warm: one untimed fit first, so fastbp's kernels are loaded from the cache.
"""
import argparse
import os
import time
import warnings

os.environ.setdefault("FASTBP_TIERED", "0")   # warm speed: the fastest builds, never a quick one (kernels/tier.py)

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkClassifier, MLPRegressor as SkRegressor
from sklearn.preprocessing import LabelBinarizer, StandardScaler

from fastbp.sklearn import MLPClassifier, MLPRegressor

CASES = [("digits", datasets.load_digits, (64,)), ("wine", datasets.load_wine, (32,)),
         ("breast_cancer", datasets.load_breast_cancer, (32,)),
         ("friedman1 (R^2)", lambda return_X_y: datasets.make_friedman1(800, noise=1.0, random_state=0), (32,))]
SOLVER_ARGS = {"lbfgs": dict(solver="lbfgs"), "sgd": dict(solver="sgd", learning_rate_init=0.05),
               "adam": dict(solver="adam", learning_rate_init=0.01)}
MAX_ITER = 200


def run(cls, Xt, yt, Xv, yv, seeds, **kw):
    cls(random_state=0, **kw).fit(Xt, yt)   # warm-up
    scores, times = [], []
    for s in range(seeds):
        t0 = time.perf_counter()
        est = cls(random_state=s, **kw).fit(Xt, yt)
        times.append(time.perf_counter() - t0)
        scores.append(est.score(Xv, yv))
    return np.mean(scores), np.mean(times)


def evaluation_cost(repeats=200):
    """Milliseconds per loss-and-gradient over all 1,797 digits, hidden (100,): fastbp's
    compiled blocks against scikit-learn's NumPy backprop (both through `_loss_grad_lbfgs`,
    the method scikit-learn's L-BFGS calls)."""
    X, y = datasets.load_digits(return_X_y=True)
    X = X / 16
    Y = LabelBinarizer().fit_transform(y)
    out = []
    for cls in (MLPClassifier, SkClassifier):
        est = cls(solver="lbfgs", max_iter=1, random_state=0).fit(X, y)
        theta = np.concatenate([a.ravel() for a in est.coefs_ + est.intercepts_])
        units = [64, 100, 10]
        buffers = ([X] + [np.empty((len(X), u)) for u in units[1:]], [np.empty((len(X), u)) for u in units[1:]],
                   [np.empty((a, b)) for a, b in zip(units[:-1], units[1:])], [np.empty(u) for u in units[1:]])
        est._loss_grad_lbfgs(theta, X, Y, None, *buffers)
        t0 = time.perf_counter()
        for _ in range(repeats):
            est._loss_grad_lbfgs(theta, X, Y, None, *buffers)
        out.append((time.perf_counter() - t0) / repeats * 1e3)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--solvers", default="lbfgs,sgd,adam")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    print(f"max_iter={MAX_ITER}, mean over {args.seeds} seeds, float64 data (both fit in X's dtype)\n")
    print("| data set | hidden | solver | fastbp score | sklearn score | fastbp s | sklearn s | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for name, load, hidden in CASES:
        X, y = load(return_X_y=True)
        if name.startswith("friedman"):
            y = (y - y.mean()) / y.std()
        Xt, Xv, yt, yv = train_test_split(StandardScaler().fit_transform(X), y, random_state=0)
        ours, theirs = (MLPRegressor, SkRegressor) if "R^2" in name else (MLPClassifier, SkClassifier)
        for solver in args.solvers.split(","):
            kw = dict(hidden_layer_sizes=hidden, max_iter=MAX_ITER, **SOLVER_ARGS[solver])
            a, ta = run(ours, Xt, yt, Xv, yv, args.seeds, **kw)
            b, tb = run(theirs, Xt, yt, Xv, yv, args.seeds, **kw)
            print(f"| {name} | {hidden} | {solver} | {a:.3f} | {b:.3f} | {ta:.3f} | {tb:.3f} | {tb / ta:.1f}x |")
    ours_ms, theirs_ms = evaluation_cost()
    print(f"\none loss + gradient over the 1,797 digits, hidden (100,), float64: fastbp {ours_ms:.2f} ms, "
          f"scikit-learn {theirs_ms:.2f} ms ({theirs_ms / ours_ms:.1f}x)")


if __name__ == "__main__":
    main()
