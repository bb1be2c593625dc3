"""fastbp/kernels/glue_passes.py: a driver's own functions skip Numba's first round of LLVM
optimization, the kernels it calls and Numba's helpers keep it, the fit trains as the reference
does, and it applies only with a Numba release it was checked on."""
import inspect
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastbp
from fastbp import datasets
from fastbp.kernels import glue_passes

# A fresh compile (no cache) of a variant for the article's network; prints its weights and the
# names of the LLVM functions that Numba's first round (the function pipeline) ran on
PROBE = r"""
import json
from numba.core import codegen
ran = []
numba_manager = codegen.CPUCodegen._function_pass_manager

class Recording:
    def __init__(self, manager):
        self.manager = manager

    def run(self, func, builder):
        ran.append(func.name)
        return self.manager.run(func, builder)

def manager(self, **options):
    fpm, builder = numba_manager(self, **options)
    return Recording(fpm), builder
codegen.CPUCodegen._function_pass_manager = manager

import fastbp
from fastbp import datasets
from fastbp.kernels import glue_passes
X, y = datasets.seed_example()
net = fastbp.Network([2, 4, 1], hidden="sigmoid", output="sigmoid", seed=3)
net.fit(X, y, epochs=50, batch_size=4, lr=0.5)
params = [v for w, b in net.get_weights() for v in (*w.ravel().tolist(), *b.tolist())]
print(json.dumps(dict(params=params, applied=glue_passes.apply(), ran=ran)))
"""


@pytest.mark.skipif(not glue_passes.apply(), reason="not a Numba release this was checked on")
def test_a_drivers_own_functions_skip_the_first_round_and_train_as_the_reference():
    env = dict(os.environ, FASTBP_CACHE="0", FASTBP_QUIET="1", FASTBP_SPECIALIZE="1")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["applied"]
    ran = found["ran"]
    assert not [name for name in ran if "train_epochs" in name]   # the driver, and its wrapper
    assert [name for name in ran if "dense_forward_naive" in name]   # a kernel it calls
    assert [name for name in ran if not name.startswith(("_ZN6fastbp", "_ZN7cpython6fastbp"))]   # Numba's
    X, y = datasets.seed_example()
    reference = fastbp.Network([2, 4, 1], hidden="sigmoid", output="sigmoid", seed=3, backend="numpy")
    reference.fit(X, y, epochs=50, batch_size=4, lr=0.5)
    expected = [v for w, b in reference.get_weights() for v in (*w.ravel().tolist(), *b.tolist())]
    np.testing.assert_allclose(found["params"], expected, rtol=2e-4, atol=1e-5)


def test_applied_only_to_a_verified_numba(monkeypatch):
    """Fails when a Numba release changes the source this relies on: read
    CPUCodeLibrary._optimize_functions and add_llvm_module again, and if the first round is
    still a per-function pipeline ahead of the module's, add the release's source_hash()."""
    assert glue_passes.apply() == (numba.__version__ in glue_passes.VERIFIED)
    if numba.__version__ in glue_passes.VERIFIED:
        assert glue_passes.source_hash() == glue_passes.VERIFIED[numba.__version__]
        real = inspect.getsource
        monkeypatch.setattr(inspect, "getsource", lambda f: real(f).replace("link_in", "link"))
        assert glue_passes.source_hash() != glue_passes.VERIFIED[numba.__version__]
