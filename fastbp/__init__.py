"""fastbp: fast backpropagation for fully-connected networks.

    import fastbp
    net = fastbp.Network([64, 128, 10], hidden="relu", output="softmax", seed=0)
    history = net.fit(X, y, epochs=20, batch_size=32, lr=0.1)
"""
from . import callbacks, datasets, metrics, optim
from ._version import __version__
from .callbacks import EarlyStopping, History, ModelCheckpoint
from .network import Network, load
from .prebuild import compile

__all__ = ["Network", "History", "EarlyStopping", "ModelCheckpoint", "load", "compile", "datasets", "optim",
           "callbacks", "metrics", "set_num_threads",
           "get_num_threads", "__version__"]


def set_num_threads(n):
    """Threads for the parallel kernels (at most NUMBA_NUM_THREADS, the pool's size)."""
    import numba
    limit = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise ValueError(f"set_num_threads needs an integer in [1, {limit}] (NUMBA_NUM_THREADS), got {n!r}")
    numba.set_num_threads(n)


def get_num_threads():
    import numba
    return numba.get_num_threads()
