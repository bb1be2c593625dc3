"""fastbp/workloads.py: the benchmark workloads and the timing loop scripts/workloads.py uses."""
import dataclasses

import pytest

from fastbp import workloads


@pytest.mark.parametrize("repeats, least, most, fits", [(3, 0.0, 1000, 3), (1, 10.0, 7, 7), (2, 10.0, 1, 2)])
def test_time_fit_repeats_short_fits_until_they_add_up(monkeypatch, repeats, least, most, fits):
    """At least `repeats` timed fits, then more until `least` seconds (each fit here takes one
    second of a fake clock, so 10 s asks for ten), but no more than `most` (or `repeats`, if more)."""
    clock = [0.0]
    made = []

    class Counted(workloads.Network):
        def fit(self, *args, **kw):
            clock[0] += 1.0
            return super().fit(*args, **kw)

    def network(*args, **kw):
        made.append(1)
        return Counted(*args, **kw)

    monkeypatch.setattr(workloads, "Network", network)
    monkeypatch.setattr(workloads.time, "perf_counter", lambda: clock[0])
    tiny = dataclasses.replace(workloads.WORKLOADS["seed"], epochs=2)
    assert workloads.time_fit(tiny, "numpy", repeats=repeats, least=least, most=most) == 1.0
    assert len(made) == 1 + fits   # the untimed first fit, then the timed ones
