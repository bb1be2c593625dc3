"""The register-tiled GEMM: gemm_tiled computes C = op(A) B one tile of C at a time, with the
tile held in vector registers for the whole summed axis.

tile_fma is the micro-kernel. It is a Numba intrinsic that writes the loop as LLVM IR with
explicit vector types, because LLVM's loop vectorizer does not find this shape in plain loops:
given `c[j] += a * b[p, j]` it vectorizes over j but keeps C in memory, one load and one store
of C per group of multiply-adds, at about a third of this tile's rate (the README's "The register
tiles" has the figures).

For each p of the summed axis the tile loads TILE_VECTORS vectors from row p of B (rows of B
are contiguous), broadcasts TILE_ROWS elements of column p of op(A), and does one fused
multiply-add per accumulator: TILE_ROWS x TILE_VECTORS accumulators (config: 8 x 2 zmm with
AVX-512, 6 x 2 ymm with AVX2, leaving registers for the B vectors and a broadcast). Nothing is
packed: B's rows are read where they lie, which suits the small and mid-sized products of a
training step (OpenBLAS spends much of its time at these sizes packing); products whose B
does not stay in L2 go to gemm_nt or OpenBLAS instead (dense.forward_path).
"""
from collections import namedtuple

import llvmlite.ir as lir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ... import config
from ..compile import THREADED, kernel, serial, serial_kernel, switch
from .threads import thread_count, thread_share


def _tile_of(name, rows_of):
    """The tile micro-kernel `name` (tile_fma, row_fma) of rows_of() rows, read when a kernel
    using it is typed (as config is)."""
    def tile(typingctx, C, A, B, bias, has_bias, i0, j0, K, sa, sp):
        return _tile_codegen(rows_of(), C, A, B, bias, has_bias)
    tile.__name__ = tile.__qualname__ = name
    return intrinsic(tile)


def _tile_codegen(rows, C, A, B, bias, has_bias):
    nvec = config.TILE_VECTORS
    fused = "contract" in config.FASTMATH   # FASTBP_FASTMATH=0: separate multiply and add

    def codegen(context, builder, sig, args):
        c, a, b, bias, has_bias, i0, j0, K, sa, sp = args
        ct, at, bt, biast = sig.args[:4]
        elt = context.get_value_type(ct.dtype)
        size = context.get_abi_sizeof(elt)
        width = config.VECTOR_BYTES // size
        vec = lir.VectorType(elt, width)
        i64 = lir.IntType(64)
        fma = cgutils.get_or_insert_function(
            builder.module, lir.FunctionType(vec, [vec, vec, vec]),
            "llvm.fma.v%d%s" % (width, "f32" if size == 4 else "f64"))
        carr = context.make_array(ct)(context, builder, c)
        aarr = context.make_array(at)(context, builder, a)
        barr = context.make_array(bt)(context, builder, b)
        # row strides of C and B, in elements
        ldc = builder.sdiv(builder.extract_value(carr.strides, 0), lir.Constant(i64, size))
        ldb = builder.sdiv(builder.extract_value(barr.strides, 0), lir.Constant(i64, size))

        def const(k):
            return lir.Constant(i64, k)

        def at_(ptr, offset):
            return builder.bitcast(builder.gep(ptr, [offset]), vec.as_pointer())

        # accumulators start from the bias or zero (allocas in the entry block, which LLVM
        # promotes to registers)
        biasarr = context.make_array(biast)(context, builder, bias)
        with_bias = context.cast(builder, has_bias, sig.args[4], types.boolean)
        start = [cgutils.alloca_once(builder, vec) for _ in range(nvec)]
        with builder.if_else(with_bias) as (then, otherwise):
            with then:
                for v in range(nvec):
                    builder.store(builder.load(at_(biasarr.data, builder.add(j0, const(v * width))), align=size),
                                  start[v])
            with otherwise:
                for v in range(nvec):
                    builder.store(lir.Constant(vec, None), start[v])
        first = [builder.load(slot) for slot in start]
        acc = []
        for r in range(rows):
            row = builder.mul(builder.add(i0, const(r)), ldc)
            for v in range(nvec):
                offset = builder.add(row, builder.add(j0, const(v * width)))
                slot = cgutils.alloca_once(builder, vec)
                builder.store(first[v], slot)
                acc.append((slot, offset))
        zeros = lir.Constant(lir.VectorType(lir.IntType(32), width), [0] * width)
        with cgutils.for_range(builder, K) as loop:
            p = loop.index
            brow = builder.add(builder.mul(p, ldb), j0)
            bvec = [builder.load(at_(barr.data, builder.add(brow, const(v * width))), align=size)
                    for v in range(nvec)]
            pa = builder.mul(p, sp)
            for r in range(rows):
                x = builder.load(builder.gep(aarr.data, [builder.add(builder.mul(builder.add(i0, const(r)), sa), pa)]))
                xs = builder.shuffle_vector(builder.insert_element(lir.Constant(vec, None), x, lir.Constant(lir.IntType(32), 0)),
                                            lir.Constant(vec, None), zeros)
                for v in range(nvec):
                    slot = acc[r * nvec + v][0]
                    old = builder.load(slot)
                    new = (builder.call(fma, [xs, bvec[v], old]) if fused
                           else builder.fadd(builder.fmul(xs, bvec[v]), old))
                    builder.store(new, slot)
        for slot, offset in acc:
            builder.store(builder.load(slot), at_(carr.data, offset), align=size)
        return context.get_dummy_value()

    return types.void(C, A, B, bias, has_bias, types.intp, types.intp, types.intp, types.intp, types.intp), codegen


# tile_fma(C, A, B, bias, has_bias, i0, j0, K, sa, sp): C[i0:i0+R, j0:j0+NR] = op(A)[i0:i0+R, :K]
# @ B[:K, j0:j0+NR] (+ bias[j0:j0+NR] on every row when has_bias), with R = TILE_ROWS and NR =
# TILE_VECTORS vectors of VECTOR_BYTES; op(A)[i, p] is A's element at flat offset i * sa + p * sp
# (so one intrinsic serves A and A^T). The accumulators start from the bias or zero, never from
# C: C is only written, so the caller fills nothing beforehand (a fill, then a load of what it
# wrote, cost a memset per product). The caller guarantees the tile lies inside C and that rows
# of B and C and the bias are contiguous.
tile_fma = _tile_of("tile_fma", lambda: config.TILE_ROWS)
# row_fma: the same for one row of C (R = 1), for products of fewer rows than a tile
# (row_product); its TILE_VECTORS chains of multiply-adds are fewer than the FMA units can
# overlap, but they stay in registers where block_product's edge loops add into memory
row_fma = _tile_of("row_fma", lambda: 1)


def transpose_plan(w, lane):
    """How transpose_block turns w rows of w elements (lane of them to a 128-bit lane) into
    the w columns: a list of rounds, each a list of (a, b, mask), the shuffle of vectors a and
    b of the round before (the rows, to begin with) by a mask of `shufflevector` (0 to w-1 from
    a, w to 2w-1 from b). The last round's vectors are the columns in order.

    The first rounds transpose lane x lane blocks inside each 128-bit lane (unpack patterns,
    which stay in their lane); then whole lanes move between vectors (two lanes from each
    source, a lane shuffle). Row-wide interleaving instead (each round mixing elements across
    lanes, one permute of two sources each) measured slower on AVX-512 with as many shuffles
    (the README's "Transposes and narrow output layers" has the figures)."""
    if lane not in (2, 4) or w % lane or w // lane not in (2, 4):
        raise ValueError(f"no transpose plan for {w}-element vectors of {lane}-element lanes")
    lanes = w // lane

    def unpack(unit, hi):   # units of `unit` elements of a and b, alternately, from each lane's low or high half
        mask = []
        for ln in range(lanes):
            base = ln * lane + (lane // 2 if hi else 0)
            for u in range(lane // (2 * unit)):
                mask += [base + u * unit + e for e in range(unit)] + [w + base + u * unit + e for e in range(unit)]
        return mask

    def pick(sources):      # whole lanes: (0 for a or 1 for b, its lane) for each lane of the result
        return [src * w + ln * lane + e for src, ln in sources for e in range(lane)]

    rounds = []
    if lane == 4:           # 4 x 4 blocks in two rounds: pairs of elements, then pairs of pairs
        rounds.append([(2 * i, 2 * i + 1, unpack(1, hi)) for i in range(w // 2) for hi in (False, True)])
        rounds.append([(4 * g + odd, 4 * g + 2 + odd, unpack(2, hi))
                       for g in range(w // 4) for odd in (0, 1) for hi in (False, True)])
    else:                   # 2 x 2 blocks in one round
        rounds.append([(2 * g, 2 * g + 1, unpack(1, hi)) for g in range(w // 2) for hi in (False, True)])
    # now vector lane * g + c holds, in its lane ln, column lane * ln + c of rows lane * g onwards
    if lanes == 2:
        rounds.append([(c, lane + c, pick([(0, ln), (1, ln)])) for ln in range(2) for c in range(lane)])
    else:                   # four lanes from four vectors: pairs of lanes, then the pairs
        halves = [(lane * 2 * p + c, lane * (2 * p + 1) + c, pick([(0, 2 * h), (0, 2 * h + 1), (1, 2 * h), (1, 2 * h + 1)]))
                  for c in range(lane) for p in range(2) for h in range(2)]
        rounds.append(halves)
        at = {(c, p, h): 4 * c + 2 * p + h for c in range(lane) for p in range(2) for h in range(2)}
        rounds.append([(at[c, 0, ln // 2], at[c, 1, ln // 2], pick([(0, ln % 2), (0, 2 + ln % 2), (1, ln % 2), (1, 2 + ln % 2)]))
                       for ln in range(4) for c in range(lane)])
    return rounds


_Block = namedtuple("_Block", ["size", "w", "vec", "i64", "i32", "tarr", "marr", "ldt"])


def _block_of(context, builder, sig, args):
    """What the block intrinsics (transpose_block, the narrow shuffles, the windows) take from
    their first two arguments, T and M: the element size, w (elements in a vector of
    VECTOR_BYTES), the vector type, the integer types, both arrays' structures and T's row
    stride in elements."""
    tt, mt = sig.args[:2]
    elt = context.get_value_type(tt.dtype)
    size = context.get_abi_sizeof(elt)
    w = config.VECTOR_BYTES // size
    i64 = lir.IntType(64)
    tarr = context.make_array(tt)(context, builder, args[0])
    marr = context.make_array(mt)(context, builder, args[1])
    ldt = builder.sdiv(builder.extract_value(tarr.strides, 0), lir.Constant(i64, size))
    return _Block(size, w, lir.VectorType(elt, w), i64, lir.IntType(32), tarr, marr, ldt)


def _vector_at(builder, blk, data, offset):
    """A pointer to the vector at element `offset` of `data`."""
    return builder.bitcast(builder.gep(data, [offset]), blk.vec.as_pointer())


def _transposed(builder, blk, rows):
    """The w vectors of `rows` transposed as a w x w block (transpose_plan's shuffles)."""
    for shuffles in transpose_plan(blk.w, 16 // blk.size):
        rows = [builder.shuffle_vector(rows[a], rows[b], lir.Constant(lir.VectorType(blk.i32, blk.w), mask))
                for a, b, mask in shuffles]
    return rows


@intrinsic
def transpose_block(typingctx, T, M, i0, j0):
    """T[j0:j0+w, i0:i0+w] = M[i0:i0+w, j0:j0+w]^T for one w x w block, w the elements in a
    vector of VECTOR_BYTES: w vector loads of M's rows, the shuffles of transpose_plan, w
    vector stores into T's rows. Element by element, a transpose did one load and one store per
    element, and took longer than the product it serves."""
    def codegen(context, builder, sig, args):
        i0, j0 = args[2:]
        blk = _block_of(context, builder, sig, args)
        w, size, i64 = blk.w, blk.size, blk.i64
        ldm = builder.sdiv(builder.extract_value(blk.marr.strides, 0), lir.Constant(i64, size))

        def row_ptr(arr, ld, r, c0):
            return _vector_at(builder, blk, arr.data, builder.add(builder.mul(r, ld), c0))

        rows = [builder.load(row_ptr(blk.marr, ldm, builder.add(i0, lir.Constant(i64, r)), j0), align=size)
                for r in range(w)]
        rows = _transposed(builder, blk, rows)
        for c in range(w):
            builder.store(rows[c], row_ptr(blk.tarr, blk.ldt, builder.add(j0, lir.Constant(i64, c)), i0), align=size)
        return context.get_dummy_value()

    return types.void(T, M, types.intp, types.intp), codegen


@serial
def transpose_rows(T, M, ib):
    """Rows ib * w to ib * w + w of M into the same columns of T: whole blocks, then the
    columns right of them (or, for the last m % w rows, every column) one element at a time."""
    m, n = M.shape
    w = config.VECTOR_BYTES // M.itemsize
    i0 = ib * w
    lo = 0
    if i0 + w <= m:
        for j0 in range(0, n - n % w, w):
            transpose_block(T, M, i0, j0)
        lo = n - n % w
    for i in range(i0, min(m, i0 + w)):
        for j in range(lo, n):
            T[j, i] = M[i, j]


@serial_kernel
def transpose_serial(T, M):
    """transpose on the calling thread."""
    m, n = M.shape
    w = config.VECTOR_BYTES // M.itemsize
    if n < w:   # (a narrow layer's W, for the blocked forward pass)
        gather_narrow(T, M)
        return
    for ib in range((m + w - 1) // w):
        transpose_rows(T, M, ib)


@kernel
def transpose(T, M):
    """T (n, m) = M (m, n)^T, in vector blocks (transpose_block); parallel over blocks of rows
    of M, which write disjoint columns of T. Up to config.TRANSPOSE_SERIAL elements (L1-resident),
    one thread; an M of fewer columns than a vector holds, by gather_narrow."""
    m, n = M.shape
    w = config.VECTOR_BYTES // M.itemsize
    blocks = (m + w - 1) // w
    # (the twin compiles this branch only: a one-thread fit need not compile _transpose_part)
    if not THREADED or n < w or m * n <= config.TRANSPOSE_SERIAL:
        transpose_serial(T, M)
        return
    threads = min(thread_count(), blocks)
    for k in prange(threads):
        ib0, ib1 = thread_share(blocks, k, threads)
        _transpose_part(T, M, ib0, ib1)


@serial_kernel
def _transpose_part(T, M, ib0, ib1):
    for ib in range(ib0, ib1):
        transpose_rows(T, M, ib)


def _narrow_shuffle(n, to_narrow):
    """The intrinsic that moves one block of w rows (w the elements in a vector of
    VECTOR_BYTES) between a narrow matrix of n columns and its transpose: gather (to_narrow
    False): T[:, i0:i0+w] = M[i0:i0+w, :]^T; scatter (to_narrow True): M[i0:i0+w, :] =
    T[:, i0:i0+w]^T. M's block is n * w contiguous elements (n vectors); one shuffle of all n
    vectors per output vector. Element by element, the two transposes of an output layer of 2
    units took longer than the products they serve (the README's "Transposes and narrow output
    layers")."""
    def shuffle_block(typingctx, T, M, i0):
        def codegen(context, builder, sig, args):
            i0 = args[2]
            blk = _block_of(context, builder, sig, args)
            w, size, i64, i32 = blk.w, blk.size, blk.i64, blk.i32

            def t_row(j):
                return _vector_at(builder, blk, blk.tarr.data, builder.add(builder.mul(lir.Constant(i64, j), blk.ldt), i0))

            def m_part(k):
                return _vector_at(builder, blk, blk.marr.data,
                                  builder.add(builder.mul(i0, lir.Constant(i64, n)), lir.Constant(i64, k * w)))

            def concat(parts):   # one vector of all parts, padded with zeros to a power of two
                while len(parts) > 1:
                    if len(parts) % 2:
                        parts = parts + [lir.Constant(parts[0].type, None)]
                    width = parts[0].type.count
                    both = lir.Constant(lir.VectorType(i32, 2 * width), list(range(2 * width)))
                    parts = [builder.shuffle_vector(parts[k], parts[k + 1], both) for k in range(0, len(parts), 2)]
                return parts[0]

            def pick(whole, sources):
                mask = lir.Constant(lir.VectorType(i32, w), sources)
                return builder.shuffle_vector(whole, lir.Constant(whole.type, None), mask)

            if to_narrow:   # element (r, j) of M's block from T's row j
                whole = concat([builder.load(t_row(j), align=size) for j in range(n)])
                for k in range(n):
                    flat = [k * w + e for e in range(w)]
                    builder.store(pick(whole, [(f % n) * w + f // n for f in flat]), m_part(k), align=size)
            else:           # T's row j from elements (r, j) of M's block
                whole = concat([builder.load(m_part(k), align=size) for k in range(n)])
                for j in range(n):
                    builder.store(pick(whole, [r * n + j for r in range(w)]), t_row(j), align=size)
            return context.get_dummy_value()

        return types.void(T, M, types.intp), codegen
    shuffle_block.__name__ = shuffle_block.__qualname__ = "%s_narrow_%d" % ("scatter" if to_narrow else "gather", n)
    return intrinsic(shuffle_block)


_gather_2, _gather_3, _gather_4 = (_narrow_shuffle(n, False) for n in (2, 3, 4))
_scatter_2, _scatter_3, _scatter_4 = (_narrow_shuffle(n, True) for n in (2, 3, 4))
NARROW_SHUFFLED = 4   # the most columns gather_narrow and scatter_narrow shuffle whole vectors of
# The narrow transposes compiled in: the column counts shuffled whole, and whether windows serve
# NARROW_SHUFFLED + 1 to w - 1 columns. A network's variant narrows them to its layers' widths
# (needs.py): a digits fit (10 outputs) compiles no shuffle. A matrix whose kind a variant lacks
# goes element by element: slower, never wrong.
NARROW_SHUFFLES = switch("NARROW_SHUFFLES", (2, 3, 4))
NARROW_WINDOWS = switch("NARROW_WINDOWS", True)


@intrinsic
def _gather_window(typingctx, T, M, i0, shift):
    """T[:, i0:i0+w] = M[i0:i0+w, :]^T for an M of n < w columns with contiguous rows: each row
    loaded as a whole vector from `shift` elements before its start (0, or w - n where a window
    from the start would read past M's end: the caller keeps every window inside M), the w x w
    block transposed as transpose_block does, and only the n rows of T that hold M's columns
    stored (rows `shift` to `shift + n` of the block). Loads only outside the rows it transposes,
    never stores: threads may gather neighbouring blocks at once."""
    def codegen(context, builder, sig, args):
        i0, shift = args[2:]
        blk = _block_of(context, builder, sig, args)
        w, size, i64 = blk.w, blk.size, blk.i64
        n = builder.extract_value(blk.marr.shape, 1)
        rows = [builder.load(_vector_at(builder, blk, blk.marr.data,
                                        builder.sub(builder.mul(builder.add(i0, lir.Constant(i64, r)), n), shift)),
                             align=size) for r in range(w)]
        rows = _transposed(builder, blk, rows)
        for c in range(w):   # column c of the window is column c - shift of M
            col = builder.sub(lir.Constant(i64, c), shift)
            inside = builder.and_(builder.icmp_signed(">=", col, lir.Constant(i64, 0)), builder.icmp_signed("<", col, n))
            with builder.if_then(inside):
                builder.store(rows[c], _vector_at(builder, blk, blk.tarr.data, builder.add(builder.mul(col, blk.ldt), i0)),
                              align=size)
        return context.get_dummy_value()

    return types.void(T, M, types.intp, types.intp), codegen


@intrinsic
def _scatter_window(typingctx, T, M, i0, count):
    """M[i0:i0+count, :] = T[:, i0:i0+w]^T for an M of n < w columns with contiguous rows, T
    having w columns from i0: the n rows of T and w - n of zeros as a w x w block, transposed as
    transpose_block does, and each of the first `count` rows of the result stored as a whole
    vector from the start of its row of M: n elements of the row, then w - n zeros past its end,
    over the rows after it. The caller writes those rows later (the stores go in order of rows)
    and keeps every store inside M: only for a thread that alone writes M."""
    def codegen(context, builder, sig, args):
        i0, count = args[2:]
        blk = _block_of(context, builder, sig, args)
        w, size, i64 = blk.w, blk.size, blk.i64
        n = builder.extract_value(blk.marr.shape, 1)
        rows = []
        for j in range(w):   # row j of T where it exists, zeros below (selected: no load past T)
            slot = cgutils.alloca_once_value(builder, lir.Constant(blk.vec, None))
            with builder.if_then(builder.icmp_signed("<", lir.Constant(i64, j), n)):
                at = builder.add(builder.mul(lir.Constant(i64, j), blk.ldt), i0)
                builder.store(builder.load(_vector_at(builder, blk, blk.tarr.data, at), align=size), slot)
            rows.append(builder.load(slot))
        rows = _transposed(builder, blk, rows)
        for r in range(w):   # in order of rows: each store's spill is overwritten by the next
            with builder.if_then(builder.icmp_signed("<", lir.Constant(i64, r), count)):
                at = builder.mul(builder.add(i0, lir.Constant(i64, r)), n)
                builder.store(rows[r], _vector_at(builder, blk, blk.marr.data, at), align=size)
        return context.get_dummy_value()

    return types.void(T, M, types.intp, types.intp), codegen


@serial
def _packed(M):
    """Whether M's rows lie one after another in memory (a block of rows is whole vectors)."""
    return M.strides[0] == M.shape[1] * M.itemsize and M.strides[1] == M.itemsize


@serial
def gather_narrow(T, M):
    """T (n, m) = M (m, n)^T on the calling thread, for an M of few columns: up to
    NARROW_SHUFFLED by shuffles of whole vectors, more but fewer than a vector holds by windows
    of w rows (_gather_window), the rows left over and an M whose rows are not adjacent by
    elements, an M of w columns or more by transpose_rows' blocks. A separate function from
    scatter_narrow so that each caller compiles only the direction it uses (both in one, with a
    flag, cost a digits fit seconds of compiling)."""
    m, n = M.shape
    w = config.VECTOR_BYTES // M.itemsize
    if n >= w:
        for ib in range((m + w - 1) // w):
            transpose_rows(T, M, ib)
        return
    done = 0
    if NARROW_WINDOWS and NARROW_SHUFFLED < n and _packed(M):
        for i0 in range(0, m - m % w, w):
            if (i0 + w - 1) * n + w <= m * n:   # every window from its row's start stays inside M
                _gather_window(T, M, i0, 0)
            elif i0 * n >= w - n:               # ... or every window ending at its row's end does
                _gather_window(T, M, i0, w - n)
            else:
                break
            done = i0 + w
    elif _packed(M):   # 2 to NARROW_SHUFFLED columns, those a variant compiled in; else none
        for i0 in range(0, m - m % w, w):
            if 2 in NARROW_SHUFFLES and n == 2:
                _gather_2(T, M, i0)
            elif 3 in NARROW_SHUFFLES and n == 3:
                _gather_3(T, M, i0)
            elif 4 in NARROW_SHUFFLES and n == 4:
                _gather_4(T, M, i0)
            else:
                break
            done = i0 + w
    for j in range(n):
        for i in range(done, m):
            T[j, i] = M[i, j]


@serial
def scatter_narrow(M, T):
    """M (m, n) = T (n, m)^T on the calling thread, for an M of few columns, as gather_narrow
    the other way; its windows (_scatter_window) write past the rows they store, so only for a
    thread that alone writes M."""
    m, n = M.shape
    w = config.VECTOR_BYTES // M.itemsize
    if n >= w:
        for ib in range((n + w - 1) // w):
            transpose_rows(M, T, ib)
        return
    done = 0
    if NARROW_WINDOWS and NARROW_SHUFFLED < n and _packed(M):
        # the rows whose whole-vector store stays inside M, in blocks inside T's columns; the
        # element loop below writes the rows after them, over the last stores' spill
        done = min(max(0, (m * n - w) // n + 1), m - m % w)
        for i0 in range(0, done, w):
            _scatter_window(T, M, i0, min(w, done - i0))
    elif _packed(M):   # as gather_narrow
        for i0 in range(0, m - m % w, w):
            if 2 in NARROW_SHUFFLES and n == 2:
                _scatter_2(T, M, i0)
            elif 3 in NARROW_SHUFFLES and n == 3:
                _scatter_3(T, M, i0)
            elif 4 in NARROW_SHUFFLES and n == 4:
                _scatter_4(T, M, i0)
            else:
                break
            done = i0 + w
    for j in range(n):
        for i in range(done, m):
            M[i, j] = T[j, i]


@serial
def _op(A, i, p, trans):
    """Element (i, p) of op(A): A[p, i] when trans, else A[i, p]."""
    return A[p, i] if trans else A[i, p]


@serial
def tile_columns(C):
    """How many columns of C one tile covers (TILE_VECTORS vectors of C's dtype)."""
    return config.TILE_VECTORS * config.VECTOR_BYTES // C.itemsize


@serial
def _axpy_rows(C, A, B, a_trans, i0, i1, j0, j1):
    """C[i0:i1, j0:j1] += op(A)[i0:i1, :] B[:, j0:j1], a scaled row of B at a time: the edges
    that hold no whole tile. (Over slices indexed from 0: the same loops over C[i, j] for j in
    range(j0, j1) ran several times slower, see dense.column_sums.)"""
    K = B.shape[0]
    for i in range(i0, i1):
        c = C[i, j0:j1]
        for p in range(K):
            x = _op(A, i, p, a_trans)
            b = B[p, j0:j1]
            for j in range(j1 - j0):
                c[j] += x * b[j]


@serial
def block_product(C, A, B, bias, has_bias, a_trans, i0, i1, j0, j1):
    """C[i0:i1, j0:j1] = op(A)[i0:i1] B[:, j0:j1] (+ bias): tile_fma on every whole tile, then
    the columns right of the tiles and the rows below them, filled with the bias first."""
    zero = C.dtype.type(0)
    item = C.itemsize
    R, NR = config.TILE_ROWS, tile_columns(C)
    i_end = i0 + (i1 - i0) // R * R
    j_end = j0 + (j1 - j0) // NR * NR
    for i in range(i0, i1):   # the edges only: the tiles start from the bias themselves
        lo = j_end if i < i_end else j0
        c = C[i, lo:j1]
        for j in range(j1 - lo):
            c[j] = bias[lo + j] if has_bias else zero
    sa, sp = (A.strides[1] // item, A.strides[0] // item) if a_trans else (A.strides[0] // item, A.strides[1] // item)
    for r in range(i0, i_end, R):
        for c0 in range(j0, j_end, NR):
            tile_fma(C, A, B, bias, has_bias, r, c0, B.shape[0], sa, sp)
    if j_end < j1:
        _axpy_rows(C, A, B, a_trans, i0, i_end, j_end, j1)
    if i_end < i1:
        _axpy_rows(C, A, B, a_trans, i_end, i1, j0, j1)


@serial
def row_product(C, A, B, a_trans, i0, i1):
    """C[i0:i1] = op(A)[i0:i1] B for fewer rows than a tile, one row of whole tiles at a time
    (row_fma), then the columns right of them: block_product would leave every row to its edge
    loops, which add into memory."""
    zero = C.dtype.type(0)
    item = C.itemsize
    n = C.shape[1]
    NR = tile_columns(C)
    j_end = n // NR * NR
    sa, sp = (A.strides[1] // item, A.strides[0] // item) if a_trans else (A.strides[0] // item, A.strides[1] // item)
    for i in range(i0, i1):
        for c0 in range(0, j_end, NR):
            row_fma(C, A, B, B[0], False, i, c0, B.shape[0], sa, sp)
        c = C[i, j_end:n]
        for j in range(n - j_end):
            c[j] = zero
    if j_end < n:
        _axpy_rows(C, A, B, a_trans, i0, i1, j_end, n)


@kernel
def gemm_tiled(C, A, B, bias, has_bias, a_trans):
    """C (m, n) = op(A) (m, K) @ B (K, n) (+ bias (n,) when has_bias); op(A) = A^T when a_trans.
    Rows of B and C contiguous.

    Parallel over blocks of TILE_ROWS rows of C, which no other block writes; each block's
    op(A) rows stay in L1 while B streams past from L2. (Cut into halves of columns instead,
    so that each thread would read only its half of a weight matrix, it measured slower: each
    thread's tiles then reach fewer rows of B per load.)"""
    m, n = C.shape
    R = config.TILE_ROWS
    blocks = (m + R - 1) // R
    threads = min(thread_count(), blocks)
    for k in prange(threads):   # thread k: its share of the blocks
        ib0, ib1 = thread_share(blocks, k, threads)
        _gemm_tiled_part(C, A, B, bias, has_bias, a_trans, ib0 * R, min(m, ib1 * R))


@serial_kernel
def _gemm_tiled_part(C, A, B, bias, has_bias, a_trans, i0, i1):
    block_product(C, A, B, bias, has_bias, a_trans, i0, i1, 0, C.shape[1])
