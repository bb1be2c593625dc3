"""fastbp.peers: every peer trains the same fit fastbp does (same initial weights, same epoch
orders, same math), so their times compare like with like; and scripts/peers.py, its table."""
import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbp import peers
from fastbp.workloads import MAX_FITS, WORKLOADS

ROOT = Path(__file__).resolve().parent.parent


def _problem(name, epochs=2, dtype="float64"):
    return peers.problem(dataclasses.replace(WORKLOADS[name], epochs=epochs), dtype)


def _trained(peer, p):
    peer.setup(p)
    peer.reset()
    peer.fit()
    return peer


def _close(got, want, rtol):
    for (gW, gb), (wW, wb) in zip(got, want):
        np.testing.assert_allclose(gW, wW, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(gb, wb, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", ["seed", "digits"])
def test_the_lean_loop_trains_what_the_numpy_backend_trains(name):
    """Same initial weights, same shuffles, same arithmetic: the two agree to rounding, and
    both moved far from where they started."""
    p = _problem(name, epochs=30 if name == "seed" else 2)
    lean = _trained(peers.Lean(), p)
    numpy = _trained(peers.Fastbp("numpy"), p)
    _close(lean.weights, numpy.net.get_weights(), 1e-9)
    moved = max(np.abs(W - W0).max() for (W, _), (W0, _) in zip(lean.weights, p.weights))
    assert moved > 0.01


def test_the_lean_loop_matches_the_cpu_backend():
    p = _problem("digits")
    _close(_trained(peers.Lean(), p).weights, _trained(peers.Fastbp("cpu"), p).net.get_weights(), 1e-8)


def test_the_problem_takes_the_orders_a_fastbp_fit_draws():
    """A fit with another seed draws other orders: the lean loop then ends elsewhere."""
    p = _problem("digits", epochs=1)
    other = dataclasses.replace(p, orders=_problem("digits", epochs=1).orders[:, ::-1])
    a, b = _trained(peers.Lean(), p), _trained(peers.Lean(), other)
    assert max(np.abs(x[0] - y[0]).max() for x, y in zip(a.weights, b.weights)) > 1e-3


def test_lean_predict_and_accuracy():
    p = _problem("digits", epochs=3)
    lean = _trained(peers.Lean(), p)
    assert peers.accuracy(lean, p) > 0.9
    fresh = peers.Lean()
    fresh.setup(p)
    assert peers.accuracy(fresh, p) < 0.5   # the initial weights: training is what got it there


needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax not installed")


def _torch_weights(peer):
    linears = [m for m in peer.model if hasattr(m, "weight")]
    return [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in linears]


@needs_torch
@pytest.mark.parametrize("name", ["seed", "digits"])
def test_pytorch_eager_trains_what_the_lean_loop_trains(name):
    p = _problem(name, epochs=30 if name == "seed" else 2)
    _close(_torch_weights(_trained(peers.Torch(), p)), _trained(peers.Lean(), p).weights, 1e-8)


@needs_jax
@pytest.mark.parametrize("whole_fit", [False, True])
def test_jax_trains_what_the_lean_loop_trains(whole_fit):
    p = _problem("digits")
    jax = _trained(peers.Jax(whole_fit), p)
    got = [(np.asarray(W), np.asarray(b)) for W, b in jax.params]
    _close(got, _trained(peers.Lean(), p).weights, 1e-8)


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="scikit-learn not installed")
def test_scikit_learn_peer_learns():
    p = _problem("digits", epochs=5, dtype="float32")
    assert peers.accuracy(_trained(peers.Sklearn(), p), p) > 0.9


class _Clock:
    """A peer whose fits take the given seconds, in turn, on a clock of its own."""
    name = "clock"

    def __init__(self, seconds):
        self.seconds, self.now, self.fits = list(seconds), 0.0, 0

    def setup(self, p):
        pass

    def reset(self):
        pass

    def fit(self):
        self.now += self.seconds[min(self.fits, len(self.seconds) - 1)]
        self.fits += 1

    def predict(self, X):
        return np.zeros(len(X), np.int64)


@pytest.mark.parametrize("seconds, repeats, least, fits, best", [
    ([0.5, 0.2, 0.9], 3, 0.0, 3, 0.2),          # no budget: exactly `repeats`
    ([2.0, 1.5, 1.0, 0.1], 3, 1.0, 3, 1.0),     # long fits: `repeats` already exceed the budget
    ([0.3, 0.3, 0.3, 0.05, 0.3], 3, 1.0, 5, 0.05),   # short fits: until the timed fits add up to 1 s
    ([0.0001], 1, 10.0, MAX_FITS, 0.0001),            # but never more than MAX_FITS
])
def test_time_peer_repeats_short_fits_until_they_add_up(monkeypatch, seconds, repeats, least, fits, best):
    clock = _Clock(seconds)
    monkeypatch.setattr(peers.time, "perf_counter", lambda: clock.now)
    p = peers.problem(dataclasses.replace(WORKLOADS["seed"], epochs=1), "float32")
    took, acc = peers.time_peer(clock, p, repeats, least)
    assert clock.fits == fits and took == pytest.approx(best)
    assert acc == np.mean(p.y == 0)


def test_a_missing_package_is_named():
    class Peer:
        requires = "surely_not_a_module_fastbp_knows"
    assert "surely_not_a_module_fastbp_knows is not installed" in peers.missing(Peer())
    assert peers.missing(peers.Lean()) is None


def test_peers_script_help_and_tiny_run():
    script = str(ROOT / "scripts" / "peers.py")
    out = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=60, check=True)
    assert "--peers" in out.stdout and "--epochs" in out.stdout
    out = subprocess.run([sys.executable, script, "seed", "digits", "--peers", "lean,numpy,cpu", "--epochs", "3",
                          "--repeats", "1", "--least", "0"], capture_output=True, text=True, timeout=300, check=True)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.stdout.splitlines()
            if line.startswith("| seed") or line.startswith("| digits")]
    assert [r[0] for r in rows] == ["seed", "digits"]
    for r in rows:
        times = [float(c.split()[0]) for c in r[1:4]]
        accuracies = [float(c.split("(")[1].rstrip(")")) for c in r[1:4]]
        assert all(t > 0 for t in times) and all(0 <= a <= 1 for a in accuracies)
        assert accuracies[0] == accuracies[1]   # the lean loop and the numpy backend: the same fit
        speedup, fastest = r[4].split("x ", 1)   # fastbp cpu against the only peer
        assert fastest.startswith("lean NumPy (") and float(speedup) == pytest.approx(times[0] / times[2], rel=0.02)
        assert float(r[5].rstrip("x")) == pytest.approx(times[1] / times[0], rel=0.02, abs=0.006)
    bad = subprocess.run([sys.executable, script, "--peers", "lean,keras"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "--peers: unknown keras" in bad.stderr


def test_the_features_variant_trains_batch_norm_dropout_and_adam():
    p = peers.problem(dataclasses.replace(WORKLOADS["digits"], epochs=3), "float32", features=True)
    fast = _trained(peers.Fastbp("cpu"), p)
    assert fast.net.optimizer.name == "adam" and any(fast.net.spec.batch_norm) and max(fast.net.spec.dropout) == 0.2
    assert peers.accuracy(fast, p) > 0.9


@needs_torch
def test_pytorch_features_variant_learns():
    p = peers.problem(dataclasses.replace(WORKLOADS["digits"], epochs=3), "float32", features=True)
    torch_peer = _trained(peers.Torch(), p)
    kinds = [type(m).__name__ for m in torch_peer.model]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert peers.accuracy(torch_peer, p) > 0.9


def test_peers_script_features_skips_the_plain_sgd_peers():
    script = str(ROOT / "scripts" / "peers.py")
    out = subprocess.run([sys.executable, script, "digits", "--peers", "lean,cpu", "--features", "--epochs", "1",
                          "--repeats", "1"], capture_output=True, text=True, timeout=300, check=True)
    assert "skipped lean NumPy: no batch norm, dropout or Adam here" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith("| digits"))
    assert len(row.strip("|").split("|")) == 5   # workload, fastbp cpu, verdict, numpy/lean, others
