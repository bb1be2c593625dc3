"""Tiered builds: a short call whose fastest build is not compiled yet runs a quick build of the
same driver, while a background process compiles the fastest build into the disk cache.

The fastest build of a driver (its variant for the network, kernels/cpu/needs.py) holds the tiled
products, the transposes and the threaded kernels; compiling them is most of a first fit's wait,
and a first fit of a small network runs for a fraction of a second once they are built. The
quick build (needs(..., quick=True)) runs every dense layer in the naive loops on one thread,
which compile in a fraction of that time and are slower by a factor a short call does not feel.
kernels/cpu/backend.py decides which build a call takes; this module keeps the record of which
fastest builds the cache holds, and starts the background builds.

A *marker* names one fastest build: the driver's variant and the Numba types of the arguments
it is called with, which a compile of it is for. Its file under CACHE_DIR/tiers says the disk
cache holds that build: a background build writes it once the compile is saved, and so does a
process that ran the fastest build itself. The cache directory's name hashes every source the
kernels depend on, so an edit starts with no markers, as it starts with no kernels.

Background builds are the work of one builder process per cache (so that it outlives a short
script, and the next run finds the fastest build), at the lowest scheduling priority, in a
process group of its own (a Ctrl-C in the terminal stops the user's program, not the build). A
call asks for a build by leaving a request (`<marker>.request`: the driver and the argument
types) in the tiers folder, and starts the builder unless one runs (its claim, `builder.claim`,
holds its process id; a claim whose process is gone is taken over). The builder compiles the
requests oldest first, with no compile helper and no notice, writes each one's marker, and ends
when none is left: one process compiling at a time however many drivers and dtypes a program's
first calls ask for, which would otherwise each start a process and share the CPUs among them.

Not used (every call takes the fastest build, as before tiers): with FASTBP_TIERED=0, with the
disk cache off (a background build would save nothing), without specialized variants (the
general build serves every network), inside an MPI job, in a frozen application, and where the
cache's saves cannot be locked (no flock: Windows; kernels/cache_lock.py), as two processes
saving into one cache at once need.
"""
import contextlib
import hashlib
import os
import sys

from .. import config
from . import cache_lock

_started = []   # the builders this process started (subprocess.Popen), reaped by wait()


@contextlib.contextmanager
def fastest_only():
    """Every call inside takes the fastest build, never a quick one (what `fastbp compile` builds,
    what the demo times); config.TIERED as it was afterwards."""
    tiered, config.TIERED = config.TIERED, False
    try:
        yield
    finally:
        config.TIERED = tiered


def recorded():
    """Whether the fastest builds a process runs are recorded (markers): wherever a variant is
    cached, also where this process takes no quick builds (FASTBP_TIERED=0), so that the next
    process with tiers knows it need not."""
    return config.CACHE and config.SPECIALIZE


def usable():
    """Whether calls may take a quick build (the module's docstring ends with when not)."""
    # (a background build saves beside this process: only where saves are locked)
    return (config.TIERED and recorded() and bool(sys.executable) and not getattr(sys, "frozen", False)
            and "mpi4py" not in sys.modules and cache_lock.fcntl is not None)


class Marker:
    """The record of one fastest build: `dispatcher` (a driver variant) compiled for the types
    of `args`."""

    def __init__(self, dispatcher, args):
        from . import compile as kernels
        self.function = kernels.registered_as(dispatcher)   # (module, qualname, variant key)
        self.args = tuple(dispatcher.typeof_pyval(a) for a in args)
        name = hashlib.sha1(repr((self.function, self.args)).encode()).hexdigest()
        self.path = os.path.join(kernels.CACHE_DIR, "tiers", name)

    def built(self):
        """Whether the disk cache holds this build."""
        return os.path.exists(self.path)

    def mark(self):
        """Record that the disk cache holds this build (never fails a call: without the record,
        a later short call runs the quick build and a background build loads this one)."""
        self.write(self.path, self.function, self.args)

    @staticmethod
    def write(path, function, args):
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(f"{function} compiled for {args}\n")
        except OSError:
            pass

    def build_in_background(self):
        """Ask for a background build of this one: queued for the builder that runs on this
        cache, or for one started now; returns whether this call started a builder."""
        if self.function is None:
            return False
        import pickle
        from . import compile as kernels
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
            request = self.path + ".request"
            with open(request + ".new", "wb") as f:   # (a builder never reads one half written)
                pickle.dump(dict(cache_dir=kernels.CACHE_DIR, function=self.function, args=self.args,
                                 marker=self.path), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(request + ".new", request)
        except (OSError, pickle.PicklingError, TypeError, AttributeError, ValueError):
            return False   # short calls go on with the quick build
        # after the request is there: a builder that gives up its claim looks for requests once
        # more, so between the two of us, one sees the other's
        return _claim(os.path.join(folder, BUILDER)) and _start_builder(folder)


# the claim of the one background builder of a cache (its process id inside)
BUILDER = "builder.claim"


def _start_builder(folder):
    from . import compile as kernels
    claim = os.path.join(folder, BUILDER)
    # a process group of its own, in this session: a Ctrl-C stops this program, not the build; a
    # session of its own would put it in a scheduling group of its own too (Linux's autogroups),
    # where its low priority would count only against itself and it would take a CPU's share
    group = dict(process_group=0) if sys.version_info >= (3, 11) else dict(preexec_fn=os.setpgrp)
    try:
        build = kernels.start_server("tier", folder, lowest_priority=True, **group)
        with open(claim, "w") as f:   # the claim is the builder's from now on
            f.write(str(build.pid))
    except OSError:
        _release(claim)
        return False
    _started.append(build)
    return True


def _claim(path):
    # hold `path` with this process's id in it; False where a live process holds it
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _holder_alive(path):
                return False
            _release(path)   # its process is gone: take it over
            continue
        except OSError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def _holder_alive(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # (alive, another user's)
        return True
    return True


def _release(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def running(parent=None):
    """The claims of the background builders that run, started by any process: on this
    process's cache (CACHE_DIR), or on every cache under `parent` (a FASTBP_CACHE_DIR)."""
    import glob
    from . import compile as kernels
    folders = [os.path.join(kernels.CACHE_DIR, "tiers")] if parent is None else \
        glob.glob(os.path.join(glob.escape(str(parent)), "kernels-*", "tiers"))
    claims = [os.path.join(folder, BUILDER) for folder in folders]
    return [c for c in claims if os.path.exists(c) and _holder_alive(c)]


def wait(timeout=None):
    """Wait for the builders this process started; returns whether all ended."""
    import subprocess
    for p in list(_started):
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        _started.remove(p)
    return True


def serve(folder):
    """The background builder of the cache whose tiers folder this is: compile each requested
    driver into the disk cache, oldest first, and write its marker; then give up the claim, and
    go on if a request came meanwhile and the claim is still free."""
    claim = os.path.join(folder, BUILDER)
    while True:
        while _build_next(folder):
            pass
        _release(claim)
        if not _pending(folder) or not _claim(claim):
            return


def _pending(folder):
    try:
        names = [os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".request")]
    except OSError:
        return []
    return sorted(names, key=lambda n: os.stat(n).st_mtime if os.path.exists(n) else 0)


def _build_next(folder):
    # the oldest request, built; False when there is none
    import pickle
    from . import compile as kernels
    for request_file in _pending(folder):
        try:
            with open(request_file, "rb") as f:
                request = pickle.load(f)
        except OSError:
            continue
        except Exception:   # (unreadable, say by another fastbp's pickle: dropped, not tried by every builder)
            _release(request_file)
            continue
        _release(request_file)
        if request.get("cache_dir") != kernels.CACHE_DIR:
            continue   # another fastbp, or other settings: what it compiled would not be the same
        if not os.path.exists(request["marker"]):
            try:
                kernels.built(*request["function"]).compile(request["args"])
            except Exception:   # (a short call of it goes on with the quick build; a long one compiles it and meets this)
                continue
            Marker.write(request["marker"], request["function"], request["args"])
        return True
    return False
