"""fastbp/kernels/compile_helper.py: a first fit into an empty cache shares its kernels' compile
with a helper process; nothing is compiled twice, what the helper compiled trains the same
network as the reference, and neither process waits on the other for ever."""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastbp
from fastbp import config
from fastbp.kernels import compile_helper
from conftest import tol

# a first fit, recording what this process compiles; its first compile under the driver waits
# until the helper has listed the kernels, so that the helper has a share whatever the load
FIRST_FIT = r"""
import json, os, sys, time
import numpy as np
import fastbp
from numba.core import event
from fastbp.kernels import compile_helper
here, under_driver, depth = [], [], []

def helper_listed():
    log = os.environ["FASTBP_COMPILE_HELPER_LOG"]
    return os.path.exists(log) and " listed " in open(log).read()

class Compiled(event.Listener):
    def on_start(self, ev):
        depth.append(compile_helper._name(ev.data["dispatcher"], ev.data["args"]))
        if len(depth) == 2 and ".driver.train_epochs" in depth[0]:
            deadline = time.time() + 120
            while not under_driver and not helper_listed() and time.time() < deadline:
                time.sleep(0.01)
            under_driver.append(depth[-1])

    def on_end(self, ev):
        here.append(depth.pop())

rng = np.random.default_rng(0)
X = rng.standard_normal((40, 5))
y = rng.integers(0, 3, size=40)
net = fastbp.Network([5, 24, 3], hidden="tanh", output="softmax", dtype="float64", seed=0)
with event.install_listener("numba:compile", Compiled()):
    net.fit(X, y, epochs=2, batch_size=8, shuffle=False, optimizer="adam", lr=0.01)
np.savez(sys.argv[1], *[a for W, b in net.get_weights() for a in (W, b)])
print(json.dumps(dict(here=here, under_driver=under_driver, ended=compile_helper._session is None)))
"""


def test_a_first_fit_shares_its_compile_with_a_helper_and_trains_as_the_reference(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "log"
    env = dict(os.environ, FASTBP_CACHE="1", FASTBP_SPECIALIZE="1", FASTBP_QUIET="1",
               FASTBP_CACHE_DIR=str(tmp_path / "cache"), FASTBP_COMPILE_HELPER="1",
               FASTBP_COMPILE_HELPER_LOG=str(log), TMPDIR=str(tmp))
    if not _usable_here(env):
        pytest.skip("no second usable CPU here")
    out = subprocess.run([sys.executable, "-c", FIRST_FIT, str(tmp_path / "weights.npz")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    lines = log.read_text().splitlines()
    assert any(" started helper " in line for line in lines)
    helper_built = {line.split(" compiled ", 1)[1] for line in lines if " compiled " in line}
    listed = {line.split(" list ", 1)[1] for line in lines if " list " in line}
    # the helper's list, from typing the driver alone, is what compiling it calls: every kernel
    # this process compiled right under the driver is on it, and (the cache was empty) each
    # kernel on it was compiled by one of the two
    kernels = {name for name in seen["under_driver"] if name.startswith("fastbp.")}   # (not Numba's min)
    assert kernels and kernels <= listed
    assert listed <= helper_built | set(seen["here"])
    # the helper compiled part of the work, and nothing of fastbp's that either process
    # compiled was compiled again by the other: it loaded it from the cache instead (Numba's own
    # builtins, min and max, are never cached: each process compiles its own)
    assert listed & helper_built
    assert not {name for name in helper_built & set(seen["here"]) if name.startswith("fastbp.")}
    # the helper was stopped and its claims removed once the driver was compiled
    assert seen["ended"] and not list(tmp.iterdir())
    # what the two compiled trains the same network as the NumPy reference
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    y = rng.integers(0, 3, size=40)
    ref = fastbp.Network([5, 24, 3], hidden="tanh", output="softmax", dtype="float64", seed=0, backend="numpy")
    ref.fit(X, y, epochs=2, batch_size=8, shuffle=False, optimizer="adam", lr=0.01)
    with np.load(tmp_path / "weights.npz") as w:
        weights = [w[f"arr_{i}"] for i in range(len(w.files))]
    expected = [a for W, b in ref.get_weights() for a in (W, b)]
    for got, want in zip(weights, expected, strict=True):
        np.testing.assert_allclose(got, want, **tol("float64"))


USABLE = ("from numba.core.dispatcher import Dispatcher; from fastbp.kernels import compile, compile_helper; "
          "print(compile_helper.apply(), Dispatcher.compile is compile_helper._compile)")


def _usable_here(env):
    out = subprocess.run([sys.executable, "-c", USABLE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split() == ["True", "True"]


def test_no_helper_when_switched_off():
    env = dict(os.environ, FASTBP_COMPILE_HELPER="0")
    out = subprocess.run([sys.executable, "-c", USABLE], env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["False", "False"], out.stderr[-3000:]


def test_only_a_process_that_can_use_a_second_cpu_starts_helpers(monkeypatch):
    monkeypatch.delitem(sys.modules, "mpi4py", raising=False)   # (a test of this worker's may have imported it)
    monkeypatch.setattr(config, "COMPILE_HELPER", True)
    monkeypatch.setattr(config, "CACHE", True)
    from fastbp import cpus
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cpus, "cgroup_quota", lambda: None)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert compile_helper.usable()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert not compile_helper.usable()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(cpus, "cgroup_quota", lambda: 1.0)   # a container's --cpus 1 on two cores
    assert not compile_helper.usable()
    monkeypatch.setattr(cpus, "cgroup_quota", lambda: None)
    monkeypatch.setitem(sys.modules, "mpi4py", object())   # an MPI job: every rank has its core
    assert not compile_helper.usable()
    monkeypatch.delitem(sys.modules, "mpi4py")
    assert compile_helper.usable()
    from fastbp.kernels import cache_lock
    locks = cache_lock.fcntl
    monkeypatch.setattr(cache_lock, "fcntl", None)   # saves into one index could not be kept apart
    assert not compile_helper.usable()
    monkeypatch.setattr(cache_lock, "fcntl", locks)
    assert compile_helper.usable()
    monkeypatch.setattr(config, "CACHE", False)   # nothing to share through
    assert not compile_helper.usable()


class _Fake:
    """A dispatcher as far as the claims look at one."""

    def __init__(self, qualname):
        def fn():
            pass
        fn.__module__, fn.__qualname__ = "fastbp.kernels.cpu.fake", qualname
        self.py_func = fn


def test_a_claim_held_by_the_other_process_is_waited_for_until_released(tmp_path):
    alive = threading.Event()
    alive.set()
    theirs = compile_helper._Session(str(tmp_path), alive.is_set)
    ours = compile_helper._Session(str(tmp_path), alive.is_set)
    kernel, args = _Fake("k"), ("float64",)
    path = theirs.take(kernel, args)
    assert path and ours.take(kernel, args, wait=False) is None   # the helper skips it
    threading.Timer(0.2, theirs.release, [path]).start()
    t0 = time.perf_counter()
    assert ours.take(kernel, args) == ""   # waited, and has nothing to release
    assert time.perf_counter() - t0 >= 0.15
    again = ours.take(kernel, args)   # free now: a claim of its own
    assert again and os.path.exists(again)
    ours.release(again)
    assert not os.path.exists(again)


def test_a_claim_of_a_process_that_exited_is_not_waited_for(tmp_path):
    alive = threading.Event()
    alive.set()
    theirs = compile_helper._Session(str(tmp_path), alive.is_set)
    kernel = _Fake("k")
    assert theirs.take(kernel, ())
    alive.clear()   # the other process died holding it
    t0 = time.perf_counter()
    assert compile_helper._Session(str(tmp_path), alive.is_set).take(kernel, ()) == ""
    assert time.perf_counter() - t0 < 0.1


def test_the_helper_refuses_a_request_for_another_cache(tmp_path):
    import pickle
    request = dict(cache_dir=str(tmp_path / "elsewhere"), claims=str(tmp_path), function=None, args=())
    (tmp_path / "request").write_bytes(pickle.dumps(request))
    assert compile_helper.serve(str(tmp_path / "request")) is None
    assert compile_helper._session is None
    assert compile_helper.serve(str(tmp_path / "gone")) is None


def _returns_none(a):
    a[0] = 1


def _returns_none_early(a):
    if a[0]:
        return
    a[0] = 1
    return None


def _returns_a_value(a):
    if a[0]:
        return a[0]
    return None


def test_kernels_that_return_nothing_are_told_from_those_that_return_a_value():
    assert compile_helper.returns_nothing(_returns_none.__code__)
    assert compile_helper.returns_nothing(_returns_none_early.__code__)
    assert not compile_helper.returns_nothing(_returns_a_value.__code__)
    assert not compile_helper.returns_nothing((lambda a: a).__code__)
