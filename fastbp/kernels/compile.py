"""How fastbp's kernels are compiled: the decorators, the disk cache, and the variants of a
compiled function (the single-threaded twins among them) that hold only the branches a fit takes.

The settings these read (fastmath flags, error model, caching on or off, where the cache lives)
are in fastbp/config.py; this module is the machinery.

CACHE_DIR: Numba invalidates a cached function only when its own file changes, yet a driver
inlines kernels from other files; so the directory is named by a hash of every source the
kernels depend on, and an edit anywhere starts a fresh cache.
"""
import contextlib
import functools
import hashlib
import importlib
import os
import sys
import threading
import types
from collections.abc import Hashable
from pathlib import Path

import numba
import numpy as np
from numba import njit
from numba.core import caching

from .. import config
from . import blas_library, blas_probe, cache_lock, compile_helper, glue_passes, inline_copies, numba_messages, own_code


def _source_hash():
    # everything compiled code depends on: the kernel sources (this package, compile machinery
    # included), the modules whose constants they import (spec.py's codes, optim.py's slots,
    # config.py), the fastmath flags, numba's version, whether and with which index width
    # OpenBLAS is called, the vector width of the tiles, whether training steps split layers by
    # inputs, and whether callers run their kernels' own code (kernels/own_code.py)
    pkg = Path(__file__).parent.parent
    h = hashlib.sha1((numba.__version__ + repr(sorted(config.FASTMATH))
                      + repr((blas_library.FOUND, blas_library.BITS, config.VECTOR_BYTES,
                              config.SPLIT_INPUTS, own_code.apply()))).encode())
    for f in sorted([pkg / "config.py", pkg / "spec.py", pkg / "optim.py", *(pkg / "kernels").rglob("*.py")]):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


inline_copies.apply_when_compiling()   # Numba's inliner without its needless copies
own_code.apply()   # a kernel's callers run its own code (before any kernel compiles or loads)
numba_messages.apply()   # Numba's typing messages without colorama's terminal set-up for each
glue_passes.apply()   # a driver's own functions optimized once, with its module
blas_probe.apply()   # Numba's BLAS question answered without importing SciPy's linear algebra

_parent = (config.CACHE_PARENT or numba.config.CACHE_DIR
           or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "fastbp"))
CACHE_DIR = os.path.join(_parent, "kernels-" + _source_hash())
cache_lock.apply(CACHE_DIR)   # saves into the cache by several processes at once kept whole
compile_helper.apply()   # a first fit's kernels compiled by two processes at once


class _PackageLocator(caching.UserProvidedCacheLocator):
    """Where Numba caches a fastbp function: under CACHE_DIR, by the file's place in the package
    (fastbp/kernels/cpu) rather than Numba's hash of its directory on disk. CACHE_DIR is already
    named by the hash of every source, and Numba checks each file's own content hash, so any copy
    of the same fastbp shares one cache: a clone and its installed copy (the test suite's
    subprocesses), two virtual environments, an image built elsewhere."""

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        self._cache_path = os.path.join(CACHE_DIR, _in_package(py_file))

    def get_source_stamp(self):
        # the file's content (Numba before 0.68 stamps its mtime, which differs between copies)
        return _content_hash(self._py_file)

    @classmethod
    def from_function(cls, py_func, py_file):
        if numba.config.CACHE_DIR != CACHE_DIR or _in_package(py_file) is None:
            return None   # not fastbp's (other libraries keep Numba's own locators)
        return super().from_function(py_func, py_file)


@functools.lru_cache(maxsize=None)
def _content_hash(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@functools.lru_cache(maxsize=None)
def _in_package(py_file):
    # "fastbp/kernels/cpu" for a file of this package, else None; remembered, since resolving a
    # path walks the file system and every one of the package's compiled functions asks
    try:
        return str(Path(py_file).resolve().parent.relative_to(PACKAGE_ROOT))
    except ValueError:
        return None


PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent   # the directory holding this fastbp package


def start_server(module, argument, lowest_priority=False, **popen):
    """A fresh Python running `fastbp.kernels.<module>.serve(argument)` on this fastbp, wherever it
    was imported from (a source tree on no path of the child's), silent, with no helper or
    background build of its own (the compile helper, kernels/tier.py's builder): a
    subprocess.Popen. lowest_priority: nice 19 before anything else (importing Numba is work too)."""
    import subprocess
    env = dict(os.environ, FASTBP_QUIET="1", FASTBP_COMPILE_HELPER="0", FASTBP_TIERED="0")
    code = (("import os; hasattr(os, 'nice') and os.nice(19); " if lowest_priority else "")
            + f"import sys; root = {str(PACKAGE_ROOT)!r}; root in sys.path or sys.path.insert(0, root); "
            f"from fastbp.kernels import {module}; {module}.serve(sys.argv[1])")
    return subprocess.Popen([sys.executable, "-c", code, argument], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, **popen)


caching.CacheImpl._locator_classes.insert(0, _PackageLocator)


@contextlib.contextmanager
def _cache_dir():
    # numba picks a function's cache location when it is decorated: point it at CACHE_DIR
    # for fastbp's kernels only, leaving other libraries' caching as it was
    old = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = CACHE_DIR
    try:
        yield
    finally:
        numba.config.CACHE_DIR = old


_noticed = threading.Event()


@contextlib.contextmanager
def notice(what):
    """Around a call that may compile `what`: once Numba starts compiling in it (not when it only
    loads from the disk cache) and the call is still running config.NOTICE_SECONDS later, say
    once per process on stderr what is compiling and that it happens once."""
    if config.QUIET or _noticed.is_set():
        yield
        return
    from numba.core import event

    def say():
        if not _noticed.is_set():
            _noticed.set()
            print(f"fastbp: compiling {what} (once: later runs load them from the cache in {CACHE_DIR}; "
                  "`fastbp compile` builds them ahead of time, FASTBP_QUIET=1 hides this line)",
                  file=sys.stderr, flush=True)
    timer = threading.Timer(config.NOTICE_SECONDS, say)
    timer.daemon = True

    class Started(event.Listener):   # Numba's compile event: a real compile, not a cache load
        def on_start(self, ev):
            if not timer.is_alive() and not timer.finished.is_set():
                timer.start()

        def on_end(self, ev):
            pass
    try:
        with event.install_listener("numba:compile", Started()):
            yield
    finally:
        timer.cancel()


def general_built(dtype):
    """Whether `fastbp compile --all` built the general drivers for `dtype` into CACHE_DIR; fits
    then use them rather than compile a variant. Looked up once per process and dtype, not on
    every fit; a build by another process meanwhile serves this one's next start. Never with
    the cache off (FASTBP_CACHE=0): nothing loads from it then, and a fit would compile the
    general drivers, every branch, where its variant compiles a fraction of them."""
    return config.CACHE and _marker_exists(CACHE_DIR, np.dtype(dtype))


@functools.lru_cache(maxsize=None)
def _marker_exists(cache_dir, dtype):
    return os.path.exists(_general_marker(cache_dir, dtype))


def mark_general_built(dtype):
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(_general_marker(CACHE_DIR, dtype), "w") as f:
        f.write("every branch of the drivers compiled by `fastbp compile --all`\n")
    _marker_exists.cache_clear()


def _general_marker(cache_dir, dtype):
    return os.path.join(cache_dir, f"general-{np.dtype(dtype).name}.built")


def _jit(fn, parallel, **options):
    # _nrt=False: no Numba runtime, so no reference counting. A driver's named tuples hold
    # dozens of arrays, and each copy of one (every argument of the glue inlined into it) was
    # an increment and a decrement per array in the IR, which Numba spent time emitting and
    # LLVM removing again (the README's cold-start section has the figures). The arrays belong
    # to the Python caller for the length of a call.
    # It also refuses allocation, which the per-batch path must never do: code that allocates
    # (np.empty, a slice assignment between arrays) fails to compile (a typing error, or
    # "NRT required but not enabled").
    # no_cfunc_wrapper: Numba builds a C-callable wrapper beside every function, for calls
    # through first-class function types, which fastbp never makes; a driver's wrapper unpacks
    # every field of its tuples, and the wrappers took a part of a first fit's compile that
    # shows (the README's cold-start section).
    if options.get("inline") == "always":   # serial glue, or a variant of it
        glue_passes.skip(fn.__qualname__)
    with _cache_dir():
        return njit(parallel=parallel, cache=config.CACHE, fastmath=config.FASTMATH,
                    error_model=config.ERROR_MODEL, _nrt=False, no_cfunc_wrapper=True, **options)(fn)


# ---- the registry, and the variants of its functions ----
#
# Every compiled function is registered with the Python function it came from. A *variant* of it
# is a clone of that function compiled with some switches (module constants the kernels branch
# on, declared by `switch`) narrowed: Numba prunes a branch on a constant before it compiles
# anything the branch calls, so a variant compiles only what a given fit can reach. The general
# build (every switch at its general value) is the decorated function itself.

_INFO = {}          # dispatcher -> (python function, parallel, options)
_GENERAL = {}       # (module, qualname) -> the dispatcher of a decorated function
_ORIGINS = {}       # (module, qualname) of every compiled function -> (module, qualname, variant key)
_LINKED = set()     # (module, qualname) of the decorated functions whose callers link their code
_HANDWRITTEN = {}   # dispatcher -> its hand-written single-threaded twin (twin_is)
SWITCHES = {}       # switch name -> its general value


def switch(name, general):
    """Declare the module constant `name`, whose value in the general build is `general`; a
    kernel that branches on it (`if CODE in NAME and ...:`, `if NAME and ...:`) loses the
    branch in the variants that narrow it. Returns `general`, for `NAME = switch("NAME", ...)`."""
    if SWITCHES.get(name, general) != general:
        raise ValueError(f"switch {name} declared twice with different general values")
    SWITCHES[name] = general
    return general


def _compile(fn, parallel, **options):
    dispatcher = _jit(fn, parallel, **options)
    _INFO[dispatcher] = (fn, parallel, options)
    _GENERAL[fn.__module__, fn.__qualname__] = dispatcher
    _ORIGINS[fn.__module__, fn.__qualname__] = (fn.__module__, fn.__qualname__, ())
    return dispatcher


def origin(module, qualname):
    """(module, qualname, variant key) of the registered function whose compiled clone is named
    `qualname` in `module` (its own names and () for a decorated function), if its callers call
    its own code (kernels/own_code.py); None for a `linked_kernel` and for any other function."""
    return None if linked(module, qualname) else _ORIGINS.get((module, qualname))


def registered_as(dispatcher):
    """(module, qualname, variant key) of the registered function that `dispatcher` compiles (a
    decorated function, a variant or a link copy of one), for compile.built; None for others."""
    fn = dispatcher.py_func
    return _ORIGINS.get((fn.__module__, fn.__qualname__))


def kernels_reached(dispatcher):
    """The registered compiled functions whose names the code of `dispatcher` (or of the
    registered function it is a variant of) reads, with the glue inlined into it followed
    through to the kernels it calls: what compiling it may compile first. Read from the code of
    the general build, so that no variant is made."""
    found = registered_as(dispatcher)
    return set() if found is None else _reached(_INFO[_GENERAL[found[:2]]][0], set())


def _reached(fn, seen):
    found = set()
    for callee in _registered_callees(fn):
        if callee not in seen:
            seen.add(callee)
            found |= _reached(callee.py_func, seen) if _INFO[callee][2].get("inline") == "always" else {callee}
    return found


def linked(module, qualname):
    """Whether the registered function whose compiled clone is named `qualname` in `module` is a
    single-threaded variant of a `linked_kernel`: its callers link a copy of its code."""
    found = _ORIGINS.get((module, qualname))
    return found is not None and _links(found[:2], dict(found[2]))


def _links(name, settings):
    # whether callers of the (module, qualname) `name` in a variant with these switches link it
    return name in _LINKED and not settings.get("THREADED", True)


def built(module, qualname, key):
    """The dispatcher `origin` described: the variant `key` of the function `qualname` of
    `module` (imported here: a cached caller may load before the module of its callee)."""
    importlib.import_module(module)
    return variant(_GENERAL[module, qualname], **dict(key))


def kernel(fn):
    """Compile a loop kernel whose `prange` loops run on Numba's thread pool.

    The body of a kernel's `prange` loop calls a `serial_kernel` that does one thread's share
    (`for k in prange(threads): _part(..., np.int64(k), ...)`) rather than holding the work
    inline: Numba compiles a parallel loop's body as a function of its own through its whole
    pipeline again, and the same code inline there took several times longer to compile than
    the serial kernel it calls, which the single-threaded twin shares (the README's
    cold-start section). A twin that small networks' steps call keeps the work inline instead
    (`if not THREADED:`): the linked kernels', and batch norm's, where the call read slower.
    np.int64 (threads.thread_share takes it too): Numba types the loop index as a signed integer
    in the kernel and an unsigned one in the body's function, and each would compile the callee
    again. The call costs nanoseconds, once per thread."""
    return _compile(fn, True)


def linked_kernel(fn):
    """Compile a small loop kernel that a step of a small network calls, whose single-threaded
    twin's callers link a copy of its code, as Numba does, instead of calling its own
    (kernels/own_code.py): each caller's copy is private to it, which LLVM optimizes with the
    caller, and a step of the article's network ran slower without (the README's cold-start
    section), while the copies cost little to compile. Small networks' steps run on one thread;
    on several, a call costs nothing beside starting the threads, and the threaded kernel's
    loop bodies call code of their own (`kernel`), which a linked copy must not (own_code)."""
    dispatcher = _compile(fn, True)
    _LINKED.add((fn.__module__, fn.__qualname__))
    return dispatcher


def serial(fn):
    """Compile glue that runs on one thread (drivers that call kernels, small helpers)."""
    return _compile(fn, False, inline="always")


def serial_kernel(fn):
    """Compile a loop kernel that runs on the calling thread, as a function of its own: unlike
    `serial` glue it is not inlined into its callers (inlined into a whole training step, tight
    loops can lose their vectorisation)."""
    return _compile(fn, False)


def twin_is(replacement):
    """Give a compiled function a hand-written single-threaded twin (instead of a clone of it)."""
    def register(dispatcher):
        _HANDWRITTEN[dispatcher] = replacement
        return dispatcher
    return register


# A module may import THREADED: the single-threaded variants (the twins) see False, and their
# `prange` loops run as plain loops. Parallel regions cost microseconds to start, which dominates
# small layers and batches (see config.PARALLEL_MIN_FLOP); driver.py skips its split by inputs.
THREADED = switch("THREADED", True)


def _names(code):
    # every global a function's code may read, its nested code objects' included
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _registered_callees(fn):
    # the registered compiled functions that the code of `fn` names
    for name in _names(fn.__code__):
        callee = fn.__globals__.get(name)
        if isinstance(callee, Hashable) and callee in _INFO:
            yield callee


_DEPENDS = {}


def depends(dispatcher):
    """The switches a compiled function reads, itself or through what it calls."""
    if dispatcher not in _DEPENDS:
        fn, parallel, _ = _INFO[dispatcher]
        _DEPENDS[dispatcher] = frozenset()   # (a cycle stops here)
        found = {n for n in _names(fn.__code__) if n in SWITCHES} | ({"THREADED"} if parallel else set())
        for callee in _registered_callees(fn):
            found |= depends(callee)
        if dispatcher in _HANDWRITTEN:
            found |= {"THREADED"} | depends(_HANDWRITTEN[dispatcher])
        _DEPENDS[dispatcher] = frozenset(found)
    return _DEPENDS[dispatcher]


_VARIANTS = {}   # (dispatcher, key) -> the variant
_GLOBALS = {}    # (id of module globals, key) -> the variants' copy of those globals
_MAKING = threading.RLock()   # fits in several Python threads must not make one variant twice


def variant(dispatcher, **values):
    """The compiled function with the given switches narrowed (those it does not read are
    ignored); the function itself where none it reads differs from the general build. Variants
    share what they can: a kernel that reads no narrowed switch is one compile for all."""
    unknown = set(values) - set(SWITCHES)
    if unknown:
        raise ValueError(f"unknown switches {sorted(unknown)}; declared: {sorted(SWITCHES)}")
    key = _key(dispatcher, values)
    if not key:
        return dispatcher
    with _MAKING:
        if (dispatcher, key) not in _VARIANTS:
            _make_variant(dispatcher, key)
    return _VARIANTS[dispatcher, key]


def _key(dispatcher, values):
    # the switches in `values` that `dispatcher` reads and that differ from the general build
    return tuple(sorted((k, v) for k, v in values.items() if k in depends(dispatcher) and v != SWITCHES[k]))


def _make_variant(dispatcher, key):
    settings = dict(key)
    if dispatcher in _HANDWRITTEN and not settings.get("THREADED", True):
        _VARIANTS[dispatcher, key] = variant(_HANDWRITTEN[dispatcher], **settings)
        return
    _VARIANTS[dispatcher, key] = _compile_clone(dispatcher, key, "__" + _tag(key))


def _compile_clone(dispatcher, key, suffix, **extra):
    # the registered function's code with the key's switches set in its globals, named with
    # `suffix` (its own disk-cache entry), compiled with `extra` options besides its own
    fn, parallel, options = _INFO[dispatcher]
    clone = types.FunctionType(fn.__code__, _variant_globals(fn.__globals__, key), fn.__name__, fn.__defaults__,
                               fn.__closure__)
    clone.__qualname__ = fn.__qualname__ + suffix
    clone.__module__ = fn.__module__
    _ORIGINS[clone.__module__, clone.__qualname__] = (fn.__module__, fn.__qualname__, key)
    return _jit(clone, parallel and dict(key).get("THREADED", True), **options, **extra)


_LINK_COPIES = {}   # (dispatcher, key) -> what the variants' callers link (_for_callers)


def _for_callers(dispatcher, settings):
    # what a variant's compiled code calls for `dispatcher`: its variant, or for a linked_kernel
    # a clone of that compiled without a CPython wrapper. Callers link a copy of a linked
    # kernel's IR and never call its own code, so its wrapper (which unboxes every array from a
    # Python object) was compiled, optimized and turned into machine code for nothing on every
    # first fit; with kernels/own_code.py in force, no machine code is made for it either.
    # Python never sees these clones (calling one from Python would jump to no code): variant()
    # and one_thread() return the full function, a separate compile where a test calls one.
    fn = _INFO[dispatcher][0]
    if not _links((fn.__module__, fn.__qualname__), settings):
        return variant(dispatcher, **settings)
    if dispatcher in _HANDWRITTEN and not settings.get("THREADED", True):
        return _for_callers(_HANDWRITTEN[dispatcher], settings)
    key = _key(dispatcher, settings)
    with _MAKING:
        if (dispatcher, key) not in _LINK_COPIES:
            suffix = ("__" + _tag(key) if key else "") + own_code.LINK_COPY
            _LINK_COPIES[dispatcher, key] = _compile_clone(dispatcher, key, suffix, no_cpython_wrapper=True)
    return _LINK_COPIES[dispatcher, key]


def _tag(key):
    if key == (("THREADED", False),):
        return "one_thread"
    return "v" + hashlib.sha1(repr(key).encode()).hexdigest()[:12]


def _variant_globals(original, key):
    # a copy of a module's globals with the key's switches set, whose compiled functions read
    # as their variants; Numba reads those names when it first compiles a clone
    slot = (id(original), key)
    if slot not in _GLOBALS:
        _GLOBALS[slot] = _VariantGlobals(original, dict(key))
    return _GLOBALS[slot]


class _VariantGlobals(dict):
    """A module's globals as a variant's clones see them: the switches set, and each compiled
    function replaced by its variant (or link copy) when the name is first read, not when the
    copy is made. A driver's clone reaches by name nearly every compiled function (129 of 143),
    and making each one's variant up front (a Numba dispatcher, its cache locator) took about
    45 ms of a start that loads every kernel from the cache and reads none of them (the README's
    cold-start section). Numba reads a function's globals by name (`globals[name]`, `.get`);
    every other way of reading the values (iteration, items(), values(), a copy) makes them
    all first, as the eager copy did."""

    def __init__(self, original, settings):
        from numba.core.registry import CPUDispatcher
        super().__init__(original)
        dict.update(self, ((k, v) for k, v in settings.items() if k in original))
        self._settings = settings
        self._pending = {k for k, v in original.items() if isinstance(v, CPUDispatcher) and v in _INFO}

    def _resolve(self, name):
        with _MAKING:
            if name in self._pending:
                dict.__setitem__(self, name, _for_callers(dict.__getitem__(self, name), self._settings))
                self._pending.discard(name)

    def _resolve_all(self):
        for name in list(self._pending):
            self._resolve(name)

    def __getitem__(self, name):
        if name in self._pending:
            self._resolve(name)
        return dict.__getitem__(self, name)

    def get(self, name, default=None):
        if name in self._pending:
            self._resolve(name)
        return dict.get(self, name, default)

    def __iter__(self):   # (also makes dict(copy) and {**copy} read each value through __getitem__)
        self._resolve_all()
        return dict.__iter__(self)

    def items(self):
        self._resolve_all()
        return dict.items(self)

    def values(self):
        self._resolve_all()
        return dict.values(self)

    def copy(self):
        self._resolve_all()
        return dict(dict.items(self))

    __copy__ = copy

    def __reduce__(self):
        return dict, (self.copy(),)

    def __setitem__(self, name, value):
        self._pending.discard(name)
        dict.__setitem__(self, name, value)

    def pop(self, name, *default):
        self._pending.discard(name)
        return dict.pop(self, name, *default)

    def __delitem__(self, name):
        self._pending.discard(name)
        dict.__delitem__(self, name)


def one_thread(dispatcher):
    """The single-threaded twin of a compiled function, from the same source (or its
    hand-written twin): its `prange` loops run as plain loops and everything it calls is such a
    twin too."""
    return variant(dispatcher, THREADED=False)
