"""Every command in README.md is run here, so the README cannot drift from the code.

Each Python block runs on its own in a fresh interpreter, as a reader pastes it. Shell blocks run line by line, except:
the two set-up commands (the test command is what .ci/run runs, checked to be identical; of the
first, the demo is run), and the measuring commands, which take minutes: those run with --help
(the asv suite itself is checked by test_benchmarks.py).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(python|bash)\n(.*?)```", README, flags=re.S)
SETUP = ["pip install . && python -m fastbp demo", "pip install '.[test]' && python -m pytest -q tests"]


def shell_lines():
    for lang, body in BLOCKS:
        if lang == "bash":
            for line in body.splitlines():
                cmd = line.split("  #")[0].strip()
                if cmd:
                    yield cmd


def run(cmd, cwd, timeout=600):
    env = dict(os.environ, MPLBACKEND="Agg")
    bin_dir = os.path.dirname(sys.executable)   # the `fastbp` entry point beside this python
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    cmd = re.sub(r"^python ", f"{sys.executable} ", cmd)
    out = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"README command failed: {cmd}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def test_the_two_setup_commands_and_ci():
    lines = list(shell_lines())
    assert lines[:2] == SETUP, "the README must open with the two set-up commands"
    ci = (ROOT / ".ci" / "run").read_text()
    assert SETUP[1] in ci, ".ci/run must run exactly the README's test command"


def test_demo_command(tmp_path):
    out = run(SETUP[0].split("&& ")[1] + " --repeats 1", tmp_path)
    assert "training accuracy 100%" in out and "test accuracy" in out


PYTHON = [body for lang, body in BLOCKS if lang == "python"]


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs_on_its_own(tmp_path, index):
    script = tmp_path / f"block{index}.py"
    script.write_text(PYTHON[index])
    run(f"python {script}", tmp_path)
    if "save(" in PYTHON[index]:
        assert any(tmp_path.glob("*.npz")), "the block saves a model"


def test_shell_blocks(tmp_path):
    if shutil.which("fastbp", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("the fastbp entry point is not installed beside this python (pip install .)")
    for cmd in list(shell_lines())[2:]:
        if cmd.startswith("scripts/asv.sh"):
            continue   # test_benchmarks.py runs `asv check` and a quick pass
        if cmd.startswith(("python scripts/", "python -m fastbp bench")):
            run(" ".join(cmd.split()[:4 if cmd.startswith("python -m") else 2]) + " --help", ROOT)
            continue
        run(cmd, tmp_path)
    for made in ("digits.npz", "model.npz", "curves.png", "predictions.csv", "probabilities.csv"):
        assert (tmp_path / made).exists(), made
