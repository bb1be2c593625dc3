"""fastbp.sklearn against scikit-learn's own MLP on scikit-learn's bundled data sets: test
accuracy (R^2 for diabetes) and fit time, same hyper-parameters, same split, mean over seeds.

    python scripts/sklearn_compare.py [--seeds 3]

Both fits are warm: one untimed fit first, so fastbp's kernels are loaded from the cache.
"""
import argparse
import time
import warnings

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkClassifier, MLPRegressor as SkRegressor
from sklearn.preprocessing import StandardScaler

from fastbp.sklearn import MLPClassifier, MLPRegressor

CASES = [("digits", datasets.load_digits, (64,), 200), ("iris", datasets.load_iris, (32,), 200),
         ("wine", datasets.load_wine, (32,), 200), ("breast_cancer", datasets.load_breast_cancer, (32,), 200),
         ("diabetes", datasets.load_diabetes, (32,), 300)]


def run(cls, Xt, yt, Xv, yv, seeds, **kw):
    cls(random_state=0, **kw).fit(Xt, yt)   # warm-up
    scores, times = [], []
    for s in range(seeds):
        t0 = time.perf_counter()
        est = cls(random_state=s, **kw).fit(Xt, yt)
        times.append(time.perf_counter() - t0)
        scores.append(est.score(Xv, yv))
    return np.mean(scores), np.mean(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    print("| data set | hidden | max_iter | fastbp score | sklearn score | fastbp s | sklearn s | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for name, load, hidden, max_iter in CASES:
        X, y = load(return_X_y=True)
        Xt, Xv, yt, yv = train_test_split(StandardScaler().fit_transform(X), y, random_state=0)
        ours, theirs = (MLPRegressor, SkRegressor) if name == "diabetes" else (MLPClassifier, SkClassifier)
        kw = dict(hidden_layer_sizes=hidden, learning_rate_init=0.01, max_iter=max_iter)
        a, ta = run(ours, Xt, yt, Xv, yv, args.seeds, **kw)
        b, tb = run(theirs, Xt, yt, Xv, yv, args.seeds, **kw)
        print(f"| {name} | {hidden} | {max_iter} | {a:.3f} | {b:.3f} | {ta:.3f} | {tb:.3f} | {tb / ta:.1f}x |")


if __name__ == "__main__":
    main()
