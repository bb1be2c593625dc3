"""A driver's own LLVM functions go to LLVM's full optimization once, not twice.

Numba optimizes a compiled function in two rounds: each function of its new module on its own
(CPUCodeLibrary._optimize_functions, LLVM's function pipeline at -O3), then, once the libraries
it calls are linked in, the whole module (_optimize_final_module, the module pipeline at -O3,
which runs the same function simplification again, with inlining and vectorization). A driver
(compile.serial glue compiled as the function Python calls) is one large function: every level of
glue is inlined into it, and each passes named tuples of dozens of arrays, which Numba keeps in
stack slots that the first round's SROA takes apart; that round was about a quarter of the LLVM
time of a seed first fit's driver (LLVM's pass timings, NUMBA_LLVM_PASS_TIMINGS=1), and the second
round does the same work anyway. The loops that matter are in the kernels, which compile as
Numba compiles them. So the first round skips fastbp's glue (`skip`, from compile.py: the
qualnames of serial functions and their variants, which name their libraries); the second
optimizes it as before. Warm fits ran as fast (the README's cold-start section has the figures).

Applied only with a Numba release whose source of the two methods was read (VERIFIED, by
version); otherwise Numba optimizes as it always did. Numba's own functions in a driver's module
(its helpers), and any other code's, keep both rounds.
"""
import hashlib
import inspect
import threading

import numba

# Numba release -> sha1 of the source (source_hash) of CPUCodeLibrary._optimize_functions (sets
# the module's data layout, then runs the function pipeline on each function) and
# CPUCodeLibrary.add_llvm_module (its one caller, on each module a compile lowers, before the
# libraries it calls are linked in)
VERIFIED = {"0.68.1": "8bbd73fcba01216ff4dfb67c821f5fb378d03502"}

_PREFIXES = ("_ZN6fastbp", "_ZN7cpython6fastbp")   # fastbp's functions and their Python wrappers
_glue = set()           # qualnames of glue compiled on its own (library names)
_lock = threading.Lock()
_applied = None
_numba_optimize_functions = None   # CPUCodeLibrary._optimize_functions, once replaced


def skip(qualname):
    """Register the compiled clone of glue named `qualname`: its library's fastbp functions skip
    the first round."""
    _glue.add(qualname)


def source_hash():
    """The sha1 of the Numba source this relies on (see VERIFIED)."""
    from numba.core import codegen
    parts = (_numba_optimize_functions or codegen.CPUCodeLibrary._optimize_functions,
             codegen.CPUCodeLibrary.add_llvm_module)
    try:
        return hashlib.sha1("".join(inspect.getsource(f) for f in parts).encode()).hexdigest()
    except OSError:   # no source files (a frozen or .pyc-only install): nothing to check against
        return None


def _optimize_functions(self, ll_module):
    # CPUCodeLibrary._optimize_functions, the first round, without glue's own functions
    if self.name not in _glue:
        return _numba_optimize_functions(self, ll_module)
    ll_module.data_layout = self._codegen._data_layout
    for func in ll_module.functions:
        if func.is_declaration or func.name.startswith(_PREFIXES):
            continue
        fpm, pb = self._codegen._function_pass_manager()
        with self._recorded_timings.record(f"Function passes on {func.name!r}", pb):
            fpm.run(func, pb)


def apply():
    """Install it, once per process; returns whether it is in place."""
    global _applied, _numba_optimize_functions
    with _lock:
        if _applied is None:
            _applied = numba.__version__ in VERIFIED
            if _applied:
                from numba.core import codegen
                _numba_optimize_functions = codegen.CPUCodeLibrary._optimize_functions
                codegen.CPUCodeLibrary._optimize_functions = _optimize_functions
        return _applied
