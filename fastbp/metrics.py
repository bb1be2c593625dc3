"""Figures of how well predictions match targets: the functions `Network.evaluate` and
`fit(metrics=...)` look up by name.

Each function takes the targets and the network's outputs as `fit` encodes them: (n, n_out)
arrays, one-hot rows for a softmax output, 0/1 columns for sigmoid outputs, real values
otherwise. Classifier figures are macro averages over the classes (each class weighs the same,
scikit-learn's average="macro"); a class that is never predicted has precision 0, one that
never occurs has recall 0, as scikit-learn reports them with zero_division=0. Several sigmoid
units are independent labels (multilabel): accuracy is the share of rows with every label right,
and precision, recall and F1 are averaged over the labels, each a yes/no class of its own.
"""
import numpy as np


def _labels(Y, P):
    """(true, predicted, number of classes) for a classifier's one-hot or 0/1 targets."""
    if Y.shape[1] == 1:   # one sigmoid output: two classes
        return (Y[:, 0] > 0.5).astype(np.int64), (P[:, 0] > 0.5).astype(np.int64), 2
    return Y.argmax(axis=1), P.argmax(axis=1), Y.shape[1]


def confusion_matrix(Y, P):
    """(k, k) counts: row i, column j holds the rows of class i predicted as class j."""
    true, pred, k = _labels(Y, P)
    return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)


def _ratios(hits, predicted, actual):
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return precision, recall, f1


def _per_class(Y, P):
    m = confusion_matrix(Y, P).astype(np.float64)
    return _ratios(np.diag(m), m.sum(axis=0), m.sum(axis=1))


def _per_label(Y, P):
    true, pred = Y > 0.5, P > 0.5
    return _ratios((true & pred).sum(axis=0).astype(np.float64), pred.sum(axis=0).astype(np.float64),
                   true.sum(axis=0).astype(np.float64))


def accuracy(Y, P):
    true, pred, _ = _labels(Y, P)
    return float(np.mean(true == pred))


def precision(Y, P):
    return float(_per_class(Y, P)[0].mean())


def recall(Y, P):
    return float(_per_class(Y, P)[1].mean())


def f1(Y, P):
    return float(_per_class(Y, P)[2].mean())


def subset_accuracy(Y, P):
    return float(np.mean(np.all((Y > 0.5) == (P > 0.5), axis=1)))


def label_precision(Y, P):
    return float(_per_label(Y, P)[0].mean())


def label_recall(Y, P):
    return float(_per_label(Y, P)[1].mean())


def label_f1(Y, P):
    return float(_per_label(Y, P)[2].mean())


def mae(Y, P):
    """Mean absolute error over every row and output."""
    return float(np.mean(np.abs(Y.astype(np.float64) - P)))


def rmse(Y, P):
    """Root of the mean squared error over every row and output."""
    return float(np.sqrt(np.mean((Y.astype(np.float64) - P) ** 2)))


def r2(Y, P):
    """The coefficient of determination, averaged over outputs; a constant target scores 1 if
    predicted exactly, else 0 (scikit-learn's convention)."""
    Y = Y.astype(np.float64)
    ss_res = ((Y - P) ** 2).sum(axis=0)
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), (ss_res == 0) * 1.0).mean())


CLASSIFIER = {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}
MULTILABEL = {"accuracy": subset_accuracy, "precision": label_precision, "recall": label_recall, "f1": label_f1}
REGRESSOR = {"r2": r2, "mae": mae, "rmse": rmse}


def for_output(output, n_out):
    """The metric table that fits a network's output activation and width."""
    if output == "softmax" or (output == "sigmoid" and n_out == 1):
        return CLASSIFIER
    return MULTILABEL if output == "sigmoid" else REGRESSOR


def check_names(names, output, n_out):
    """The metric names for fit(metrics=...), checked against the network's kind."""
    if isinstance(names, str):
        names = [names]
    table = for_output(output, n_out)
    names = list(names)
    for name in names:
        if name not in table:
            kind = "a regressor" if table is REGRESSOR else "a classifier"
            raise ValueError(f"metrics: {name!r} is not a metric of {kind} (output {output!r}); choose from "
                             f"{sorted(table)}")
    return names
