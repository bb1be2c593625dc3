"""What Numba compiles, for the tests that count compiles: the suite's processes and the MPI
ranks (tests/mpi) alike."""
import contextlib


@contextlib.contextmanager
def compiled(dispatchers=False):
    """The names of the functions Numba compiles (rather than loads from the cache) in the block;
    their dispatchers instead with `dispatchers=True`."""
    from numba.core import event
    names = []

    class Listener(event.Listener):
        def on_start(self, ev):
            dispatcher = ev.data["dispatcher"]
            names.append(dispatcher if dispatchers else dispatcher.py_func.__qualname__)

        def on_end(self, ev):
            pass
    with event.install_listener("numba:compile", Listener()):
        yield names
