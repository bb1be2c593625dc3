"""fastbp/kernels/cpu/pace.py: the pacing decisions on synthetic clocks, the clocks themselves, and
fits whose thread count changes as they run (against the reference, and leaving Numba's thread
count as it was)."""
import time

import numba
import numpy as np
import pytest

import fastbp
from fastbp import config
from fastbp.kernels.cpu import pace
from fastbp.kernels.cpu.pace import (COST, ENABLED, FIRST_WAIT, LOST, MAX_WAIT, NEXT, ONE, REF, ROWS, SHARE, START,
                                     CPU_START, SWITCHES, TRIAL, TRIALS, WAIT, WINDOW)

from conftest import problem, tol


def window(state, start, cpu_start, rows):
    state[START], state[CPU_START], state[ROWS] = start, cpu_start, rows


@numba.njit
def clocks():
    """The two clocks read from compiled code, where the intrinsics live."""
    return pace.wall_seconds(), pace.cpu_seconds()


def test_clocks_read_seconds():
    t0, c0 = clocks()
    w0, p0 = time.monotonic(), time.process_time()
    # busy until 0.05 s of both clocks have passed: on a loaded machine (the suite's own workers)
    # 0.05 s of wall time may hold less than 0.03 s of this process's CPU time
    while time.monotonic() < w0 + 0.05 or time.process_time() < p0 + 0.05:
        pass
    t1, c1 = clocks()
    w1, p1 = time.monotonic(), time.process_time()
    assert abs((t1 - t0) - (w1 - w0)) < 0.01 and t1 - t0 >= 0.05
    assert abs((c1 - c0) - (p1 - p0)) < 0.01 and c1 - c0 > 0.03


def test_threads_that_waited_for_cores_start_a_trial_on_one_thread():
    s = pace.new_state()
    window(s, 10.0, 5.0, 100)
    assert pace.judge(s, 10.02, 5.02, 2) == 1   # 0.02 s of CPU in 0.02 s on 2 threads: half
    assert s[TRIAL] == 1 and s[TRIALS] == 1 and s[REF] == pytest.approx(0.02 / 100)
    s = pace.new_state()
    window(s, 10.0, 5.0, 100)
    assert pace.judge(s, 10.02, 5.039, 2) == 2   # a CPU per thread: quiet, no trial
    assert s[TRIAL] == 0 and s[TRIALS] == 0


def test_a_faster_trial_switches_and_a_slower_one_doubles_the_wait():
    s = pace.new_state()
    window(s, 10.0, 5.0, 100)
    pace.judge(s, 10.02, 5.02, 2)               # trial on one thread
    window(s, 10.02, 5.02, 150)
    s[COST] = 0.0   # the doubling alone here; the wait by cost has its own test
    assert pace.judge(s, 10.04, 5.04, 2) == 1   # 150 rows in 0.02 s beats 100: one thread
    assert s[ONE] == 1 and s[SWITCHES] == 1 and s[WAIT] == config.PACE_FIRST_WAIT
    assert s[NEXT] == pytest.approx(10.04 + config.PACE_FIRST_WAIT)
    window(s, 10.04, 5.04, 150)
    assert pace.judge(s, 10.06, 5.06, 2) == 1   # before NEXT: no trial of all threads
    assert s[TRIAL] == 0
    waits = []
    now = s[NEXT]
    for _ in range(12):   # every trial of all threads loses: the waits double up to MAX_WAIT
        window(s, now, 0.0, 150)
        assert pace.judge(s, now + 0.02, 0.02, 2) == 2 and s[TRIAL] == 1
        window(s, now + 0.02, 0.0, 100)
        assert pace.judge(s, now + 0.04, 0.08, 2) == 1 and s[TRIAL] == 0
        waits.append(s[WAIT])
        assert s[NEXT] == pytest.approx(now + 0.04 + s[WAIT])
        now = s[NEXT]
    assert waits[:3] == [2 * config.PACE_FIRST_WAIT, 4 * config.PACE_FIRST_WAIT, 8 * config.PACE_FIRST_WAIT]
    assert waits[-1] == s[MAX_WAIT] == config.PACE_MAX_WAIT
    assert s[ONE] == 1 and s[SWITCHES] == 1


def lose_a_trial_of_all_threads(s, seconds, rows):
    """From one thread (1600 rows in 10 ms a window): a trial on all threads, `rows` in `seconds`."""
    window(s, s[NEXT], 0.0, 1600)
    assert pace.judge(s, s[NEXT] + 0.01, 0.01, 2) == 2 and s[TRIAL] == 1
    start = s[START] + 0.01
    window(s, start, 0.0, rows)
    assert pace.judge(s, start + seconds, seconds, 2) == 1 and s[ONE] == 1


def test_the_wait_is_at_least_cost_times_what_the_slower_window_lost():
    one = 0.01 / 1600   # seconds per row on one thread
    s = pace.new_state()
    window(s, 10.0, 5.0, 64)
    pace.judge(s, 10.1, 5.1, 2)                 # 64 rows in 0.1 s on 2 threads, half a CPU each
    window(s, 10.1, 5.1, 1600)
    assert pace.judge(s, 10.11, 5.11, 2) == 1   # 1600 rows in 0.01 s: one thread
    lost = (0.1 / 64 - one) * 64                # what the window on all threads lost
    assert s[WAIT] == pytest.approx(config.PACE_COST * lost)
    assert s[NEXT] == pytest.approx(10.11 + config.PACE_COST * lost)
    lose_a_trial_of_all_threads(s, 0.3, 64)     # 10 x 0.3 s: the cap
    assert s[WAIT] == config.PACE_MAX_WAIT
    s[MAX_WAIT] = 100.0
    lose_a_trial_of_all_threads(s, 0.5, 64)     # 10 x 0.5 s beats twice the last wait
    assert s[WAIT] == pytest.approx(config.PACE_COST * (0.5 / 64 - one) * 64)
    before = s[WAIT]
    lose_a_trial_of_all_threads(s, 0.041, 6400)  # lost by little: twice the last wait
    assert s[WAIT] == pytest.approx(2 * before)


def test_a_trial_that_has_plainly_lost_ends_before_its_window_is_out():
    s = pace.new_state()
    s[REF] = 0.001 / 32   # the window before: a 32-row batch in a millisecond
    window(s, 10.0, 0.0, 32)
    quarter = 0.25 * s[WINDOW]
    assert not pace.window_over(s, 10.0 + 0.9 * s[WINDOW])   # an ordinary window runs its length
    assert pace.window_over(s, 10.0 + 1.01 * s[WINDOW])
    s[TRIAL] = 1.0
    slow = s[LOST] * 0.001 * 1.01   # one batch, a little over LOST times the reference
    assert not pace.window_over(s, 10.0 + min(slow, 0.9 * quarter))   # too soon to tell
    assert pace.window_over(s, 10.0 + max(slow, quarter))
    window(s, 10.0, 0.0, 32 * 10)
    assert not pace.window_over(s, 10.0 + max(slow, quarter))   # ten batches in that time: not lost
    s[LOST] = 1e9
    assert not pace.window_over(s, 10.0 + 0.9 * s[WINDOW])


def test_all_threads_win_back_when_the_machine_is_quiet_again():
    s = pace.new_state()
    s[ONE], s[NEXT] = 1.0, 0.0
    window(s, 1.0, 0.0, 100)
    assert pace.judge(s, 1.02, 0.02, 4) == 4 and s[TRIAL] == 1   # on one thread a trial is due
    window(s, 1.02, 0.02, 300)
    assert pace.judge(s, 1.04, 0.1, 4) == 4 and s[ONE] == 0      # three times the rows: all threads


def test_reset_forgets_what_was_found():
    s = pace.new_state()
    window(s, 10.0, 5.0, 100)
    pace.judge(s, 10.02, 5.02, 2)
    s[ONE] = 1.0
    pace.reset(s)
    assert s[ONE] == s[TRIAL] == s[TRIALS] == 0 and s[WAIT] == config.PACE_FIRST_WAIT
    assert np.array_equal(s, pace.new_state())


def test_pool_of_one_and_pacing_off_change_nothing():
    s = pace.new_state()
    s[SHARE] = 2.0   # every window would start a trial
    before = numba.get_num_threads()
    pace.begin(s, 1)
    pace.after_batch(s, 10, 1)
    assert s[TRIALS] == 0 and numba.get_num_threads() == before
    s[ENABLED], s[WINDOW] = 0.0, 0.0
    pace.begin(s, before)
    pace.after_batch(s, 10, before)
    assert s[TRIALS] == 0 and s[ROWS] == 0


@pytest.fixture
def paced(monkeypatch):
    """pace.STATE set to start a trial at every batch (any window is long enough, any share
    too small, no wait), given back as it was afterwards; every batch on the parallel drivers."""
    monkeypatch.setattr(config, "PARALLEL_MIN_FLOP", 0)
    saved = pace.STATE.copy()
    pace.STATE[:] = pace.new_state()
    pace.STATE[ENABLED], pace.STATE[WINDOW], pace.STATE[SHARE] = 1.0, 0.0, 2.0
    pace.STATE[WAIT] = pace.STATE[FIRST_WAIT] = pace.STATE[MAX_WAIT] = pace.STATE[COST] = 0.0
    yield pace.STATE
    pace.STATE[:] = saved


@pytest.mark.skipif(numba.get_num_threads() < 2, reason="pacing chooses between one and several threads")
def test_a_fit_whose_threads_change_as_it_runs_agrees_with_the_reference(paced, dtype):
    sizes = [40, 64, 48, 3]
    kw = dict(hidden="relu", dtype=dtype, seed=3, dropout=0.1, batch_norm=True)
    cpu = fastbp.Network(sizes, backend="cpu", **kw)
    ref = fastbp.Network(sizes, backend="numpy", **kw)
    X, y = problem(sizes, "softmax", n=200, seed=3)
    pool = numba.get_num_threads()
    hc = cpu.fit(X, y, epochs=3, batch_size=16, optimizer="adam", lr=0.01)
    hr = ref.fit(X, y, epochs=3, batch_size=16, optimizer="adam", lr=0.01)
    assert paced[TRIALS] >= 20   # a trial every other batch at least: the count changed often
    assert numba.get_num_threads() == pool   # the caller's thread count, as it was
    t = {k: v * 20 for k, v in tol(dtype).items()}   # 39 dependent steps amplify rounding
    np.testing.assert_allclose(hc.history["loss"], hr.history["loss"], **t)
    for (w, b), (rw, rb) in zip(cpu.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(w, rw, **t)
        np.testing.assert_allclose(b, rb, **t)


@pytest.mark.skipif(numba.get_num_threads() < 2, reason="pacing chooses between one and several threads")
def test_a_fit_on_one_thread_gives_back_the_callers_thread_count(paced):
    paced[ONE], paced[SHARE], paced[NEXT] = 1.0, 0.0, 1e300   # one thread, no trial ever
    X, y = problem([8, 16, 2], "softmax", n=64, seed=1)
    numba.set_num_threads(2)
    try:
        fastbp.Network([8, 16, 2], seed=1).fit(X, y, epochs=2, batch_size=8)
        assert numba.get_num_threads() == 2 and paced[TRIALS] == 0
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
