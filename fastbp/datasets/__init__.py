"""Data to train on: the article's example and seeded generators (NumPy only)."""
from __future__ import annotations

import numpy as np


def seed_example():
    """The article's four 2-D points and their labels, as (X float64 (4, 2), y int64 (4,)).

    The article labels them -1/+1 for a sigmoid output, whose range is (0, 1); here the labels
    are 0/1 (the article's -1 is 0). The two classes are split by the sign of the first input.
    """
    X = np.array([[0.7, -0.9], [0.1, -0.6], [-0.8, -0.6], [-0.6, 0.2]])
    y = np.array([0, 0, 1, 1])
    return X, y


def make_moons(n_samples=400, noise=0.1, seed=0):
    """Two interleaving half circles, (X (n, 2), y in {0, 1}): a simple non-linear problem."""
    rng = np.random.default_rng(seed)
    n0 = n_samples // 2
    n1 = n_samples - n0
    t0 = np.linspace(0, np.pi, n0)
    t1 = np.linspace(0, np.pi, n1)
    X = np.concatenate([np.c_[np.cos(t0), np.sin(t0)], np.c_[1 - np.cos(t1), 0.5 - np.sin(t1)]])
    X += rng.normal(scale=noise, size=X.shape)
    y = np.r_[np.zeros(n0, dtype=np.int64), np.ones(n1, dtype=np.int64)]
    order = rng.permutation(n_samples)
    return X[order], y[order]


def make_spirals(n_samples=600, n_classes=3, noise=0.2, seed=0):
    """Interleaved spiral arms, one per class: (X (n, 2), y in 0..n_classes-1)."""
    rng = np.random.default_rng(seed)
    per = n_samples // n_classes
    X, y = [], []
    for c in range(n_classes):
        r = np.linspace(0.0, 1.0, per)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, per) + rng.normal(scale=noise, size=per)
        X.append(np.c_[r * np.sin(t), r * np.cos(t)])
        y.append(np.full(per, c, dtype=np.int64))
    return np.concatenate(X), np.concatenate(y)


def make_synthetic(n_samples, n_features, n_classes, seed=0, dtype=np.float32):
    """The benchmark workloads' data: standard-normal features, labels = argmax(X @ M) for a
    fixed random matrix M, from a fixed seed, so every backend sees the same problem."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features)).astype(dtype)
    M = rng.standard_normal((n_features, n_classes))
    if n_classes == 1:
        y = (X @ M[:, 0] > 0).astype(np.int64)
    else:
        y = np.argmax(X @ M, axis=1)
    return X, y


def load_digits(dtype="float32", scale=True):
    """The UCI optical handwritten digits bundled with fastbp: (X (1797, 64), y (1797,) int64).

    Each row is an 8x8 image of pixel counts 0..16, scaled to [0, 1] when `scale`. Source:
    Alpaydin, E. and Kaynak, C. (1998), "Optical Recognition of Handwritten Digits", UCI Machine
    Learning Repository, https://doi.org/10.24432/C50P49, CC BY 4.0 (the 1,797 test-set images,
    as scikit-learn ships them; scripts/make_digits.py rebuilds the file).
    """
    from importlib.resources import files
    with files(__package__).joinpath("digits.npz").open("rb") as f, np.load(f, allow_pickle=False) as z:
        X, y = z["X"], z["y"]
    X = X.astype(dtype)
    if scale:
        X /= 16
    return X, y.astype(np.int64)


def make_bag_of_words(n_samples=20_000, n_features=50_000, nnz_per_row=150, n_classes=2, signal=0.1,
                      seed=0, dtype="float32"):
    """Bag-of-words documents as a scipy CSR matrix (needs scipy): (X (n, n_features), y (n,)).

    Words follow a Zipf law (the k-th commonest has probability proportional to 1/(k + 2.7)^1.07,
    as in English text); each document draws tokens until it holds about `nnz_per_row` distinct
    words. Each class (2: sentiment-like; 20: topic-like) has its own 1% of the vocabulary,
    drawn from the less common words, of which a document of that class takes a `signal` share
    of its tokens: the label is learnable, not trivially. Values are log(1 + term count) (the
    sublinear term frequency of TfidfVectorizer(sublinear_tf=True), without idf), in `dtype`.
    """
    from scipy import sparse
    rng = np.random.default_rng(seed)
    ranks = np.arange(n_features)
    zipf = 1.0 / (ranks + 2.7) ** 1.07
    zipf /= zipf.sum()
    vocab = rng.permutation(n_features)   # word id of each rank: frequent words spread over the columns
    y = rng.integers(0, n_classes, n_samples)
    per_class = max(1, n_features // 100)
    tail = ranks[n_features // 20:]   # class words come from below the commonest 5%
    words = [vocab[rng.choice(tail, per_class, replace=False)] for _ in range(n_classes)]

    def draw(tokens):
        """(rows, cols) of `tokens` tokens per document."""
        rows = np.repeat(np.arange(n_samples), tokens)
        cols = vocab[rng.choice(n_features, rows.size, p=zipf)]
        own = rng.random(rows.size) < signal
        cols[own] = [words[c][k] for c, k in zip(y[rows[own]], rng.integers(0, per_class, own.sum()))]
        return rows, cols

    # Zipf repeats common words: find how many tokens give nnz_per_row distinct ones, then draw
    tokens = nnz_per_row
    for _ in range(2):
        rows, cols = draw(np.full(n_samples, tokens))
        distinct = sparse.coo_matrix((np.ones(rows.size), (rows, cols)), (n_samples, n_features)).tocsr().nnz
        tokens = max(1, int(round(tokens * nnz_per_row * n_samples / max(distinct, 1))))
    rows, cols = draw(rng.poisson(tokens, n_samples).clip(1))
    X = sparse.coo_matrix((np.ones(rows.size), (rows, cols)), (n_samples, n_features)).tocsr()
    X.sum_duplicates()
    X.data = np.log1p(X.data)
    X = X.astype(dtype)
    X.sort_indices()
    return X, y.astype(np.int64)
