"""A call from one of fastbp's compiled functions to another runs the callee's own machine code,
instead of a copy of the callee's LLVM IR linked into the caller.

Numba compiles each kernel on its own (optimised, code-generated, cached), and then links a copy
of its IR into every compiled function that calls it, where LLVM optimises the whole module and
generates its code again. A driver calls nearly every kernel, so most of the LLVM work on a
driver went into kernels already compiled (the README's cold-start section has the figures).
Most kernels are loops too large to inline, where the copies buy nothing at run time; the small
ones a small network's step calls are declared `compile.linked_kernel`, and their single-threaded
twins keep Numba's linking.

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

The small kernels that stay linked (compile.linked_kernel) are linked as copies that are the
caller's own. Numba makes a linked copy `linkonce_odr`, a weak symbol in the caller's object, and
the JIT binds a call to a weak symbol to a definition already loaded in the process if there is
one. In a process that compiles a driver, its linked kernels were compiled on their own just
before, so the driver called those far-away objects instead of its copies; a driver loaded from
the disk cache (its kernels not loaded) called its copies, and the two ran at different speeds
(the README's cold-start section). So after Numba links a caller's libraries into its module,
and before LLVM optimizes it, the linked copies of fastbp's functions in a library that calls a
linked kernel are made internal (_optimize_final_module): every process runs the caller's own
copies, which LLVM optimizes as private functions of the caller (their calling convention and
arguments are the caller's to change). They stay out of line (noinline): inlined, the seed step
ran no faster and LLVM spent longer on the driver (the README's cold-start section).

A linked kernel's callers only link its IR, so the clone of it they resolve to
(compile._for_callers, its name ending in LINK_COPY) is optimized but never added to the JIT:
no machine code is generated for it (_finalize_final_module), the address of its environment is
written nowhere (_set_env), and the disk cache keeps its IR (_serialize_using_object_code), from
which a cached copy links as well. Nothing may call such a clone's own code: it has none, and
what runs is each caller's copy.

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
import weakref
from collections import namedtuple

import llvmlite.binding as llvm
import numba

from .. import config

# Numba release -> sha1 of the source (source_hash) of the functions this relies on, as read:
# imputils.user_function (a call site's implementation: declares the callee, carries `libs`, the
# libraries its caller links), BaseContext.insert_user_function (its one caller, the one reader of
# base.user_function), CodeLibrary.__init__ (the library's `_reload_init` set),
# NativeLowering.run_pass (after lowering, the library's reload_init goes into the compile
# result, so into the disk cache), CompileResult._rebuild (a cached function's reload_init
# runs before its code is loaded), CPUCodeLibrary.finalize (links its libraries, then calls
# _optimize_final_module), CPUCodeLibrary._get_module_for_linking (a linked copy's functions
# are linkonce_odr; it needs only the final module), CPUCodeLibrary._finalize_final_module
# (adds the module to the JIT, which generates its code), JITCodeLibrary.get_pointer_to_function
# (0 for a symbol the JIT lacks) and CPUContext.get_executable (so a LINK_COPY's entry point for
# Python is null), JITCPUCodegen.set_env and JitEngine.is_symbol_defined (where an environment's
# address is written), CPUCodeLibrary.serialize_using_object_code and serialize_using_bitcode
# (what the disk cache keeps), CPUCodeLibrary._unserialize (a cached library of IR is finalized
# as a new one is) and CompileResult._rebuild (a cached function's entry point and environments
# as after a compile).
VERIFIED = {"0.68.1": "c5438c8dcad9cd066b79bafd52adc48125eaa0ca"}

# The end of the name of a linked kernel's clone that callers only link (compile._for_callers)
LINK_COPY = "__link_copy"

_lock = threading.RLock()
_applied = None
_numba_user_function = None   # numba.core.base.user_function as Numba has it, once replaced
_numba_optimize_final_module = None   # CPUCodeLibrary._optimize_final_module, once replaced
_numba_finalize_final_module = None   # CPUCodeLibrary._finalize_final_module, once replaced
_numba_serialize = None               # CPUCodeLibrary.serialize_using_object_code, once replaced
_numba_set_env = None                 # JITCPUCodegen.set_env, once replaced
_linking = weakref.WeakSet()  # the code libraries whose code calls a linked_kernel
_aliases = []                 # (name a caller uses, the callee's own name), added to LLVM's table


def source_hash():
    """The sha1 of the Numba source this relies on (see VERIFIED)."""
    from numba.core import base, codegen, compiler, cpu, imputils, typed_passes
    library = codegen.CPUCodeLibrary
    parts = (imputils.user_function, base.BaseContext.insert_user_function, codegen.CodeLibrary.__init__,
             typed_passes.NativeLowering.run_pass, compiler.CompileResult._rebuild,
             library.finalize, _numba_optimize_final_module or library._optimize_final_module,
             library._get_module_for_linking, _numba_finalize_final_module or library._finalize_final_module,
             codegen.JITCodeLibrary.get_pointer_to_function, cpu.CPUContext.get_executable,
             _numba_set_env or codegen.JITCPUCodegen.set_env, codegen.JitEngine.is_symbol_defined,
             _numba_serialize or library.serialize_using_object_code, library.serialize_using_bitcode,
             library._unserialize.__func__)
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
    from .compile import linked, origin
    found = origin(fndesc.modname, fndesc.qualname)
    if found is None:
        linking = _numba_user_function(fndesc, libs)
        if not linked(fndesc.modname, fndesc.qualname):
            return linking

        def imp(context, builder, sig, args):   # a linked_kernel: the caller's copy is its own
            _linking.add(context.active_code_library)
            return linking(context, builder, sig, args)
        imp.signature = linking.signature
        imp.libs = linking.libs
        return imp
    call = _numba_user_function(fndesc, ())
    callee = Callee(*found, tuple(fndesc.argtypes), fndesc.mangled_name)

    def imp(context, builder, sig, args):
        library = context.active_code_library
        if library.name.endswith(LINK_COPY):
            # its callers link its IR, and a cached caller would load with the call unresolved
            # (the Callee is this library's, not theirs): a crash, so refuse it here
            raise NotImplementedError(f"{library.name} links into its callers, and may not call "
                                      f"{fndesc.qualname} by its own code; make that `serial` glue")
        library._reload_init.add(callee)
        return call(context, builder, sig, args)
    imp.signature = call.signature
    imp.libs = ()
    return imp


def _optimize_final_module(self):
    # CPUCodeLibrary._optimize_final_module, which finalize() calls once it has linked the
    # library's linking libraries into its module: in a caller of a linked_kernel, the linked
    # copies of fastbp's functions (mangled names "_ZN6fastbp...") are made internal and out of
    # line first; Numba's own linked helpers, its reference-count functions among them, whose
    # names LLVM's reference-count pruning looks for, are left as Numba has them
    if self in _linking:
        for fn in self._final_module.functions:
            if (fn.linkage == llvm.Linkage.linkonce_odr and not fn.is_declaration
                    and fn.name.startswith("_ZN6fastbp")):
                fn.linkage = llvm.Linkage.internal
                fn.add_function_attribute("noinline")
    return _numba_optimize_final_module(self)


def _finalize_final_module(self):
    # CPUCodeLibrary._finalize_final_module, the last step of finalize() (and of loading a cached
    # library): for a LINK_COPY, its checks without adding its module to the JIT, so no machine
    # code; callers link its final module (_get_module_for_linking)
    if not self.name.endswith(LINK_COPY):
        return _numba_finalize_final_module(self)
    self._finalize_dynamic_globals()
    self._verify_declare_only_symbols()
    self._finalized = True


def _set_env(self, env_name, env):
    # JITCPUCodegen.set_env, which writes the address of a function's environment into the
    # JIT's global of that name: after a compile, and for every environment whose global a
    # cached function's module holds. A LINK_COPY's module is not in the JIT, so neither is the
    # global of its own environment nor those of the functions linked into it (Numba's helpers,
    # max and min among them), and Numba would write through a null address. Skipped where the
    # JIT holds no such global, the one case where Numba would crash (any process's code, not
    # only fastbp's); nothing reads those: fastbp's kernels never touch their environment, which
    # only boxing to Python objects does (tests/kernels/test_own_code.py checks that no copy's
    # code loads it).
    if self._engine.is_symbol_defined(env_name):
        _numba_set_env(self, env_name, env)


def _serialize_using_object_code(self):
    # CPUCodeLibrary.serialize_using_object_code, what Numba's disk cache keeps: a LINK_COPY has
    # no object code, and its IR is what a cached copy is for
    if self.name.endswith(LINK_COPY):
        return self.serialize_using_bitcode()
    return _numba_serialize(self)


def apply():
    """Install it, once per process; returns whether it is in place (False where it is turned
    off or the Numba release is not a verified one)."""
    global _applied, _numba_user_function, _numba_optimize_final_module, _numba_finalize_final_module
    global _numba_serialize, _numba_set_env
    with _lock:
        if _applied is None:
            _applied = not config.LINK_KERNELS and numba.__version__ in VERIFIED
            if _applied:
                from numba.core import base, codegen
                _numba_user_function = base.user_function
                base.user_function = _user_function
                _numba_optimize_final_module = codegen.CPUCodeLibrary._optimize_final_module
                codegen.CPUCodeLibrary._optimize_final_module = _optimize_final_module
                _numba_finalize_final_module = codegen.CPUCodeLibrary._finalize_final_module
                codegen.CPUCodeLibrary._finalize_final_module = _finalize_final_module
                _numba_serialize = codegen.CPUCodeLibrary.serialize_using_object_code
                codegen.CPUCodeLibrary.serialize_using_object_code = _serialize_using_object_code
                _numba_set_env = codegen.JITCPUCodegen.set_env
                codegen.JITCPUCodegen.set_env = _set_env
        return _applied
