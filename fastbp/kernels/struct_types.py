"""Numba's type of each named structure a driver takes, remembered instead of worked out per call.

Before a compiled function runs, its dispatcher types every argument to choose the machine
code. Arrays and scalars have a fast path in C, but a named tuple is typed field by field in
Python, and a cpu Workspace has 26 fields: typing them took a large share of a small
network's whole fit, on every driver call (the README's "What the cpu backend does" has the
figures). `remember(cls)` registers, for one named-tuple class, a typing that keys on what
Numba's type of each field depends on (an array's dtype, dimensions, layout and writability; a
scalar's class) and types each new key once, the Numba way.

Fields of any other kind (the CUDA backend's device arrays, nested tuples) take Numba's own path
every call, so a structure is never given a type its fields do not have.
"""
from __future__ import annotations

import numpy as np
from numba.core.typing.typeof import _typeof_tuple, typeof_impl

_INT64 = (-2 ** 63, 2 ** 63)


def _field_key(value):
    """What Numba's type of `value` depends on, or None where this module does not know."""
    kind = type(value)
    if kind is np.ndarray:
        # the flags as one integer: contiguity, writability and alignment (and more, which only
        # makes the key finer); a dtype's .str is computed on every read, the dtype hashes fast
        return (value.dtype, value.ndim, value.flags.num)
    if kind is int:   # int64, or uint64 beyond it
        return (int, _INT64[0] <= value < _INT64[1])
    if kind is float or kind is bool or isinstance(value, np.generic):
        return kind
    return None


def remember(cls):
    """Type instances of the named-tuple class `cls` from a cache keyed by their fields."""
    cache = {}

    @typeof_impl.register(cls)
    def _typeof_struct(value, context):
        key = tuple(map(_field_key, value))
        if None in key:
            return _typeof_tuple(value, context)
        found = cache.get(key)
        if found is None:
            found = cache[key] = _typeof_tuple(value, context)
        return found
    return cls
