"""fastbp: fast backpropagation for fully-connected networks.

    import fastbp
    net = fastbp.Network([64, 128, 10], hidden="relu", output="softmax", seed=0)
    history = net.fit(X, y, epochs=20, batch_size=32, lr=0.1)
"""
from . import callbacks, datasets, optim
from ._version import __version__
from .callbacks import History
from .io import load
from .network import Network

__all__ = ["Network", "History", "load", "datasets", "optim", "callbacks", "__version__"]
