"""scikit-learn's own MLP test module, as installed, run against fastbp's estimators.

Nothing of it is copied here: the installed `sklearn.neural_network.tests.test_mlp` is imported
while `sklearn.neural_network` names fastbp's MLPClassifier and MLPRegressor (so the module's
`from sklearn.neural_network import MLPClassifier, MLPRegressor` binds ours), and its test
functions are collected from this module. scikit-learn's name is put back straight after the
import, so every other test (and scikit-learn itself) still sees scikit-learn's estimators.
"""
import sys

import pytest

sk_nn = pytest.importorskip("sklearn.neural_network")

import fastbp.sklearn as ours  # noqa: E402

UPSTREAM = "sklearn.neural_network.tests.test_mlp"


def _import_upstream():
    saved = sk_nn.MLPClassifier, sk_nn.MLPRegressor
    sys.modules.pop(UPSTREAM, None)   # a copy imported earlier would hold scikit-learn's classes
    sk_nn.MLPClassifier, sk_nn.MLPRegressor = ours.MLPClassifier, ours.MLPRegressor
    try:
        __import__(UPSTREAM)
        return sys.modules.pop(UPSTREAM)
    finally:
        sk_nn.MLPClassifier, sk_nn.MLPRegressor = saved


upstream = _import_upstream()
TESTS = sorted(name for name in vars(upstream) if name.startswith("test_"))
globals().update({name: getattr(upstream, name) for name in TESTS})


@pytest.fixture
def global_random_seed():
    """scikit-learn's conftest gives its tests this fixture: 42 unless its environment variable
    asks for other seeds."""
    return 42


def test_the_upstream_module_runs_against_fastbp():
    """The swap took: the module's names are fastbp's, scikit-learn's are scikit-learn's, and
    the module still holds the tests it held when this file was written."""
    assert upstream.MLPClassifier is ours.MLPClassifier and upstream.MLPRegressor is ours.MLPRegressor
    assert sk_nn.MLPClassifier is not ours.MLPClassifier
    assert len(TESTS) >= 40, TESTS
