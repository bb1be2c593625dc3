"""The asv suite and the comparison tools still import and run (a short pass, no timing claims)."""
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "asv_bench"))


@pytest.mark.skipif(shutil.which("asv") is None, reason="asv is not installed (pip install '.[test]')")
def test_asv_check():
    out = subprocess.run(["asv", "check", "--python=same"], cwd=ROOT / "asv_bench", capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, HOME=os.environ.get("HOME", "/tmp")))
    assert out.returncode == 0 and "No problems found" in out.stdout, out.stdout + out.stderr


def test_a_quick_pass_over_each_benchmark_class():
    kernels = importlib.import_module("benchmarks.bench_kernels")
    workloads = importlib.import_module("benchmarks.bench_workloads")
    for params in (("dense_forward", "16x32x64", "cpu", "float32"),
                   ("adam_update", "16x32x64", "cpu-1thread", "float64"),
                   ("softmax_cross_entropy", "16x32x64", "numpy", "float32")):
        b = kernels.Kernel()
        b.setup(*params)
        b.time_kernel(*params)
    fit = workloads.Fit()
    fit.setup("seed", "cpu", "float32", "adam+dropout+bn")
    fit.time_fit("seed", "cpu", "float32", "adam+dropout+bn")
    assert workloads.Speedup().track_speedup("seed", "float32", "sgd") > 0
    lean = workloads.AgainstLean()
    lean.least = 0.0   # three fits each are enough to check the ratios' sense
    lean.setup("seed", "float64")
    # the numpy backend and the lean loop do the same work: their ratio is near 1, never 10
    assert 0.5 < lean.track_numpy_over_lean("seed", "float64") < 3
    assert lean.track_lean_over_cpu("seed", "float64") > 1


def test_bench_command_json():
    out = subprocess.run([sys.executable, "-m", "fastbp", "bench", "--shapes", "8x16x16", "--seconds",
                          "0.001", "--json"], capture_output=True, text=True, timeout=300, check=True)
    data = json.loads(out.stdout)
    assert list(data["gemm_limit_gflops"]) == ["float32"] and data["gemm_limit_gflops"]["float32"] > 0
    names = {r["kernel"] for r in data["results"]}
    assert {"dense_forward", "dense_backward", "adam_update", "relu_forward"} <= names
    assert {r["backend"] for r in data["results"]} == {"numpy", "cpu", "cpu-1thread"}
    assert all("others" in r for r in data["results"])   # the busy-machine check beside each row


def test_bench_limit_comes_first_and_every_column_takes_the_faster_cpu_kernel(monkeypatch):
    """The limit is measured before any kernel (after them, Numba's spinning threads share the
    cores with BLAS and the limit reads low); GFLOP/s, share of the limit and numpy/cpu are all
    of the faster of the parallel kernel and its twin."""
    from fastbp import bench
    order = []
    monkeypatch.setattr(bench, "sgemm_gflops", lambda dtype: order.append(("limit", np.dtype(dtype).name)) or 100.0)
    real = bench.best_time
    monkeypatch.setattr(bench, "best_time", lambda fn, *a: order.append("kernel") or real(fn, 1e-4, 1))
    # three kernels are enough to check the columns (test_bench_command_json runs every one):
    # each kernel's entry points compile for both dtypes, on several threads and on one
    cases = bench._cases
    monkeypatch.setattr(bench, "_cases", lambda *a: [c for c in cases(*a) if c[0] in
                                                       ("dense_forward", "relu_forward", "adam_update")])
    results, limit = bench.compare("4x8x8", ("float32", "float64"))
    assert order[:2] == [("limit", "float32"), ("limit", "float64")] and "kernel" not in order[:2]
    assert {d: g for d, (g, _) in limit.items()} == {"float32": 100.0, "float64": 100.0}
    text = bench.table(results, limit)
    by = {}
    for r in results:
        by.setdefault((r["kernel"], r["dtype"]), {})[r["backend"]] = r
    rows = {(line.split()[0], line.split()[2]): line.split() for line in text.splitlines()
            if line.split() and (line.split()[0], line.split()[2] if len(line.split()) > 2 else "") in by}
    assert len(rows) == len(by)
    for key, cols in rows.items():
        best = min(by[key]["cpu"], by[key]["cpu-1thread"], key=lambda r: r["seconds"])
        assert float(cols[6]) == pytest.approx(best["gflops"], abs=0.006)
        assert float(cols[7].rstrip("%")) == pytest.approx(100 * best["gflops"] / 100.0, abs=0.6)
        assert float(cols[8].rstrip("x")) == pytest.approx(by[key]["numpy"]["seconds"] / best["seconds"], rel=0.01,
                                                           abs=0.006)


def test_contention_script_help_and_tiny_run():
    script = str(ROOT / "scripts" / "contention.py")
    out = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=60, check=True)
    assert "--busy" in out.stdout and "--tiny" in out.stdout
    out = subprocess.run([sys.executable, script, "--tiny"], capture_output=True, text=True, timeout=300, check=True)
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("seed")]
    assert [r[1] for r in rows] == ["0", "1"]   # quiet, then one busy process that the script started
    for r in rows:
        times = [float(x) for x in r[2:6]]
        assert all(t > 0 for t in times)
        assert float(r[6].rstrip("x")) == pytest.approx(times[0] / min(times[1], times[2]), rel=0.01, abs=0.006)
    assert float(rows[1][-1]) >= 0.5   # its busy process held about one CPU
    assert "worst ratio" in out.stdout


def test_contention_figure_is_the_median_over_processes_of_each_ones_statistic():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import contention
    finally:
        sys.path.pop(0)
    lucky, usual, unlucky = [0.1, 0.5, 0.6], [0.3, 0.4, 0.45], [0.2, 0.9, 1.0]
    assert contention.figure([lucky, usual, unlucky]) == 0.5   # medians 0.5, 0.4, 0.9
    assert contention.figure([lucky, usual, unlucky], "min") == 0.2   # minima 0.1, 0.3, 0.2
    assert contention.figure([usual]) == 0.4


def _asv_pages(tmp_path):
    import asv
    html = tmp_path / "html"
    shutil.copytree(Path(asv.__file__).parent / "www", html)   # what `asv publish` starts its folder from
    return html


def test_the_dashboard_loads_nothing_from_the_internet(tmp_path):
    """Every script and stylesheet of the published pages comes from html/vendor, each file the
    one pinned by hash, with an integrity attribute the browser checks it against."""
    import base64
    import hashlib
    sys.path.insert(0, str(ROOT / "scripts"))
    offline = importlib.import_module("offline_dashboard")
    if shutil.which("npm") is None and not (offline.VENDOR / "node_modules").is_dir():
        pytest.skip("npm is needed once to fetch the dashboard's scripts")
    offline.install()
    html = _asv_pages(tmp_path)
    before = (html / "index.html").read_text()
    assert "https://code.jquery.com" in before   # asv's own page loads from CDNs
    replaced = offline.localise(html, log=lambda *a: None)
    assert len(replaced) == len(offline.FILES)
    for page in html.glob("*.html"):
        text = page.read_text()
        loads = re.findall(r"<(?:script|link)\b[^>]*?(?:src|href)=\"([^\"]+)\"[^>]*>", text)
        assert loads and not [u for u in loads if re.match(r"(https?:)?//", u)], page.name
        for tag in re.findall(r"<(?:script|link)\b[^>]*vendor/[^>]*>", text):
            path, sri = re.search(r'(?:src|href)="([^"]+)" integrity="sha384-([^"]+)"', tag).groups()
            data = (html / path).read_bytes()
            assert base64.b64encode(hashlib.sha384(data).digest()).decode() == sri
            pinned = dict(offline.FILES.values())[path[len("vendor/"):]]
            assert hashlib.sha256(data).hexdigest() == pinned
    assert (html / "vendor/bootstrap/dist/fonts/glyphicons-halflings-regular.woff").is_file()


def test_the_dashboard_refuses_a_file_that_does_not_match_its_pin(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    offline = importlib.import_module("offline_dashboard")
    vendor = tmp_path / "vendor"
    for path, _ in offline._pinned():
        (vendor / "node_modules" / path).parent.mkdir(parents=True, exist_ok=True)
        (vendor / "node_modules" / path).write_text("tampered")
    html = _asv_pages(tmp_path)
    before = (html / "index.html").read_text()
    with pytest.raises(offline.Refused, match="sha256 .* pinned"):
        offline.localise(html, vendor=vendor)
    assert (html / "index.html").read_text() == before and not (html / "vendor").exists()


def _blue_span(png):
    """How wide (pixels) the run of the first series' blue is across the plot, right of the legend."""
    from PIL import Image
    im = Image.open(png).convert("RGB")
    px, (w, h) = im.load(), im.size
    xs = [x for x in range(int(0.6 * w), w) for y in range(int(0.1 * h), int(0.85 * h))
          if px[x, y][2] > px[x, y][0] + 80 and px[x, y][2] > px[x, y][1] + 25]
    return max(xs) - min(xs) if xs else 0


def test_the_published_dashboard_draws_a_history_in_a_browser_offline(tmp_path):
    """Two real commits, each measured with its own code (seed speed-up, one parameter set), are
    published, made offline and opened in headless Chromium with every host but 127.0.0.1
    unreachable: with one commit the graph is a dot, with both it is a line across the plot."""
    import functools
    import http.server
    import threading
    chromium = next((c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)
    if chromium is None:
        pytest.skip("needs Chromium (apt-get install chromium)")
    pytest.importorskip("PIL")
    sys.path.insert(0, str(ROOT / "scripts"))
    offline = importlib.import_module("offline_dashboard")
    offline.install()
    commits = subprocess.run(["git", "rev-list", "-n", "2", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()[::-1]   # older first
    if len(commits) < 2:
        pytest.skip("a clone with history is needed")
    conf = json.loads((ROOT / "asv_bench" / "asv.conf.json").read_text())
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "asv_bench" / "benchmarks"), results_dir=str(tmp_path / "results"),
                html_dir=str(tmp_path / "html"), env_dir=str(tmp_path / "env"))
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    asv = [sys.executable, "-m", "asv"]
    env = dict(os.environ, FASTBP_SPECIALIZE="1")   # compile the seed's variant, not the general build
    subprocess.run(asv + ["machine", "--yes", "--config", "asv.conf.json"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "html"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = (f"http://127.0.0.1:{server.server_port}/#bench_workloads.Speedup.track_speedup"
            "?workload=seed&dtype=float32&features=sgd")
    spans = []
    try:
        for commit in commits:
            tree = tmp_path / f"tree-{commit[:8]}"
            tree.mkdir()
            archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            out = subprocess.run(asv + ["run", "--config", "asv.conf.json", "--python=same", "--set-commit-hash",
                                        commit, "--bench", r"Speedup.track_speedup\('seed', 'float32', 'sgd'\)"],
                                 cwd=tmp_path, env=dict(env, PYTHONPATH=str(tree)), capture_output=True, text=True,
                                 timeout=600)
            assert out.returncode == 0 and "failed" not in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
            subprocess.run(asv + ["publish", "--config", "asv.conf.json"], cwd=tmp_path, env=env, check=True,
                           capture_output=True, timeout=300)
            offline.localise(tmp_path / "html", log=lambda *a: None)
            png = tmp_path / f"{commit[:8]}.png"
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--window-size=1200,800",
                            "--virtual-time-budget=8000", f"--screenshot={png}", page],
                           cwd=tmp_path, capture_output=True, timeout=120, check=True)
            spans.append(_blue_span(png))
    finally:
        server.shutdown()
    assert spans[0] < 40 < 200 < spans[1], spans   # a dot, then a line across the right of the plot
