"""The command line: `fastbp demo | train | predict | evaluate | bench | info` (also
`python -m fastbp ...`). Parsing, reading files and printing only; no math.

A user mistake (a bad argument, a missing file, unusable data) exits with status 2 and one line
saying what is wrong; success exits 0.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import warnings

import numpy as np

from . import metrics


class UsageError(Exception):
    """A mistake in the arguments or the data: reported in one line, exit status 2."""


# ---- data files ----

def _npz_rows(path, name, part):
    """Rows part = (rank, ranks) of array `name` in an uncompressed .npz (np.savez), read from
    the file without loading the rest of the array; None if there is no such array."""
    import zipfile
    with zipfile.ZipFile(path) as zf:
        member = name + ".npy"
        if member not in zf.namelist():
            return None
        if zf.getinfo(member).compress_type != zipfile.ZIP_STORED:
            raise UsageError(f"{path}: --distributed reads slices of uncompressed .npz files (np.savez, "
                             f"not np.savez_compressed)")
        with zf.open(member) as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            if fortran or dtype.hasobject:
                raise UsageError(f"{path}: array {name} must be C-ordered and numeric")
            row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
            bounds = np.linspace(0, shape[0], part[1] + 1).astype(int)
            lo, hi = bounds[part[0]], bounds[part[0] + 1]
            f.seek(f.tell() + lo * row)
            return np.frombuffer(f.read((hi - lo) * row), dtype=dtype).reshape((hi - lo,) + tuple(shape[1:]))


SVMLIGHT = (".svm", ".svmlight", ".libsvm")


def _sparse_npz(path):
    """Whether an .npz file is a matrix saved by scipy.sparse.save_npz."""
    with np.load(path, allow_pickle=False) as z:
        return {"indptr", "indices", "data", "shape", "format"} <= set(z.files)


def _read_sparse(path, target, n_features):
    """(X CSR float64, y or None, feature names, target name) from an svmlight / libsvm text
    file (its first field the target) or a scipy.sparse.save_npz file, whose targets are read
    from `target` (a .npy file, or a text file of one per line) or else <name>.y.npy beside it."""
    try:
        from scipy import sparse
    except ImportError:
        raise UsageError(f"{path}: sparse data needs scipy: pip install scipy") from None
    if path.endswith(SVMLIGHT):
        try:
            from sklearn.datasets import load_svmlight_file
        except ImportError:
            raise UsageError(f"{path}: reading svmlight / libsvm files needs scikit-learn: "
                             f"pip install 'fastbp[sklearn]'") from None
        try:
            X, y = load_svmlight_file(path, n_features=n_features, dtype=np.float64)
        except (ValueError, OSError) as exc:
            raise UsageError(f"{path}: cannot read it as svmlight / libsvm ({exc})") from None
        return X.tocsr(), y, [f"x{i}" for i in range(X.shape[1])], "y"
    try:
        X = sparse.load_npz(path).tocsr().astype(np.float64)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{path}: cannot read it as a scipy.sparse .npz ({exc})") from None
    if n_features is not None and X.shape[1] < n_features:   # columns past the last one saved are empty
        X = sparse.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_features))
    beside = path[:-len(".npz")] + ".y.npy"
    ypath = target or (beside if os.path.exists(beside) else None)
    y = None
    if ypath is not None:
        if not os.path.exists(ypath):
            raise UsageError(f"{ypath}: no such targets file (give --target a .npy file or a text file with "
                             f"one target per line)")
        try:
            y = np.load(ypath, allow_pickle=False) if ypath.endswith(".npy") else np.loadtxt(ypath, dtype=str)
        except (ValueError, OSError) as exc:
            raise UsageError(f"{ypath}: cannot read the targets ({exc})") from None
        if y.dtype.kind == "U":
            try:
                y = y.astype(np.float64)
            except ValueError:
                pass   # class names
        if y.shape != (X.shape[0],):
            raise UsageError(f"{ypath}: {y.shape[0] if y.ndim else 0} targets for the {X.shape[0]} rows of {path}")
    return X, y, [f"x{i}" for i in range(X.shape[1])], os.path.basename(ypath) if ypath else "y"


def read_table(path, target=None, part=None, n_features=None):
    """(X float64 (n, d), y or None, feature names, target name) from a CSV with a header row,
    an NPZ holding X (and y), or sparse data (X a scipy CSR matrix): an svmlight / libsvm file
    (.svm, .svmlight, .libsvm) or a scipy.sparse.save_npz file (targets: _read_sparse). CSV
    target columns may hold class names; features must be numbers. part = (rank, ranks): only
    that contiguous slice of the rows is kept (or read, for .npz). n_features: the columns a
    model expects, for sparse files whose last columns may be empty."""
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if path.endswith(SVMLIGHT) or path.endswith(".npz") and _sparse_npz(path):
        X, y, names, target = _read_sparse(path, target, n_features)
        if part is not None:
            bounds = np.linspace(0, X.shape[0], part[1] + 1).astype(int)
            rows = slice(bounds[part[0]], bounds[part[0] + 1])
            X, y = X[rows], None if y is None else y[rows]
        return X, y, names, target
    if path.endswith(".npz"):
        key = target or "y"
        try:
            if part is not None:
                X, y = _npz_rows(path, "X", part), _npz_rows(path, key, part)
                if X is None:
                    raise UsageError(f"{path}: an .npz data file needs an array named X (and y)")
            else:
                with np.load(path, allow_pickle=False) as z:
                    if "X" not in z.files:
                        raise UsageError(f"{path}: an .npz data file needs an array named X (and y), found {z.files}")
                    X = z["X"]
                    y = z[key] if key in z.files else None
        except (ValueError, OSError) as exc:
            raise UsageError(f"{path}: cannot read it as .npz ({exc})") from None
        if target and y is None:
            raise UsageError(f"{path}: no array named {target!r}")
        if X.ndim != 2 or X.dtype.kind not in "biuf":
            raise UsageError(f"{path}: X must be a 2-D numeric array, got {X.dtype} of shape {X.shape}")
        return X.astype(np.float64), y, [f"x{i}" for i in range(X.shape[1])], key
    if part is None:
        fast = _read_csv_fast(path, target)
        if fast is not None:
            return fast
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it as CSV ({exc})") from None
    rows = [r for r in rows if r]
    if part is not None and len(rows) > 1:   # this rank's contiguous slice of the data rows
        bounds = np.linspace(0, len(rows) - 1, part[1] + 1).astype(int)
        rows = [rows[0]] + rows[1 + bounds[part[0]]:1 + bounds[part[0] + 1]]
    if len(rows) < 2:
        raise UsageError(f"{path}: a CSV data file needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    if any(len(r) != len(header) for r in rows[1:]):
        bad = next(i for i, r in enumerate(rows[1:], start=2) if len(r) != len(header))
        raise UsageError(f"{path}: line {bad} has a different number of fields than the header")
    y = None
    if target is not None:
        if target not in header:
            raise UsageError(f"{path}: no column named {target!r}; the columns are {', '.join(header)}")
        t = header.index(target)
        y = np.array([r[t].strip() for r in rows[1:]])
        rows = [r[:t] + r[t + 1:] for r in rows]
        header = header[:t] + header[t + 1:]
    try:
        X = np.array([[float(v) for v in r] for r in rows[1:]], dtype=np.float64).reshape(len(rows) - 1, -1)
    except ValueError:
        line, col, value = next((i, j, v) for i, r in enumerate(rows[1:], start=2) for j, v in enumerate(r)
                                if not _is_number(v))
        what = "is empty (a missing value)" if not value.strip() else f"holds {value.strip()!r}, not a number"
        raise UsageError(f"{path}: line {line}, column {header[col]!r} {what}; every feature must be a number: "
                         f"fill in missing values, or drop or encode that column") from None
    if y is not None:
        try:
            y = y.astype(np.float64)
        except ValueError:
            pass   # class names
    return X, y, header, target


def _read_csv_fast(path, target):
    """read_table's CSV case through NumPy's C parser (a hundred MB in seconds, where Python's
    csv module and float() take many times longer and memory), or None when the file needs the
    careful reader: a bad cell, a ragged line, no such column (which then says where and why)."""
    try:
        with open(path, newline="") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
        if len(header) < 1 or (target is not None and target not in header):
            return None
        t = header.index(target) if target is not None else None
        cols = [j for j in range(len(header)) if j != t]
        read = dict(delimiter=",", skiprows=1, quotechar='"', encoding="utf-8")
        with warnings.catch_warnings():   # blank lines are skipped, as the careful reader skips them
            warnings.filterwarnings("ignore", "Input line", UserWarning)
            X = np.loadtxt(path, usecols=cols, dtype=np.float64, ndmin=2, **read) if cols else None
            y = None if t is None else np.char.strip(np.loadtxt(path, usecols=[t], dtype=str, ndmin=1, **read))
    except (ValueError, OSError, UnicodeDecodeError, StopIteration):
        return None
    n = len(y) if y is not None else len(X)
    if n == 0:
        return None   # the careful reader says what a data file needs
    if X is None:
        X = np.empty((n, 0))
    if y is not None:
        try:
            y = y.astype(np.float64)
        except ValueError:
            pass   # class names
    return X, y, [h for j, h in enumerate(header) if j != t], target


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def infer_task(y, task):
    if task != "auto":
        return task
    if y.dtype.kind not in "biuf":
        return "classification"
    values = np.unique(y)
    if np.all(values == np.round(values)) and len(values) <= max(2, min(50, len(y) // 5)):
        return "classification"
    return "regression"


# ---- commands ----

def _network(args, n_in, n_out, task):
    from .network import Network
    try:
        layers = [int(v) for v in args.layers.split(",") if v.strip()] if args.layers else []
    except ValueError:
        layers = [0]
    if any(v < 1 for v in layers):
        raise UsageError(f"--layers must be positive integers separated by commas (e.g. 64,32), got {args.layers!r}")
    if task == "classification":
        output = "softmax" if n_out > 2 else "sigmoid"
    else:
        output = "linear"
    return Network([n_in, *layers, n_out if output != "sigmoid" else 1], hidden=args.hidden,
                   output=output, dtype=args.dtype, seed=args.seed, backend=args.backend)


def _interrupted(net, args, rank):
    """Ctrl-C during `train`: the network holds the weights of its last finished epoch (fit
    rolls an unfinished one back); save those where --save said, and stop with status 130."""
    done = len(net.history.history.get("loss", [])) if getattr(net, "history", None) is not None else 0
    if rank != 0:
        return 130
    if done and args.save:
        net.save(args.save)
        what = f"saved {args.save} as of that epoch"
    elif done:
        what = "nothing saved (--save MODEL.npz keeps the epochs finished before an interruption)"
    else:
        what = "nothing to save"
    print(f"fastbp train: interrupted after {done} finished epoch{'s' if done != 1 else ''}; {what}",
          file=sys.stderr)
    return 130


def _world(args):
    """(comm, rank, size) for --distributed, else (None, 0, 1)."""
    if not args.distributed:
        return None, 0, 1
    try:
        from mpi4py import MPI
    except ImportError:
        raise UsageError("--distributed needs mpi4py and numba-mpi: pip install 'fastbp[mpi]'") from None
    return MPI.COMM_WORLD, MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()


def _check_output(path, option):
    """A file the command will write must have a folder to go to: said before any work, not after
    the training it would hold is lost."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: the folder {folder} does not exist; create it first or choose another path")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path} is a folder; give a file name, e.g. {os.path.join(path, 'model.npz')}")


def cmd_train(args):
    _check_output(args.save, "--save")
    _check_output(args.plot, "--plot")
    if args.target is None and not args.data.endswith((".npz", *SVMLIGHT)):
        raise UsageError("train needs a target: --target COLUMN (CSV) or an array y in the .npz")
    comm, rank, size = _world(args)
    X, y, features, target = read_table(args.data, args.target, (rank, size) if comm else None)
    say = print if rank == 0 else (lambda *a, **k: None)
    if y is None:
        raise UsageError("train needs a target: --target COLUMN (CSV) or an array y in the .npz")
    task = infer_task(y, args.task)
    meta = {"task": task, "features": features, "target": target}
    if comm is not None:   # the classes (or regression) must be decided from every rank's rows
        task = "classification" if "classification" in comm.allgather(task) else "regression"
    if task == "classification":
        classes = np.unique(np.concatenate(comm.allgather(np.unique(y)))) if comm else np.unique(y)
        codes = np.searchsorted(classes, y)
        if len(classes) < 2:
            raise UsageError(f"the target {target!r} has one class only ({classes[0]}); nothing to learn")
        meta["classes"] = classes.tolist()
        y_fit, n_out = codes, len(classes)
    else:
        if y.dtype.kind not in "biuf":
            raise UsageError(f"--task regression needs a numeric target; {target!r} holds text")
        y_fit, n_out = y.astype(np.float64), 1
        if args.scale:   # a target of any size trains at the rates a standardised one does
            n, total, squares = (comm.allreduce(v) for v in (y_fit.size, y_fit.sum(), (y_fit ** 2).sum())) \
                if comm is not None else (y_fit.size, y_fit.sum(), (y_fit ** 2).sum())
            mean = total / n
            std = float(np.sqrt(max(squares / n - mean ** 2, 0.0))) or 1.0
            meta["target_scale"] = {"mean": float(mean), "std": std}
            y_fit = (y_fit - mean) / std
    net = _network(args, X.shape[1], n_out, task)
    net.metadata = meta
    if args.val_split:   # the held-out rows are the last ones: shuffle first (files are often sorted)
        order = np.random.default_rng(args.seed).permutation(X.shape[0])
        X, y_fit = X[order], y_fit[order]
    sparse = not isinstance(X, np.ndarray)
    if args.scale and sparse:
        say("sparse features are used as they are (standardising would make them dense)")
    elif args.scale:   # standardise inputs; the statistics travel with the model
        if comm is not None:
            sums = comm.allreduce(np.r_[X.shape[0], X.sum(axis=0), (X * X).sum(axis=0)].astype(np.float64))
            d = X.shape[1]
            mean = sums[1:1 + d] / sums[0]
            std = np.sqrt(np.maximum(sums[1 + d:] / sums[0] - mean ** 2, 0))
        else:
            mean, std = X.mean(axis=0), X.std(axis=0)
        std[std == 0] = 1
        meta["scale"] = {"mean": mean.tolist(), "std": std.tolist()}
        X = (X - mean) / std
    rows_note = f" on each of {size} ranks (rank 0: {X.shape[0]})" if comm else ""
    say(f"{args.data}: {X.shape[0] if not comm else comm.allreduce(X.shape[0])} rows{rows_note}, "
        f"{X.shape[1]} features, target {target!r} "
        f"({task}{', %d classes' % n_out if task == 'classification' else ''})")
    say(f"network {net.sizes}, hidden {args.hidden}, {net.spec.output} output, loss {net.spec.loss}, "
        f"{args.optimizer}, {args.dtype}, backend {args.backend}")
    t0 = time.perf_counter()
    try:
        hist = net.fit(X, y_fit, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       optimizer=args.optimizer, validation_split=args.val_split,
                       verbose=0 if args.quiet else 1, comm=comm)
    except KeyboardInterrupt:
        return _interrupted(net, args, rank)
    seconds = time.perf_counter() - t0
    h = hist.history
    line = f"trained {len(h['loss'])} epochs in {seconds:.2f} s: loss {h['loss'][-1]:.4f}"
    if "target_scale" in meta:
        line += " (on the standardised target)"
    if "val_loss" in h:
        kind = "accuracy" if task == "classification" else "R^2"
        line += f", validation loss {h['val_loss'][-1]:.4f}, validation {kind} {h['val_score'][-1]:.4f}"
    say(line)
    if args.save:
        net.save(args.save)   # rank 0 only, after a distributed fit
        say(f"saved {args.save}")
    else:
        say("the model was not saved: --save MODEL.npz keeps it")
    if args.plot and rank == 0:
        from .plots import plot_history
        plot_history(hist.history, args.plot, title=f"{os.path.basename(args.data)}: {net.sizes}")
        print(f"plotted {args.plot}")
    return 0


def _load_model(path):
    from .network import load
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such model file")
    try:
        return load(path)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def _model_inputs(net, args, need_target):
    meta = net.metadata
    target = meta.get("target") if need_target or args.target is None else args.target
    target = args.target or target
    sparse = args.data.endswith(SVMLIGHT) or args.data.endswith(".npz") and _sparse_npz(args.data)
    if sparse:   # the targets come from the file (svmlight) or a file beside it, not a column
        target = args.target
    X, y, features, _ = read_table(args.data, target if (sparse or need_target
                                                         or (target and _has_column(args.data, target)))
                                   else None, n_features=net.sizes[0])
    if X.shape[1] != net.sizes[0]:
        raise UsageError(f"{args.data} has {X.shape[1]} feature columns but the model expects {net.sizes[0]}"
                         + (f" ({', '.join(meta['features'])})" if meta.get("features") else ""))
    if "scale" in meta:
        X = (X - np.array(meta["scale"]["mean"])) / np.array(meta["scale"]["std"])
    return X, y


def _has_column(path, name):
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            return name in z.files
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    return name in [h.strip() for h in header]


def _outputs(net, X):
    """The network's outputs for X in the target's own units (a regression target standardised
    for training is scaled back)."""
    P = net.predict(X).astype(np.float64)
    scale = net.metadata.get("target_scale")
    return P * scale["std"] + scale["mean"] if scale else P


def _decode(net, P):
    meta = net.metadata
    if meta.get("task") == "classification" and "classes" in meta:
        classes = np.array(meta["classes"])
        idx = P.argmax(axis=1) if P.shape[1] > 1 else (P[:, 0] > 0.5).astype(int)
        return classes[idx]
    return P[:, 0] if P.shape[1] == 1 else P


def cmd_predict(args):
    _check_output(args.out, "--out")
    net = _load_model(args.model)
    X, _ = _model_inputs(net, args, need_target=False)
    P = _outputs(net, X)
    classes = net.metadata.get("classes")
    if args.proba:
        if classes is None:
            raise UsageError("--proba needs a classification model")
        if P.shape[1] == 1:
            P = np.hstack([1 - P, P])
        header, rows = [f"p_{c}" for c in classes], [[f"{v:.6g}" for v in r] for r in P]
    else:
        pred = _decode(net, P)
        header = [net.metadata.get("target") or "prediction"]
        rows = [[str(v) if classes is not None else f"{v:.6g}"] for v in pred]
    out = open(args.out, "w", newline="") if args.out else sys.stdout
    try:
        w = csv.writer(out)
        w.writerow(header)
        w.writerows(rows)
    finally:
        if args.out:
            out.close()
            print(f"wrote {len(rows)} predictions to {args.out}")
    return 0


def cmd_evaluate(args):
    net = _load_model(args.model)
    X, y = _model_inputs(net, args, need_target=True)
    if y is None:
        raise UsageError("evaluate needs the target column in the data")
    meta = net.metadata
    if meta.get("task") == "classification":
        classes = np.array(meta["classes"])
        pred = _decode(net, net.predict(X))
        truth = y if y.dtype == classes.dtype else y.astype(classes.dtype)
        unknown = np.setdiff1d(np.unique(truth), classes)
        if unknown.size:
            raise UsageError(f"the data has classes the model never saw: {unknown[:5].tolist()}")
        codes = np.searchsorted(classes, truth)
        report = net.evaluate(X, codes)
        print(f"accuracy {report['accuracy']:.4f} on {len(y)} rows; loss {report['loss']:.4f}")
        print(f"precision {report['precision']:.4f}, recall {report['recall']:.4f}, F1 {report['f1']:.4f} "
              f"(macro averages over {len(classes)} classes)")
        names = [str(c) for c in classes]
        width = max(len(n) for n in names + [str(report["confusion_matrix"].max())])
        print("confusion matrix (rows: true class, columns: predicted)")
        print(" " * width + "".join(f" {n:>{width}s}" for n in names))
        for name, row in zip(names, report["confusion_matrix"]):
            print(f"{name:>{width}s}" + "".join(f" {v:>{width}d}" for v in row))
    else:
        yf = y.astype(np.float64)[:, None]
        pred = _outputs(net, X)[:, :1]
        r2 = metrics.r2(yf, pred) if np.ptp(yf) > 0 else float("nan")
        print(f"R^2 {r2:.4f}, MAE {metrics.mae(yf, pred):.4g}, RMSE {metrics.rmse(yf, pred):.4g} on {len(y)} rows")
    return 0


def cmd_info(args):
    import platform

    import numba

    from . import __version__, prebuild
    print(f"fastbp {__version__}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}")
    from .kernels.cpu import threads   # chooses the thread count as a fit would
    usable, why = threads.USABLE
    chosen = "set by NUMBA_NUM_THREADS" if "NUMBA_NUM_THREADS" in os.environ else f"{usable} usable CPUs: {why}"
    print(f"threads: {numba.get_num_threads()} ({chosen}; NUMBA_NUM_THREADS or fastbp.set_num_threads "
          f"to change)")
    from . import config
    from .kernels.cpu import pace
    print(f"small batches: one thread below {config.PARALLEL_MIN_FLOP:,} flop a batch (FASTBP_PARALLEL_MIN_FLOP)")
    print(f"pacing: {pace.describe()}")
    print(f"threading layer: {_threading_layer()}")
    print(f"kernel cache: {prebuild.cache_summary()}")
    from .kernels import blas_library
    print(f"BLAS for the largest layers: {blas_library.DESCRIPTION}")
    print(f"cuda: {_cuda_status()}")
    for mod in ("sklearn", "matplotlib", "tqdm"):
        try:
            m = __import__(mod)
            print(f"{mod}: {m.__version__}")
        except ImportError:
            print(f"{mod}: not installed")
    return 0


def cmd_compile(args):
    from . import prebuild
    dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()]
    for d in dtypes:
        if d not in ("float32", "float64"):
            raise UsageError(f"--dtype takes float32, float64 or both separated by a comma, got {d!r}")
    networks = [_load_model(path) for path in args.model] or None   # (their saved backend aside: cpu kernels)
    if args.all and networks:
        raise UsageError("--all builds the general drivers, which serve every model: give it or --model, not both")
    try:
        prebuild.require_cache()
    except RuntimeError as e:
        raise UsageError(str(e)) from None
    from .kernels.compile import CACHE_DIR
    print(f"building into {CACHE_DIR}", flush=True)
    if args.all and args.sparse:
        raise UsageError("--all builds the general drivers, which serve sparse X too: give it or --sparse, not both")
    if args.sparse:
        try:
            import scipy.sparse  # noqa: F401
        except ImportError:
            raise UsageError("--sparse needs scipy: pip install scipy") from None
    if args.mpi:
        try:
            from .distributed import require_mpi
            require_mpi()
        except ImportError as exc:
            raise UsageError(f"--mpi: {exc}") from None
    for what, seconds in prebuild.compile(networks, dtypes, general=args.all, batch_size=args.batch_size,
                                          sparse=args.sparse, mpi=args.mpi):
        print(f"  {what}: {seconds:.1f} s", flush=True)
    print(f"kernel cache: {prebuild.cache_summary()}")
    return 0


def _threading_layer():
    import numba

    from .kernels.cpu.driver import copy_rows
    a = np.zeros((2, 2))
    copy_rows(a, a, 0, 2)   # Numba picks its layer when a parallel kernel first runs
    return numba.threading_layer()


def _cuda_status():
    try:
        from .kernels.cuda.backend import gpu_status
    except ImportError:
        return "numba-cuda not installed (pip install 'fastbp[cuda]')"
    why = gpu_status()   # the same check backend='cuda' and 'auto' make
    if why is not None:
        return why
    from numba import cuda
    name = cuda.get_current_device().name
    return f"available: {name.decode() if isinstance(name, bytes) else name}"


def _timed_fit(make, X, y, repeats, **fit):
    """Minimum wall time of `repeats` fits of fresh networks from `make`, and the last network."""
    best = float("inf")
    for _ in range(repeats):
        net = make()
        t0 = time.perf_counter()
        hist = net.fit(X, y, **fit)
        best = min(best, time.perf_counter() - t0)
    return best, net, hist


def cmd_demo(args):
    from .kernels import tier
    with tier.fastest_only():   # timed against the numpy backend: the fastest builds, never a quick one
        return _demo(args)


def _demo(args):
    from . import datasets
    from .network import Network

    X, y = datasets.seed_example()
    fit = dict(epochs=1000, batch_size=4, lr=0.1)
    print("1. The article's network: 2 inputs -> 4 sigmoid -> 1 sigmoid, binary cross-entropy,")
    print("   plain SGD, lr 0.1, batch 4, 1000 epochs, on the article's 4 points.\n")
    t0 = time.perf_counter()
    Network([2, 4, 1], hidden="sigmoid", output="sigmoid", seed=0).fit(X, y, epochs=1, batch_size=4)
    print(f"   kernels ready in {time.perf_counter() - t0:.2f} s (compiled once, then cached on disk)\n")

    def seed_net(backend):
        return lambda: Network([2, 4, 1], hidden="sigmoid", output="sigmoid", seed=0, backend=backend)
    cpu_s, net, hist = _timed_fit(seed_net("cpu"), X, y, args.repeats, **fit)
    losses = hist.history["loss"]
    for e in (0, 9, 99, 499, 999):
        print(f"   epoch {e + 1:4d}  loss {losses[e]:.4f}")
    acc = net.score(X, y)
    print(f"   training accuracy {acc:.0%}; predictions", " ".join(f"{p:.3f}" for p in net.predict(X).ravel()),
          " labels", *y.tolist())
    np_s, _, _ = _timed_fit(seed_net("numpy"), X, y, args.repeats, **fit)
    print(f"   whole fit, minimum of {args.repeats}: cpu {cpu_s * 1e3:.2f} ms, numpy reference "
          f"{np_s * 1e3:.2f} ms -> {np_s / cpu_s:.1f}x\n")

    X, y = datasets.load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    test, train = order[:360], order[360:]
    print("2. The UCI handwritten digits (bundled): 64 pixels -> 128 relu -> 10 softmax,")
    print(f"   SGD lr 0.1, batch 32, 20 epochs, {len(train)} training and {len(test)} test images.\n")
    fit = dict(epochs=20, batch_size=32, lr=0.1)

    def digits_net(backend):
        return lambda: Network([64, 128, 10], hidden="relu", output="softmax", seed=0, backend=backend)
    cpu_s, net, _ = _timed_fit(digits_net("cpu"), X[train], y[train], args.repeats, **fit)
    np_s, ref, _ = _timed_fit(digits_net("numpy"), X[train], y[train], args.repeats, **fit)
    print(f"   test accuracy: cpu {net.score(X[test], y[test]):.1%}, numpy reference "
          f"{ref.score(X[test], y[test]):.1%}")
    print(f"   whole fit, minimum of {args.repeats}: cpu {cpu_s * 1e3:.1f} ms, numpy reference "
          f"{np_s * 1e3:.1f} ms -> {np_s / cpu_s:.1f}x")
    return 0


# ---- parsing ----

class _Parser(argparse.ArgumentParser):
    def error(self, message):   # one line and status 2, like every other user mistake
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(prog="fastbp", description="Fast backpropagation for fully-connected networks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("demo", help="the article's example and the bundled digits, timed against the numpy backend")
    p.add_argument("--repeats", type=int, default=3, help="timed fits per backend (default 3)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a network on a CSV or NPZ file and save it",
                       description="Train on DATA (CSV with a header row, or NPZ with arrays X and y). "
                                   "Classification or regression is inferred from the target (text or "
                                   "few integer values: classification), or set with --task.")
    p.add_argument("data")
    p.add_argument("--target", help="the target column (CSV) or array name (NPZ, default y)")
    p.add_argument("--task", choices=["auto", "classification", "regression"], default="auto")
    p.add_argument("--layers", default="64", help="hidden layer widths, comma-separated (default 64; '' for none)")
    p.add_argument("--hidden", default="relu", help="hidden activation (default relu)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's)")
    p.add_argument("--optimizer", default="adam", help="sgd, momentum, nesterov, adam, adamw (default adam)")
    p.add_argument("--val-split", type=float, default=0.0, help="fraction of rows held out for validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--backend", default="cpu", choices=["cpu", "numpy", "cuda", "auto"],
                   help="cpu (default), numpy (the reference), cuda (an NVIDIA GPU), auto (cuda if there is one)")
    p.add_argument("--no-scale", dest="scale", action="store_false",
                   help="do not standardise the features and a regression target (default: standardise, stored with the model)")
    p.add_argument("--save", metavar="MODEL.npz", help="where to save the trained model")
    p.add_argument("--plot", metavar="PNG", help="draw the loss and score curves (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: run as `mpiexec -n N fastbp train ... --distributed`; each "
                        "rank reads its own slice of DATA, --batch-size is per rank, rank 0 prints and saves")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="predictions of a saved model for a CSV or NPZ file")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--target", help="a column to ignore (default: the training target, if present)")
    p.add_argument("--out", metavar="CSV", help="write here instead of standard output")
    p.add_argument("--proba", action="store_true", help="class probabilities instead of labels")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="accuracy (or R^2) and loss of a saved model on labelled data")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--target", help="the target column (default: the one the model was trained on)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compile", help="build the kernel cache ahead of time (Docker images, CI caches, clusters)",
                       description="Compile the kernels ahead of time into the on-disk cache. By default those of "
                       "the demo's two networks; --model those of saved models; --all the general build, which "
                       "every later fit of any network loads instead of compiling.")
    p.add_argument("--dtype", default="float32", help="float32, float64 or float32,float64 (default float32)")
    p.add_argument("--all", action="store_true", help="the general build: every activation, loss, optimizer and "
                   "feature (minutes), for every network")
    p.add_argument("--model", action="append", default=[], metavar="MODEL.npz",
                   help="a saved model whose kernels to build (repeatable)")
    p.add_argument("--batch-size", type=int, default=32, help="the batch size the models will train with (default 32)")
    p.add_argument("--sparse", action="store_true", help="the models will read sparse (scipy CSR) data")
    p.add_argument("--mpi", action="store_true", help="also the driver of distributed fits (fit(comm=...), "
                   "train --distributed), which serves any MPI job; needs fastbp[mpi]")
    p.set_defaults(func=cmd_compile)

    sub.add_parser("bench", help="time every kernel on each backend against the GEMM limit "
                   "(options: fastbp bench --help)")
    p = sub.add_parser("info", help="versions, threads, threading layer, OpenBLAS, CUDA, kernel cache")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from .bench import main as bench_main
        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:   # `fastbp predict ... | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, TypeError, FloatingPointError, ImportError) as exc:
        # a user mistake (or fastbp's own argument checks): one line, status 2
        print(f"fastbp {args.command}: error: {exc}", file=sys.stderr)
        if getattr(args, "distributed", False):   # the other ranks must not wait forever
            from mpi4py import MPI
            MPI.COMM_WORLD.Abort(2)
        return 2


if __name__ == "__main__":
    sys.exit(main())
