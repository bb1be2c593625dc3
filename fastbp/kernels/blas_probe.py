"""Numba's question "is SciPy's BLAS there?" answered without importing SciPy's linear algebra.

When Numba first compiles or loads compiled code in a process, it imports numba.np.arraymath,
which asks at import whether SciPy's BLAS can be used (_check_blas, through
numba.np.linalg.ensure_blas) by importing scipy.linalg.cython_blas. With SciPy installed (any
environment with scikit-learn), that import brings scipy.linalg, its array API layer and
numpy.f2py: about 0.11 s of a 0.6 s start whose kernels all load from the disk cache (the
README's cold-start section), spent on a module no fastbp kernel uses. The answer
(arraymath._HAVE_BLAS) only chooses, when Numba compiles np.convolve or np.correlate, between
SciPy's BLAS and a plain loop; every Numba function that calls BLAS calls ensure_blas itself
when it compiles (np.dot, np.linalg), which imports SciPy's BLAS then, as it always did.

`apply()` imports numba.np.arraymath with ensure_blas answering from whether SciPy can be found
(importlib.util.find_spec: Numba imported the top-level package already, to check its version),
then gives arraymath Numba's own ensure_blas back. The two answers differ only for a SciPy whose
linear algebra is broken or built for another BLAS integer width, where Numba's import would
raise at the first compile of anything; with the probe, only code that calls BLAS fails, with
Numba's own error, when it compiles. Applied only with a Numba release whose source of
arraymath._check_blas and linalg.ensure_blas was read (VERIFIED, by version, so that a start
whose kernels all load from the cache reads no source), and only before anything imported
numba.np.arraymath; otherwise nothing changes.
"""
import hashlib
import importlib
import importlib.util
import inspect
import sys
import threading

import numba

# Numba release -> sha1 of the source (source_hash) of numba.np.arraymath's import of
# ensure_blas by name, its _check_blas (calls ensure_blas: True unless it raises ImportError,
# run once for _HAVE_BLAS) and numba.np.linalg.ensure_blas (imports scipy.linalg.cython_blas,
# then checks its integer width)
VERIFIED = {"0.68.1": "d9677a4f4c9ba30337e4e22618cf08f3a159f140"}

_lock = threading.Lock()
_applied = None


def _numba_parts():
    # numba.np.arraymath's source is read as text, not imported: importing it is what apply() changes
    from numba.np import linalg
    spec = importlib.util.find_spec("numba.np.arraymath")
    with open(spec.origin, encoding="utf-8") as f:
        text = f.read()
    start = text.index("def _check_blas(")
    end = text.index("_HAVE_BLAS = _check_blas()", start)
    binding = "from numba.np.linalg import ensure_blas\n"   # arraymath's own name for it
    return (binding if binding in text else "") + text[start:end] + inspect.getsource(linalg.ensure_blas)


def source_hash():
    """The sha1 of the Numba source this relies on (see VERIFIED)."""
    try:
        return hashlib.sha1(_numba_parts().encode()).hexdigest()
    except (OSError, ValueError, TypeError):   # no source files (a frozen or .pyc-only install)
        return None


def _scipy_findable():
    # ensure_blas's answer, for _check_blas: ImportError where there is no SciPy
    if importlib.util.find_spec("scipy") is None:
        raise ImportError("scipy 0.16+ is required for linear algebra")


def apply():
    """Install it, once per process, before Numba imports numba.np.arraymath; returns whether
    arraymath was imported with the probe."""
    global _applied
    with _lock:
        if _applied is None:
            _applied = numba.__version__ in VERIFIED and "numba.np.arraymath" not in sys.modules
            if _applied:
                from numba.np import linalg
                ensure_blas = linalg.ensure_blas
                linalg.ensure_blas = _scipy_findable
                try:
                    arraymath = importlib.import_module("numba.np.arraymath")
                finally:
                    linalg.ensure_blas = ensure_blas
                arraymath.ensure_blas = ensure_blas   # (it bound the probe at its import)
        return _applied
