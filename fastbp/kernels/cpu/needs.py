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
import numpy as np

from ... import config
from ..compile import general_built
from ...spec import ACT, N_IN, N_UNITS, PIECES
from .dense import NAIVE, TILED, paths_over, tiled_kinds_over, weight_shape
from .tiles import NARROW_SHUFFLED


def needs(spec, dtype, threaded, rows, optimizer=None, sparse=False):
    """The switches for a call on `spec` in `dtype`: on Numba's threads or not, over batches of at
    most `rows` rows, training with `optimizer` (None: evaluation or gradients only), on sparse
    X or dense.

    Returns the keyword arguments of compile.variant, in a canonical order (usable as a key):
    only THREADED where the general build serves (config.SPECIALIZE off, or `fastbp compile --all`
    built it)."""
    layers = spec.layers.tolist()   # Python ints: reading NumPy's one by one costs more than this call
    itemsize = np.dtype(dtype).itemsize
    forward, backward, kinds = {NAIVE}, {NAIVE}, set()
    first = 1 if sparse else 0   # a sparse first layer has its own kernels
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
        USED_LOSSES=(int(spec.loss_code),),
        FORWARD_PATHS=tuple(sorted(int(p) for p in forward)),
        BACKWARD_PATHS=tuple(sorted(int(p) for p in backward)),
        TILED_KINDS=tuple(sorted(kinds)),
        USE_BATCH_NORM=any(spec.batch_norm),
        USE_DROPOUT=any(d > 0 for d in spec.dropout),
        USE_PENALTY=spec.l1 > 0 or spec.l2 > 0,
        USED_OPTIMIZERS=(int(optimizer.code),) if optimizer is not None else (),
        USE_CLIP=optimizer is not None and bool(optimizer.clip_norm),
        USE_SPARSE=bool(sparse),
        NARROW_SHUFFLES=tuple(sorted(c for c in columns if 2 <= c <= NARROW_SHUFFLED)),
        NARROW_WINDOWS=any(NARROW_SHUFFLED < c < vector for c in columns),
    )
    if not config.SPECIALIZE or general_built(np.dtype(dtype)):
        values = {"THREADED": values["THREADED"]}
    return tuple(sorted(values.items()))
