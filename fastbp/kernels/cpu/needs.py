"""What a call on a network needs compiled: the switch values (kernels/compile.switch) of the
driver variant that serves it.

The general build of a driver holds every branch any network may take: every activation, loss
and optimizer, batch norm, dropout, penalties, clipping, every dense path (and every branch of
the tiled backward pass) and every narrow transpose. Compiling all of it is most of a first
fit's wait. A variant compiled for `needs(...)` holds only what that network takes, and its
kernels that read none of the narrowed switches are shared with every other variant. Each value
here must cover every branch the call can take: a branch a variant lacks is skipped, not run
(dense paths, tiled backward kinds and narrow transposes are the exceptions: a missing one
falls back to the naive loops or to element loops).
"""
import functools

import numpy as np

from ... import config
from ..compile import general_built
from ...spec import ACT, N_IN, N_UNITS, PIECES
from .dense import NAIVE, TILED, paths_over, tiled_kinds_over, weight_shape
from .tiles import NARROW_SHUFFLED


def needs(spec, dtype, threaded, rows, optimizer=None, sparse=False, quick=False):
    """The switches for a call on `spec` in `dtype`: on Numba's threads or not, over batches of at
    most `rows` rows, training with `optimizer` (None: evaluation or gradients only), on sparse
    X or dense. quick: the quick build (kernels/tier.py) of the same call, on one thread with
    every dense layer in the naive loops, which compile in a fraction of the time of the tiled
    products and transposes (the same key as the fastest build where that is what it is).

    Returns the keyword arguments of compile.variant, in a canonical order (usable as a key):
    only THREADED where the general build serves (config.SPECIALIZE off, or `fastbp compile --all`
    built it)."""
    dtype = np.dtype(dtype)
    if not config.SPECIALIZE or general_built(dtype):
        return (("THREADED", bool(threaded)),)
    # remembered for the process: every new network of a layout asks again (a fit from scratch
    # in a loop, a grid search), and working it out takes about 10 us, as long as a small fit's
    # checks of X and y. config's path thresholds are not in the key: the compiled path rules,
    # which these values must match, read them once per process too
    layout = (spec.layers.tobytes(), spec.layers.shape, int(spec.loss_code), any(spec.batch_norm),
              any(d > 0 for d in spec.dropout), spec.l1 > 0 or spec.l2 > 0)
    trainer = None if optimizer is None else (int(optimizer.code), bool(optimizer.clip_norm))
    return _specialized(layout, dtype.itemsize, bool(threaded) and not quick, int(rows), trainer, bool(sparse),
                        bool(quick))


@functools.lru_cache(maxsize=1024)
def _specialized(layout, itemsize, threaded, rows, trainer, sparse, quick=False):
    table, shape, loss_code, batch_norm, dropout, penalty = layout
    layers = np.frombuffer(table, np.int64).reshape(shape).tolist()   # Python ints: faster to read
    forward, backward, kinds = {NAIVE}, {NAIVE}, set()
    first = len(layers) if quick else 1 if sparse else 0   # a sparse first layer has its own kernels
    for l, row in enumerate(layers[first:], first):
        W = weight_shape(row[N_IN], row[N_UNITS] * row[PIECES], itemsize)
        f, b = paths_over(rows, W)
        forward |= f
        backward |= b
        if TILED in b:
            kinds |= tiled_kinds_over(rows, W, l > 0)
    # the narrow transposes (tiles.gather_narrow, scatter_narrow) of the matrices with a layer's
    # inputs or outputs as columns (W, A, dZ and their transposes), narrower than a vector; none
    # where every layer runs the naive loops, so that such networks share one variant
    vector = config.VECTOR_BYTES // itemsize
    columns = ({c for row in layers for c in (row[N_IN], row[N_UNITS] * row[PIECES])}
               if forward | backward != {NAIVE} else set())
    values = dict(
        THREADED=bool(threaded),
        USED_ACTIVATIONS=tuple(sorted({row[ACT] for row in layers})),
        USED_LOSSES=(loss_code,),
        FORWARD_PATHS=tuple(sorted(int(p) for p in forward)),
        BACKWARD_PATHS=tuple(sorted(int(p) for p in backward)),
        TILED_KINDS=tuple(sorted(kinds)),
        USE_BATCH_NORM=batch_norm,
        USE_DROPOUT=dropout,
        USE_PENALTY=penalty,
        USED_OPTIMIZERS=(trainer[0],) if trainer is not None else (),
        USE_CLIP=trainer is not None and trainer[1],
        USE_SPARSE=sparse,
        NARROW_SHUFFLES=tuple(sorted(c for c in columns if 2 <= c <= NARROW_SHUFFLED)),
        NARROW_WINDOWS=any(NARROW_SHUFFLED < c < vector for c in columns),
    )
    return tuple(sorted(values.items()))
