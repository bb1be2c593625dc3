"""Pacing: how many of Numba's threads a threaded training call runs on, chosen as it runs.

On a busy machine (another process wants the same cores) a parallel region waits at its end for
the slowest thread, and a thread the scheduler has set aside turns each of a step's dozens of
small regions into a wait for the scheduler: two threads then run several times slower than one.
No setting chosen before the fit can know this, so the training loop measures:

- It times windows of whole batches (at least config.PACE_WINDOW seconds each) on the wall clock,
  and the CPU time the process got in them. On a quiet machine every thread runs nearly all the
  time (OpenMP's threads spin through the short gaps between a step's regions), so the process
  gets about one CPU per thread; a share below config.PACE_SHARE says that some thread waited
  for a core (or, now and then on a quiet machine, slept through a longer gap: that trial loses
  and costs one short window).
- Then the next window is a *trial* on one thread. If its time per row beats the window before
  it, the fit goes on on one thread, and from time to time tries all threads again (when that
  wins, it goes back). A trial that loses doubles the wait before the next one (from
  config.PACE_FIRST_WAIT up to config.PACE_MAX_WAIT seconds), and the wait is at least
  config.PACE_COST times what the slower window lost, which bounds what trials cost; a trial
  that is already config.PACE_LOST times slower per row ends before its window is out.

The state lives in one small array per process (STATE, in every workspace, so compiled code
reads it as ws.pace): the machine's load is a fact about the process, not about one network, so
a second fit starts on what the first one learned. Threaded calls run one at a time (the
backend's lock), so no two calls share it at once. The single-threaded twins never pace.
"""
import sys

import llvmlite.ir as lir
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ... import aligned, config
from ..compile import serial
from .threads import set_thread_count

# clock_gettime's clocks: (monotonic wall clock, this process's CPU time), where the C library has
# them; elsewhere the clocks read 0, no window ever ends, and the threads stay as they are
_CLOCKS = {"linux": (1, 2), "darwin": (6, 12)}.get(sys.platform)


def _clock(which):
    @intrinsic
    def read(typingctx):
        def codegen(context, builder, sig, args):
            if _CLOCKS is None:
                return context.get_constant(types.float64, 0.0)
            timespec = lir.LiteralStructType([lir.IntType(64), lir.IntType(64)])   # time_t, long
            ts = cgutils.alloca_once(builder, timespec)
            fn = cgutils.get_or_insert_function(
                builder.module, lir.FunctionType(lir.IntType(32), [lir.IntType(32), timespec.as_pointer()]),
                "clock_gettime")
            builder.call(fn, [lir.Constant(lir.IntType(32), _CLOCKS[which]), ts])
            sec = builder.sitofp(builder.load(cgutils.gep(builder, ts, 0, 0)), lir.DoubleType())
            nsec = builder.sitofp(builder.load(cgutils.gep(builder, ts, 0, 1)), lir.DoubleType())
            return builder.fadd(sec, builder.fmul(nsec, lir.Constant(lir.DoubleType(), 1e-9)))
        return types.float64(), codegen
    return read


wall_seconds = _clock(0)
cpu_seconds = _clock(1)

# the slots of STATE: its settings (from config, in the state so that compiled code keeps no copy
# of them and a test may change them) ...
ENABLED = 0      # 1: pace (config.PACE); 0: every threaded call runs on all its threads
WINDOW = 1       # config.PACE_WINDOW
SHARE = 2        # config.PACE_SHARE
FIRST_WAIT = 3   # config.PACE_FIRST_WAIT
MAX_WAIT = 4     # config.PACE_MAX_WAIT
# ... and what it has found
ONE = 5          # 1: threaded calls run on one thread (a trial of all threads aside)
TRIAL = 6        # 1: the current window runs on the other thread count than ONE says
START = 7        # the current window's start: wall clock ...
CPU_START = 8    # ... and the process's CPU time
ROWS = 9         # rows trained in the current window
REF = 10         # seconds per row of the last window that was not a trial
NEXT = 11        # wall clock before which no trial starts
WAIT = 12        # seconds from a lost trial to the next one
TRIALS = 13      # trials run, and ...
SWITCHES = 14    # ... how many of them won (fastbp info and the tests read these)
REF_ROWS = 15    # the rows of the window REF was measured on
COST = 16        # config.PACE_COST
LOST = 17        # config.PACE_LOST
SLOTS = 18


def new_state():
    state = aligned.zeros(SLOTS, np.float64)   # on its own cache line, as every array kernels write
    state[ENABLED] = float(config.PACE and _CLOCKS is not None)
    state[WINDOW] = config.PACE_WINDOW
    state[SHARE] = config.PACE_SHARE
    state[FIRST_WAIT] = state[WAIT] = config.PACE_FIRST_WAIT
    state[MAX_WAIT] = config.PACE_MAX_WAIT
    state[COST] = config.PACE_COST
    state[LOST] = config.PACE_LOST
    return state


STATE = new_state()


def reset(state=STATE):
    """Forget what this process has found: the next threaded call starts on all threads, as a new
    process's first fit does (scripts/contention.py times every fit so)."""
    state[:] = new_state()


def describe(state=STATE):
    """A line for fastbp info: whether pacing is on, and what it has found in this process."""
    if not state[ENABLED]:
        return "off (FASTBP_PACE=0, or no clock on this platform): threaded fits use every thread"
    found = (f"; in this process {int(state[TRIALS])} trials, {int(state[SWITCHES])} switched, now on "
             f"{'one thread' if state[ONE] else 'all threads'}" if state[TRIALS] else "")
    return (f"on (FASTBP_PACE=0 turns it off): a threaded fit runs on one thread while its threads "
            f"wait for cores that other processes hold{found}")


@serial
def _threads(state, pool):
    """The thread count of the current window."""
    one = (state[ONE] != 0) != (state[TRIAL] != 0)
    return 1 if one else pool


@serial
def _new_window(state):
    state[ROWS] = 0.0
    state[START] = wall_seconds()
    state[CPU_START] = cpu_seconds()


@serial
def begin(state, pool):
    """At the start of a threaded call on `pool` threads: a new window, on the threads the
    process runs on now (a trial the last call left unfinished is dropped)."""
    if state[ENABLED] == 0 or pool == 1:
        return
    state[TRIAL] = 0.0
    _new_window(state)
    set_thread_count(_threads(state, pool))


@serial
def end(state, pool):
    """At the end of a threaded call: the calling thread's thread count as it was."""
    if state[ENABLED] != 0 and pool > 1:
        set_thread_count(pool)


@serial
def after_batch(state, rows, pool):
    """After a batch of `rows` rows: when the window is long enough, judge it and set the threads
    of the next one."""
    if state[ENABLED] == 0 or pool == 1:
        return
    state[ROWS] += rows
    now = wall_seconds()
    if not window_over(state, now):
        return
    threads = judge(state, now, cpu_seconds(), pool)
    _new_window(state)
    set_thread_count(threads)


@serial
def window_over(state, now):
    """Whether the current window ends at wall clock `now`: when it has lasted state[WINDOW]
    seconds, and a trial sooner, after a quarter of that, once it is already state[LOST] times
    slower per row than the window before it. On a busy machine a batch on all threads can take
    many times one thread's; waiting out the window would make every lost trial cost a whole
    window at that pace, where ending it once the loss is plain costs about what telling took."""
    elapsed = now - state[START]
    if elapsed >= state[WINDOW]:
        return True
    return (state[TRIAL] != 0 and elapsed >= 0.25 * state[WINDOW]
            and elapsed > state[LOST] * state[REF] * max(state[ROWS], 1.0))


@serial
def judge(state, now, cpu, pool):
    """The end of a window at wall clock `now` with the process's CPU time at `cpu`: a trial
    switches the thread count if it was faster per row than the window before it; an ordinary
    window starts a trial when one is due (on one thread: any; on all threads: only if the
    process got less than state[SHARE] of a CPU per thread). Returns the next window's threads.

    The wait before the next trial is at least state[COST] times what the slower of the two
    windows lost against the faster: on a busy machine a batch on all threads can take a hundred
    times one thread's (the woken threads wait for a core), so trials must be rare enough that
    they cost about 1/COST of the fit whatever one of them costs."""
    wall = now - state[START]
    rows = max(state[ROWS], 1.0)
    per_row = wall / rows
    if state[TRIAL] != 0:
        state[TRIAL] = 0.0
        if per_row < state[REF]:   # the other thread count is faster now: keep it
            state[ONE] = 1.0 - state[ONE]
            state[SWITCHES] += 1
            lost = (state[REF] - per_row) * state[REF_ROWS]
            state[WAIT] = state[FIRST_WAIT]
            state[REF] = per_row
            state[REF_ROWS] = rows
        else:
            lost = (per_row - state[REF]) * rows
            state[WAIT] = 2 * state[WAIT]
        state[WAIT] = min(max(state[WAIT], state[COST] * lost), state[MAX_WAIT])
        state[NEXT] = now + state[WAIT]
    else:
        state[REF] = per_row
        state[REF_ROWS] = rows
        share = (cpu - state[CPU_START]) / (max(wall, 1e-9) * _threads(state, pool))
        if now >= state[NEXT] and (state[ONE] != 0 or share < state[SHARE]):
            state[TRIAL] = 1.0
            state[TRIALS] += 1
    return _threads(state, pool)
