"""Every setting of the compiled kernels, in one place; kernels never hard-code them.

Settings only: how the kernels are compiled lives in kernels/compile.py, OpenBLAS's discovery in
kernels/blas_library.py. The measurements behind the thresholds are in the README's Performance
section and come from scripts/crossover.py, which re-measures them.

Environment variables read at import (set them before `import fastbp`):
  FASTBP_FASTMATH=0       strict IEEE order (no reassociation, no fused multiply-add)
  FASTBP_CACHE=0          no on-disk kernel cache (every process compiles what it calls; a general
                          build on disk goes unused, and `fastbp compile` refuses)
  FASTBP_CACHE_DIR        the cache's parent directory (default NUMBA_CACHE_DIR, else ~/.cache/fastbp)
  FASTBP_QUIET=1          no line on stderr when a first call compiles kernels
  FASTBP_NUMBA_INLINE_COPIES=1  keep Numba's needless copies of inlined code (kernels/inline_copies.py)
  FASTBP_LINK_KERNELS=1   link a copy of each kernel's code into every caller, as Numba does
                          (kernels/own_code.py)
  FASTBP_COMPILE_HELPER=0 a first fit compiles in this process only, not also in a helper process
  FASTBP_TIERED=0         a short first fit waits for the fastest build of its kernels instead of
                          running a quick build while the fastest compiles in the background
  FASTBP_SPECIALIZE=0     every fit runs the general drivers (one long compile that serves any
                          network) instead of a variant compiled for the network's features
  FASTBP_BLAS=0           every product in fastbp's own kernels, never OpenBLAS
  FASTBP_SPLIT_INPUTS=0   multi-threaded training steps cut layers by batch rows, as inference does
  FASTBP_VECTOR_BYTES     the tiles' vector width (32: AVX2, 64: AVX-512), instead of the CPU's
  FASTBP_PARALLEL_MIN_FLOP  the work below which a batch runs on one thread
  FASTBP_PACE=0           threaded fits always use every thread, even on a busy machine
  FASTBP_OMP_SPINCOUNT    an OpenMP thread's spins at a region's end before it sleeps (0: libgomp's)
  FASTBP_CUDA_TILE, FASTBP_CUDA_BLOCK  CUDA launch geometry
"""
import os

# ---- compilation (kernels/compile.py) ----
# LLVM flags: "reassoc" lets LLVM vectorize reductions (dot products), "contract" allows fused
# multiply-add. "nnan"/"ninf" stay off so that NaN and infinity checks keep their meaning.
FASTMATH = (set() if os.environ.get("FASTBP_FASTMATH", "1") == "0"
            else {"reassoc", "contract", "arcp", "nsz"})
CACHE = os.environ.get("FASTBP_CACHE", "1") != "0"
CACHE_PARENT = os.environ.get("FASTBP_CACHE_DIR")
# A fit compiles a variant of the drivers holding only the branches its network takes (a few
# seconds; kernels/cpu/needs.py) instead of the general build, which holds every activation,
# loss, optimizer and feature (tens of seconds). The general build pays off for a process that
# trains many different networks, such as a sweep over activations and optimizers.
SPECIALIZE = os.environ.get("FASTBP_SPECIALIZE", "1") != "0"
# A call still compiling after NOTICE_SECONDS says so on stderr, once per process (code loaded
# from the disk cache is ready sooner, and says nothing); FASTBP_QUIET=1 keeps it silent.
NOTICE_SECONDS = 0.5
QUIET = os.environ.get("FASTBP_QUIET", "0") not in ("0", "")
# Division by zero gives inf or NaN (NumPy's rule) rather than raising (Python's): the check
# Python's rule puts before every division keeps a loop from vectorising. Non-finite results are
# caught where they matter: the fit stops on a non-finite loss or weight.
ERROR_MODEL = "numpy"
# Numba's inliner deep-copies the fresh IR of every inlined call twice, for nothing; fastbp's glue
# is inlined in deep layers, so the copies are much of a first fit's compile. Off (the default),
# kernels/inline_copies.py skips them where Numba's source is one it checked; the generated code
# is the same either way.
NUMBA_INLINE_COPIES = os.environ.get("FASTBP_NUMBA_INLINE_COPIES", "0") not in ("0", "")
# Numba links a copy of every kernel's code into each function that calls it (a driver calls
# nearly all), and LLVM compiles each copy again there. Off (the default), kernels/own_code.py
# has a call run the kernel's own compiled code where the Numba release is one it checked.
LINK_KERNELS = os.environ.get("FASTBP_LINK_KERNELS", "0") not in ("0", "")

# A first fit into an empty cache compiles its driver's kernels in two processes, this one from
# the start of the list and a helper from the end (kernels/compile_helper.py), where the process
# may use two CPUs; for functions that reach at least COMPILE_HELPER_MIN_KERNELS kernels (a
# helper's start, about half a second of the other CPU, is not worth it for fewer).
# FASTBP_COMPILE_HELPER=0: this process compiles everything itself.
COMPILE_HELPER = os.environ.get("FASTBP_COMPILE_HELPER", "1") != "0"
COMPILE_HELPER_MIN_KERNELS = 4
# FASTBP_COMPILE_HELPER_LOG=path: the helpers append what they list and compile there
COMPILE_HELPER_LOG = os.environ.get("FASTBP_COMPILE_HELPER_LOG") or None
# Tiered builds (kernels/tier.py): a training or evaluation call whose fastest build is not in the
# cache yet, and whose work the naive loops finish in QUICK_MAX_SECONDS (estimated at NAIVE_FLOPS
# floating-point operations a second, below their slowest measured rate: float64 512-wide
# layers, scripts/crossover.py --quick), runs a quick build (naive dense loops, one
# thread: a fraction of the compile) while a background process at the lowest priority compiles
# the fastest build into the cache; calls switch to it once it is there. Bigger calls compile the
# fastest build first, as without tiers. FASTBP_TIERED=0: always the fastest build (benchmarks).
TIERED = os.environ.get("FASTBP_TIERED", "1") != "0"
QUICK_MAX_SECONDS = 4.0
NAIVE_FLOPS = 1e9

# ---- blocks and chunks ----
EVAL_CHUNK = 1024    # rows per block when predicting or scoring (cpu and cuda): bounds the scratch
WORKSPACE_SHARE_BYTES = 64 * 2**20   # cpu workspaces kept for the next network of a layout (in all)
REDUCE_CHUNKS = 64   # fixed chunks for long sums: thread-count-independent, no allocation
COLUMN_BLOCK = 64    # columns per thread's block in column sums and batch norm: one vector loop a row
TRANSPOSE_SERIAL = 16384   # transposes of up to this many elements (L1-resident) run on one thread

# ---- threads ----
# A training batch (or evaluation block) of fewer floating-point operations runs on one thread,
# through the single-threaded twins of the kernels (the crossover of scripts/crossover.py).
PARALLEL_MIN_FLOP = int(os.environ.get("FASTBP_PARALLEL_MIN_FLOP", 20_000_000))
# Pacing (kernels/cpu/pace.py): a threaded fit times windows of at least PACE_WINDOW seconds;
# when the process got less than PACE_SHARE of a CPU per thread in one, the threads waited for
# cores (a busy machine), and the next window tries one thread. A lost trial doubles the wait
# before the next, from PACE_FIRST_WAIT up to PACE_MAX_WAIT seconds, and the wait is at least
# PACE_COST times the time the slower thread count lost in its window: on a busy machine one
# batch on all threads can take a hundred times one thread's (README, "On a busy machine"). A trial
# ends early, after a quarter window, once it is PACE_LOST times slower per row than the window
# before it. FASTBP_PACE=0: no pacing.
PACE = os.environ.get("FASTBP_PACE", "1") != "0"
PACE_WINDOW = 0.004
PACE_SHARE = 0.8
PACE_FIRST_WAIT = 0.04
PACE_MAX_WAIT = 2.0
PACE_COST = 10.0
PACE_LOST = 2.0
# The spins of an OpenMP thread that waits at the end of a parallel region before it sleeps
# (GOMP_SPINCOUNT, set for libgomp before Numba's pool starts; kernels/cpu/threads.py): enough for
# the gaps between a step's regions on a quiet machine, few enough that a thread waiting for a
# descheduled one soon gives up its core (scripts/contention.py, README "On a busy machine").
# FASTBP_OMP_SPINCOUNT=0 leaves libgomp's default.
OMP_SPINCOUNT = int(os.environ.get("FASTBP_OMP_SPINCOUNT", 3000))
# A multiply-add of a sparse first layer counts as this many toward PARALLEL_MIN_FLOP: it reads a
# row of W that the data picks, mostly from memory, where threads pay off at about an eighth of
# the dense work (scripts/sparse_peers.py --crossover).
SPARSE_MAC_WEIGHT = 8
# A multi-threaded training step cuts gemm_tiled layers of SPLIT_MIN_WEIGHTS weights or more by
# W's rows (dense.split_by_inputs), at least SPLIT_MIN_ROWS rows of W per thread (whole
# transpose blocks); below that size the split gains nothing (scripts/crossover.py --split).
SPLIT_INPUTS = os.environ.get("FASTBP_SPLIT_INPUTS", "1") != "0"
SPLIT_MIN_WEIGHTS = 32 * 1024
SPLIT_MIN_ROWS = 16

# ---- the dense layer's paths (dense.forward_path / backward_path; scripts/crossover.py) ----
GEMM_MIN_WEIGHTS = 64     # the naive loops below this many weights
NAIVE_VECTOR_OUTPUTS = 4  # the naive forward loops run over the outputs as vectors from this many, below
                          # it sum each output in a register (scripts/crossover.py --naive)
GEMM_NARROW = 16          # gemm_nt forward for layers of fewer outputs than this ...
GEMM_NARROW_MIN_ROWS = 8  # ... from this many batch rows
SERIAL_MACS = 512 * 1024  # narrow backward passes of fewer multiply-adds: one thread
GEMM_PANEL_BYTES = 512 * 1024   # gemm_nt's B panel, and the most weights gemm_tiled takes
                                # (L2-resident: 2 MB per core on the development machine)


def _vector_bytes():
    # AVX-512's 64-byte vectors where the CPU Numba compiles for has them (NUMBA_CPU_FEATURES,
    # else the host's), else AVX2's 32 (LLVM splits them further on narrower targets: correct,
    # slower).
    if os.environ.get("FASTBP_VECTOR_BYTES"):
        return int(os.environ["FASTBP_VECTOR_BYTES"])
    features = os.environ.get("NUMBA_CPU_FEATURES")
    if not features:
        import llvmlite.binding as ll
        features = ll.get_host_cpu_features().flatten()
    return 64 if "+avx512f" in features.split(",") else 32


# gemm_tiled's micro-tile (kernels/cpu/tiles.py): TILE_ROWS rows x TILE_VECTORS vectors of C in
# registers, TILE_ROWS * TILE_VECTORS accumulators of the 32 vector registers AVX-512 has (of 16
# with AVX2), leaving registers for the loaded B vectors and a broadcast; of the shapes tried on
# AVX-512 (8 x 2, 6 x 2, 4 x 1), 8 x 2 ran fastest.
VECTOR_BYTES = _vector_bytes()
TILE_ROWS = 8 if VECTOR_BYTES >= 64 else 6
TILE_VECTORS = 2

# ---- OpenBLAS (NumPy's own, kernels/blas_library.py) ----
# For the products of a dense layer whose weights outgrow GEMM_PANEL_BYTES, from BLAS_MIN_MACS
# multiply-adds (batch rows x n_in x n_out); each thread calls it on a block of at least
# BLAS_ROWS rows or columns, cut by columns where that packs less, unless the summed axis is
# shorter than BLAS_MIN_K_COLUMNS (then packing is cheap and rows win).
BLAS = os.environ.get("FASTBP_BLAS", "1") != "0"
BLAS_MIN_MACS = 2 ** 22
BLAS_ROWS = 16
BLAS_MIN_K_COLUMNS = 64

# ---- CUDA launch geometry ----
# The simulator runs every GPU thread as a Python thread: tests shrink the blocks
# (FASTBP_CUDA_TILE=4, FASTBP_CUDA_BLOCK=32) so that partial tiles and several blocks stay cheap.
CUDA_TILE = int(os.environ.get("FASTBP_CUDA_TILE", 16))     # GEMM tiles: CUDA_TILE^2 threads
CUDA_BLOCK = int(os.environ.get("FASTBP_CUDA_BLOCK", 256))  # threads per 1-D block
