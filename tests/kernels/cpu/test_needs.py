"""fastbp/kernels/cpu/needs.py: the switches a call on a network needs compiled."""
import numpy as np
import pytest

from fastbp.kernels.cpu import activations as act, dense, losses
from fastbp.kernels.cpu.needs import needs
from fastbp.optim import Adam, SGD
from fastbp.spec import make_spec


@pytest.fixture(autouse=True)
def specialize(monkeypatch):
    # the suite runs the general build (tests/conftest.py); users get variants
    from fastbp import config
    from fastbp.kernels.cpu import needs as needs_module
    monkeypatch.setattr(config, "SPECIALIZE", True)
    monkeypatch.setattr(needs_module, "general_built", lambda dtype: False)


def test_a_general_build_on_disk_serves_every_network(monkeypatch):
    from fastbp.kernels.cpu import needs as needs_module
    monkeypatch.setattr(needs_module, "general_built", lambda dtype: True)
    assert needs(make_spec([4, 8, 3]), "float32", False, 32, SGD(0.1)) == (("THREADED", False),)


def test_a_plain_network_needs_only_its_own_branches():
    spec = make_spec([2, 4, 1], hidden="sigmoid", output="sigmoid")
    key = dict(needs(spec, "float32", False, 4, SGD(0.1)))
    assert key == dict(THREADED=False, USED_ACTIVATIONS=(act.SIGMOID,), USED_LOSSES=(losses.BCE,),
                       FORWARD_PATHS=(dense.NAIVE,), BACKWARD_PATHS=(dense.NAIVE,), USE_BATCH_NORM=False,
                       USE_DROPOUT=False, USE_PENALTY=False, USED_OPTIMIZERS=(SGD.code,), USE_CLIP=False,
                       USE_SPARSE=False, TILED_KINDS=(), NARROW_SHUFFLES=(), NARROW_WINDOWS=False)


def test_sparse_input_adds_its_kernels_and_drops_the_first_layers_dense_paths():
    spec = make_spec([50_000, 8, 3])
    dense, sparse = (dict(needs(spec, "float32", False, 64, SGD(0.1), s)) for s in (False, True))
    assert sparse["USE_SPARSE"] and not dense["USE_SPARSE"]
    # the 50,000 x 8 layer's dense path (BLAS or blocked) is not compiled for sparse input
    assert set(sparse["FORWARD_PATHS"]) < set(dense["FORWARD_PATHS"])


def test_every_feature_in_use_is_compiled_in():
    spec = make_spec([64, 300, 10], hidden="relu", output="softmax", dropout=0.2, batch_norm=True, l2=1e-4)
    key = dict(needs(spec, "float64", True, 256, Adam(1e-3, clip_norm=1.0)))
    assert key["USED_ACTIVATIONS"] == (act.RELU, act.SOFTMAX) and key["USED_LOSSES"] == (losses.CE,)
    assert key["USE_BATCH_NORM"] and key["USE_DROPOUT"] and key["USE_PENALTY"] and key["USE_CLIP"]
    assert key["USED_OPTIMIZERS"] == (Adam.code,) and key["THREADED"]
    # every batch size up to 256: a short last batch may take another path than a full one
    W = [(64, 300), (300, 10)]
    for side, name in enumerate(("FORWARD_PATHS", "BACKWARD_PATHS")):
        expected = {dense.NAIVE} | {p for shape in W for p in dense.paths_over(256, np.empty(shape))[side]}
        assert set(key[name]) == expected and len(expected) > 1


def test_evaluation_needs_no_optimizer():
    spec = make_spec([4, 8, 3])
    key = dict(needs(spec, "float32", False, 1024))
    assert key["USED_OPTIMIZERS"] == () and key["USE_CLIP"] is False


def test_the_general_build_when_specializing_is_off(monkeypatch):
    from fastbp import config
    monkeypatch.setattr(config, "SPECIALIZE", False)
    assert needs(make_spec([4, 8, 3]), "float32", True, 32, SGD(0.1)) == (("THREADED", True),)


def test_the_narrow_transposes_follow_the_layer_widths():
    """Shuffles for 2 to 4 columns and windows for 5 to a vector's width less one, as the layers'
    inputs and outputs need them; none where every layer runs the naive loops."""
    def narrow(sizes, dtype):
        spec = make_spec(sizes, output="sigmoid" if sizes[-1] == 1 else "softmax")
        key = dict(needs(spec, dtype, False, 32, SGD(0.1)))
        return key["NARROW_SHUFFLES"], key["NARROW_WINDOWS"]
    assert narrow([64, 128, 10], "float32") == ((), True)        # 10 < 16 float32 lanes
    assert narrow([64, 128, 10], "float64") == ((), False)       # 10 >= 8 float64 lanes
    assert narrow([32, 64, 64, 2], "float32") == ((2,), False)
    assert narrow([3, 64, 64, 6], "float32") == ((3,), True)
    assert narrow([2, 4, 1], "float32") == ((), False)           # naive loops only


def test_the_tiled_backward_kinds_follow_the_layers():
    """dW alone for a tiled first layer, dw_and_da for a tiled hidden one, and a narrow output
    layer on one thread, or across threads where a batch reaches config.SERIAL_MACS."""
    def kinds(sizes, rows, sparse=False):
        return dict(needs(make_spec(sizes), "float32", True, rows, SGD(0.1), sparse))["TILED_KINDS"]
    assert kinds([64, 128, 10], 32) == (dense.DW_ONLY, dense.NARROW_SERIAL)
    assert kinds([32, 64, 64, 2], 16) == (dense.DW_ONLY, dense.DW_AND_DA, dense.NARROW_SERIAL)
    # a 1024 x 10 output layer: one thread up to 51 rows, threads from 52 (batches of 256)
    assert kinds([784, 1024, 1024, 10], 256) == (dense.NARROW_SERIAL, dense.NARROW_THREADED)
    assert kinds([784, 1024, 1024, 10], 32) == (dense.NARROW_SERIAL,)
    # sparse input: the first layer is not a dense one
    assert dense.DW_ONLY not in kinds([300, 64, 64, 2], 16, sparse=True)
    # every batch size agrees with the compiled rule
    W = dense.weight_shape(1024, 10, 4)
    assert {dense.tiled_kind.py_func(r, W, True) for r in range(1, 257)} == dense.tiled_kinds_over(256, W, True)


def test_remembered_switches_tell_every_layout_apart():
    """needs remembers its answers for the process: each must be the one worked out afresh, in
    whatever order the layouts are asked for (a key that left out a feature would hand one
    network another's switches)."""
    from fastbp.kernels.cpu import needs as needs_module
    calls = [(make_spec([4, 8, 3]), "float32", False, 32, SGD(0.1)),
             (make_spec([4, 8, 3], dropout=0.2), "float32", False, 32, SGD(0.1)),
             (make_spec([4, 8, 3], batch_norm=True), "float32", False, 32, SGD(0.1)),
             (make_spec([4, 8, 3], l2=1e-3), "float32", False, 32, SGD(0.1)),
             (make_spec([4, 8, 3], hidden="tanh"), "float32", False, 32, SGD(0.1)),
             (make_spec([4, 8, 3], output="sigmoid"), "float32", False, 32, SGD(0.1)),
             (make_spec([4, 8, 3]), "float32", True, 32, SGD(0.1)),
             (make_spec([4, 8, 3]), "float32", False, 32, Adam(1e-3)),
             (make_spec([4, 8, 3]), "float32", False, 32, SGD(0.1, clip_norm=1.0)),
             (make_spec([4, 8, 3]), "float32", False, 32, None),
             (make_spec([64, 256, 10]), "float32", False, 32, SGD(0.1)),
             (make_spec([64, 256, 10]), "float32", False, 1, SGD(0.1)),
             # float64 on a layout whose paths depend on the itemsize ([4, 8, 3]'s all-naive
             # variant serves both dtypes, one key)
             (make_spec([64, 256, 10]), "float64", False, 32, SGD(0.1))]
    needs_module._specialized.cache_clear()
    forward = [needs(*call) for call in calls]
    needs_module._specialized.cache_clear()
    backward = [needs(*call) for call in reversed(calls)][::-1]
    assert forward == backward
    assert len(set(forward)) == len(calls)


def test_a_quick_build_runs_every_dense_layer_in_the_naive_loops_on_one_thread():
    spec = make_spec([64, 300, 10], hidden="relu", output="softmax", dropout=0.2, batch_norm=True)
    fastest = dict(needs(spec, "float32", True, 256, Adam(1e-3)))
    quick = dict(needs(spec, "float32", True, 256, Adam(1e-3), quick=True))
    assert fastest["THREADED"] and set(fastest["FORWARD_PATHS"]) > {dense.NAIVE} and fastest["TILED_KINDS"]
    assert quick == dict(fastest, THREADED=False, FORWARD_PATHS=(dense.NAIVE,), BACKWARD_PATHS=(dense.NAIVE,),
                         TILED_KINDS=(), NARROW_SHUFFLES=(), NARROW_WINDOWS=False)
    # a sparse first layer keeps its own kernels
    assert dict(needs(make_spec([50_000, 8, 3]), "float32", False, 64, SGD(0.1), True, quick=True))["USE_SPARSE"]


def test_a_network_of_naive_layers_has_no_quicker_build():
    spec = make_spec([2, 4, 1], hidden="sigmoid", output="sigmoid")
    assert needs(spec, "float32", False, 4, SGD(0.1), quick=True) == needs(spec, "float32", False, 4, SGD(0.1))


def test_the_general_build_has_no_quicker_build(monkeypatch):
    from fastbp.kernels.cpu import needs as needs_module
    monkeypatch.setattr(needs_module, "general_built", lambda dtype: True)
    spec = make_spec([64, 300, 10])
    for threaded in (False, True):
        assert needs(spec, "float32", threaded, 256, SGD(0.1), quick=True) == needs(spec, "float32", threaded, 256,
                                                                                    SGD(0.1))
