"""Model files: one .npz of plain arrays plus a JSON config. Never pickle.

This module reads and writes (config, arrays) and nothing else: what goes into them, and how a
network is rebuilt from them, is Network.save / Network.load's business. A write goes to a
temporary file beside the target, flushed to disk and renamed over the target, so a failure
part-way leaves any earlier file intact. A read checks that the file is an .npz archive with a
JSON config of this format and version, and refuses anything else with a ValueError.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from ._version import __version__

FORMAT = "fastbp-model"
FORMAT_VERSION = 1


def invalid(path, why):
    """The ValueError for a file that is not a model this fastbp reads."""
    return ValueError(f"{path!r} is not a valid fastbp model file: {why}")


def _umask():
    try:   # Linux says it without changing it
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)   # elsewhere: set and put back (another thread creating a file meanwhile
    os.umask(mask)           # would get 022, the common default)
    return mask


def _mode_for(path):
    """The permissions the saved file gets: those of the file it replaces, else what the umask
    gives a new file (0644 under the usual 022), as open() would."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def write(path, config, arrays):
    """Write `arrays` (name -> ndarray) and the JSON-able dict `config` to `path`, atomically.
    The format, its version and the fastbp version are added to the config."""
    path = os.fspath(path)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "fastbp_version": __version__, **config}
    try:
        config_json = json.dumps(config)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"net.metadata must hold only JSON values (str, numbers, lists, dicts): {exc}") from None
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, config=np.array(config_json), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(path))   # mkstemp's 0600 is for the temporary file only
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read(path):
    """(config, arrays) from a file that `write` wrote; ValueError (io.invalid) otherwise."""
    path = os.fspath(path)
    if os.path.exists(path) and not zipfile.is_zipfile(path):
        raise invalid(path, "it is not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise invalid(path, f"cannot read it as an .npz archive ({exc})") from None
    config = arrays.pop("config", None)
    if config is None or config.dtype.kind != "U" or config.ndim != 0:
        raise invalid(path, "it has no fastbp config")
    try:
        config = json.loads(str(config))
    except json.JSONDecodeError as exc:
        raise invalid(path, f"its config is not JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise invalid(path, "its config does not say it is a fastbp model")
    if config.get("format_version") != FORMAT_VERSION:
        raise invalid(path, f"format version {config.get('format_version')!r}; this fastbp reads version "
                            f"{FORMAT_VERSION}")
    return config, arrays
