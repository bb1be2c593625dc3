"""How long a user waits before fastbp is fast: first fits into an empty kernel cache, and a
fresh process with the cache built. Every row runs in fresh processes; the cold rows each get a
new, empty cache directory (FASTBP_CACHE_DIR), so nothing from an earlier run helps. Prints the
median of --repeats runs beside the targets of the cold-start issue.

    python scripts/cold_start.py                 # the fit rows, median of 3
    python scripts/cold_start.py --repeats 1     # a quick look
    python scripts/cold_start.py --demo --suite  # also the README's two commands in a fresh clone
    python scripts/cold_start.py --one-process   # first fits compiled without a helper process
    python scripts/cold_start.py --no-tiers      # short first fits wait for the fastest build

First fits compile in two processes where a second CPU is usable (kernels/compile_helper.py);
--one-process measures them with FASTBP_COMPILE_HELPER=0, as fastbp compiled before it. A short
first fit runs a quick build while the fastest build compiles in a background process
(kernels/tier.py); --no-tiers measures them with FASTBP_TIERED=0, as fastbp compiled before it.
Each row waits for the background builds its process started before the next row starts (they
run at the lowest priority, but would still share the CPUs with the next row), and the
"background" row is how long the first-fits process's builds ran on after it ended.

Rows:
  seed f32        import fastbp and fit the seed workload (the article's 2-4-1 network), float32
  + digits f32    then, in the same process, digits with Adam + dropout 0.2 + batch norm
  + digits f64    then the same in float64
  wide-512 f32    a fresh process: import and a first fit of a [64, 512, 512, 10] network
  cached seed     a fresh process, cache built: import fastbp and fit the seed workload
  cached seed, numpy+numba only
                  the same in a Python that has only fastbp's run-time dependencies (this
                  environment's numpy and numba, in a temporary venv), as `pip install fastbp`
                  leaves a user: Numba imports part of what else is installed (SciPy's top
                  level, cffi's C parser) as it starts, which a test or peers environment pays
  background      after the seed and digits rows' process ended: until the fastest builds its
                  short fits started in the background were in the cache (0 with --no-tiers)
  numba floor     a fresh process: import numba and call one trivial cached function: what a
                  program with compiled code cached by Numba waits before its first call (also
                  in the numpy+numba-only venv). Where SciPy is installed, Numba imports SciPy's
                  linear algebra there, which fastbp's processes skip (kernels/blas_probe.py),
                  so the cached rows can read below it
  demo            (--demo) `pip install . && python -m fastbp demo` in a fresh clone
  suite           (--suite) `pip install '.[test]' && python -m pytest -q tests` in a fresh clone

Processes keep Python's bytecode (__pycache__) even where PYTHONDONTWRITEBYTECODE is set in
this environment, as a user's Python does and as a pip install leaves it: recompiling fastbp's
sources in every process would add tens of milliseconds to the cached rows that no user pays.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# each prints one line: the seconds of its steps, separated by spaces
FIRST_FITS = r"""
import time
t0 = time.perf_counter()
import numpy as np
import fastbp
from fastbp.workloads import WORKLOADS
w = WORKLOADS["seed"]
X, y = w.data()
w.network("cpu").fit(X, y, **w.fit_args())
seconds = [time.perf_counter() - t0]
d = WORKLOADS["digits"]
fit = dict(d.fit_args(features=True), epochs=2)
for dtype in ("float32", "float64"):
    t0 = time.perf_counter()
    Xd, yd = d.data(dtype)
    d.network("cpu", dtype, features=True).fit(Xd, yd, **fit)
    seconds.append(time.perf_counter() - t0)
print(" ".join(f"{s:.2f}" for s in seconds))
"""

WIDE = r"""
import time
t0 = time.perf_counter()
import numpy as np
import fastbp
X, y = fastbp.datasets.load_digits()
fastbp.Network([64, 512, 512, 10], seed=0).fit(X, y, epochs=1, batch_size=32)
print(f"{time.perf_counter() - t0:.2f}")
"""

CACHED_SEED = r"""
import time
t0 = time.perf_counter()
import fastbp
from fastbp.workloads import WORKLOADS
w = WORKLOADS["seed"]
X, y = w.data()
w.network("cpu").fit(X, y, **w.fit_args())
print(f"{time.perf_counter() - t0:.2f}")
"""

# a file of its own: Numba caches only functions defined in files
FLOOR = r"""
import time
t0 = time.perf_counter()
import numba
@numba.njit(cache=True)
def one_more(x):
    return x + 1
one_more(1.0)
print(f"{time.perf_counter() - t0:.2f}")
"""

PLAIN = "cached seed, numpy+numba only"
FLOOR_PLAIN = "numba floor, numpy+numba only"
TARGETS = {"seed f32": 5.0, "+ digits f32": 5.0, "+ digits f64": 5.0, "background": None, "wide-512 f32": None,
           "cached seed": 0.5, PLAIN: 0.5, "numba floor": None, FLOOR_PLAIN: None, "demo": None,
           "suite": 240.0}
COMMANDS = {"demo": "pip install -q . && python -m fastbp demo",
            "suite": "pip install -q '.[test]' && python -m pytest -q tests"}


SETTINGS = {}   # environment of every measured process (--one-process)


def run(code, cache, python=sys.executable, script=None):
    """Run `code` in a fresh `python` (from the file `script` where given, else with -c) with
    the kernel cache in `cache`; the figures it printed."""
    env = dict(os.environ, FASTBP_CACHE_DIR=cache, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT), **SETTINGS)
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # the module docstring says why
    if script is not None:
        Path(script).write_text(code)
    argv = [python, script] if script is not None else [python, "-c", code]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        sys.exit(f"a measured process failed:\n{out.stderr[-3000:]}")
    return [float(x) for x in out.stdout.split()]


def background(cache, timeout=900):
    """Wait until no background build (kernels/tier.py) runs on a cache under `cache`; the
    seconds waited."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from fastbp.kernels import tier
    t0 = time.perf_counter()
    while tier.running(cache) and time.perf_counter() - t0 < timeout:
        time.sleep(0.05)
    return time.perf_counter() - t0


def plain_python(folder):
    """A venv in `folder` with only fastbp's run-time dependencies, at this environment's
    versions (fastbp itself comes from PYTHONPATH): its python, or None where pip cannot
    install them (no package index reachable)."""
    import numba
    import numpy
    subprocess.run([sys.executable, "-m", "venv", folder], check=True)
    python = str(Path(folder) / "bin" / "python")
    out = subprocess.run([python, "-m", "pip", "install", "-q", f"numpy=={numpy.__version__}",
                          f"numba=={numba.__version__}"], capture_output=True, text=True)
    if out.returncode:
        print(f"note: no numpy+numba-only row: pip could not install them ({out.stderr.strip()[-300:]})")
        return None
    return python


def fresh_clone(command):
    """Seconds for one of the README's commands in a fresh clone with an empty kernel cache, in a
    fresh virtual environment that sees this one's packages (so that pip installs only fastbp
    itself, and nothing here changes)."""
    with tempfile.TemporaryDirectory() as tmp:
        clone, venv = Path(tmp) / "clone", Path(tmp) / "venv"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
        env = dict(os.environ, FASTBP_CACHE_DIR=str(Path(tmp) / "cache"), PATH=f"{venv / 'bin'}:{os.environ['PATH']}",
                   **SETTINGS)
        env.pop("PYTHONPATH", None)
        t0 = time.perf_counter()
        out = subprocess.run(command, shell=True, cwd=clone, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        background(Path(tmp) / "cache")   # (before its cache goes, and before what is measured next)
        if out.returncode:
            sys.exit(f"`{command}` failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="runs per row; the median is printed")
    p.add_argument("--demo", action="store_true", help="also time the demo command in a fresh clone")
    p.add_argument("--suite", action="store_true", help="also time the test command in a fresh clone")
    p.add_argument("--one-process", action="store_true",
                   help="first fits compile in their own process only (FASTBP_COMPILE_HELPER=0)")
    p.add_argument("--no-tiers", action="store_true",
                   help="short first fits compile the fastest build, no quick one (FASTBP_TIERED=0)")
    args = p.parse_args(argv)
    if args.one_process:
        SETTINGS["FASTBP_COMPILE_HELPER"] = "0"
    if args.no_tiers:
        SETTINGS["FASTBP_TIERED"] = "0"
    rows = {k: [] for k in TARGETS if k not in COMMANDS}
    with tempfile.TemporaryDirectory() as venv:
        plain = plain_python(venv)
        if plain is None:
            del rows[PLAIN], rows[FLOOR_PLAIN]
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as cache:
                seed, digits32, digits64 = run(FIRST_FITS, cache)
                rows["seed f32"].append(seed)
                rows["+ digits f32"].append(digits32)
                rows["+ digits f64"].append(digits64)
                rows["background"].append(background(cache))
                rows["cached seed"].append(run(CACHED_SEED, cache)[0])
                if plain is not None:
                    rows[PLAIN].append(run(CACHED_SEED, cache, plain)[0])
            for name, python in (("numba floor", sys.executable), (FLOOR_PLAIN, plain)):
                if python is not None:
                    with tempfile.TemporaryDirectory() as cache:
                        script = str(Path(cache) / "floor.py")
                        run(FLOOR, cache, python, script)   # compiles into the cache
                        rows[name].append(run(FLOOR, cache, python, script)[0])
            with tempfile.TemporaryDirectory() as cache:
                rows["wide-512 f32"].append(run(WIDE, cache)[0])
                background(cache)
    for name in COMMANDS:
        if getattr(args, name):
            rows[name] = [fresh_clone(COMMANDS[name])]
    print(f"cold start, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end, "
          f"median of {args.repeats}" + (", one process (FASTBP_COMPILE_HELPER=0)" if args.one_process else "")
          + (", no tiers (FASTBP_TIERED=0)" if args.no_tiers else ""))
    width = max(map(len, rows))
    print(f"{'row':{width}s} {'seconds':>8s} {'target':>8s}  runs")
    for name, values in rows.items():
        target = TARGETS[name]
        mark = "" if target is None else ("  met" if statistics.median(values) <= target else "  missed")
        print(f"{name:{width}s} {statistics.median(values):8.2f} {'-' if target is None else f'{target:.1f}':>8s}  "
              + " ".join(f"{v:.2f}" for v in values) + mark)


if __name__ == "__main__":
    main()
