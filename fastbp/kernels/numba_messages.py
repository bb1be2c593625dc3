"""Numba's error messages, styled without setting up the terminal for each piece of each one.

While Numba types a call it tries the callee's overloads in turn and builds an error message for
each that does not fit; nearly all are thrown away when the next one fits, and a first fit of the
article's network builds about 4,200 of them. Where colorama is installed, Numba styles every
piece of a message inside a ColorShell: colorama's init() and deinit(), which wrap sys.stdout and
sys.stderr and unwrap them again, around writing escape codes into a byte buffer that never
reaches the terminal. That took 0.14-0.19 s of a seed first fit (timing
HighlightColorScheme._markup through a fit, in three processes; the README's cold-start section).

`apply()` gives Numba's one color-scheme object (errors.termcolor(), which its modules hold from
import) a _markup that returns the same string, the style's escape codes, the text and colorama's
reset, without the init and deinit. Process-wide: other Numba code's messages come out the same,
only faster (tests/kernels/test_numba_messages.py compares them). Applied only with a Numba
release whose source of HighlightColorScheme._markup, ColorShell and reset_terminal was read
(VERIFIED, by version, so that a start whose kernels all load from the cache reads no source);
without colorama, or with it turned off (NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING), Numba's
messages are plain already and nothing is changed.
"""
import hashlib
import inspect
import threading

import numba

# Numba release -> sha1 of the source (source_hash) of errors.HighlightColorScheme._markup (the
# style's codes and the text into a buffer inside a ColorShell and a reset_terminal, decoded),
# errors.ColorShell (colorama's init/reinit/deinit, nothing else) and errors.reset_terminal
# (appends Style.RESET_ALL)
VERIFIED = {"0.68.1": "e44100038b64c836d2314dd852b0590a9a68ef37"}

_lock = threading.Lock()
_applied = None


def _numba_parts():
    from numba.core import errors
    return errors.HighlightColorScheme._markup, errors.ColorShell, errors.reset_terminal


def source_hash():
    """The sha1 of the Numba source this relies on (see VERIFIED); None without colorama."""
    from numba.core import errors
    if not hasattr(errors, "HighlightColorScheme"):
        return None
    try:
        return hashlib.sha1("".join(inspect.getsource(p) for p in _numba_parts()).encode()).hexdigest()
    except OSError:   # no source files (a frozen or .pyc-only install): nothing to check against
        return None


def apply():
    """Install it, once per process; returns whether it is in place."""
    global _applied
    with _lock:
        if _applied is None:
            from numba.core import errors
            scheme = errors.termcolor()
            _applied = (isinstance(scheme, getattr(errors, "HighlightColorScheme", ()))
                        and numba.__version__ in VERIFIED)
            if _applied:
                from colorama import Style
                bright, reset = errors.HighlightColorScheme._markup.__defaults__[-1], Style.RESET_ALL

                def markup(msg, color=None, style=bright):
                    # HighlightColorScheme._markup's string: the color's and the style's escape
                    # codes, the text, colorama's reset
                    return (color or "") + (style or "") + msg + reset
                scheme._markup = markup   # (the object's own attribute: called unbound)
        return _applied
