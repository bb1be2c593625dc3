"""Numba's `inline="always"` without its needless deep copies of the inlined code.

compile.serial glue is inlined by Numba's untyped pass InlineInlinables. At each call site
InlineWorker.inline_function builds the callee's IR afresh from its bytecode (the callee's own
inlinable calls already inlined into it) and hands it to InlineWorker.inline_ir, which deep-copies
it block by block twice: a working copy, because inlining mutates it, and an unmutated original
that it returns and the pass throws away. That fresh IR has no other owner, so neither copy is
needed; and each level of a driver (train_epochs > train_rows > train_step > forward > ...) is
copied again at every level above it. The copies were the largest part of a first fit's compile
after LLVM's own work (the README's cold-start section has the figures; numba/numba#8989 reports
the same copies upstream).

`apply()` (or `apply_when_compiling()`, which waits for Numba's first compile in the process, so
that a process whose kernels all load from the disk cache does not read Numba's source to check
it) replaces inline_function with one that builds the IR the same way and calls the same
inline_ir, during which copy_ir's block copies return the blocks themselves. Nothing else changes:
typed inlining (overloads) inlines cached IR through inline_ir directly and still copies it, and
the code Numba generates is the same (tests/kernels/test_inline_copies.py compares it). It is
applied only where the source of the three Numba functions this relies on is the one read and
checked (VERIFIED: the same in every Numba release from 0.59.1 to 0.68.1); with any other source
Numba is left as it is. It is process-wide, so other Numba code in the process inlines faster too;
config.NUMBA_INLINE_COPIES (FASTBP_NUMBA_INLINE_COPIES=1) keeps Numba's copies.
"""
import copy
import hashlib
import inspect
import sys
import threading

from numba.core import event

from .. import config

# sha1 of the source of InlineWorker.inline_ir, InlineWorker.inline_function and
# InlineInlinables._do_work (source_hash), for the releases where it was read: inline_ir copies
# only in its nested copy_ir, inline_function is its one caller with fresh IR, and _do_work, its
# one caller, discards the original.
VERIFIED = {"7577d9be5c2520a2a54695f1b7c1cf1290054ea4"}

_skipping = threading.local()   # set while our inline_function runs inline_ir on this thread
_lock = threading.RLock()
_applied = None
_numba_inline_function = None   # InlineWorker.inline_function as Numba has it, once replaced


def source_hash():
    """The sha1 of the Numba source this fix relies on (see VERIFIED)."""
    from numba.core.inline_closurecall import InlineWorker
    from numba.core.untyped_passes import InlineInlinables
    parts = (InlineWorker.inline_ir, _numba_inline_function or InlineWorker.inline_function,
             InlineInlinables._do_work)
    try:
        return hashlib.sha1("".join(inspect.getsource(f) for f in parts).encode()).hexdigest()
    except OSError:   # no source files (a frozen or .pyc-only install): nothing to check against
        return None


class _CopyModule:
    """Stands in for the `copy` module in numba.core.inline_closurecall: the real one, except
    that deepcopy called from inline_ir's copy_ir while _skipping is set returns its argument."""

    def __init__(self, copy_ir_code):
        self._copy_ir = copy_ir_code

    def deepcopy(self, x, memo=None):
        if getattr(_skipping, "on", False) and sys._getframe(1).f_code is self._copy_ir:
            return x
        return copy.deepcopy(x, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


def _inline_function(self, caller_ir, block, i, function, arg_typs=None):
    # InlineWorker.inline_function, with inline_ir told not to copy the IR just built
    callee_ir = self.run_untyped_passes(function)
    _skipping.on = True
    try:
        return self.inline_ir(caller_ir, block, i, callee_ir, function.__code__.co_freevars, arg_typs=arg_typs)
    finally:
        _skipping.on = False


def apply():
    """Install the fix, once per process; returns whether it is in place (False where it is
    turned off or Numba's source is not a verified one)."""
    global _applied, _numba_inline_function
    with _lock:
        if _applied is None:
            _applied = not config.NUMBA_INLINE_COPIES and source_hash() in VERIFIED
            if _applied:
                from numba.core import inline_closurecall as icc
                copy_ir = [c for c in icc.InlineWorker.inline_ir.__code__.co_consts
                           if inspect.iscode(c) and c.co_name == "copy_ir"]
                icc.copy = _CopyModule(copy_ir[0])
                _numba_inline_function = icc.InlineWorker.inline_function
                icc.InlineWorker.inline_function = _inline_function
        return _applied


class _OnCompile(event.Listener):
    """Applies the fix as a Numba compile starts, before its passes run (a load from the disk
    cache is no compile event)."""

    def on_start(self, ev):
        apply()

    def on_end(self, ev):
        pass


def apply_when_compiling():
    """Apply the fix when Numba first compiles something in this process."""
    event.register("numba:compile", _OnCompile())
