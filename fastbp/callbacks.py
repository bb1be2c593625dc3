"""Callbacks: objects that fit() calls at the start, after every epoch, and at the end.

A callback may read `self.network` (set by fit) and stop training by setting
`self.network.stop_training = True`. `logs` carries the epoch's figures: loss, val_loss and
val_score (when validating), lr, time (seconds), and those of fit(metrics=...).
"""
from __future__ import annotations

import math
import os
import sys
import time

# figures that improve upwards; every other (losses, mae, rmse) improves downwards
_HIGHER_IS_BETTER = ("score", "accuracy", "precision", "recall", "f1", "r2")


def higher_is_better(name):
    return name.split("val_", 1)[-1] in _HIGHER_IS_BETTER


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
        self._history = {}
        self._epoch = []
        self._pending = []   # runs of epochs recorded in bulk, made into lists when first read

    @property
    def history(self):
        self._flush()
        return self._history

    @property
    def epoch(self):
        self._flush()
        return self._epoch

    def on_epoch_end(self, epoch, logs):
        self._flush()
        self._epoch.append(epoch)
        for key, value in logs.items():
            self._history.setdefault(key, []).append(value)

    def extend(self, epochs, **figures):
        """Record several epochs at once: `epochs` a range, each figure a NumPy array or list of
        one value per epoch, which no one writes afterwards: kept as given until read. A fit of a
        thousand epochs in one compiled call would otherwise spend a tenth of a small network's
        whole fit making Python floats that nobody may read."""
        self._pending.append((epochs, figures))

    def _flush(self):
        for epochs, figures in self._pending:
            self._epoch.extend(epochs)
            for key, values in figures.items():
                self._history.setdefault(key, []).extend(values.tolist() if hasattr(values, "tolist") else values)
        self._pending.clear()

    def __setstate__(self, state):
        # a History pickled by an earlier fastbp holds its lists as `history` and `epoch`
        if "history" in state:
            state = dict(state, _history=state["history"], _epoch=state["epoch"], _pending=[])
            del state["history"], state["epoch"]
        self.__dict__.update(state)

    def truncate(self, n):
        """Keep the first n epochs' records only (an epoch rolled back)."""
        self._flush()
        del self._epoch[n:]
        for values in self._history.values():
            del values[n:]

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    Losses, mae and rmse improve downwards; scores, accuracy, precision, recall, f1 and r2
    upwards. With restore_best_weights,
    the network ends with the weights (and batch-norm statistics) of its best epoch.
    """

    def __init__(self, monitor="val_loss", patience=10, min_delta=0.0, restore_best_weights=True):
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.restore_best_weights = restore_best_weights
        self.sign = -1.0 if higher_is_better(monitor) else 1.0   # minimise sign * value

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


class ModelCheckpoint(Callback):
    """Save the network after epochs, as Network.save does: atomically (a temporary file in the
    same folder, renamed over the old one), so a crash or Ctrl-C mid-write leaves the last good
    file, never half of one.

    path: the file; may hold "{epoch}" (1-based, as Keras numbers them, e.g. "m-{epoch:03d}.npz")
        and any figure of the epoch's logs ("{val_loss:.3f}"), to keep one file per epoch.
    monitor, save_best_only: with save_best_only, save only when `monitor` beats its best so far
        (downwards for losses, mae and rmse; upwards for scores, accuracy, precision, recall,
        f1 and r2); otherwise after every `every` epochs.
    `saved` lists (epoch, path) of each save.
    """

    def __init__(self, path, monitor="val_loss", save_best_only=False, every=1):
        self.path, self.monitor, self.save_best_only = os.fspath(path), monitor, save_best_only
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.every = every
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"ModelCheckpoint: the folder {folder} does not exist; create it first "
                                    f"(nothing would be saved)")
        self.best = math.inf
        self.saved = []

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            if self.monitor not in logs:
                raise ValueError(f"ModelCheckpoint monitors {self.monitor!r}, which this fit does not report "
                                 f"(it has {sorted(logs)}); validation figures need validation_split or "
                                 f"validation_data")
            value = logs[self.monitor] * (-1.0 if higher_is_better(self.monitor) else 1.0)
            if not value < self.best:
                return
            self.best = value
        elif (epoch + 1) % self.every:
            return
        try:
            path = self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"ModelCheckpoint: cannot fill in path {self.path!r} from the epoch's figures "
                             f"{sorted(logs)} ({exc})") from None
        self.network.save(path)
        self.saved.append((epoch, path))


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBar(Callback):
    """verbose=1: on a terminal, a bar over each epoch's samples redrawn in place: epoch k/n, the
    running loss, elapsed and remaining time of the whole fit, and the throughput once it is
    steady (the first piece of an epoch, which may compile or warm caches, is left out of it);
    tqdm draws it when installed. Written to a file or pipe, one line per epoch instead, so a
    log holds no redraws."""

    def __init__(self, epochs, n_samples, file=None):
        self.epochs, self.n = epochs, n_samples
        self.file = file or sys.stderr
        isatty = getattr(self.file, "isatty", None)
        self.live = bool(isatty and isatty())
        self._tqdm = None
        if self.live:
            try:
                from tqdm.auto import tqdm
                self._tqdm = tqdm
            except ImportError:
                pass
        self._bar = None
        self._start = None
        self._epoch_seconds = []

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def start_epoch(self, epoch):
        if self._start is None:
            self._start = time.perf_counter()
        self.epoch = epoch
        self._t0, self._done = time.perf_counter(), 0
        self._steady_t, self._steady_rows = None, 0
        if self._tqdm is not None:
            self._bar = self._tqdm(total=self.n, desc=f"epoch {epoch + 1}/{self.epochs}",
                                   unit="sample", file=self.file, leave=True)

    def rate(self):
        """Samples per second since the end of the epoch's first piece; None before there is one."""
        if self._steady_t is None or self._done <= self._steady_rows:
            return None
        return (self._done - self._steady_rows) / max(time.perf_counter() - self._steady_t, 1e-9)

    def remaining(self):
        """Seconds left in the fit: this epoch at the steady rate, the later ones at the mean
        duration of the finished ones (or this epoch's rate); None until there is a rate."""
        rate = self.rate()
        if rate is None and not self._epoch_seconds:
            return None
        left_now = (self.n - self._done) / rate if rate else 0.0
        per_epoch = (sum(self._epoch_seconds) / len(self._epoch_seconds) if self._epoch_seconds
                     else self.n / rate)
        return left_now + per_epoch * (self.epochs - self.epoch - 1)

    def advance(self, rows, mean_loss):
        self._done += rows
        if self._steady_t is None:
            self._steady_t, self._steady_rows = time.perf_counter(), self._done
        rate, left = self.rate(), self.remaining()
        if self._bar is not None:
            self._bar.update(rows)
            self._bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
        elif self.live:
            width = 24
            filled = int(width * self._done / self.n)
            print(f"\repoch {self.epoch + 1}/{self.epochs} [{'=' * filled}{' ' * (width - filled)}] "
                  f"{self._done}/{self.n} loss {mean_loss:.4f} - {_duration(time.perf_counter() - self._start)} "
                  f"elapsed, {'?' if left is None else _duration(left)} left"
                  f"{'' if rate is None else f' - {rate:,.0f} samples/s'}\x1b[K",
                  end="", file=self.file, flush=True)

    def on_epoch_end(self, epoch, logs):
        self._epoch_seconds.append(time.perf_counter() - self._t0)
        extra = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if k.startswith("val_"))
        if self._bar is not None:
            if extra:
                self._bar.set_postfix_str(f"loss={logs['loss']:.4f} {extra}")
            self._bar.close()
            return
        if self.live:
            print(f" {extra}".rstrip(), file=self.file, flush=True)
            return
        extra = " - ".join(f"{k} {v:.4f}" for k, v in logs.items() if k.startswith("val_"))
        rate = self.n / max(self._epoch_seconds[-1], 1e-9)
        left = sum(self._epoch_seconds) / len(self._epoch_seconds) * (self.epochs - epoch - 1)
        parts = [f"epoch {epoch + 1}/{self.epochs}", f"loss {logs['loss']:.4f}", extra,
                  f"{_duration(time.perf_counter() - self._start)} elapsed, {_duration(left)} left",
                  f"{rate:,.0f} samples/s"]
        print(" - ".join(p for p in parts if p), file=self.file, flush=True)


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
