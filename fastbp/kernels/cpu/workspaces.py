"""Workspaces shared by the networks of one layout.

A workspace (driver.Workspace) is scratch: every compiled call writes what it reads of it
before reading it, and leaves nothing in it for the next call. So networks of the same layout
(the same layer table, dropout and batch-norm flags, dtype, row capacity and kind) can use one
workspace instead of one each: a fit of a new network then skips making one and, which
counts for more, starts on memory already in the caches instead of fresh pages: on a network
as small as the seed's, a visible part of a whole fit (the README has the measured figures).
Repeated small fits are what scikit-learn's model selection and the peers' timing loops do.

Only single-threaded calls share them (CpuBackend.workspace), and two such calls never run on
one workspace at once: a compiled function holds the GIL from its start to its end unless it is
compiled nogil (no driver is; tests/kernels/cpu/test_workspaces.py checks) or starts parallel
loops, whose launch lets other Python threads run until they finish. Parallel calls get a
workspace of their own.

The shared workspaces are kept least recently used first, up to config.WORKSPACE_SHARE_BYTES in
all; a network keeps its own references to those it uses (CpuBackend), so evicting one here
frees nothing a live network still holds.
"""
import threading
from collections import OrderedDict

import numba
import numpy as np

from ... import config
from . import driver


class SharedWorkspaces:
    """Workspaces by layout, least recently used first, at most `limit()` bytes in all."""

    def __init__(self, limit=lambda: config.WORKSPACE_SHARE_BYTES):
        self.limit = limit
        self._kept = OrderedDict()   # key -> (workspace, bytes)
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, spec, cap, dtype, training=True, sparse=False):
        """The workspace driver.workspace(spec, cap, dtype, training, sparse) would make, shared
        with every other caller of the same layout while it is kept."""
        key = self._key(spec, cap, dtype, training, sparse)
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found[0]
        ws = driver.workspace(spec, cap, dtype, training, sparse)
        size = sum(a.nbytes for a in ws if isinstance(a, np.ndarray))
        with self._lock:
            if key in self._kept:   # another thread made one meanwhile: use that one
                return self._kept[key][0]
            if size <= self.limit():
                self._kept[key] = (ws, size)
                self._bytes += size
                self._evict()
        return ws

    def _evict(self):
        while self._bytes > self.limit() and self._kept:
            _, (_, size) = self._kept.popitem(last=False)
            self._bytes -= size

    def kept_bytes(self):
        return self._bytes

    def __len__(self):
        return len(self._kept)

    @staticmethod
    def _key(spec, cap, dtype, training, sparse):
        # everything driver.workspace reads: the layer table (sizes, pieces, flags, offsets),
        # dropout and batch norm, the thread count (zpart's size) and the settings it sizes by
        # (the dense path rules among them: scratch_sizes)
        return (spec.layers.tobytes(), spec.layers.shape, spec.dropout, spec.batch_norm, spec.n_state,
                np.dtype(dtype).str, int(cap), bool(training), bool(sparse), numba.get_num_threads(),
                config.GEMM_PANEL_BYTES, config.SPLIT_MIN_WEIGHTS, config.REDUCE_CHUNKS, config.GEMM_MIN_WEIGHTS,
                config.GEMM_NARROW, config.GEMM_NARROW_MIN_ROWS, config.BLAS_MIN_MACS)


SHARED = SharedWorkspaces()
