"""Input checks, dtype and layout coercion, target encoding, epoch orders. No math kernels.

Every array a backend sees passes through here: 2-D, finite, C-contiguous, in the network's
dtype (converted once; an array that already is so is used in place, not copied). Sparse X
(any scipy.sparse matrix or array) becomes a canonical scipy CSR matrix in that dtype: sorted
column indices, no duplicates (summed, as scipy does), finite values; a CSR matrix that already
is so is used in place.
"""
from __future__ import annotations

import warnings

import numpy as np

# Rows x epochs of shuffle orders drawn at once; fits longer than this draw them in chunks.
MAX_ORDER_ELEMENTS = 1 << 22


def _as_real_array(a, name):
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be array-like of numbers: {exc}") from None
    if arr.dtype.kind not in "biuf":
        hint = (" (text class labels are taken by classifiers: output='softmax', or 'sigmoid' with one unit)"
                if arr.dtype.kind in "USO" else f", e.g. {name}.astype(np.float32)")
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}; convert it first{hint}")
    return arr


def text_labels(y):
    """y as a 1-D array of labels when it holds text or other non-numeric values (strings,
    Python objects such as pandas' categories), else None: numbers are left to the checks of
    encode_targets."""
    if not hasattr(y, "dtype"):
        try:
            y = np.asarray(y)
        except Exception:   # ragged lists: encode_targets says so
            return None
    kind = np.dtype(y.dtype).kind if isinstance(getattr(y, "dtype", None), np.dtype) else "O"
    if kind in "biufc":
        return None
    arr = np.asarray(y, dtype=object) if kind == "O" else np.asarray(y)
    if arr.ndim != 1 and not (arr.ndim == 2 and arr.shape[1] == 1):
        return None
    arr = arr.reshape(-1)
    if kind == "O":
        try:   # objects that are all numbers are numbers
            arr.astype(np.float64)
            return None
        except (TypeError, ValueError):
            pass
        if any(v is None or (isinstance(v, float) and v != v) for v in arr):
            raise ValueError("y holds missing labels (None or NaN); drop or fill those rows first")
        return arr.astype(str) if all(isinstance(v, str) for v in arr) else arr
    return arr


def _check_finite(arr, name):
    # here and in the checks below, ndarray methods (.all(), .any()) rather than np.all and
    # np.any, whose Python wrappers cost microseconds a call: a small network's whole fit is
    # a few hundred
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise ValueError(f"{name} holds NaN or infinite values (first in row {bad}); remove or impute "
                         f"them before fitting")


def is_sparse(X):
    """Whether X is a scipy.sparse matrix or array (without importing scipy for dense X)."""
    return type(X).__module__.startswith("scipy.sparse") and hasattr(X, "tocsr")


def _check_sparse(X, n_features, dtype, name):
    from scipy import sparse
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got a sparse array of shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got a sparse matrix of dtype {X.dtype}; convert it "
                        f"first, e.g. {name}.astype(np.float32)")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no rows")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features but the network's input layer has "
                         f"{n_features}; check sizes[0] or the columns of {name}")
    csr = sparse.csr_matrix(X)   # CSR input (matrix or array) shares its arrays; others convert once
    if csr.dtype != dtype:
        csr = csr.astype(dtype)
    if not np.isfinite(csr.data).all():
        k = int(np.argmax(~np.isfinite(csr.data)))
        bad = int(np.searchsorted(csr.indptr, k, side="right") - 1)
        raise ValueError(f"{name} holds NaN or infinite values (first in row {bad}); remove or impute "
                         f"them before fitting")
    if not csr.has_canonical_format:   # unsorted or duplicate column indices: fix a copy, never X
        csr = csr.copy()
        csr.sum_duplicates()
    return csr


def check_X(X, n_features, dtype, name="X"):
    """X as a C-contiguous (n, n_features) array of `dtype`, or for sparse X a canonical CSR
    matrix of `dtype`."""
    if is_sparse(X):
        return _check_sparse(X, n_features, dtype, name)
    arr = _as_real_array(X, name)
    if arr.ndim == 1:
        raise ValueError(f"{name} is 1-D with shape {arr.shape}; pass a 2-D array of shape "
                         f"(n_samples, {n_features}), e.g. {name}.reshape(-1, {n_features})")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no rows")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features but the network's input layer has "
                         f"{n_features}; check sizes[0] or the columns of {name}")
    _check_finite(arr, name)
    return np.ascontiguousarray(arr, dtype=dtype)


def encode_targets(y, spec, dtype, n_rows, name="y"):
    """Targets as a C-contiguous (n, n_out) array of `dtype`, in the form the loss expects.

    softmax: integer class labels in [0, n_out) or one-hot rows.
    sigmoid: 0/1 (or -1/+1, mapped to 0/1 with a warning), one column per output.
    linear, tanh: real values, 1-D when there is one output; exp (Poisson): non-negative values.
    """
    arr = _as_real_array(y, name)
    n_out, output = spec.n_out, spec.output
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    if arr.shape[0] != n_rows:
        raise ValueError(f"X has {n_rows} rows but {name} has {arr.shape[0]}; they must match")
    _check_finite(arr, name)

    if output == "softmax":
        if arr.ndim == 1 or arr.shape[1] == 1:
            labels = arr.reshape(-1)
            if (labels != np.round(labels)).any():
                raise ValueError(f"{name} for a softmax output must be integer class labels or one-hot "
                                 f"rows; got non-integer values")
            if labels.min() < 0 or labels.max() >= n_out:
                raise ValueError(f"{name} has labels from {labels.min():g} to {labels.max():g}, but the "
                                 f"softmax output has {n_out} units (labels 0..{n_out - 1}); encode the "
                                 f"classes as 0..{n_out - 1} or widen the output layer")
            Y = np.zeros((n_rows, n_out), dtype=dtype)
            Y[np.arange(n_rows), labels.astype(np.int64)] = 1
            return Y
        if arr.shape[1] != n_out:
            raise ValueError(f"{name} has {arr.shape[1]} columns but the output layer has {n_out} units")
        if not (((arr == 0) | (arr == 1)).all() and (arr.sum(axis=1) == 1).all()):
            raise ValueError(f"{name} has rows that are not one-hot (exactly one 1, the rest 0); pass "
                             f"integer class labels instead")
        return np.ascontiguousarray(arr, dtype=dtype)

    Y = arr.reshape(-1, 1) if arr.ndim == 1 else arr
    if Y.shape[1] != n_out:
        raise ValueError(f"{name} has {Y.shape[1]} target column(s) but the output layer has {n_out} "
                         f"unit(s)")
    # comparisons over Y rather than np.unique (a sort) or np.isin, whose set-up dominates small sets
    if output == "sigmoid" and not ((Y == 0) | (Y == 1)).all():
        if ((Y == -1) | (Y == 1)).all():
            warnings.warn(f"{name} uses -1/+1 labels; mapping -1 -> 0 for the sigmoid output, whose "
                          f"range is (0, 1)", stacklevel=3)
            Y = (Y > 0)
        else:
            raise ValueError(f"{name} for a sigmoid output must be 0/1 (or -1/+1) labels, got values "
                             f"{np.unique(Y)[:5].tolist()}; for real-valued targets use output='linear'")
    if output == "exp" and (Y < 0).any():
        raise ValueError(f"{name} for an exp output (Poisson loss) must be non-negative counts or rates, "
                         f"got a minimum of {Y.min():g}; for real-valued targets use output='linear'")
    return np.ascontiguousarray(Y, dtype=dtype)


def check_two_classes(Y, spec):
    """A classifier fit on one class learns nothing but a constant: almost always a mistake
    (a filtered or sorted-and-split data set). partial_fit allows it, for streaming batches."""
    # Y as encode_targets makes it: one-hot rows (softmax) or 0/1 (one sigmoid unit). Two classes
    # are there iff some row differs from the first: one pass over contiguous memory, where a
    # per-column reduction (Y.any(axis=0)) steps through the rows a few columns at a time
    if spec.output == "softmax":
        rows = Y
    elif spec.output == "sigmoid" and spec.n_out == 1:
        rows = Y[:, 0] > 0.5
    else:
        return
    if not (rows != rows[0]).any():
        single = int(np.argmax(rows[0])) if spec.output == "softmax" else int(rows[0])
        raise ValueError(f"y holds a single class ({single}); a classifier needs "
                         f"at least two to learn from. Check how the data was filtered or split, or use "
                         f"partial_fit for a streaming batch of one class")


def epoch_orders(rng, n, n_epochs, shuffle):
    """(n_epochs, n) sample orders: a fresh permutation per epoch from `rng`, or 0..n-1."""
    base = np.tile(np.arange(n, dtype=np.int64), (n_epochs, 1))
    return rng.permuted(base, axis=1, out=base) if shuffle else base   # in place: half the memory


def epoch_chunks(n, epochs):
    """Split `epochs` into runs whose order arrays stay under MAX_ORDER_ELEMENTS."""
    per = max(1, MAX_ORDER_ELEMENTS // max(n, 1))
    done = 0
    while done < epochs:
        k = min(per, epochs - done)
        yield k
        done += k


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_number(value, name, low=0.0, high=None, low_open=False):
    """A finite float in [low, high) (or (low, high) with low_open); errors name the argument."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < low or (low_open and v == low) or (high is not None and v >= high):
        bounds = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'})"
        raise ValueError(f"{name} must be a finite number in {bounds}, got {value!r}")
    return v


def sample_weights(sample_weight, class_weight, Y, spec, dtype):
    """(n,) per-row loss weights: sample_weight times the weight of each row's class."""
    n = Y.shape[0]
    w = np.ones(n, dtype=np.float64)
    if sample_weight is not None:
        sw = _as_real_array(sample_weight, "sample_weight").astype(np.float64)
        if sw.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), one weight per row of X; got {sw.shape}")
        if not np.isfinite(sw).all() or (sw < 0).any():
            raise ValueError("sample_weight must be finite and non-negative")
        w *= sw
    if class_weight is not None:
        if spec.output == "softmax":
            labels, k = Y.argmax(axis=1), spec.n_out
        elif spec.output == "sigmoid" and spec.n_out == 1:
            labels, k = (Y[:, 0] > 0.5).astype(np.int64), 2
        else:
            raise ValueError("class_weight needs a classifier: a softmax output, or one sigmoid unit")
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise ValueError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
            counts = np.bincount(labels, minlength=k)
            cw = np.where(counts > 0, n / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0)
        elif isinstance(class_weight, dict):
            cw = np.ones(k)
            for c, v in class_weight.items():
                if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < k:
                    raise ValueError(f"class_weight key {c!r} is not a class label 0..{k - 1}")
                if not (np.isfinite(v) and v >= 0):
                    raise ValueError(f"class_weight[{c}] must be finite and non-negative, got {v!r}")
                cw[c] = v
        else:
            raise TypeError(f"class_weight must be a dict {{class: weight}} or 'balanced', got {class_weight!r}")
        w *= cw[labels]
    if not (w > 0).any():
        raise ValueError("every sample weight is zero: nothing to train on")
    return np.ascontiguousarray(w, dtype=dtype)
