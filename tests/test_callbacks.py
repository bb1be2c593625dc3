"""fastbp/callbacks.py: user callbacks, early stopping, the progress bar."""

import numpy as np
import pytest

import fastbp
from conftest import BACKENDS, problem


def test_callback_sees_logs_and_can_stop():
    class StopAt(fastbp.callbacks.Callback):
        def __init__(self):
            self.seen = []

        def on_epoch_end(self, epoch, logs):
            self.seen.append((epoch, sorted(logs)))
            if epoch == 2:
                self.network.stop_training = True

    X, y = problem([3, 4, 2], "softmax", n=20)
    cb = StopAt()
    h = fastbp.Network([3, 4, 2], seed=0).fit(X, y, epochs=10, validation_split=0.2, callbacks=[cb])
    assert len(h.history["loss"]) == 3 and [e for e, _ in cb.seen] == [0, 1, 2]
    assert cb.seen[0][1] == ["loss", "lr", "time", "val_loss", "val_score"]


def test_history_recorded_in_bulk_reads_as_lists_per_epoch():
    """Epochs run in one compiled call are recorded as arrays and read as Keras-style lists of
    Python numbers, in order across fits, each epoch's loss the one the network computes."""
    import pickle
    X, y = problem([3, 4, 2], "softmax", n=20)
    net = fastbp.Network([3, 4, 2], seed=0)
    first = net.fit(X, y, epochs=4, lr=0.05)
    second = net.fit(X, y, epochs=3, lr=0.05)
    assert first.epoch == [0, 1, 2, 3] and second.epoch == [0, 1, 2]
    assert set(first.history) == {"loss", "lr", "time"}
    assert all(type(v) is float for v in first.history["loss"] + first.history["lr"])
    assert first.history["lr"] == [0.05] * 4
    # the last recorded loss is the mean loss before the last epoch's updates: below the first
    assert first.history["loss"][-1] < first.history["loss"][0]
    copy = pickle.loads(pickle.dumps(second))
    assert copy.history == second.history and copy.epoch == second.epoch
    earlier = fastbp.callbacks.History.__new__(fastbp.callbacks.History)   # as an earlier fastbp pickled it
    earlier.__setstate__({"history": {"loss": [0.5]}, "epoch": [0]})
    assert earlier.history == {"loss": [0.5]} and earlier.epoch == [0]
    again = fastbp.callbacks.History()
    again.extend(range(2), loss=np.array([1.0, 2.0]), lr=[0.1, 0.1])
    again.on_epoch_end(2, {"loss": 3.0, "lr": 0.1})
    again.truncate(2)
    assert again.epoch == [0, 1] and again.history == {"loss": [1.0, 2.0], "lr": [0.1, 0.1]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_early_stopping_stops_and_restores_best(backend):
    """A large lr makes validation loss bounce; training stops `patience` epochs after the best,
    and the network returns to the best epoch's weights."""
    X, y = fastbp.datasets.make_moons(200, noise=0.3, seed=0)
    net = fastbp.Network([2, 64, 2], seed=0, backend=backend, dtype="float64")
    best = {}

    class Keep(fastbp.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            best[epoch] = (logs["val_loss"], self.network.get_weights())

    h = net.fit(X, y, epochs=300, batch_size=8, lr=0.5, validation_split=0.3, early_stopping=True,
                patience=3, callbacks=[Keep()])
    vl = h.history["val_loss"]
    b = int(np.argmin(vl))
    assert len(vl) == b + 4 < 300                   # stopped 3 epochs after the best
    for (w, _), (wb, _) in zip(net.get_weights(), best[b][1]):
        np.testing.assert_array_equal(w, wb)
    assert net.loss(X[140:], y[140:]) == pytest.approx(vl[b], rel=1e-9)


def test_early_stopping_needs_validation():
    X, y = problem([3, 4, 2], "softmax", n=20)
    with pytest.raises(ValueError, match="validation_split"):
        fastbp.Network([3, 4, 2]).fit(X, y, early_stopping=True)
    h = fastbp.Network([3, 4, 2]).fit(X, y, epochs=3, early_stopping=True, monitor="loss")
    assert len(h.history["loss"]) >= 1


def test_progress_bar_advances_within_an_epoch(capsys, monkeypatch):
    import fastbp.network as network
    monkeypatch.setattr(network, "PROGRESS_SECONDS", 0.0)   # redraw after every call
    X, y = problem([3, 4, 2], "softmax", n=64)
    net = fastbp.Network([3, 4, 2], seed=0)
    calls = []
    real = net._backend.train_rows
    net._backend.train_rows = lambda *a: calls.append(a[7] - a[6]) or real(*a)
    net.fit(X, y, epochs=1, batch_size=8, verbose=1)
    assert sum(calls) == 64 and len(calls) > 1


class _Terminal:
    """A stand-in for stderr on a terminal: records what is written."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass

    def isatty(self):
        return True


def test_progress_on_a_terminal_shows_the_epoch_time_left_and_a_steady_rate(monkeypatch):
    import sys
    import fastbp.network as network
    monkeypatch.setattr(network, "PROGRESS_SECONDS", 0.0)   # redraw after every call
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)      # the plain bar, whether tqdm is installed or not
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    X, y = problem([3, 4, 2], "softmax", n=64)
    fastbp.Network([3, 4, 2], seed=0).fit(X, y, epochs=3, batch_size=8, verbose=1)
    draws = [d for d in screen.text.split("\r") if d]
    for k in (1, 2, 3):
        mine = [d for d in draws if d.startswith(f"epoch {k}/3 ")]
        assert len(mine) > 1 and all("elapsed" in d and " left" in d for d in mine)
        # the first piece of an epoch (which may compile or warm caches) gives no rate yet
        assert "samples/s" not in mine[0] and "samples/s" in mine[-1]
    assert "? left" not in draws[-1]


def test_progress_to_a_file_or_pipe_is_one_line_per_epoch(capsys):
    X, y = problem([3, 4, 2], "softmax", n=64)
    fastbp.Network([3, 4, 2], seed=0).fit(X, y, epochs=3, batch_size=8, verbose=1, validation_split=0.25)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("val_loss" in line and "left" in line and "samples/s" in line for line in lines)


def test_checkpoint_keeps_the_best_epoch(tmp_path):
    X, y = fastbp.datasets.make_moons(200, noise=0.3, seed=0)
    net = fastbp.Network([2, 32, 2], seed=0, dtype="float64")
    seen = {}

    class Keep(fastbp.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            seen[epoch] = (logs["val_loss"], self.network.predict(X))

    best = fastbp.ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)
    net.fit(X, y, epochs=15, batch_size=8, lr=0.5, validation_split=0.3, callbacks=[Keep(), best])
    b = min(seen, key=lambda e: seen[e][0])
    assert best.saved[-1] == (b, str(tmp_path / "best.npz"))
    assert all(seen[e][0] < seen[p][0] for (p, _), (e, _) in zip(best.saved, best.saved[1:]))   # each save improved
    np.testing.assert_array_equal(fastbp.load(tmp_path / "best.npz").predict(X), seen[b][1])


def test_checkpoint_every_epoch_names_files_by_epoch_and_figures(tmp_path):
    X, y = problem([3, 4, 2], "softmax", n=40)
    ck = fastbp.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{loss:.3f}.npz"), every=2)
    h = fastbp.Network([3, 4, 2], seed=0).fit(X, y, epochs=5, callbacks=[ck])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"m-{e:02d}-{h.history['loss'][e - 1]:.3f}.npz" for e in (2, 4)]
    assert fastbp.load(tmp_path / names[-1]).epochs_done == 4


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A save that fails half-way (here: the final rename) leaves the last good file as it was
    and no temporary file behind."""
    import os
    X, y = problem([3, 4, 2], "softmax", n=40)
    path = tmp_path / "m.npz"
    net = fastbp.Network([3, 4, 2], seed=0)
    net.fit(X, y, epochs=1, callbacks=[fastbp.ModelCheckpoint(path)])
    good = path.read_bytes()

    def broken(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        net.fit(X, y, epochs=3, initial_epoch=1, callbacks=[fastbp.ModelCheckpoint(path)])
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_checkpoint_refuses_a_missing_folder_and_an_unknown_figure(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fastbp.ModelCheckpoint(tmp_path / "nowhere" / "m.npz")
    X, y = problem([3, 4, 2], "softmax", n=40)
    with pytest.raises(ValueError, match="val_loss.*validation_split"):
        fastbp.Network([3, 4, 2]).fit(X, y, epochs=2, callbacks=[
            fastbp.ModelCheckpoint(tmp_path / "m.npz", save_best_only=True)])
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("monitor, upwards", [("val_loss", False), ("val_f1", True), ("val_score", True),
                                              ("mae", False), ("r2", True), ("val_accuracy", True)])
def test_which_figures_improve_upwards(monitor, upwards):
    assert fastbp.callbacks.higher_is_better(monitor) is upwards
    assert (fastbp.EarlyStopping(monitor).sign < 0) is upwards
