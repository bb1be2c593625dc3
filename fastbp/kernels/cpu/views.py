"""Unchecked views into the flat workspace and parameter buffers.

The drivers cut every layer's blocks out of a few flat buffers at each batch. With NumPy-style
slicing and reshape, each view costs a call into Numba's reshape helper, and cost an atomic
increment and decrement of the buffer's reference count too while the kernels ran with Numba's
reference counting (they run without it now: compile._jit); dozens of views per batch were most
of a tiny network's step (the seed workload; the README's "What the cpu backend does"). These
views are built in place with no owner (a null meminfo): they are valid only while the caller
holds the buffer, which holds for the length of a driver call, and must never be returned to
Python.
"""
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


def _itemsize(context, dtype):
    return context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(dtype)))


@intrinsic
def view1d(typingctx, buf, off, n):
    """buf[off:off + n] of a contiguous 1-D array, unchecked and uncounted."""
    ret = types.Array(buf.dtype, 1, "C")

    def codegen(context, builder, sig, args):
        src = make_array(sig.args[0])(context, builder, args[0])
        off, n = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:]))
        itemsize = _itemsize(context, buf.dtype)
        dst = make_array(ret)(context, builder)
        populate_array(dst, data=builder.gep(src.data, [off]), shape=cgutils.pack_array(builder, [n]),
                       strides=cgutils.pack_array(builder, [itemsize]), itemsize=itemsize, meminfo=None)
        return dst._getvalue()
    return ret(buf, off, n), codegen


@intrinsic
def view2d(typingctx, buf, off, rows, cols):
    """buf[off:off + rows * cols].reshape(rows, cols) of a contiguous 1-D or 2-D array (its
    flat element offset), unchecked and uncounted."""
    ret = types.Array(buf.dtype, 2, "C")

    def codegen(context, builder, sig, args):
        src = make_array(sig.args[0])(context, builder, args[0])
        off, rows, cols = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:]))
        itemsize = _itemsize(context, buf.dtype)
        dst = make_array(ret)(context, builder)
        populate_array(dst, data=builder.gep(src.data, [off]), shape=cgutils.pack_array(builder, [rows, cols]),
                       strides=cgutils.pack_array(builder, [builder.mul(cols, itemsize), itemsize]),
                       itemsize=itemsize, meminfo=None)
        return dst._getvalue()
    return ret(buf, off, rows, cols), codegen
