"""A call from one of fastbp's compiled functions to another runs the callee's own machine code,
instead of a copy of the callee's LLVM IR linked into the caller.

Numba compiles each kernel on its own (optimised, code-generated, cached), and then links a copy
of its IR into every compiled function that calls it, where LLVM optimises the whole module and
generates its code again. A driver calls nearly every kernel, so most of the LLVM work on a
driver went into kernels already compiled (the README's cold-start section has the figures).
Most kernels are loops too large to inline, where the copies buy nothing at run time; the small
ones a small network's step calls are declared `compile.linked_kernel` and keep Numba's linking.

`apply()` makes a call site of a registered fastbp function (compile.origin knows it) declare the
callee's symbol and link nothing. Numba's JIT (one MCJIT engine per process) resolves the symbol
against the callee's own code, which is there already: a callee compiles, or loads from the disk
cache, while its caller is typed. A caller loaded from the disk cache needs the same, and there
no typing happens: its object code names symbols that only its callees' objects define, and a
symbol left unresolved when the object loads crashes the process. So each call site also adds a
`Callee` to the caller's code library's reload_init, which Numba pickles with the cached function
and calls before it loads that function's code: it loads (or compiles) the callee first. A
mangled name carries a per-process counter, so a callee compiled again by another process (two
processes filling one cache at once) has another name than the one its cached caller names;
then the Callee adds the caller's name for the callee's code to LLVM's symbol table.

Applied only with a Numba release whose source of the functions this relies on was read and
checked (VERIFIED, by version: reading the source at every start would cost a cached start
milliseconds; tests/kernels/test_own_code.py checks the source of the installed release);
otherwise, or with config.LINK_KERNELS (FASTBP_LINK_KERNELS=1), Numba links as it always did.
The kernel cache's directory name includes whether this is in force (compile._source_hash),
so code cached under one rule is never loaded under the other.
"""
import hashlib
import inspect
import threading
from collections import namedtuple

import llvmlite.binding as llvm
import numba

from .. import config

# Numba release -> sha1 of the source (source_hash) of the functions this relies on, as read:
# imputils.user_function (a call site's implementation: declares the callee, carries `libs`, the
# libraries its caller links), BaseContext.insert_user_function (its one caller, the one reader of
# base.user_function), CodeLibrary.__init__ (the library's `_reload_init` set),
# NativeLowering.run_pass (after lowering, the library's reload_init goes into the compile
# result, so into the disk cache) and CompileResult._rebuild (a cached function's reload_init
# runs before its code is loaded).
VERIFIED = {"0.68.1": "6ff88c43bf808454c5c63ca5457dcb223f1b32cf"}

_lock = threading.RLock()
_applied = None
_numba_user_function = None   # numba.core.base.user_function as Numba has it, once replaced
_aliases = []                 # (name a caller uses, the callee's own name), added to LLVM's table


def source_hash():
    """The sha1 of the Numba source this relies on (see VERIFIED)."""
    from numba.core import base, codegen, compiler, imputils, typed_passes
    parts = (imputils.user_function, base.BaseContext.insert_user_function, codegen.CodeLibrary.__init__,
             typed_passes.NativeLowering.run_pass, compiler.CompileResult._rebuild)
    try:
        return hashlib.sha1("".join(inspect.getsource(f) for f in parts).encode()).hexdigest()
    except OSError:   # no source files (a frozen or .pyc-only install): nothing to check against
        return None


class Callee(namedtuple("Callee", ["module", "qualname", "key", "argtypes", "symbol"])):
    """A compiled function a caller's code calls by `symbol`: the variant `key` (compile.variant)
    of the function `qualname` of `module`, for `argtypes`. Called before a cached caller's code
    loads, it makes sure that code and the symbol are there."""
    __slots__ = ()

    def __call__(self):
        from .compile import built
        dispatcher = built(self.module, self.qualname, self.key)
        dispatcher.compile(self.argtypes)   # loads it from the disk cache, or compiles it
        result = dispatcher.overloads[self.argtypes]
        own = result.fndesc.mangled_name
        if own != self.symbol:
            llvm.add_symbol(self.symbol, result.library.get_pointer_to_function(own))
            _aliases.append((self.symbol, own))


def aliases():
    """The (name a cached caller uses, the callee's own name) pairs this process added."""
    return list(_aliases)


def _user_function(fndesc, libs):
    # numba.core.base.user_function: the implementation of a call to a compiled function; for
    # fastbp's own, one that links nothing and records the Callee in the caller's library
    from .compile import origin
    found = origin(fndesc.modname, fndesc.qualname)
    if found is None:
        return _numba_user_function(fndesc, libs)
    call = _numba_user_function(fndesc, ())
    callee = Callee(*found, tuple(fndesc.argtypes), fndesc.mangled_name)

    def imp(context, builder, sig, args):
        context.active_code_library._reload_init.add(callee)
        return call(context, builder, sig, args)
    imp.signature = call.signature
    imp.libs = ()
    return imp


def apply():
    """Install it, once per process; returns whether it is in place (False where it is turned
    off or the Numba release is not a verified one)."""
    global _applied, _numba_user_function
    with _lock:
        if _applied is None:
            _applied = not config.LINK_KERNELS and numba.__version__ in VERIFIED
            if _applied:
                from numba.core import base
                _numba_user_function = base.user_function
                base.user_function = _user_function
        return _applied
