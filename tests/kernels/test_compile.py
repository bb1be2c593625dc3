"""fastbp/kernels/compile.py: what every compiled kernel must satisfy (float32 math stays
float32) and the disk cache they load from."""


F32_PROBE = r"""
import re, numpy as np
from fastbp.kernels.cpu import activations as a, dense as d, optim as o, tiles as t
f = np.float32
Z = np.ones((4, 6), f); A = np.ones_like(Z); W = np.ones((6, 6), f); b = np.zeros(6, f)
d.dense_forward_naive(Z, A, W, b); d.dense_backward_naive(A, W, b, Z, A, W, True)
d.gemm_nt(Z, A, W, b, True); t.gemm_tiled(Z, A, W, b, True, False); t.gemm_tiled(W, A, Z, b, False, True)
a.activation_forward(A, Z, 5, f(1)); a.activation_backward(Z, A, Z, A, 5, f(1))
o.optimizer_update(b, b, b, b, 3, 0.1, np.zeros(5), 1)
import fastbp.kernels.cpu.gemm_nt as nt
# the parallel loop bodies (per-element work; scalar set-up may use float64), and the functions
# of their own that the bodies of the others call, whole
for k, whole in ((d.dense_forward_naive, False), (d.dense_backward_naive, False), (nt._nt_part, True),
                 (t._gemm_tiled_part, True), (a._activate_part, True), (a._grad_part, True),
                 (o.optimizer_update, False)):
    for ir in k.inspect_llvm().values():
        bodies = [ir] if whole else re.findall(r"define [^\n]*parfor_gufunc.*?\n}", ir, flags=re.S)
        ops = re.findall(r"= (?:fadd|fmul|fsub|fdiv)[a-z ]* (double|float)", "".join(bodies))
        print(k.__name__, ops.count("double"), ops.count("float"))
"""


def test_float32_kernels_do_no_float64_arithmetic():
    """A float64 literal in a kernel silently runs float32 math in double precision (slower,
    and different from the reference). Compile fresh (inspection needs uncached code) and read
    the LLVM IR of the float32 specialisations' parallel loop bodies."""
    import subprocess
    import sys
    import os
    env = dict(os.environ, FASTBP_CACHE="0")
    out = subprocess.run([sys.executable, "-c", F32_PROBE], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout.split("\n")
    rows = [line.split() for line in out if line.strip()]
    assert len(rows) == 7
    for name, n_double, n_float in rows:
        assert int(n_float) > 0, f"{name}: no float32 arithmetic found; the probe is broken"
        assert int(n_double) == 0, f"{name}: {n_double} float64 operations in the float32 kernel"


NO_RUNTIME_PROBE = r"""
import re
import numpy as np
from numba.core.errors import NumbaError
from fastbp.kernels import args
from fastbp.kernels.compile import serial_kernel


@serial_kernel
def double(net):   # takes arrays out of a named tuple and passes them on, as a driver does
    params, grads = net.params, net.grads
    return write(grads, params)


@serial_kernel
def write(out, x):
    s = 0.0
    for i in range(x.shape[0]):
        out[i] = 2 * x[i]
        s += x[i]
    return s


@serial_kernel
def allocate(n):
    return np.zeros(n).sum()


p = np.arange(5.0)
net = args.Net(p, np.zeros(5), np.zeros(1), np.zeros((2, 2), np.int64), np.zeros((2, 2)), np.zeros((1, 2), np.int64))
print(double(net) == p.sum() and (net.grads == 2 * p).all())
ir = "".join(double.inspect_llvm().values())
print(ir.count("NRT_incref") + ir.count("NRT_decref"), len(re.findall(r'define [^\n]*@"?cfunc\.', ir)))
try:
    allocate(3)
    print("allocated")
except NumbaError as e:
    print("refused", type(e).__name__)
"""


def test_compiled_code_carries_no_reference_counting_nor_c_wrapper_and_cannot_allocate():
    """fastbp compiles without Numba's runtime (compile._jit): arrays taken out of a named tuple
    and passed on cost no reference counting in the code (with the runtime, this probe's code
    has 12 increments and decrements), and code that allocates, which the per-batch path must
    never do, fails to compile instead of running. Nor does Numba build a C-callable wrapper
    (for first-class function calls, which fastbp does not make) beside each function.
    Compiled fresh: inspection needs uncached code."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, FASTBP_CACHE="0")
    ran, counts, allocated = subprocess.run([sys.executable, "-c", NO_RUNTIME_PROBE], env=env, capture_output=True,
                                            text=True, timeout=300, check=True).stdout.split("\n")[:3]
    assert ran == "True"
    refcounts, wrappers = counts.split()
    assert refcounts == "0", f"{refcounts} reference-count calls in the compiled code"
    assert wrappers == "0", f"{wrappers} C wrappers compiled"
    assert allocated.startswith("refused"), allocated


CACHED_PROBE = r"""
import numpy as np
from fastbp.kernels.cpu import dense
rng = np.random.default_rng(0)
f = np.float32
for B, n_in, n_out in [(8, 16, 16), (70, 250, 260), (41, 401, 390)]:   # naive, tiled, OpenBLAS
    A, W, dZ = (rng.standard_normal(s).astype(f) for s in [(B, n_in), (n_in, n_out), (B, n_out)])
    dA, dW, db = np.empty((B, n_in), f), np.empty((n_in, n_out), f), np.empty(n_out, f)
    dense.dense_backward(dA, dW, db, dZ, A, W, True, np.empty((n_out, n_in), f), np.empty((n_in, B), f),
                         np.empty((n_out, B), f))
    np.testing.assert_allclose(dA, dZ @ W.T, rtol=1e-4, atol=1e-4)
print("ok")
"""


def test_kernels_loaded_from_the_disk_cache_run():
    """Twice in fresh processes, so that the second loads every kernel from the disk cache.
    Code loaded that way can run before Numba's thread pool has registered the entry point
    that gemm_blas and dw_and_da call (kernels/cpu/threads.py starts the pool at import for that
    reason): a warm `fastbp bench` process crashed on it once."""
    import subprocess
    import sys
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", CACHED_PROBE], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr[-2000:])


COPY_PROBE = r"""
import sys
sys.path.append(sys.argv[1])   # tests/, for compile_events (fastbp comes from the working directory)
import fastbp
from compile_events import compiled
with compiled() as compiles:
    X, y = fastbp.datasets.make_moons(50)
    net = fastbp.Network([2, 4, 2], seed=0)
    net.fit(X, y, epochs=2, batch_size=8)
print(fastbp.__file__, len(compiles), net.loss(X, y))
"""


def test_two_copies_of_fastbp_share_one_kernel_cache(tmp_path):
    """The cache is found by each file's place in the package, not its directory on disk: a
    second copy of the same sources (an installed copy beside a clone, another virtual
    environment) loads what the first compiled, and trains the same."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    import fastbp
    package = Path(fastbp.__file__).parent
    env = dict(os.environ, FASTBP_CACHE="1", FASTBP_SPECIALIZE="1", FASTBP_CACHE_DIR=str(tmp_path / "cache"),
               FASTBP_QUIET="1")   # (a variant: the least to compile)
    env.pop("PYTHONPATH", None)   # each copy imports itself, from its working directory
    runs = []
    for copy in ("a", "b"):
        shutil.copytree(package, tmp_path / copy / "fastbp", ignore=shutil.ignore_patterns("__pycache__"))
        out = subprocess.run([sys.executable, "-c", COPY_PROBE, str(Path(__file__).parent.parent)],
                             cwd=tmp_path / copy, env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        runs.append(out.stdout.split())
    (file_a, compiled_a, loss_a), (file_b, compiled_b, loss_b) = runs
    assert file_a.startswith(str(tmp_path / "a")) and file_b.startswith(str(tmp_path / "b"))
    assert int(compiled_a) > 0 and int(compiled_b) == 0
    assert loss_a == loss_b


# ---- variants (compile.variant, compile.switch) ----

def test_a_variant_compiles_only_the_branches_its_switches_keep():
    """A variant narrowed to sigmoid runs sigmoid like the general build, and leaves a layer of
    any other activation alone: its branch was pruned, not compiled (needs.py must therefore
    name every activation a network has)."""
    import numpy as np
    from fastbp.kernels.compile import variant
    from fastbp.kernels.cpu import activations as act
    Z = np.linspace(-3, 3, 24, dtype=np.float64).reshape(4, 6)
    sig = variant(act.activation_forward, THREADED=False, USED_ACTIVATIONS=(act.SIGMOID,))
    general, narrowed = np.empty_like(Z), np.empty_like(Z)
    act.activation_forward(general, Z, act.SIGMOID, 0.0)
    sig(narrowed, Z, act.SIGMOID, 0.0)
    np.testing.assert_array_equal(narrowed, general)
    untouched = np.full_like(Z, np.nan)
    sig(untouched, Z, act.RELU, 0.0)
    assert np.isnan(untouched).all()
    act.activation_forward(untouched, Z, act.RELU, 0.0)
    np.testing.assert_array_equal(untouched, np.maximum(Z, 0))


def test_variants_share_what_reads_no_narrowed_switch():
    from fastbp.kernels.compile import depends, one_thread, variant
    from fastbp.kernels.cpu import activations as act, driver, tiles
    assert depends(tiles.gemm_tiled) == {"THREADED"}
    assert variant(tiles.gemm_tiled, USED_ACTIVATIONS=(act.SIGMOID,), USE_DROPOUT=False) is tiles.gemm_tiled
    assert variant(tiles.gemm_tiled, THREADED=False, USE_DROPOUT=False) is one_thread(tiles.gemm_tiled)
    assert variant(driver.train_epochs, USE_DROPOUT=True) is driver.train_epochs   # the general value
    a = variant(driver.train_epochs, USE_DROPOUT=False)
    b = variant(driver.train_epochs, USE_DROPOUT=False, USE_CLIP=False)
    assert a is variant(driver.train_epochs, USE_DROPOUT=False) and a is not b
    # each its own entry in the disk cache
    assert len({f.py_func.__qualname__ for f in (driver.train_epochs, a, b)}) == 3


def test_a_variants_globals_make_each_compiled_functions_variant_when_it_is_read(monkeypatch):
    """The globals a variant's clones see resolve a compiled function to its variant when Numba
    reads the name, not when they are made, and read whole (a copy, iteration) hold what the
    eager copy held: every compiled function as its variant, the switches set."""
    from numba.core.registry import CPUDispatcher
    from fastbp.kernels import compile
    from fastbp.kernels.cpu import tiles
    settings = {"THREADED": False}
    made = []
    real = compile._for_callers
    monkeypatch.setattr(compile, "_for_callers", lambda d, s: made.append(d) or real(d, s))
    seen = compile._VariantGlobals(vars(tiles), settings)
    assert made == [] and seen["THREADED"] is False and tiles.THREADED is True
    assert seen["transpose"] is compile.one_thread(tiles.transpose) is not tiles.transpose
    assert seen.get("gemm_tiled") is compile.one_thread(tiles.gemm_tiled)
    assert made == [tiles.transpose, tiles.gemm_tiled]
    compiled = {k for k, v in vars(tiles).items() if isinstance(v, CPUDispatcher) and v in compile._INFO}
    assert len(compiled) > 10
    for whole in (dict(seen), {**seen}, seen.copy()):
        assert whole.keys() == vars(tiles).keys() and whole["THREADED"] is False
        for k in compiled:
            assert whole[k] is real(vars(tiles)[k], settings), k
    assert sorted(made, key=id) == sorted(set(made), key=id)   # each made once
    assert len(made) == len(compiled)


def test_an_unknown_switch_is_refused():
    import pytest
    from fastbp.kernels.compile import variant
    from fastbp.kernels.cpu import driver
    with pytest.raises(ValueError, match="USE_DROPOUTS"):
        variant(driver.train_epochs, USE_DROPOUTS=False)


def test_with_the_cache_off_a_general_build_on_disk_is_not_used(tmp_path, monkeypatch):
    """The general drivers load from the cache, or a fit would compile every branch of them
    where its variant compiles a fraction: with FASTBP_CACHE=0, a general build in the cache's
    folder serves nothing (a seed fit compiled for 19 s instead of 3)."""
    from fastbp import config
    from fastbp.kernels import compile as kernels
    from fastbp.kernels.cpu import needs as needs_module
    from fastbp.optim import SGD
    from fastbp.spec import make_spec
    monkeypatch.setattr(kernels, "CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(config, "SPECIALIZE", True)
    kernels.mark_general_built("float32")
    spec = make_spec([2, 4, 1], hidden="sigmoid", output="sigmoid")
    assert kernels.general_built("float32") and not kernels.general_built("float64")
    assert needs_module.needs(spec, "float32", False, 4, SGD(0.1)) == (("THREADED", False),)
    monkeypatch.setattr(config, "CACHE", False)
    assert not kernels.general_built("float32")
    assert dict(needs_module.needs(spec, "float32", False, 4, SGD(0.1)))["USED_ACTIVATIONS"]
