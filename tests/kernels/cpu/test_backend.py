"""fastbp/kernels/cpu/backend.py: evaluation in blocks, and parallel drivers from several Python
threads at once."""
import os
import subprocess
import sys

import pytest

from conftest import assert_same_state, pair, problem


def test_evaluation_in_blocks_matches_one_pass(monkeypatch):
    """predict/loss run over blocks of EVAL_CHUNK rows; block edges must not change results."""
    from fastbp import config
    cpu, ref = pair([3, 9, 4], "float64", output="softmax")
    X, y = problem([3, 9, 4], "softmax", n=50)
    monkeypatch.setattr(config, "EVAL_CHUNK", 7)   # 50 rows = 7 full blocks + 1 of 1 row
    assert_same_state(cpu, ref, X, y, "float64")


CONCURRENT_PROBE = r"""
import threading, numpy as np, fastbp, numba
X, y = fastbp.datasets.make_synthetic(2000, 256, 10)
nets = [fastbp.Network([256, 256, 256, 10], seed=i) for i in range(3)]   # big enough for threads
nets[0].fit(X, y, epochs=1, batch_size=64)
errors = []
def work(net):
    try:
        net.fit(X, y, epochs=2, batch_size=64)
        net.predict(X)
    except BaseException as exc:
        errors.append(exc)
ts = [threading.Thread(target=work, args=(n,)) for n in nets]
[t.start() for t in ts]; [t.join() for t in ts]
print(numba.threading_layer(), len(errors), all(np.isfinite(n.predict(X)).all() for n in nets))
"""


@pytest.mark.parametrize("layer", ["workqueue", "default"])
def test_concurrent_fits_from_python_threads_do_not_crash(layer):
    """Under the workqueue layer, two threads in parallel kernels at once abort the process;
    fastbp serialises its parallel drivers, so concurrent fits finish."""
    env = dict(os.environ)
    if layer == "workqueue":
        env["NUMBA_THREADING_LAYER"] = "workqueue"
    out = subprocess.run([sys.executable, "-c", CONCURRENT_PROBE], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    used, n_errors, finite = out.stdout.split()
    assert n_errors == "0" and finite == "True"
    if layer == "workqueue":
        assert used == "workqueue"
