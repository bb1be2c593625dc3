"""Building the kernel cache ahead of time (`fastbp compile`, fastbp.compile), and how much of it
is built (`fastbp info`).

A first fit compiles the drivers its network needs (a variant: kernels/cpu/needs.py) and caches
them on disk. Docker images, CI caches and shared clusters can pay that before anyone waits:
- for given networks (or the demo's two), their variants: what their fits, predictions and
  losses load from then on;
- with general=True (`--all`), the general build, which holds every branch of every driver.
  From then on every fit in that dtype, of any network, loads it and compiles nothing;
- with mpi=True (`--mpi`), also the driver of data-parallel fits (fit(comm=...)), which every
  rank of an MPI job would otherwise compile at the same time on its first run.
Both are calls of the public API on a few rows, so they compile exactly what a user's call
would (the same argument types) and nothing is trained that anyone keeps.
"""
import contextlib
import io
import os
import time

import numpy as np

from . import config
from .network import Network

# what `fastbp demo` and the README's first steps train
DEMO = ((dict(sizes=[2, 4, 1], hidden="sigmoid", output="sigmoid"), 4),
        (dict(sizes=[64, 128, 10], hidden="relu", output="softmax"), 32))

# the general build serves every network: one that takes every per-layer branch stands for all
_EVERYTHING = dict(sizes=[6, 8, 4], hidden="relu", output="softmax", dropout=0.1, batch_norm=True, l2=1e-4)


def compile(networks=None, dtypes=("float32",), general=False, batch_size=32, optimizer="sgd", sparse=False,
            mpi=False):
    """Build the kernel cache ahead of time; returns [(what, seconds)].

    networks: Network objects (their architecture; each is built in every dtype of `dtypes`),
        or None for the two networks of `fastbp demo` (the seed network at batch 4, the digits
        network at batch 32).
    general: build the general drivers instead (`fastbp compile --all`): every activation,
        loss, optimizer and feature, on one thread and on several. Every later fit in these
        dtypes, of any network and in any process, loads them instead of compiling a variant.
    batch_size, optimizer: those the given networks will be trained with (the variant compiled
        for a fit depends on both).
    sparse: the networks will read sparse (scipy CSR) X, whose variants differ (needs scipy).
        The general build serves sparse X as it is.
    mpi: build the distributed driver as well, by a fit over MPI.COMM_SELF (needs mpi4py and
        numba-mpi): the compiled code takes the communicator as an argument, so it serves any
        communicator of any job.
    """
    require_cache()
    dtypes = [np.dtype(d).name for d in ([dtypes] if isinstance(dtypes, str) else dtypes)]
    from .kernels import tier
    with tier.fastest_only():
        return _compile(networks, dtypes, general, batch_size, optimizer, sparse, mpi)


def require_cache():
    """RuntimeError where the kernel cache is off: nothing built would last (and a general build
    marked as built would send later fits to compile its every branch)."""
    if not config.CACHE:
        raise RuntimeError("compile builds the kernel cache, which FASTBP_CACHE=0 turns off: "
                           "unset FASTBP_CACHE (or set it to 1) to build it")


def _compile(networks, dtypes, general, batch_size, optimizer, sparse, mpi):
    done = []
    for dtype in dtypes:
        t0 = time.perf_counter()
        if general:
            _build_general(dtype, mpi)
            done.append((f"general build, {dtype}{', with MPI' if mpi else ''}", time.perf_counter() - t0))
            continue
        todo = DEMO if networks is None else [(net.spec.config(), batch_size) for net in networks]
        for spec, batch in todo:
            t0 = time.perf_counter()
            for progress in (False, True):   # fit(verbose=1) trains batch by batch: other drivers
                _exercise(Network(dtype=dtype, seed=0, **spec), batch, optimizer, progress, sparse, mpi)
            hidden = spec.get("hidden", "relu")
            hidden = "/".join(dict.fromkeys(map(str, hidden))) if isinstance(hidden, list) else hidden
            done.append((f"{spec['sizes']} {hidden}, {dtype}, batch {batch}{', sparse X' if sparse else ''}"
                         f"{', with MPI' if mpi else ''}", time.perf_counter() - t0))
    return done


def _exercise(net, batch_size, optimizer, progress=False, sparse=False, mpi=False):
    """Every compiled call a user makes of `net`: a fit (per batch as well, for verbose=1; over
    MPI as well, for mpi), predictions of one row and of a full evaluation block, the loss and
    the gradients, on dense X or (sparse) a scipy CSR matrix."""
    n_in, n_out = net.sizes[0], net.sizes[-1]
    X = np.zeros((batch_size, n_in), dtype=net.dtype)
    block = np.zeros((config.EVAL_CHUNK, n_in), dtype=net.dtype)
    if sparse:
        from scipy import sparse as sp
        X, block = sp.csr_matrix(X), sp.csr_matrix(block)
    labels = np.arange(batch_size) % (n_out if net.spec.output == "softmax" else 2)   # (every class twice)
    if net.spec.output == "softmax":
        y = labels
    elif net.spec.output == "sigmoid":
        y = labels if n_out == 1 else np.repeat(labels[:, None], n_out, axis=1)
    else:
        y = np.zeros((batch_size, n_out))
    with contextlib.redirect_stderr(io.StringIO()):   # verbose=1's bar
        net.fit(X, y, epochs=1, batch_size=batch_size, optimizer=optimizer, verbose=1 if progress else 0)
    if mpi and not progress:   # (over MPI, fit runs whole epochs whatever verbose says)
        from .distributed import require_mpi
        net.fit(X, y, epochs=1, batch_size=batch_size, optimizer=optimizer, verbose=0, comm=require_mpi().COMM_SELF)
    net.predict(X[:1])
    net.predict(block)
    net.loss(X, y)
    net.gradients(X, y)


def _build_general(dtype, mpi=False):
    from .kernels import compile as kernels
    old = config.SPECIALIZE, config.PARALLEL_MIN_FLOP
    config.SPECIALIZE = False
    try:
        for min_flop in (0, 2 ** 62):   # on several threads, then on one
            config.PARALLEL_MIN_FLOP = min_flop
            for progress in (False, True):
                _exercise(Network(dtype=dtype, seed=0, **_EVERYTHING), 8, "adam", progress, mpi=mpi)
    finally:
        config.SPECIALIZE, config.PARALLEL_MIN_FLOP = old
    kernels.mark_general_built(dtype)


def cache_summary():
    """One line on the kernel cache: where, how many compiled functions it holds, its size, and
    which dtypes have the general build."""
    from .kernels import compile as kernels
    root = kernels.CACHE_DIR
    if not config.CACHE:
        return f"{root} (off: FASTBP_CACHE=0)"
    if not os.path.isdir(root):
        return f"{root} (empty: the first fit builds what it needs; `fastbp compile` builds ahead)"
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    functions = sum(f.endswith(".nbi") for f in files)
    size = sum(os.path.getsize(f) for f in files) / 2 ** 20
    general = [d for d in ("float32", "float64") if kernels.general_built(np.dtype(d))] or ["none"]
    return (f"{root} ({functions} compiled functions, {size:.1f} MiB; general build: {', '.join(general)})")
