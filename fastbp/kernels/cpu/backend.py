"""CpuBackend: reference.NumpyBackend's methods, computed by the compiled drivers.

Workspaces are kept per row capacity, so repeated fits with one batch size allocate nothing, and
shared with the other networks of the same layout (workspaces.py).
Each call picks the parallel drivers or their single-threaded twins by the floating-point work
of one batch (or evaluation block): below config.PARALLEL_MIN_FLOP, starting threads costs more
than they save. Either is the variant compiled for what the call needs (needs.py): this
network's activations, loss, features and dense paths, and for training its optimizer.

X is a dense array or a scipy CSR matrix (fastbp.data checked both). A sparse X reaches the
drivers as its CSR arrays in the workspace (driver.with_csr) and an (n, 0) placeholder for X.

The drivers take every array they only read (X, targets, sample weights, the CSR arrays) as a
read-only view (`driver.read_only`). To Numba a read-only array is a type of its own: a user's read-only
X (a memory map, the arrays pandas' copy-on-write hands out, scikit-learn's read-only checks)
would otherwise compile every driver a second time, for the same code.
"""
import functools
import os
import threading
from types import SimpleNamespace

import numba
import numpy as np

from ... import aligned, config
from ...data import is_sparse
from ...spec import N_IN, N_UNITS, PIECES, W_OFF
from .. import args, blas_library, tier
from ..compile import notice, variant
from . import driver
from .dense import BLAS
from .driver import read_only
from .needs import needs
from .workspaces import SHARED
from .losses import RMSE, loss_divisor


# Numba's workqueue threading layer (used where neither OpenMP nor TBB is available) aborts the
# whole process when two Python threads run parallel kernels at once. Parallel drivers therefore
# run one at a time; the single-threaded twins start no thread pool and need no lock.
_PARALLEL_LOCK = threading.RLock()

# GNU OpenMP cannot run in a child forked after its thread pool started: Numba terminates the
# child at its first parallel launch. Such a child runs the single-threaded twins instead
# (multiprocessing's "spawn", or a TBB threading layer, keeps parallel kernels in children).
_PARALLEL_OK = True


def _after_fork_in_child():
    global _PARALLEL_OK
    try:
        if numba.threading_layer() == "omp":
            _PARALLEL_OK = False
    except ValueError:   # no thread pool started before the fork: the child may start its own
        pass


os.register_at_fork(after_in_child=_after_fork_in_child)


def _reaches_blas(key):
    """Whether the drivers of variant `key` (needs.needs) may call OpenBLAS: a variant whose dense
    paths leave it out never does, and its calls skip holding OpenBLAS to one thread (which
    costs a small fit's call microseconds)."""
    paths = dict(key)
    return BLAS in paths.get("FORWARD_PATHS", (BLAS,)) + paths.get("BACKWARD_PATHS", (BLAS,))


def _blas_on_one_thread(fn, blas=True):
    # the dense kernels call OpenBLAS from each thread (kernels/cpu/blas.py)
    if not blas_library.FOUND or not blas:
        return fn

    @functools.wraps(fn)
    def run(*args):
        with blas_library.one_thread():
            return fn(*args)
    return run


def _one_at_a_time(fn, blas=True):
    fn = _blas_on_one_thread(fn, blas)

    @functools.wraps(fn)
    def locked(*args):
        with _PARALLEL_LOCK:
            return fn(*args)
    return locked


def _announced(wrap, dispatcher, blas, what):
    # A backend's first call of a driver may compile it (for this dtype: a variant is shared by
    # both dtypes' networks, so the dispatcher's own overloads do not tell), or load it.
    run = wrap(dispatcher, blas)
    ran = []

    @functools.wraps(run)
    def call(*args):
        if ran:
            return run(*args)
        with notice(what):
            result = run(*args)
        ran.append(True)
        return result
    call.ran = lambda: bool(ran)
    return call


_DRIVERS = ("evaluate", "loss_and_gradients", "train_epochs", "penalties")


@functools.lru_cache(maxsize=None)
def _drivers_for(key, dtype, training, quick=False):
    """The drivers of one variant `key` for networks of one dtype, shared by every network that
    needs them: a driver that has run once for this dtype is loaded, and a later network's fit
    skips the empty call that would load it (prepare). quick: the key is a quick build's."""
    wrap = _one_at_a_time if dict(key)["THREADED"] else _blas_on_one_thread
    what = f"{dtype} {'training' if training else 'evaluation'} kernels this network needs"
    what = (f"a quick build of the {what}, while their fastest build compiles in a background process "
            "(FASTBP_TIERED=0 waits for it instead)" if quick else f"the {what}")
    blas = _reaches_blas(key)
    return SimpleNamespace(**{k: _announced(wrap, variant(getattr(driver, k), **dict(key)), blas, what)
                              for k in _DRIVERS})


class _Tiers:
    """One driver in its fastest build and its quick one (kernels/tier.py), shared by the calls
    of every network that needs the two: which one a call runs, and the background build."""

    def __init__(self, fastest, quick, dispatcher):
        self.fastest, self.quick, self.dispatcher = fastest, quick, dispatcher
        self.marker = None   # the fastest build's record, for the first call's argument types
        self.ready = False   # the disk cache holds the fastest build, or this process ran it
        self.asked = False   # a background build of it was asked for

    def _in_cache(self):
        # (asked again until it is: a background build ends while this process runs)
        if not self.ready and self.marker is not None:
            self.ready = self.marker.built()
        return self.ready

    def run(self, args, short):
        if self.marker is None:
            self.marker = tier.Marker(self.dispatcher, args)
        if self._in_cache() or not short:
            result = self.fastest(*args)
            if not self.ready:
                self.ready = True
                self.marker.mark()
            return result
        result = self.quick(*args)
        if not self.asked:
            self.asked = True
            self.marker.build_in_background()
        return result

    def caller(self, short):
        def call(*args):
            return self.run(args, short)
        # (whether `prepare` still has a driver to load: the one this call would run)
        call.ran = lambda: self.fastest.ran() or short and self.quick.ran() and not self._in_cache()
        return call


@functools.lru_cache(maxsize=None)
def _tiers_for(key, quick, dtype, training):
    """For the drivers of variant `key` and its quick build `quick`: {short: the drivers a call
    of that length runs}."""
    fastest, fast = _drivers_for(key, dtype, training), _drivers_for(quick, dtype, training, True)
    tiers = {k: _Tiers(getattr(fastest, k), getattr(fast, k), variant(getattr(driver, k), **dict(key)))
             for k in _DRIVERS}
    return {short: SimpleNamespace(**{k: t.caller(short) for k, t in tiers.items()}) for short in (True, False)}


class CpuBackend:
    name = "cpu"

    def __init__(self, spec, dtype, drop_key):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self._dtype_name = self.dtype.name   # (NumPy computes a dtype's name anew on every read)
        self.layers = np.ascontiguousarray(spec.layers)
        self.layer_f = spec.layer_floats(self.dtype)
        self.ranges = spec.weight_ranges
        self.grads = aligned.zeros(spec.n_params, self.dtype)
        self.hp = args.hyper(spec, drop_key)
        # driver.evaluate's empty halves: the outputs a loss does not keep, the targets a
        # prediction has not (the same types as the real ones, so both calls run one compile)
        self._no_outputs = np.empty((0, spec.n_out), self.dtype)
        self._no_targets = read_only(np.empty((0, spec.n_out), self.dtype))
        self._workspaces = {}
        self._total = None   # the full-batch gradient's sum over blocks (loss_and_gradients)
        self.weights = int(sum(r[0] * r[1] * r[2] for r in spec.layers))   # multiply-adds per row
        self._needs = {}
        self._drivers = {}   # drivers() memo: (threaded, rows, optimizer, sparse, tiered, short) -> drivers
        self._first_dw_zero = True   # the first layer's rows of grads are all zero (rows-only steps)
        self._one_epoch = np.zeros((2, 1))   # train_rows' rate and total
        self._planned = None   # the floating-point work of the fit `prepare` last prepared for

    def macs(self, X):
        """Multiply-adds per row of X: a sparse first layer costs its non-zeros, not its width,
        each weighted by config.SPARSE_MAC_WEIGHT."""
        if not is_sparse(X):
            return self.weights
        first = self.spec.layers[0]
        dense_first = int(first[N_IN] * first[N_UNITS] * first[PIECES])
        per_row = X.nnz / max(X.shape[0], 1)
        return self.weights - dense_first + config.SPARSE_MAC_WEIGHT * per_row * int(first[N_UNITS] * first[PIECES])

    def threaded(self, rows, passes=3, X=None):
        """Whether `rows` rows (of X) of `passes` matrix products (3 for a training step, 1 for
        inference) are worth Numba's threads."""
        flop = 2 * passes * rows * self.macs(X)
        return flop >= config.PARALLEL_MIN_FLOP and numba.get_num_threads() > 1 and _PARALLEL_OK

    def needs(self, threaded, rows, optimizer=None, sparse=False, quick=False):
        """needs.needs for this network, remembered (evaluation calls come often)."""
        slot = (threaded, rows, None if optimizer is None else (optimizer.code, bool(optimizer.clip_norm)), sparse,
                quick)
        if slot not in self._needs:
            self._needs[slot] = needs(self.spec, self.dtype, threaded, rows, optimizer, sparse, quick)
        return self._needs[slot]

    def variants(self):
        """The variant keys (needs.needs) of the fastest builds this network's calls have asked
        for so far."""
        return {key for slot, key in self._needs.items() if not slot[-1]}

    def drivers(self, rows, passes=3, optimizer=None, key_rows=None, X=None, flop=None):
        """The drivers for batches of `rows` rows of X (parallel or single-threaded, see
        `threaded`), compiled for what they need at up to `key_rows` rows (default `rows`), on X's
        kind (dense or sparse) and, when training, with `optimizer`. flop: the floating-point
        work of the call (a whole fit's), which a quick build may serve while the fastest is not
        built (kernels/tier.py); None: the fastest build always."""
        sparse = is_sparse(X)
        threaded = self.threaded(rows, passes, X)
        short = flop is not None and flop <= config.NAIVE_FLOPS * config.QUICK_MAX_SECONDS and tier.usable()
        slot = (threaded, key_rows or rows, None if optimizer is None else (optimizer.code, bool(optimizer.clip_norm)),
                sparse, flop is not None and tier.recorded(), short)
        found = self._drivers.get(slot)   # (a predict of a few rows asks on every call)
        if found is None:
            found = self._drivers[slot] = self._pick(threaded, key_rows or rows, optimizer, sparse, slot[-2], short)
        return found

    def _pick(self, threaded, rows, optimizer, sparse, tiered, short):
        key = self.needs(threaded, rows, optimizer, sparse)
        if tiered:
            quick = self.needs(threaded, rows, optimizer, sparse, quick=True)
            if quick != key:
                return _tiers_for(key, quick, self._dtype_name, optimizer is not None)[short]
        return _drivers_for(key, self._dtype_name, optimizer is not None)

    def workspace(self, cap, training=True, X=None):
        """The workspace for batches of up to `cap` rows of X, reading X if it is sparse. A
        single-threaded call's is shared with the other networks of this layout (workspaces.py:
        such calls hold the GIL from start to end, so no two run on it at once); a parallel
        call, which lets other Python threads run meanwhile, gets one of its own. Whether the
        call is parallel is decided as `drivers` decides it, by the same rows and passes."""
        sparse = is_sparse(X)
        threaded = self.threaded(cap, 3 if training else 1, X)
        key = (cap, training, sparse, threaded)
        ws = self._workspaces.get(key)
        if ws is None:
            if len(self._workspaces) >= 2:   # keep a training and an evaluation workspace
                self._workspaces.pop(next(iter(self._workspaces)))
            ws = self._workspaces[key] = (driver.workspace(self.spec, cap, self.dtype, training, sparse) if threaded
                                          else SHARED.get(self.spec, cap, self.dtype, training, sparse))
        return self._reading(ws, X)

    def _reading(self, ws, X):
        if not is_sparse(X):
            return ws
        indices = X.indices if X.indices.dtype == np.int32 else X.indices.astype(np.int32)
        return driver.with_csr(ws, read_only(X.indptr.astype(np.int64)), read_only(indices), read_only(X.data))

    def _dense(self, X):
        """What the drivers take for X: a read-only view of X, or for sparse X a placeholder of
        its row count."""
        return read_only(np.empty((X.shape[0], 0), self.dtype) if is_sparse(X) else X)

    def _opt(self, X, optimizer):
        """The Opt of a training call on X. Before a call that steps only some rows of the first
        W, its gradient rows are made zero where an earlier call left them otherwise: such steps
        zero the rows they touch (or never write them), which keeps them zero, unless a penalty
        writes every row."""
        opt = args.opt(optimizer, self.spec, is_sparse(X))
        some_rows = opt.sparse_mode != args.SPARSE_FULL
        if some_rows and not self._first_dw_zero:
            first = self.spec.layers[0]
            w = int(first[W_OFF])
            self.grads[w:w + int(first[N_IN] * first[N_UNITS] * first[PIECES])] = 0
        self._first_dw_zero = some_rows and self.spec.l1 == 0 and self.spec.l2 == 0
        return opt

    def _net(self, params, state, grads=None):
        return args.Net(params, self.grads if grads is None else grads, state, self.layers, self.layer_f,
                        self.ranges)

    def _eval_ws(self, X):
        return self.workspace(max(1, min(X.shape[0], config.EVAL_CHUNK)), training=False, X=X)

    def _eval_drivers(self, ws, X):
        # compiled for every block size up to EVAL_CHUNK, so that predicting on any number of
        # rows compiles nothing new
        return self.drivers(ws.xb.shape[0], 1, key_rows=config.EVAL_CHUNK, X=X, flop=2 * X.shape[0] * self.macs(X))

    def _fit_flop(self, X, epochs):
        # a training step's three products per layer, over every row of every epoch
        return 6 * epochs * X.shape[0] * self.macs(X)

    # ---- evaluation (inference mode: running statistics, no dropout) ----
    def predict(self, params, state, X):
        out = np.empty((X.shape[0], self.spec.n_out), dtype=self.dtype)
        ws = self._eval_ws(X)
        self._eval_drivers(ws, X).evaluate(out, self._dense(X), self._no_targets, self._net(params, state), self.hp,
                                           ws)
        return out

    def loss(self, params, state, X, Y):
        spec = self.spec
        net = self._net(params, state)
        ws = self._eval_ws(X)
        drv = self._eval_drivers(ws, X)
        total = drv.evaluate(self._no_outputs, self._dense(X), read_only(Y), net, self.hp, ws)
        mean = total / loss_divisor(spec.loss_code, X.shape[0], Y.shape[1])
        data_loss = np.sqrt(mean) if spec.loss_code == RMSE else mean
        return float(data_loss + drv.penalties(False, net, self.hp, ws))

    def loss_and_gradients(self, params, state, X, Y, dropout_step=None, SW=None):
        """Loss and gradient of X as one training batch, sample weights SW (n,) scaling each
        row. Rows go through in blocks of EVAL_CHUNK where that gives the same result (no batch
        statistics, no dropout, a loss that is a mean of rows), so a full-batch optimizer
        calling this on many rows reuses one block's workspace."""
        n = X.shape[0]
        blocks = not any(self.spec.batch_norm) and self.spec.loss != "rmse" and dropout_step is None
        cap = max(1, min(n, config.EVAL_CHUNK)) if blocks else max(1, n)
        ws = (self.workspace(cap, X=X) if blocks
              else self._reading(driver.workspace(self.spec, cap, self.dtype, sparse=is_sparse(X)), X))
        grads = aligned.zeros(params.shape, params.dtype)   # the caller's to keep
        if cap < n and self._total is None:
            self._total = aligned.zeros(params.shape, params.dtype)   # scratch kept between calls
        total = self._total if cap < n else grads
        SW = np.ones(n, dtype=self.dtype) if SW is None else np.ascontiguousarray(SW, dtype=self.dtype)
        value = self.drivers(cap, X=X).loss_and_gradients(self._dense(X), read_only(Y), read_only(SW),
                                                          dropout_step is not None, int(dropout_step or 0),
                                                          self._net(params, state, grads), self.hp, ws, total)
        return float(value), grads

    # ---- training ----
    def train(self, params, state, X, Y, SW, orders, lrs, batch_size, counter, optimizer):
        """Epochs over `orders` (one row each) at rates `lrs`. Returns (losses, epochs run):
        fewer than asked when an epoch's loss was not finite."""
        totals = np.full(orders.shape[0], np.nan)
        ran = self._train(params, state, X, Y, SW, orders, np.asarray(lrs, dtype=np.float64), 0, X.shape[0],
                          batch_size, counter, optimizer, totals)
        return totals / max(X.shape[0], 1), ran

    def _train_drivers(self, X, batch_size, optimizer, epochs):
        # the fit `prepare` prepared for decides the build (kernels/tier.py), not each call's
        # share of it: a fit's calls (runs of epochs, pieces of one) all run the same one
        flop = self._planned if self._planned is not None else self._fit_flop(X, epochs)
        return self.drivers(batch_size, optimizer=optimizer, X=X, flop=flop)

    def _train(self, params, state, X, Y, SW, orders, lrs, start, stop, batch_size, counter, optimizer, totals):
        train = self._train_drivers(X, batch_size, optimizer, orders.shape[0]).train_epochs
        return train(self._dense(X), read_only(Y), read_only(SW), orders, lrs, start, stop, batch_size, counter,
                     self._net(params, state), self.hp, self._opt(X, optimizer), self.workspace(batch_size, X=X),
                     totals)

    def prepare(self, params, state, X, Y, SW, batch_size, counter, optimizer, by_batch, epochs=1):
        """Compile (or load) the driver `train` and `train_rows` run for a fit of `epochs` epochs
        with these arguments, by calling it on no epochs (only before its first call: a call
        costs microseconds). by_batch: kept for the other backends' signature; both calls run the
        same driver."""
        self._planned = self._fit_flop(X, epochs)
        if self._train_drivers(X, batch_size, optimizer, epochs).train_epochs.ran():
            return
        self.train(params, state, X, Y, SW, np.empty((0, X.shape[0]), np.int64), [], batch_size, counter, optimizer)

    def train_distributed(self, params, state, X, Y, SW, orders, lrs, batch_size, steps, counter, optimizer,
                          drop_key, comm):
        """Epochs with one gradient all-reduce per step over the MPI communicator `comm`
        (kernels/cpu/distributed.py); returns this rank's per-epoch sums of batch loss times batch
        size."""
        from . import distributed
        if optimizer.lazy and is_sparse(X):
            raise ValueError("lazy updates are not available with MPI (comm=...): each rank's batch touches "
                             "other rows; use an optimizer with lazy=False")
        key = dict(self.needs(self.threaded(batch_size, X=X), batch_size, optimizer, is_sparse(X)))
        run = (_one_at_a_time if key["THREADED"] else _blas_on_one_thread)(
            variant(distributed.train_epochs_mpi, **key), _reaches_blas(key))
        totals = np.zeros(orders.shape[0])
        buffers = getattr(self, "_mpi_buffers", None)
        if buffers is None or buffers[0].size != self.spec.n_params + 1:
            buffers = self._mpi_buffers = (np.zeros(self.spec.n_params + 1), np.zeros(self.spec.n_params + 1))
        hp = self.hp._replace(drop_key=np.uint64(drop_key))
        self._first_dw_zero = False
        run(self._dense(X), read_only(Y), read_only(SW), orders, np.asarray(lrs, dtype=np.float64), batch_size,
            steps, counter, self._net(params, state), hp, args.opt(optimizer, self.spec),   # every rank steps every row
            self.workspace(batch_size, X=X), totals, *buffers, distributed.handles(comm))
        return totals

    def train_rows(self, params, state, X, Y, SW, order, start, stop, batch_size, lr, counter, optimizer):
        """Batches over order[start:stop]; the sum of batch losses times batch sizes. The driver
        of whole epochs, on one epoch's rows (its scratch, one rate and one total, is kept)."""
        one = self._one_epoch
        one[0, 0] = lr
        self._train(params, state, X, Y, SW, order[None, :], one[0], start, stop, batch_size, counter, optimizer,
                    one[1])
        return float(one[1, 0])
