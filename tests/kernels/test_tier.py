"""fastbp/kernels/tier.py: a short first fit runs the quick build while a background process
compiles the fastest one into the cache, which later fits load; one background build per marker
at a time."""
import json
import os
import subprocess
import sys
import threading

import numpy as np

from conftest import tol
from fastbp.kernels import tier

# Two short fits of one network: the first into an empty cache, the second after this process's
# background build ended. Prints which build each ran and the weights each trained.
SHORT_FITS = r"""
import json
import numpy as np
import fastbp
from numba.core import event
from fastbp.kernels import tier
from fastbp.kernels.compile import variant
from fastbp.kernels.cpu import driver
from fastbp.kernels.cpu.needs import needs
from fastbp.optim import SGD

compiled = []

class Compiled(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__qualname__)

rng = np.random.default_rng(0)
X = rng.standard_normal((48, 8)).astype(np.float32)
y = rng.integers(0, 16, size=48)
opt = SGD(0.1)
out = {}
with event.install_listener("numba:compile", Compiled()):
    for step in ("first", "after"):
        net = fastbp.Network([8, 16, 16], hidden="tanh", output="softmax", seed=0)
        fastest, quick = (variant(driver.train_epochs, **dict(needs(net.spec, np.float32, False, 16, opt, quick=q)))
                          for q in (False, True))
        evaluate = variant(driver.evaluate, **dict(needs(net.spec, np.float32, False, fastbp.config.EVAL_CHUNK)))
        compiled.clear()
        net.fit(X, y, epochs=2, batch_size=16, shuffle=False, optimizer=opt)
        net.predict(X)   # (the evaluation driver: a second request for the one builder)
        out[step] = dict(fastest=len(fastest.overloads), quick=len(quick.overloads), compiled=list(compiled),
                         evaluate=len(evaluate.overloads),
                         building=len(tier.running()), weights=[a.tolist() for W, b in net.get_weights() for a in (W, b)])
        if step == "first":
            out["waited"] = tier.wait(600)
print(json.dumps(out))
"""


def test_a_short_fit_runs_the_quick_build_and_the_next_loads_the_fastest(tmp_path):
    env = dict(os.environ, FASTBP_CACHE="1", FASTBP_SPECIALIZE="1", FASTBP_TIERED="1", FASTBP_QUIET="1",
               FASTBP_CACHE_DIR=str(tmp_path / "cache"), FASTBP_COMPILE_HELPER="0")
    run = subprocess.run([sys.executable, "-c", SHORT_FITS], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    first, after = out["first"], out["after"]
    # the first fit compiled and ran the quick build only, and its fit and predict each asked
    # for a background build: one builder runs, for both
    assert first["quick"] == 1 and first["fastest"] == first["evaluate"] == 0 and first["building"] == 1
    assert any(name.startswith("train_epochs__") for name in first["compiled"])
    assert any(name.startswith("evaluate__") for name in first["compiled"])
    # which ended, and the next fit and predict loaded their fastest builds: compiled nothing
    assert out["waited"] and after["fastest"] == after["evaluate"] == 1 and after["building"] == 0
    assert not after["compiled"], after["compiled"]
    # both builds train the same network, to float32 rounding (different summation orders)
    for a, b in zip(first["weights"], after["weights"], strict=True):
        np.testing.assert_allclose(a, b, **tol("float32"))
    assert not tier.running(tmp_path / "cache")


def test_a_claim_held_by_a_live_process_is_respected_and_a_dead_ones_taken_over(tmp_path):
    claim = str(tmp_path / tier.BUILDER)
    assert tier._claim(claim)   # this process holds it
    assert not tier._claim(claim)
    with open(claim, "w") as f:   # a process that has exited
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        f.write(str(dead.pid))
    assert tier._claim(claim)
    assert open(claim).read() == str(os.getpid())


def test_a_builder_drops_a_request_it_cannot_read_and_gives_up_its_claim(tmp_path):
    bad = tmp_path / "0123.request"
    bad.write_bytes(b"not a pickle")
    assert tier._claim(str(tmp_path / tier.BUILDER))   # (as the process that starts it holds it)
    # (in a thread: a builder that kept the request would take it up again for ever)
    builder = threading.Thread(target=tier.serve, args=(str(tmp_path),), daemon=True)
    builder.start()
    builder.join(60)
    assert not builder.is_alive() and not bad.exists() and not (tmp_path / tier.BUILDER).exists()
