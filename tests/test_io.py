"""fastbp/io.py and Network.save / load: exact round trips, resuming, atomic saves, refused files."""
import numpy as np
import pytest

import fastbp
from fastbp import io, optim
from conftest import BACKENDS, problem, tol


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_load_predicts_identically_and_resumes_exactly(backend, tmp_path):
    X, y = problem([4, 7, 5, 3], "softmax", n=50)
    kw = dict(hidden=["relu", ("leaky_relu", {"slope": 0.2})], dropout=[0.3, 0.0],
              batch_norm=[True, False], l2=1e-3, seed=7, backend=backend)
    fit = dict(batch_size=8, validation_split=0.2)
    whole = fastbp.Network([4, 7, 5, 3], **kw)
    whole.fit(X, y, epochs=6, optimizer=optim.AdamW(lr=optim.ExponentialDecay(0.01, 0.9)), **fit)
    half = fastbp.Network([4, 7, 5, 3], **kw)
    half.fit(X, y, epochs=3, optimizer=optim.AdamW(lr=optim.ExponentialDecay(0.01, 0.9)), **fit)
    path = tmp_path / "model.npz"
    half.save(path)
    loaded = fastbp.load(path)
    assert repr(loaded) == repr(half)
    np.testing.assert_array_equal(loaded.predict(X), half.predict(X))
    assert loaded.optimizer.get_config() == half.optimizer.get_config()
    loaded.fit(X, y, epochs=6, initial_epoch=3, **fit)
    np.testing.assert_allclose(loaded.predict(X), whole.predict(X), **tol("float32"))
    for (a, _), (b, _) in zip(loaded.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(a, b, **tol("float32"))


def test_load_into_the_other_backend(tmp_path):
    X, y = problem([3, 5, 2], "softmax", n=20)
    net = fastbp.Network([3, 5, 2], seed=0, batch_norm=True, backend="cpu")
    net.fit(X, y, epochs=2)
    net.save(tmp_path / "m.npz")
    ref = fastbp.load(tmp_path / "m.npz", backend="numpy")
    assert ref.backend == "numpy"
    np.testing.assert_allclose(ref.predict(X), net.predict(X), **tol("float32"))


def test_save_is_atomic(tmp_path, monkeypatch):
    X, y = problem([3, 5, 2], "softmax", n=20)
    net = fastbp.Network([3, 5, 2], seed=0)
    path = tmp_path / "m.npz"
    net.save(path)
    before = path.read_bytes()
    net.fit(X, y, epochs=3)

    def broken(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        net.save(path)
    assert path.read_bytes() == before                     # the earlier file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]   # no temporary left behind


def test_load_refuses_foreign_and_tampered_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a valid fastbp model"):
        fastbp.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", params=np.zeros(3))
    with pytest.raises(ValueError, match="no fastbp config"):
        fastbp.load(tmp_path / "other.npz")
    np.savez(tmp_path / "obj.npz", config=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a valid fastbp model"):
        fastbp.load(tmp_path / "obj.npz")
    net = fastbp.Network([3, 5, 2], seed=0)
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = dict(f)
    arrays["params"] = arrays["params"][:-1]
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ValueError, match="params"):
        fastbp.load(tmp_path / "cut.npz")


def test_io_writes_and_reads_config_and_arrays_only(tmp_path):
    """io knows files, not networks: (config, arrays) round trip, its format stamped in, and a
    file of another format or version refused with the path in the message."""
    path = tmp_path / "f.npz"
    arrays = {"a": np.arange(5.0), "b": np.eye(2, dtype=np.float32)}
    io.write(path, {"anything": [1, "x"]}, arrays)
    config, back = io.read(path)
    assert config["anything"] == [1, "x"] and config["format"] == io.FORMAT
    assert set(back) == {"a", "b"} and back["b"].dtype == np.float32
    np.testing.assert_array_equal(back["a"], arrays["a"])
    io.write(path, {"format_version": io.FORMAT_VERSION + 1}, arrays)
    with pytest.raises(ValueError, match=f"{path.name}.*format version"):
        io.read(path)
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="no fastbp config"):
        io.read(tmp_path / "plain.npz")
