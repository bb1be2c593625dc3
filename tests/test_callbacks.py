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
