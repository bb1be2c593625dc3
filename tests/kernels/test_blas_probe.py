"""fastbp/kernels/blas_probe.py: a process that loads fastbp's kernels does not import SciPy's
linear algebra, Numba's BLAS answer is the one Numba gives, and Numba code that calls BLAS still
compiles and runs; only with a Numba release it was checked on."""
import inspect
import json
import subprocess
import sys

import numba
import pytest

from fastbp.kernels import blas_probe

# a fit through the compiled kernels (in the suite, loaded from the cache conftest built), then
# Numba functions of the user's that call BLAS
WITH_FASTBP = r"""
import json, sys
import numpy as np
import numba
import fastbp
from fastbp.kernels import blas_probe
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
y = np.array([0, 1, 1, 0])
fastbp.Network([2, 4, 2], seed=0).fit(X, y, epochs=2, batch_size=2)
from numba.np import arraymath, linalg
after_fit = {"linalg": "scipy.linalg" in sys.modules, "have_blas": arraymath._HAVE_BLAS,
             "applied": blas_probe.apply(), "own_ensure_blas": arraymath.ensure_blas is linalg.ensure_blas}
a = np.arange(12.0).reshape(3, 4)
b = np.arange(8.0).reshape(4, 2)
product = numba.njit(lambda a, b: np.dot(a, b))(a, b)
after_fit["dot_ok"] = bool(np.allclose(product, a @ b))
after_fit["correlate_ok"] = bool(np.allclose(numba.njit(lambda u, v: np.correlate(u, v))(a[0], a[1]), np.correlate(a[0], a[1])))
print(json.dumps(after_fit))
"""

# Numba on its own: its answer to the same question
NUMBA_ALONE = "import numba.np.arraymath as m; print(m._HAVE_BLAS)"

pytestmark = pytest.mark.skipif(numba.__version__ not in blas_probe.VERIFIED,
                                reason="not a Numba release blas_probe was checked on")


def _python(code, tmp_path):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_kernels_load_without_scipy_linear_algebra_and_blas_code_still_runs(tmp_path):
    seen = json.loads(_python(WITH_FASTBP, tmp_path))
    assert seen["applied"] and seen["own_ensure_blas"]
    assert seen["have_blas"] == (_python(NUMBA_ALONE, tmp_path) == "True")
    assert seen["dot_ok"] and seen["correlate_ok"]
    # SciPy's linear algebra waited for the first code that calls BLAS (np.dot, above), and
    # came with it where SciPy is installed; before that, the fit did not import it
    assert not seen["linalg"]


def test_not_applied_once_numba_imported_arraymath(tmp_path):
    code = ("import numba.np.arraymath, sys; from fastbp.kernels import blas_probe; "
            "print(blas_probe.apply())")
    assert _python(code, tmp_path) == "False"


def test_applied_only_to_a_verified_numba(monkeypatch):
    """Fails when a Numba release changes the source this relies on: read numba.np.arraymath's
    _check_blas and numba.np.linalg.ensure_blas again, and if _HAVE_BLAS still only asks
    whether ensure_blas raises ImportError, add the release's source_hash() to VERIFIED."""
    assert blas_probe.source_hash() == blas_probe.VERIFIED[numba.__version__]
    real = inspect.getsource
    monkeypatch.setattr(inspect, "getsource", lambda f: real(f).replace("ImportError", "Exception"))
    assert blas_probe.source_hash() != blas_probe.VERIFIED[numba.__version__]
