"""A second process that compiles a driver's kernels from the end of the list while this process
compiles them from the start, so that a first fit into an empty cache uses two cores.

Numba compiles a driver by typing its body, and typing compiles each kernel the body calls when
it reaches the call: one chain on one core, under a compiler lock that also keeps threads from
sharing the work. When this process starts compiling a driver that reaches several kernels
(compile.kernels_reached) and the disk cache lacks it (Numba's compile event says so), it starts
a helper process, where a second CPU is there to run it. The helper builds the same variant
(compile.built) and types it with every call of a kernel whose code returns nothing answered as
returning None without compiling it (its calls type the same whatever it compiles to; kernels
that return a value are compiled there, their callers need the type). That lists the kernels
the driver calls with their argument types in the order this process will compile them; the
helper stops there, before lowering, and compiles the list last first into the shared disk
cache. This process goes on as before: each kernel the helper finished loads from the cache.

Claims keep the two from compiling a function twice. Whoever starts compiling a function for
given argument types (at any depth) holds a file named by them in a directory of this compile's
own, until the disk cache has it; the other waits for the file to go and then loads the
function from the cache. The helper skips, rather than waits for, a kernel of its list that this
process holds. Neither waits on a process that has exited, and no cycle of waits can form: a
process waits only for a function the other is compiling, which would have to call back into the
waiter's own chain, and fastbp's kernels do not recurse. When this process's compile of the
driver ends, the helper's work is all used (its list is the driver's callees) and it is stopped.

The helper compiles exactly what this process would: the same functions, variants and argument
types, with the same settings (it runs only for the same CACHE_DIR, whose name hashes every
source and setting the code depends on), and Numba caches what it compiles as it always does.
Two processes saving entries of one function into its index at once is made safe by
kernels/cache_lock.py. What the helper relies on in Numba (the compile and typing entry points
it wraps) can only make its work useless, never wrong: this process compiles whatever it does
not find in the cache, and the typed-only driver is never saved (its dispatcher caches nothing
while the helper lists).

Not started: with FASTBP_COMPILE_HELPER=0, the disk cache off, one usable CPU (cpus.usable: the
affinity mask and the control group's CPU quota, as for the thread pool), inside an MPI
job (each rank already has its core), in a frozen application (sys.executable is not Python),
where the cache's saves cannot be locked (no flock: Windows), and from the helper itself.
"""
import atexit
import functools
import hashlib
import os
import sys
import threading
import time

from numba.core import dispatcher as _dispatcher
from numba.core import event, sigutils, typed_passes, typing, types

from .. import config

_POLL = 0.005   # seconds between looks at a claim the other process holds

_local = threading.local()   # .depth: nesting of Dispatcher.compile calls on this thread
_session = None              # the two-process compile this process takes part in, if any
_applied = False
_lock = threading.Lock()
_numba_compile = _dispatcher.Dispatcher.compile
_numba_call_template = _dispatcher.Dispatcher.get_call_template
_numba_type_inference = typed_passes.NopythonTypeInference.run_pass


class _Typed(Exception):
    """Raised in the helper once the driver is typed: its list of kernels is complete."""


def _ours(disp):
    return disp.py_func.__module__.startswith("fastbp.")


def _depth():
    return getattr(_local, "depth", 0)


class _Session:
    """One driver's compile shared by two processes: the claims, and whether the other process
    still runs."""

    def __init__(self, directory, other_alive, helper=None):
        self.directory = directory
        self.other_alive = other_alive
        self.helper = helper   # (in the process that started it: the helper, a Popen)
        self.thread = threading.get_ident()

    def _path(self, disp, args):
        return os.path.join(self.directory, hashlib.sha1(_name(disp, args).encode()).hexdigest())

    def take(self, disp, args, wait=True):
        """Claim `disp` for `args` and return the claim's path. Where the other process holds
        it: None without `wait`; with it, wait until the other is done (the function is in the
        disk cache) or has exited, and return "" (nothing to release)."""
        path = self._path(disp, args)
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return path
        except FileExistsError:
            pass
        except OSError:   # (the directory is gone: the session ended)
            return ""
        if not wait:
            return None
        while os.path.exists(path) and self.other_alive():
            time.sleep(_POLL)
        return ""

    @staticmethod
    def release(path):
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass


def _compile(self, sig):
    """Numba's Dispatcher.compile, taking part in a two-process compile while one runs."""
    session = _session
    _local.depth = _depth() + 1
    try:
        if session is None or not _ours(self):
            return _numba_compile(self, sig)
        args = tuple(sigutils.normalize_signature(sig)[0])
        if args in self.overloads:
            return _numba_compile(self, sig)
        path = session.take(self, args)
        try:
            return _numba_compile(self, sig)   # (what the other process finished loads from the cache)
        finally:
            session.release(path)
    finally:
        _local.depth -= 1
        if _local.depth == 0 and _session is not None and _session.helper is not None \
                and _session.thread == threading.get_ident():
            _end()   # the driver compile that started the helper is done


class _Starter(event.Listener):
    """Numba's compile event, sent only when the disk cache lacks the function: a top-level
    compile of a fastbp function that reaches several kernels starts a helper."""

    def on_start(self, ev):
        disp = ev.data["dispatcher"]
        # (usable() asked again: mpi4py may have been imported, or the setting changed, since)
        if _session is None and _depth() == 1 and _ours(disp) and usable():
            from . import compile as kernels
            if len(kernels.kernels_reached(disp)) >= config.COMPILE_HELPER_MIN_KERNELS:
                _start(disp, ev.data["args"])

    def on_end(self, ev):
        pass


def _start(disp, args):
    # (these imports wait for a first compile: a start that loads every kernel pays none of them)
    global _session
    import pickle
    import shutil
    import tempfile
    from . import compile as kernels
    found = kernels.registered_as(disp)
    if found is None:
        return
    directory = tempfile.mkdtemp(prefix="fastbp-claims-")
    request = dict(cache_dir=kernels.CACHE_DIR, claims=directory, function=found, args=tuple(args))
    try:
        # the request in a file (a pipe would block this process until the helper has started)
        with open(os.path.join(directory, "request"), "wb") as f:
            pickle.dump(request, f, protocol=pickle.HIGHEST_PROTOCOL)
        helper = kernels.start_server("compile_helper", os.path.join(directory, "request"))
    except (OSError, pickle.PicklingError, TypeError, AttributeError, ValueError):
        shutil.rmtree(directory, ignore_errors=True)   # compiled in this process alone, as before
        return
    _session = _Session(directory, lambda: helper.poll() is None, helper)
    _log(f"started helper {helper.pid} for {_name(disp, args)}")


def _end():
    # every kernel of the helper's list was this driver's, now compiled or loaded here: what the
    # helper still does is load them too, or skip them. Numba writes each cache file under a
    # temporary name and renames it, so stopping it mid-write leaves no half-written entry
    global _session
    session, _session = _session, None
    if session.helper.poll() is None:
        session.helper.kill()
    session.helper.wait()
    import shutil
    shutil.rmtree(session.directory, ignore_errors=True)


def _at_exit():
    if _session is not None and _session.helper is not None:
        _end()


def usable():
    """Whether this process would start a helper for a driver compile (the module's docstring
    ends with when it would not)."""
    if not (config.COMPILE_HELPER and config.CACHE) or getattr(sys, "frozen", False) or not sys.executable:
        return False
    if "mpi4py" in sys.modules:
        return False
    from . import cache_lock
    if cache_lock.fcntl is None:   # (two processes' saves into one index could not be kept apart)
        return False
    from .. import cpus   # (its affinity mask and its control group's CPU quota, as the thread pool)
    return cpus.usable()[0] >= 2


def apply():
    """Install it once per process where it is usable; returns whether it is installed."""
    global _applied
    with _lock:
        if not _applied and usable():
            _dispatcher.Dispatcher.compile = _compile
            event.register("numba:compile", _Starter())
            atexit.register(_at_exit)
            _applied = True
        return _applied


# ---- in the helper process ----

@functools.lru_cache(maxsize=None)   # (typing asks for a callee's template more than once)
def returns_nothing(code):
    """Whether every return in this code object returns None (its calls type as None)."""
    import dis
    instructions = list(dis.get_instructions(code))
    for i, ins in enumerate(instructions):
        if ins.opname == "RETURN_VALUE":
            before = instructions[i - 1] if i else None
            if before is None or before.opname != "LOAD_CONST" or before.argval is not None:
                return False
        elif ins.opname == "RETURN_CONST" and ins.argval is not None:
            return False
    return True


def _listing(found):
    # Dispatcher.get_call_template for the driver's own typing (depth 1): a kernel that returns
    # nothing is listed and typed as returning None, uncompiled
    def get_call_template(self, args, kws):
        if _depth() != 1 or not _ours(self) or not returns_nothing(self.py_func.__code__):
            return _numba_call_template(self, args, kws)
        pysig, args = self._compiler.fold_argument_types(args, kws)
        if (self, tuple(args)) not in found:
            found.append((self, tuple(args)))
        template = typing.make_concrete_template(f"CallTemplate({self.py_func.__name__})",
                                                 key=self.py_func.__name__, signatures=[types.none(*args)])
        return template, pysig, args, {}
    return get_call_template


def _stop_after_typing(fn):
    def run_pass(self, state):
        done = _numba_type_inference(self, state)
        if state.func_id.func is fn:
            raise _Typed()
        return done
    return run_pass


def kernels_called(disp, args):
    """[(dispatcher, argument types)] of the kernels `disp` calls when compiled for `args`, in
    the order its typing reaches them, found by typing it alone. Only in a process of its own:
    it changes Numba's Dispatcher class while it runs."""
    from numba.core.caching import NullCache
    found = []
    _dispatcher.Dispatcher.get_call_template = _listing(found)
    typed_passes.NopythonTypeInference.run_pass = _stop_after_typing(disp.py_func)
    cache, disp._cache = disp._cache, NullCache()   # (nothing typed this way is ever saved)
    try:
        disp.compile(tuple(args))
    except _Typed:
        return found
    finally:
        _dispatcher.Dispatcher.get_call_template = _numba_call_template
        typed_passes.NopythonTypeInference.run_pass = _numba_type_inference
        disp._cache = cache
    return []   # (typing went on past where it should have stopped: list nothing)


def serve(request_file):
    """The helper process: read the request, list the driver's kernels, and compile them last
    first, skipping those the other process holds."""
    global _session
    import pickle
    try:
        with open(request_file, "rb") as f:
            request = pickle.load(f)
    except OSError:   # (the other process finished first and removed it)
        return
    from . import compile as kernels
    if request["cache_dir"] != kernels.CACHE_DIR:
        return   # another fastbp, or other settings: what it compiled would not be the same
    parent = os.getppid()
    _dispatcher.Dispatcher.compile = _compile
    _session = _Session(request["claims"], lambda: os.getppid() == parent)
    disp = kernels.built(*request["function"])
    t0 = time.perf_counter()
    try:
        listed = kernels_called(disp, request["args"])
    except Exception as e:   # (this process then compiles everything itself, as it would have)
        _log(f"could not list the kernels of {_name(disp, request['args'])}: {e!r}")
        return
    _log(f"listed {len(listed)} kernels of {_name(disp, request['args'])} in {time.perf_counter() - t0:.2f} s")
    for callee, args in listed:
        _log(f"list {_name(callee, args)}")
    with event.install_listener("numba:compile", _Compiled()):
        for callee, args in reversed(listed):
            if not _session.other_alive() or not os.path.isdir(request["claims"]):
                return
            path = _session.take(callee, args, wait=False)
            if path is None:
                continue
            try:
                _numba_compile(callee, args)   # (its own callees go through the claims)
            except Exception as e:   # (the other process compiles it, and meets the error itself)
                _log(f"could not compile {_name(callee, args)}: {e!r}")
            finally:
                _session.release(path)


class _Compiled(event.Listener):
    """The helper's log of what it compiled (not what it loaded from the cache)."""

    def on_start(self, ev):
        pass

    def on_end(self, ev):
        _log(f"compiled {_name(ev.data['dispatcher'], ev.data['args'])}")


def _name(disp, args):
    return f"{disp.py_func.__module__}.{disp.py_func.__qualname__}{tuple(args)!r}"


def _log(line):
    if config.COMPILE_HELPER_LOG:
        with open(config.COMPILE_HELPER_LOG, "a") as f:
            f.write(f"{os.getpid()} {line}\n")
