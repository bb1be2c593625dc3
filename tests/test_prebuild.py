"""fastbp/prebuild.py: fastbp.compile from Python (the command's own tests are in test_cli.py)."""
import pytest


def test_compile_from_python_with_the_cache_off_is_an_error(monkeypatch, tmp_path):
    import fastbp
    from fastbp import config
    from fastbp.kernels import compile as kernels
    monkeypatch.setattr(config, "CACHE", False)
    monkeypatch.setattr(kernels, "CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="FASTBP_CACHE=0 turns off: unset FASTBP_CACHE"):
        fastbp.compile(general=True)
    assert not (tmp_path / "cache").exists()
