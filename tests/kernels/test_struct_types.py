"""fastbp/kernels/struct_types.py: a remembered structure type is always the one Numba's own
field-by-field typing gives, whatever the fields' dtype, layout, writability or alignment."""

import numpy as np
import pytest
from numba import typeof
from numba.core.typing.typeof import Purpose, _TypeofContext, _typeof_tuple

from fastbp.kernels import args
from fastbp.kernels.cpu import driver  # noqa: F401  (registers the structures)


def numba_own(value):
    """Numba's type of a tuple, field by field, with no cache."""
    return _typeof_tuple(value, _TypeofContext(Purpose.argument))


def unaligned(n, dtype):
    raw = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)
    return raw[1:].view(dtype)


def variants_of(a):
    """Arrays that differ from `a` in one attribute Numba's type of an array may read."""
    ro = a.copy()
    ro.flags.writeable = False
    yield ro
    yield a.astype(np.float32 if a.dtype == np.float64 else np.float64)
    yield np.zeros((a.size, 2), a.dtype)[:, 0]   # not contiguous: layout A
    yield np.zeros((2, a.size), a.dtype, order="F")[0]   # strided the other way
    yield np.zeros(a.shape + (1,), a.dtype)   # one more dimension
    yield unaligned(a.size, a.dtype)


def a_net():
    f = np.zeros(6)
    return args.Net(f, f.copy(), f.copy(), np.zeros((2, 3), np.int64), np.zeros((2, 2)), np.zeros((1, 2), np.int64))


def test_every_field_change_gives_numbas_own_type_and_the_cache_never_answers_for_another():
    base = a_net()
    assert typeof(base) == numba_own(base)
    seen = {typeof(base)}
    for field in ("params", "state", "layer_f"):
        for other in variants_of(getattr(base, field)):
            changed = base._replace(**{field: other})
            got = typeof(changed)
            assert got == numba_own(changed), (field, other.dtype, other.flags)
            seen.add(got)
            assert typeof(base) == numba_own(base)   # asked again after: still its own type
    assert len(seen) >= 13   # every variant but the unaligned ones (Numba types those alike) is new


def test_an_array_made_read_only_in_place_is_typed_anew():
    net = a_net()
    writable = typeof(net)
    net.params.flags.writeable = False
    assert typeof(net) == numba_own(net) != writable


@pytest.mark.parametrize("value", [np.float32(1), 2.5, True, 3, 2 ** 63 + 1])
def test_scalar_fields_follow_numba(value):
    h = args.Hyper(1, value, 0.0, 0.0, 0.9, 1e-5, np.uint64(7))
    assert typeof(h) == numba_own(h)
