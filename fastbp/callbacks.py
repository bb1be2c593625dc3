"""Callbacks: objects that fit() calls at the start, after every epoch, and at the end.

A callback may read `self.network` (set by fit) and stop training by setting
`self.network.stop_training = True`. `logs` carries the epoch's figures: loss, val_loss and
val_score (when validating), lr, time (seconds).
"""
from __future__ import annotations

import sys
import time


class Callback:
    network = None

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_end(self, epoch, logs):
        pass

    def on_train_end(self, logs=None):
        pass


class History(Callback):
    """What fit returns: `history` maps each figure to its per-epoch list; `epoch` the indices."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def extend(self, epochs, **figures):
        """Record several epochs at once (lists of equal length per figure)."""
        self.epoch.extend(epochs)
        for key, values in figures.items():
            self.history.setdefault(key, []).extend(values)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    Losses improve downwards, scores ("val_score", "score") upwards. With restore_best_weights,
    the network ends with the weights (and batch-norm statistics) of its best epoch.
    """

    def __init__(self, monitor="val_loss", patience=10, min_delta=0.0, restore_best_weights=True):
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.restore_best_weights = restore_best_weights
        self.sign = -1.0 if "score" in monitor else 1.0   # minimise sign * value

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.wait, self.best_state = float("inf"), None, 0, None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(f"early stopping monitors {self.monitor!r}, which this fit does not "
                             f"report (it has {sorted(logs)})")
        value = self.sign * logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_state = self.network.snapshot(optimizer=False)
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.network.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_state is not None:
            self.network.restore(self.best_state)


class ProgressBar(Callback):
    """verbose=1: a bar over each epoch's samples with the running loss and samples per second;
    tqdm when it is installed, else a plain line redrawn on stderr."""

    def __init__(self, epochs, n_samples, file=None):
        self.epochs, self.n = epochs, n_samples
        self.file = file or sys.stderr
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self._tqdm = tqdm
        self._bar = None

    def start_epoch(self, epoch):
        self._t0, self._done = time.perf_counter(), 0
        if self._tqdm is not None:
            self._bar = self._tqdm(total=self.n, desc=f"epoch {epoch + 1}/{self.epochs}",
                                   unit="sample", file=self.file, leave=True)

    def advance(self, rows, mean_loss):
        self._done += rows
        rate = self._done / max(time.perf_counter() - self._t0, 1e-9)
        if self._bar is not None:
            self._bar.update(rows)
            self._bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
        else:
            width = 30
            filled = int(width * self._done / self.n)
            print(f"\r[{'=' * filled}{' ' * (width - filled)}] {self._done}/{self.n} "
                  f"loss {mean_loss:.4f} {rate:,.0f} samples/s", end="", file=self.file, flush=True)

    def on_epoch_end(self, epoch, logs):
        extra = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if k.startswith("val_"))
        if self._bar is not None:
            if extra:
                self._bar.set_postfix_str(f"loss={logs['loss']:.4f} {extra}")
            self._bar.close()
        else:
            print(f" {extra}".rstrip(), file=self.file, flush=True)


class EpochLine(Callback):
    """verbose=2: one line per epoch."""

    def __init__(self, epochs, file=None):
        self.epochs, self.file = epochs, file

    def on_epoch_end(self, epoch, logs):
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
        parts += [f"{k} {v:.4g}" if k == "lr" else f"{k} {v:.4f}" for k, v in logs.items()
                  if k != "time"]
        parts.append(f"{logs['time'] * 1e3:.1f} ms")
        print(" - ".join(parts), file=self.file or sys.stdout, flush=True)
