"""Saving and loading models: one .npz of plain arrays plus a JSON config. Never pickle.

The file holds everything needed to predict exactly as before and to resume training exactly as
an uninterrupted run would: weights, batch-norm statistics, the optimizer's configuration and
state, the shuffle generator's state, the dropout step counter and the epoch count.
A save writes a temporary file beside the target and renames it over the target, so a failure
part-way leaves any earlier file intact.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from ._version import __version__
from .optim import optimizer_from_config

FORMAT = "fastbp-model"
FORMAT_VERSION = 1


def save(net, path):
    path = os.fspath(path)
    opt = net.optimizer
    config = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "fastbp_version": __version__,
        "spec": net.spec.config(), "dtype": net.dtype.name, "backend": net.backend, "seed": net.seed,
        "drop_key": str(net._drop_key), "rng_state": net._rng.bit_generator.state,
        "epochs_done": net.epochs_done, "optimizer": opt.get_config() if opt is not None else None,
        "metadata": net.metadata,
    }
    try:
        config_json = json.dumps(config)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"net.metadata must hold only JSON values (str, numbers, lists, dicts): {exc}") from None
    arrays = {"params": net._params, "state": net._state, "counter": net._counter,
              "config": np.array(config_json)}
    if opt is not None and opt.m is not None:
        arrays["opt_m"], arrays["opt_v"] = opt.m, opt.v
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fail(path, why):
    raise ValueError(f"{path!r} is not a valid fastbp model file: {why}")


def load(path, backend=None):
    """A Network from a file written by Network.save; backend overrides the saved one."""
    from .network import Network
    path = os.fspath(path)
    if os.path.exists(path) and not zipfile.is_zipfile(path):
        _fail(path, "it is not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        _fail(path, f"cannot read it as an .npz archive ({exc})")
    if "config" not in arrays or arrays["config"].dtype.kind != "U" or arrays["config"].ndim != 0:
        _fail(path, "it has no fastbp config")
    try:
        cfg = json.loads(str(arrays["config"]))
    except json.JSONDecodeError as exc:
        _fail(path, f"its config is not JSON ({exc})")
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        _fail(path, "its config does not say it is a fastbp model")
    if cfg.get("format_version") != FORMAT_VERSION:
        _fail(path, f"format version {cfg.get('format_version')!r}; this fastbp reads version "
                    f"{FORMAT_VERSION}")
    try:
        net = Network(dtype=cfg["dtype"], seed=cfg["seed"], backend=backend or cfg["backend"],
                      **cfg["spec"])
        expected = {"params": (net.n_params,), "state": (net.spec.n_state,), "counter": (1,)}
        for name, shape in expected.items():
            arr = arrays.get(name)
            want = np.int64 if name == "counter" else net.dtype
            if arr is None or arr.shape != shape or arr.dtype != want:
                _fail(path, f"array {name!r} should be {np.dtype(want)} of shape {shape}, found "
                            f"{None if arr is None else (arr.dtype, arr.shape)}")
            if not np.all(np.isfinite(arr)):
                _fail(path, f"array {name!r} holds NaN or infinite values")
        net._params[...] = arrays["params"]
        net._state[...] = arrays["state"]
        net._counter[...] = arrays["counter"]
        net._drop_key = int(cfg["drop_key"])
        net._backend = type(net._backend)(net.spec, net.dtype, net._drop_key)
        net._rng.bit_generator.state = cfg["rng_state"]
        net.epochs_done = int(cfg["epochs_done"])
        metadata = cfg.get("metadata", {})
        if not isinstance(metadata, dict):
            _fail(path, "its metadata is not a JSON object")
        net.metadata = metadata
        if cfg["optimizer"] is not None:
            m, v = arrays.get("opt_m"), arrays.get("opt_v")
            if m is None or v is None or m.dtype != net.dtype or v.dtype != net.dtype:
                _fail(path, "the optimizer's state arrays are missing or of the wrong dtype")
            net.optimizer = optimizer_from_config(cfg["optimizer"], m.copy(), v.copy())
            net.optimizer.bind(net.n_params, net.dtype)
    except (KeyError, TypeError) as exc:
        _fail(path, f"its config is incomplete or malformed ({type(exc).__name__}: {exc})")
    return net
