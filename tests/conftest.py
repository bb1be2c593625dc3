"""Shared helpers: random problems, the tolerance for each dtype, a network on each backend."""
import os

# The suite trains hundreds of different networks (every activation, loss, optimizer and feature,
# alone and mixed): the sweep case, where one general build of the drivers (compiled once per
# worker) beats a variant compiled for each network. Variants, the default for users, are
# tested on their own: tests/kernels/test_compile.py, tests/kernels/cpu/test_needs.py and
# tests/kernels/cpu/test_backend.py (set config.SPECIALIZE back on).
os.environ.setdefault("FASTBP_SPECIALIZE", "0")
# One pytest-xdist worker runs on each core already, and the general builds below run one per
# core: a helper process for each first compile (kernels/compile_helper.py) would only compete
# with them. tests/kernels/test_compile_helper.py switches it on where it tests it.
os.environ.setdefault("FASTBP_COMPILE_HELPER", "0")
# Nor a background build after a short fit (kernels/tier.py), which would outlive its test and
# compete with the workers; tests/kernels/test_tier.py switches tiers on where it tests them.
os.environ.setdefault("FASTBP_TIERED", "0")

# Subprocesses (the CLI, README blocks, scripts, MPI ranks) import this tree's fastbp, not an
# installed copy of some other commit
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join([_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])

import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastbp  # noqa: E402


def pytest_sessionstart(session):
    """Build the general drivers once, both dtypes at the same time, before pytest-xdist starts
    its workers (its own sessionstart runs last): each worker would otherwise compile them
    itself, the same minutes twice. With the cache built, this only loads it."""
    if hasattr(session.config, "workerinput") or os.environ.get("FASTBP_CACHE") == "0":
        return
    builds = [subprocess.Popen([sys.executable, "-m", "fastbp", "compile", "--all", "--dtype", d],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
              for d in ("float32", "float64")]
    for b in builds:
        _, err = b.communicate()
        if b.returncode:   # the tests that need these drivers will compile them, and fail if they must
            print(f"conftest: `fastbp compile --all` failed:\n{err[-2000:]}", file=sys.stderr)


# Kernels and reference sum in different orders (and threads split sums differently):
# agreement is to a few units in the last places, scaled by each dtype's precision.
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


def tol(dtype):
    return TOL[np.dtype(dtype).type]


def problem(spec_sizes, output, n=23, seed=0):
    """Random inputs and targets that fit `output` for a network with these sizes."""
    rng = np.random.default_rng(seed)
    n_in, n_out = spec_sizes[0], spec_sizes[-1]
    X = rng.standard_normal((n, n_in))
    if output == "softmax":
        y = rng.integers(0, n_out, size=n)
    elif output == "sigmoid":
        y = rng.integers(0, 2, size=(n, n_out))
    elif output == "tanh":
        y = rng.uniform(-0.9, 0.9, size=(n, n_out))
    elif output == "exp":
        y = rng.poisson(1.5, size=(n, n_out)).astype(float)
    else:
        y = rng.standard_normal((n, n_out))
    return X, y


BACKENDS = ["cpu", "numpy"]


def pair(sizes, dtype="float64", seed=0, **kw):
    """The same network (same seed, same initial weights) on the cpu and numpy backends."""
    return (fastbp.Network(sizes, dtype=dtype, seed=seed, backend="cpu", **kw),
            fastbp.Network(sizes, dtype=dtype, seed=seed, backend="numpy", **kw))


def assert_same_state(cpu, ref, X, y, dtype, scale=1.0):
    t = {k: v * scale for k, v in tol(dtype).items()}
    P = cpu.predict(X)
    assert P.dtype == np.dtype(dtype) and P.shape == (len(X), cpu.sizes[-1])
    np.testing.assert_allclose(P, ref.predict(X), **t)
    np.testing.assert_allclose(cpu.loss(X, y), ref.loss(X, y), **t)
    for (dW, db), (rW, rb) in zip(cpu.gradients(X, y), ref.gradients(X, y)):
        np.testing.assert_allclose(dW, rW, **t)
        np.testing.assert_allclose(db, rb, **t)


HIDDEN = ["linear", "sigmoid", "tanh", "relu", ("leaky_relu", {"slope": 0.1}),
          ("elu", {"alpha": 0.7}), "maxout", ("maxout", {"pieces": 3})]


# every valid (output, loss) pair
OUTPUT_LOSS = [("linear", "mse"), ("linear", "rmse"), ("linear", ("huber", {"delta": 0.5})),
               ("sigmoid", "mse"), ("tanh", "mse"), ("tanh", "huber"), ("sigmoid", "rmse"),
               ("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy"), ("exp", "poisson")]


def ids(v):
    return v if isinstance(v, str) else f"{v[0]}-{'-'.join(f'{k}{x}' for k, x in v[1].items())}"


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(params=["parallel", "one_thread"])
def kernel_mode(request, monkeypatch):
    """Run a test through the parallel kernels and through their single-threaded twins
    (the cpu backend picks by work size; this forces each)."""
    from fastbp import config
    monkeypatch.setattr(config, "PARALLEL_MIN_FLOP", 0 if request.param == "parallel" else 2**62)
    return request.param
