"""fastbp/kernels/own_code.py: callers run their kernels' own code, a cached caller loads its
kernels first (under the names it uses for them, even after they were compiled again), the
weights are the reference's, and it applies only to a Numba release it was checked on."""
import glob
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastbp
from fastbp import config, datasets
from fastbp.kernels import own_code

# A fit of the article's network with batch norm (whose kernels its driver calls by their own
# code, where the naive dense, activation and loss kernels are linked_kernels), single-threaded;
# prints its weights, whether own_code is in place, how many names it aliased, how many
# functions Numba compiled (0: all loaded from the cache), how many of those are linked_kernels,
# and in the modules of all those, how many of fastbp's functions are defined as weak linked
# copies (linkonce_odr, which the JIT may bind to another object's definition); and which
# (has a CPython wrapper, was turned into machine code, reads its Numba environment) the
# compiled copies of linked_kernels made for their callers show, and the other compiled functions
PROBE = r"""
import json, re, sys
sys.path.insert(0, sys.argv[1])   # tests/
from compile_events import compiled
import fastbp
from fastbp import datasets
from fastbp.kernels import compile, own_code

X, y = datasets.seed_example()
with compiled(dispatchers=True) as dispatchers:
    net = fastbp.Network([2, 4, 1], hidden="sigmoid", output="sigmoid", dtype="float64", seed=3, batch_norm=True)
    net.fit(X, y, epochs=50, batch_size=4, lr=0.5)
params = [v for w, b in net.get_weights() for v in (*w.ravel().tolist(), *b.tolist())]
ir = "".join(r.library.get_llvm_str() for d in dispatchers for r in d.overloads.values())
weak = len(re.findall(r'^define linkonce_odr [^@]*@"?_ZN6fastbp', ir, re.M))
linked = sum(compile.linked(d.py_func.__module__, d.py_func.__qualname__) for d in dispatchers)
code = {}
for d in dispatchers:
    for r in d.overloads.values():
        text = r.library.get_llvm_str()
        code.setdefault(d.py_func.__qualname__.endswith(own_code.LINK_COPY), set()).add((
            r.fndesc.llvm_cpython_wrapper_name in text, r.library._compiled,
            bool(re.search(r'= load [^\n]*@"?_ZN08NumbaEnv', text))))
code = {k: sorted(v) for k, v in code.items()}
print(json.dumps(dict(params=params, applied=own_code.apply(), aliases=len(own_code.aliases()),
                      compiled=len(dispatchers), linked=linked, weak_copies=weak, code=code)))
"""


def _flat(net):
    return [v for w, b in net.get_weights() for v in (*w.ravel().tolist(), *b.tolist())]


def _fit(cache):
    # a variant for the network, as users get (the suite's own processes run the general build)
    env = dict(os.environ, FASTBP_CACHE_DIR=str(cache), FASTBP_QUIET="1", NUMBA_NUM_THREADS="1",
               FASTBP_SPECIALIZE="1")
    env.pop("NUMBA_CACHE_DIR", None)
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", PROBE, tests], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not own_code.apply(), reason="own_code is not in place with this Numba or config")
def test_a_cached_caller_loads_its_kernels_first(tmp_path):
    first = _fit(tmp_path)
    assert first["applied"] and first["compiled"] > 0 and first["aliases"] == 0
    # the driver's copies of its linked kernels are its own: none is left weak, where this
    # process's JIT would bind the driver's calls to the kernels' own objects compiled just before
    assert first["linked"] > 0 and first["weak_copies"] == 0
    # the copies of the linked kernels that the driver links were compiled to IR only: no
    # CPython wrapper, no machine code of their own in the JIT; nor do they read the environment
    # that the JIT does not hold for them (a wrapper does)
    assert first["code"]["true"] == [[False, False, False]]
    assert [True, True, True] in first["code"]["false"]   # (the functions Python calls)
    # the kernels' own code, called rather than linked into the driver, trains as the reference
    X, y = datasets.seed_example()
    reference = fastbp.Network([2, 4, 1], hidden="sigmoid", output="sigmoid", dtype="float64", seed=3,
                               batch_norm=True, backend="numpy")
    reference.fit(X, y, epochs=50, batch_size=4, lr=0.5)
    np.testing.assert_allclose(first["params"], _flat(reference), rtol=1e-9, atol=1e-11)
    # a fresh process loads the driver from the cache: its kernels must load before its code,
    # or the process crashes on an unresolved symbol
    again = _fit(tmp_path)
    assert again["compiled"] == 0 and again["aliases"] == 0
    np.testing.assert_allclose(again["params"], first["params"], rtol=1e-12, atol=0)
    # the kernels compiled anew (as when two processes fill one cache at once): they get other
    # names than the cached driver uses, and the driver still loads, under aliases
    removed = [f for pattern in ("regularize.*",)
               for f in glob.glob(str(tmp_path / "kernels-*" / "fastbp" / "kernels" / "cpu" / pattern))]
    assert removed
    for f in removed:
        os.remove(f)
    renamed = _fit(tmp_path)
    assert 0 < renamed["compiled"] and renamed["aliases"] > 0
    np.testing.assert_allclose(renamed["params"], first["params"], rtol=1e-12, atol=0)
    # the driver compiled anew, in a process where its linked kernels' copies load from the
    # cache: it links the IR the cache kept for them
    drivers = glob.glob(str(tmp_path / "kernels-*" / "fastbp" / "kernels" / "cpu" / "driver.train_epochs*"))
    assert drivers
    for f in drivers:
        os.remove(f)
    relinked = _fit(tmp_path)
    assert relinked["compiled"] > 0 and relinked["linked"] == 0
    np.testing.assert_allclose(relinked["params"], first["params"], rtol=1e-12, atol=0)


# Kernels whose loop bodies call code of their own (compile.kernel): loss_backward calls the
# threaded activation_backward, whose loop body calls _grad_part, and dw_and_da's calls
# _dw_and_da_part; on two threads, so that the loops run. Prints what Numba compiled and the results.
LOOP_BODIES = r"""
import json, sys
sys.path.insert(0, sys.argv[1])   # tests/
from compile_events import compiled
import numpy as np
from fastbp.kernels.cpu import dense, losses
from fastbp.spec import ACTIVATIONS, LOSSES
rng = np.random.default_rng(5)
B, n_in, n_out = 70, 250, 260
Z, Y = rng.standard_normal((B, n_out)), rng.standard_normal((B, n_out))
A, SW = np.tanh(Z), rng.uniform(0, 2, B)
dZ = np.empty_like(Z)
X, W = rng.standard_normal((B, n_in)), rng.standard_normal((n_in, n_out))
dX, dW, db = np.empty((B, n_in)), np.empty((n_in, n_out)), np.empty(n_out)
with compiled() as names:
    losses.loss_backward(dZ, np.empty_like(A), Z, A, Y, SW, LOSSES["mse"][0], 0.0, 1.0, ACTIVATIONS["tanh"][0], 0.0)
    dense.dw_and_da(dX, dW, db, dZ, X, W, np.empty((n_out, n_in)))
print(json.dumps(dict(compiled=names, dZ=dZ.tolist(), dX=dX.tolist(), dW=dW.tolist(), db=db.tolist())))
"""


@pytest.mark.skipif(not own_code.apply(), reason="own_code is not in place with this Numba or config")
def test_loop_bodies_that_call_kernels_load_from_the_cache(tmp_path):
    """A loop body's call of a serial kernel is the kernel's call site: loaded from the cache in
    a fresh process, the kernel loads its callees first (and a threaded linked_kernel, whose
    callers would link its copy without them, is called by its own code instead): no crash, and
    the reference's results."""
    from fastbp import reference as ref
    env = dict(os.environ, FASTBP_CACHE_DIR=str(tmp_path), NUMBA_NUM_THREADS="2")
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", LOOP_BODIES, tests], env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-3000:]}"
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert {"_grad_part", "_dw_and_da_part"} <= set(runs[0]["compiled"]) and runs[1]["compiled"] == []
    rng = np.random.default_rng(5)
    B, n_in, n_out = 70, 250, 260
    Z, Y = rng.standard_normal((B, n_out)), rng.standard_normal((B, n_out))
    A, SW = np.tanh(Z), rng.uniform(0, 2, B)
    X, W = rng.standard_normal((B, n_in)), rng.standard_normal((n_in, n_out))
    dZ = ref.loss_backward("mse", Z, A, Y, 0.0, 1.0, "tanh", 0.0, SW)
    for run in runs:
        np.testing.assert_allclose(run["dZ"], dZ, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(run["dX"], dZ @ W.T, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(run["dW"], X.T @ dZ, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(run["db"], dZ.sum(axis=0), rtol=1e-9, atol=1e-11)


def test_linked_kernels_keep_numbas_linking():
    from fastbp.kernels import compile
    from fastbp.kernels.cpu import dense
    naive = compile.one_thread(dense.dense_forward_naive).py_func   # a linked_kernel's twin
    tiled = compile.one_thread(dense.dense_forward_split).py_func   # a kernel's
    assert compile.origin(naive.__module__, naive.__qualname__) is None
    assert compile.origin(tiled.__module__, tiled.__qualname__) == (
        "fastbp.kernels.cpu.dense", "dense_forward_split", (("THREADED", False),))
    assert compile.origin("numpy", "dot") is None
    # and only the linked_kernel's callers keep its copy as their own
    assert compile.linked(naive.__module__, naive.__qualname__)
    assert not compile.linked(tiled.__module__, tiled.__qualname__)
    # on several threads, its loop bodies call code of their own, which a copy must not
    assert not compile.linked("fastbp.kernels.cpu.dense", "dense_forward_naive")
    assert not compile.linked("numpy", "dot")


def test_applied_only_to_a_verified_numba():
    assert own_code.apply() == (numba.__version__ in own_code.VERIFIED and not config.LINK_KERNELS)
    if numba.__version__ in own_code.VERIFIED:
        # the release's source is the one read: a new release needs reading again
        assert own_code.source_hash() == own_code.VERIFIED[numba.__version__]
