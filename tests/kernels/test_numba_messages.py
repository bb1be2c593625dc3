"""fastbp/kernels/numba_messages.py: Numba's messages come out as Numba builds them, without
colorama's terminal set-up for each piece, and only with a Numba release it was checked on."""
import inspect

import numba
import pytest
from numba.core import errors

from fastbp.kernels import compile, numba_messages  # noqa: F401 (compile applies it)

colorama = pytest.importorskip("colorama")
pytestmark = pytest.mark.skipif(not numba_messages.apply(),
                                reason="no colorama styling in this Numba, or not a verified release")


def test_messages_are_the_strings_numba_builds_without_setting_up_the_terminal(monkeypatch):
    scheme = errors.termcolor()
    texts = ["", "No implementation of function Function(<built-in function getitem>) found",
             "résumé: ✓", "line\nbreak {0} %s"]
    styles = [scheme.code, scheme.errmsg, scheme.filename, scheme.indicate, scheme.highlight, scheme.reset]
    ours = [style(t) for style in styles for t in texts]
    calls = []
    monkeypatch.setattr(errors, "init", lambda *a, **k: calls.append("init"))
    [style(t) for style in styles for t in texts]
    assert calls == []   # no ColorShell
    monkeypatch.undo()
    # Numba's own method (the class's, which the object's attribute shadows), by name as
    # Numba's methods call it
    numbas = []
    for name in ("_code", "_errmsg", "_filename", "_indicate", "_highlight", "_reset"):
        for t in texts:
            numbas.append(errors.HighlightColorScheme._markup(scheme, t, getattr(scheme, name)))
    assert ours == numbas
    assert all(s.endswith(colorama.Style.RESET_ALL) for s in ours)
    assert scheme._markup("x", style=None) == errors.HighlightColorScheme._markup(scheme, "x", style=None)
    # and where typing fails for real, the message Numba raises carries the text
    with pytest.raises(errors.TypingError, match="getitem"):
        numba.njit(lambda x: x[1.5, "a"])(1)


def test_applied_only_to_a_verified_numba(monkeypatch):
    """Fails when a Numba release changes the source this relies on: read
    HighlightColorScheme._markup, ColorShell and reset_terminal again, and if the string is
    built as before, add the release's source_hash() to VERIFIED."""
    assert numba_messages.source_hash() == numba_messages.VERIFIED[numba.__version__]
    real = inspect.getsource
    monkeypatch.setattr(inspect, "getsource", lambda f: real(f).replace("RESET_ALL", "RESET"))
    assert numba_messages.source_hash() != numba_messages.VERIFIED[numba.__version__]
