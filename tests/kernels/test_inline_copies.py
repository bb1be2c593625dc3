"""fastbp/kernels/inline_copies.py: Numba's inliner without its copies of fresh IR generates the
same code, makes no copies, and is applied only to the Numba source it was checked against."""
import inspect
import json
import os
import subprocess
import sys

from fastbp.kernels import inline_copies

# Three levels of inline="always" functions, the shape of fastbp's glue (a loop calling a
# function that returns a tuple, a branch, the same callee at several call sites). Prints what
# the fix did, how many blocks inline_ir's copy_ir deep-copied, the result, and a hash of the
# LLVM IR with the mangled names (which carry a per-process counter) taken out.
PROBE = r"""
import copy, json, re, sys, hashlib
import numpy as np
from numba import njit
import fastbp.kernels.compile
from fastbp.kernels import inline_copies

copies = [0]
deepcopy = copy.deepcopy
def counting(x, memo=None):
    if sys._getframe(1).f_code.co_name == "copy_ir":
        copies[0] += 1
    return deepcopy(x, memo)
copy.deepcopy = counting

@njit(inline="always")
def pair(a, i):
    return a[i] * 2.0, a[i] + 1.0

@njit(inline="always")
def middle(a, n, flip):
    s = 0.0
    for i in range(n):
        x, y = pair(a, i)
        s += x - y if flip else x + y
    return s

@njit
def outer(a):
    return middle(a, a.shape[0], False) + middle(a, 2, True) + pair(a, 0)[1]

value = outer(np.arange(5.0))
ir = "".join(outer.inspect_llvm().values())
ir = re.sub(r"_ZN[A-Za-z0-9_$.]+", "SYM", ir)
print(json.dumps(dict(applied=bool(inline_copies.apply()), copies=copies[0], value=value,
                      ir=hashlib.sha1(ir.encode()).hexdigest(), lines=ir.count("\n"))))
"""


def _probe(keep_copies):
    env = dict(os.environ, FASTBP_CACHE="0", FASTBP_NUMBA_INLINE_COPIES="1" if keep_copies else "0")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_the_copies_numba_generates_the_same_code_and_copies_nothing():
    numba_way, fixed = _probe(keep_copies=True), _probe(keep_copies=False)
    assert not numba_way["applied"] and fixed["applied"]
    # 5 inlined calls (middle twice and pair once in outer, pair once in each inlined middle),
    # each copied block by block twice by Numba
    assert numba_way["copies"] >= 2 * 5
    assert fixed["copies"] == 0
    expected = sum(2.0 * v + v + 1.0 for v in range(5)) + sum(2.0 * v - v - 1.0 for v in range(2)) + 1.0
    assert numba_way["value"] == fixed["value"] == expected
    assert numba_way["lines"] > 20
    assert numba_way["ir"] == fixed["ir"]


def test_the_installed_numba_is_one_whose_source_was_checked():
    """Fails when a Numba release changes the functions the fix relies on. Then read
    InlineWorker.inline_ir, InlineWorker.inline_function and InlineInlinables._do_work again:
    if the copies are still needless and the original is still discarded, add the new
    source_hash() to VERIFIED; if Numba fixed the copies itself, the module can go."""
    assert inline_copies.source_hash() in inline_copies.VERIFIED


def test_a_changed_numba_source_is_not_verified(monkeypatch):
    real = inspect.getsource
    monkeypatch.setattr(inspect, "getsource", lambda f: real(f).replace("copy_ir(callee_ir)", "callee_ir"))
    assert inline_copies.source_hash() not in inline_copies.VERIFIED
    monkeypatch.setattr(inspect, "getsource", real)
    assert inline_copies.source_hash() in inline_copies.VERIFIED

